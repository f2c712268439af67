// Orders from the product card, and signing in from the options page.
//
// An order attempt is named by the Idempotency-Key that the card made for it. The
// worker retries a momentary failure a couple of times with that key; after that the
// card offers "Try again", which sends the same key once more. However often the
// request arrives, the server places at most one order per key and answers a repeat
// with its first answer.

import { errorDetail } from '../lib/answer.js';
import { isArticle } from '../lib/match-poll.js';
import { isIdempotencyKey, orderBody, orderOutcome, orderReadiness, orderRetryDelay } from '../lib/order.js';
import { retryAfterMs } from '../lib/retry.js';
import { normalizeToken } from '../lib/settings.js';
import { loadOrderSettings, loadSettings, postOrder, postSession } from './server.js';

/**
 * Places the order of one unit of `article` from the card of click `clickId`.
 * @returns {Promise<{ok: true, kind: string, message: string, order?: object} | {ok: false, error: string}>}
 */
export async function placeOrder({ clickId, article, idempotencyKey }) {
  if (!isArticle(article)) return { ok: false, error: 'no product to order' };
  if (!isIdempotencyKey(idempotencyKey)) return { ok: false, error: 'bad idempotency key' };
  const settings = await loadOrderSettings();
  const readiness = orderReadiness(settings);
  if (!readiness.ready) {
    // The settings changed since the card was shown.
    return {
      ok: true,
      kind: readiness.missing.includes('token') ? 'sign_in' : 'invalid',
      message: readiness.missing.includes('token')
        ? 'Sign in in the Framecart settings to order.'
        : 'Add your contact and shipping address in the Framecart settings to order.',
    };
  }
  const built = orderBody({
    article,
    quantity: 1,
    clickId,
    contact: settings.contact,
    shippingAddress: settings.shippingAddress,
  });
  if (built.error) return { ok: false, error: built.error };

  for (let retried = 0; ; retried++) {
    const answer = await postOrder(settings, built.body, idempotencyKey);
    const outcome = orderOutcome(answer);
    const delay = orderRetryDelay(outcome, retried, retryAfterMs(answer.retryAfter));
    if (delay === null) return { ok: true, ...outcome, status: answer.status };
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

/**
 * Signs in with `POST /api/v1/sessions` and keeps the token (never the password) in
 * chrome.storage.sync, where clicks and orders take it from.
 * @returns {Promise<{ok: true, token: string, expiresAt: string | null} | {ok: false, error: string}>}
 */
export async function signIn({ email, password }) {
  if (typeof email !== 'string' || !email.trim() || typeof password !== 'string' || !password) {
    return { ok: false, error: 'Enter your email address and password.' };
  }
  const settings = await loadSettings();
  const answer = await postSession(settings, email.trim(), password);
  if (answer.status === 200 || answer.status === 201) {
    const token = normalizeToken(answer.body?.token);
    if (token.error || !token.token) return { ok: false, error: 'The server answered without a usable token.' };
    await chrome.storage.sync.set({ token: token.token });
    const expiresAt = typeof answer.body.expires_at === 'string' ? answer.body.expires_at : null;
    return { ok: true, token: token.token, expiresAt };
  }
  if (!answer.status) return { ok: false, error: `Cannot reach ${settings.serverUrl}: ${answer.error || 'no answer'}` };
  const { code, message } = errorDetail(answer.body);
  if (answer.status === 401) return { ok: false, error: 'Wrong email address or password.' };
  return {
    ok: false,
    error: `Not signed in (HTTP ${answer.status}${code ? ` ${code}` : ''})${message ? `: ${message}` : ''}.`,
  };
}
