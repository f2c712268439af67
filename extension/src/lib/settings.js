// The extension's settings: where the Framecart server is, and the viewer's token.
// Pure (node tests it); storage is the caller's business (chrome.storage.sync).

export const DEFAULT_SERVER_URL = 'http://127.0.0.1:8000';

export const DEFAULT_SETTINGS = Object.freeze({ serverUrl: DEFAULT_SERVER_URL, token: '' });

/**
 * A server URL as typed by a person, checked and normalised to its origin plus path,
 * without a trailing slash (`https://shop.example/framecart`).
 * @returns {{url: string} | {error: string}}
 */
export function normalizeServerUrl(input) {
  const text = String(input ?? '').trim();
  if (!text) return { error: 'Enter the address of your Framecart server.' };
  let url;
  try {
    url = new URL(text);
  } catch {
    return { error: 'That is not a URL (it should look like http://127.0.0.1:8000).' };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { error: 'The address must start with http:// or https://.' };
  }
  if (url.username || url.password) {
    return { error: 'Put no user name or password in the address; use the token field.' };
  }
  if (url.search || url.hash) return { error: 'The address must not have a ?query or #fragment.' };
  return { url: url.origin + url.pathname.replace(/\/+$/, '') };
}

/** A token as typed: trimmed; only characters allowed in a bearer token (RFC 6750). */
export function normalizeToken(input) {
  const token = String(input ?? '').trim();
  if (token && !/^[A-Za-z0-9\-._~+/]+=*$/.test(token)) {
    return { error: 'The token may hold letters, digits and - . _ ~ + / = only.' };
  }
  return { token };
}

/** Settings read from storage, with defaults for anything missing or unusable. */
export function effectiveSettings(stored) {
  const url = normalizeServerUrl(stored?.serverUrl);
  const token = normalizeToken(stored?.token);
  return {
    serverUrl: url.url ?? DEFAULT_SERVER_URL,
    token: token.token ?? '',
  };
}

/** The request headers for the server, with the token when one is set. */
export function requestHeaders(settings, extra = {}) {
  const headers = { ...extra };
  if (settings.token) headers.Authorization = `Bearer ${settings.token}`;
  return headers;
}

/** The match pattern that grants access to the server (host permissions ignore ports). */
export function originPattern(serverUrl) {
  const url = new URL(serverUrl);
  return `${url.protocol}//${url.hostname}/*`;
}
