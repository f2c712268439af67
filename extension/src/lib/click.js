// The body of `POST /api/v1/clicks`, from what the content script measured at the
// moment of the click. Pure (node tests it).

import { videoIdFromUrl } from './video-id.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * @param {object} m  the content script's measurement:
 *   clickId (a UUID), pageUrl (the watch page's URL), x, y (CSS px from the video
 *   element's top-left), player {width, height} (the element's size in CSS px),
 *   video {width, height} (videoWidth/videoHeight), timestamp (currentTime, seconds)
 * @returns {{body: object} | {error: string}}  the request body, or why there is none
 */
export function clickBody(m) {
  if (!m || typeof m !== 'object') return { error: 'not a click' };
  if (typeof m.clickId !== 'string' || !UUID.test(m.clickId)) return { error: 'bad click id' };
  const videoId = videoIdFromUrl(m.pageUrl);
  if (!videoId) return { error: 'the page names no video' };
  if (!isSize(m.player) || !isSize(m.video)) return { error: 'no picture to click on' };
  if (!(finite(m.x) && finite(m.y) && m.x >= 0 && m.y >= 0)) return { error: 'bad position' };
  if (m.x > m.player.width || m.y > m.player.height) return { error: 'outside the video' };
  if (!(finite(m.timestamp) && m.timestamp >= 0)) return { error: 'bad media time' };
  return {
    body: {
      clickId: m.clickId.toLowerCase(),
      videoId,
      x: m.x,
      y: m.y,
      timestamp: m.timestamp,
      player: { width: m.player.width, height: m.player.height },
      video: { width: m.video.width, height: m.video.height },
    },
  };
}

function isSize(s) {
  return !!s && typeof s === 'object' && finite(s.width) && finite(s.height) && s.width > 0 && s.height > 0;
}

function finite(n) {
  return typeof n === 'number' && Number.isFinite(n);
}
