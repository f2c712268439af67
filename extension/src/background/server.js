// Talking to the Framecart server: the settings, and the requests the extension makes.
// Only the service worker sends them: it has host permissions for the server, where a
// content script's fetch would be subject to YouTube's CORS.

import { networkErrorText } from '../lib/answer.js';
import { DEFAULT_ORDER_SETTINGS } from '../lib/order.js';
import { DEFAULT_SETTINGS, effectiveSettings, requestHeaders } from '../lib/settings.js';

const CLICK_TIMEOUT_MS = 10_000;
const HEALTH_TIMEOUT_MS = 5_000;
const READ_TIMEOUT_MS = 5_000;
const ORDER_TIMEOUT_MS = 15_000;

/** The settings as stored by the options page, with defaults. */
export async function loadSettings() {
  return effectiveSettings(await chrome.storage.sync.get(DEFAULT_SETTINGS));
}

/** The settings with the viewer's contact and shipping address, for orders. */
export async function loadOrderSettings() {
  const stored = await chrome.storage.sync.get({ ...DEFAULT_SETTINGS, ...DEFAULT_ORDER_SETTINGS });
  return { ...effectiveSettings(stored), contact: stored.contact, shippingAddress: stored.shippingAddress };
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

/**
 * `GET /api/v1/clicks/{clickId}/match`: what the matcher made of a click. Sent with the
 * viewer's token when there is one: a click made signed in is only its owner's to read
 * (an anonymous click's verdict is answered to whoever holds its id).
 */
export async function getMatch(settings, clickId) {
  return request(settings, `/api/v1/clicks/${encodeURIComponent(clickId)}/match`, READ_TIMEOUT_MS, {
    headers: requestHeaders(settings),
  });
}

/** `GET /api/v1/products/{article}`: a product of the catalogue. Public. */
export async function getProduct(settings, article) {
  return request(settings, `/api/v1/products/${encodeURIComponent(article)}`, READ_TIMEOUT_MS, {});
}

/**
 * `POST /api/v1/orders` as the viewer whose token is set. `idempotencyKey` names the
 * attempt: a retry of the same attempt carries the same key, and the server then
 * answers what it answered the first time instead of placing a second order.
 */
export async function postOrder(settings, body, idempotencyKey) {
  return request(settings, '/api/v1/orders', ORDER_TIMEOUT_MS, {
    method: 'POST',
    headers: requestHeaders(settings, { 'Content-Type': 'application/json', 'Idempotency-Key': idempotencyKey }),
    body: JSON.stringify(body),
  });
}

/** `POST /api/v1/sessions`: signs a viewer in; the answer holds a token. No token sent. */
export async function postSession(settings, email, password) {
  return request(settings, '/api/v1/sessions', READ_TIMEOUT_MS, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
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
