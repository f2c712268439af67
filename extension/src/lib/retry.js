// When to send a waiting click again, and when to give up on it. Pure (node tests it).
//
// A click is sent until the server has it: every retry carries the same click id, so
// the server records it once however often it arrives. It is dropped only when the
// server accepted it or refused it for a reason that sending it again cannot change.

/** Statuses that refuse the click itself: the same request would be refused again. */
const REFUSED = new Set([
  400, // malformed JSON
  409, // the click id was already used for another click
  413, // body too large
  415, // not JSON
  422, // a value is not acceptable (bad id, position outside the player, …)
]);

/**
 * What to do with a click after the server answered `status` (0 or undefined when no
 * answer came: network error, timeout, server down).
 * @returns {'sent' | 'refused' | 'retry'}
 */
export function outcomeOf(status) {
  if (Number.isInteger(status) && status >= 200 && status < 300) return 'sent';
  if (REFUSED.has(status)) return 'refused';
  // 5xx, 408 and 429 are the server's momentary trouble. Any other 4xx (401/403: a
  // token being fixed, 404: a proxy or an older server) is a setup problem that the
  // person can fix, so keep the click rather than lose it.
  return 'retry';
}

/**
 * True when the failure says the whole server cannot take clicks now, so the clicks
 * behind this one would fail the same way: no point sending them in this round.
 */
export function serverWide(status) {
  return !status || status === 429 || status === 502 || status === 503 || status === 504;
}

export const BACKOFF = Object.freeze({
  baseMs: 1_000,
  maxMs: 5 * 60_000,
});

/**
 * Delay before attempt `failures + 1`, after `failures` failed attempts (≥ 1):
 * base·2^(failures−1), capped, with "equal jitter" (a random half on top of a fixed
 * half) so that many browsers coming back online do not all retry in step.
 * @param {number} failures  attempts that failed so far, ≥ 1
 * @param {() => number} random  a source of [0, 1), Math.random in use
 * @param {number} [retryAfterMs]  the server's Retry-After, a lower bound when given
 */
export function backoffMs(failures, random = Math.random, retryAfterMs = 0, policy = BACKOFF) {
  const n = Math.max(1, Math.floor(failures));
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(n - 1, 30));
  const delay = ceiling / 2 + (ceiling / 2) * random();
  return Math.round(Math.max(delay, Math.min(retryAfterMs, policy.maxMs)));
}

/**
 * A Retry-After header (seconds, or an HTTP date) in milliseconds from `now`; 0 when
 * absent or unreadable.
 */
export function retryAfterMs(header, now = Date.now()) {
  if (header == null || header === '') return 0;
  const value = String(header).trim();
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? 0 : Math.max(0, at - now);
}
