// The clicks waiting to be sent: what an entry holds and how a failed attempt changes
// it. Pure (node tests it); the service worker keeps the entries in chrome.storage.local.

import { backoffMs, retryAfterMs, serverWide } from './retry.js';

/** Storage key prefix: one key per waiting click, so adding one never rewrites the rest. */
export const KEY_PREFIX = 'outbox:';

export function keyOf(clickId) {
  return KEY_PREFIX + clickId;
}

/**
 * A new waiting click.
 * @param {object} body  the request body (clickBody's)
 * @param {{tabId: number, frameId: number} | null} tab  where to hand the answer back
 */
export function newEntry(body, tab, now) {
  return {
    clickId: body.clickId,
    body,
    tab,
    queuedAt: now,
    attempts: 0,
    nextAttemptAt: now,
    lastError: null,
  };
}

/** The waiting clicks among stored items, oldest first. */
export function entriesOf(items) {
  return Object.entries(items)
    .filter(([key]) => key.startsWith(KEY_PREFIX))
    .map(([, entry]) => entry)
    .sort((a, b) => a.queuedAt - b.queuedAt || (a.clickId < b.clickId ? -1 : 1));
}

/** The entries to send now: those whose time has come, or all when forced. */
export function dueEntries(entries, now, force = false) {
  return force ? entries : entries.filter((e) => e.nextAttemptAt <= now);
}

/**
 * The entry after a failed attempt.
 * @param {{status: number, retryAfter?: string|null, error?: string}} answer
 */
export function afterFailure(entry, answer, message, now, random = Math.random) {
  const attempts = entry.attempts + 1;
  const wait = backoffMs(attempts, random, retryAfterMs(answer.retryAfter, now));
  return {
    ...entry,
    attempts,
    nextAttemptAt: now + wait,
    lastError: { message, at: now, serverWide: serverWide(answer.status) },
  };
}

/**
 * Once the server took a click again, the clicks that were held back because the whole
 * server was failing are due at once instead of at the end of their backoff.
 */
export function dueAgainAfterRecovery(entries, now) {
  return entries
    .filter((e) => e.nextAttemptAt > now && e.lastError?.serverWide)
    .map((e) => ({ ...e, nextAttemptAt: now }));
}

/** When the next waiting click is due, or null when none waits. */
export function nextDueAt(entries) {
  return entries.reduce((at, e) => (at === null || e.nextAttemptAt < at ? e.nextAttemptAt : at), null);
}
