// Talking to the Framecart server: the settings, and the two requests the extension
// makes. Only the service worker sends them: it has host permissions for the server,
// where a content script's fetch would be subject to YouTube's CORS.

import { networkErrorText } from '../lib/answer.js';
import { DEFAULT_SETTINGS, effectiveSettings, requestHeaders } from '../lib/settings.js';

const CLICK_TIMEOUT_MS = 10_000;
const HEALTH_TIMEOUT_MS = 5_000;

/** The settings as stored by the options page, with defaults. */
export async function loadSettings() {
  return effectiveSettings(await chrome.storage.sync.get(DEFAULT_SETTINGS));
}

/**
 * Posts one click. Never throws: a failure is an answer with status 0.
 * @returns {Promise<{status: number, body?: any, retryAfter?: string|null, error?: string}>}
 */
export async function postClick(settings, body) {
  return request(settings, '/api/v1/clicks', CLICK_TIMEOUT_MS, {
    method: 'POST',
    headers: requestHeaders(settings, { 'Content-Type': 'application/json' }),
    body: JSON.stringify(body),
  });
}

/** Asks `GET /healthz`; `reachable` when it answered 2xx. */
export async function checkHealth(settings) {
  const answer = await request(settings, '/healthz', HEALTH_TIMEOUT_MS, {
    headers: requestHeaders(settings),
  });
  return { reachable: answer.status >= 200 && answer.status < 300, ...answer };
}

async function request(settings, path, timeoutMs, init) {
  try {
    const response = await fetch(settings.serverUrl + path, {
      ...init,
      cache: 'no-store',
      // The viewer is identified by the token when there is one, never by cookies.
      credentials: 'omit',
      signal: AbortSignal.timeout(timeoutMs),
    });
    return {
      status: response.status,
      body: await readJson(response),
      retryAfter: response.headers.get('Retry-After'),
    };
  } catch (error) {
    return { status: 0, error: networkErrorText(error) };
  }
}

async function readJson(response) {
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}
