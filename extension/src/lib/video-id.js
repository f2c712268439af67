// The YouTube video id of a page, from its URL. Pure: no DOM, no chrome.* (node tests it).
//
// A canonical id is exactly 11 characters of [A-Za-z0-9_-]. A watch page names it in
// the `v` parameter; youtu.be/ID, /shorts/ID, /embed/ID and /live/ID name it in the path.
// Everything else in the URL (&list, &index, &t, &si, …) varies between visits of the
// same video, so only the id itself is returned.

const ID = /^[A-Za-z0-9_-]{11}$/;

// Hosts that serve YouTube watch pages or embeds (the server accepts the same list).
const YOUTUBE_HOSTS = new Set([
  'youtube.com',
  'www.youtube.com',
  'm.youtube.com',
  'music.youtube.com',
  'gaming.youtube.com',
  'youtube-nocookie.com',
  'www.youtube-nocookie.com',
]);

// Path prefixes whose next segment is the id.
const ID_PATHS = new Set(['shorts', 'embed', 'live', 'v', 'e']);

/** True when `s` is a canonical video id. */
export function isVideoId(s) {
  return typeof s === 'string' && ID.test(s);
}

/**
 * The canonical video id named by a YouTube URL, or null when the URL names none
 * (a channel, the home page, a search, another site, or not a URL at all).
 */
export function videoIdFromUrl(href) {
  let url;
  try {
    url = new URL(href);
  } catch {
    return null;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return null;
  const host = url.hostname.replace(/\.$/, '').toLowerCase();
  const segments = url.pathname.split('/').filter(Boolean);

  if (host === 'youtu.be') return idOrNull(segments[0]);
  if (!YOUTUBE_HOSTS.has(host)) return null;
  if (segments[0] === 'watch') return idOrNull(url.searchParams.get('v'));
  if (ID_PATHS.has(segments[0])) return idOrNull(segments[1]);
  return null;
}

function idOrNull(candidate) {
  return isVideoId(candidate) ? candidate : null;
}
