import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  afterFailure,
  dueAgainAfterRecovery,
  dueEntries,
  entriesOf,
  keyOf,
  newEntry,
  nextDueAt,
} from '../../src/lib/outbox.js';

const body = (clickId) => ({ clickId, videoId: 'VESeA6leQuk', x: 1, y: 2, timestamp: 3 });
const NOW = 1_700_000_000_000;

test('a new click is due at once and remembers its tab', () => {
  const entry = newEntry(body('a'), { tabId: 7, frameId: 0 }, NOW);
  assert.equal(entry.clickId, 'a');
  assert.equal(entry.attempts, 0);
  assert.equal(entry.nextAttemptAt, NOW);
  assert.deepEqual(entry.tab, { tabId: 7, frameId: 0 });
  assert.deepEqual(dueEntries([entry], NOW), [entry]);
});

test('entries are read from storage items, oldest first, ignoring other keys', () => {
  const a = newEntry(body('a'), null, NOW + 5);
  const b = newEntry(body('b'), null, NOW);
  const c = newEntry(body('c'), null, NOW);
  const items = { [keyOf('a')]: a, [keyOf('c')]: c, outboxStatus: { lastError: null }, [keyOf('b')]: b };
  assert.deepEqual(entriesOf(items).map((e) => e.clickId), ['b', 'c', 'a']);
});

test('a failure counts an attempt, waits its backoff and keeps the reason', () => {
  const entry = newEntry(body('a'), null, NOW);
  const once = afterFailure(entry, { status: 0, error: 'refused' }, 'Cannot reach', NOW, () => 0);
  assert.equal(once.attempts, 1);
  assert.equal(once.nextAttemptAt, NOW + 500);
  assert.deepEqual(once.lastError, { message: 'Cannot reach', at: NOW, serverWide: true });
  assert.deepEqual(dueEntries([once], NOW + 499), []);
  assert.deepEqual(dueEntries([once], NOW + 500), [once]);
  assert.deepEqual(dueEntries([once], NOW, true), [once]);

  const twice = afterFailure(once, { status: 500 }, 'Server error', NOW + 500, () => 0);
  assert.equal(twice.attempts, 2);
  assert.equal(twice.nextAttemptAt, NOW + 500 + 1000);
  assert.equal(twice.lastError.serverWide, false);
  assert.equal(twice.body, entry.body, 'the body is sent again unchanged');
});

test("a Retry-After from the server pushes the next attempt back", () => {
  const entry = newEntry(body('a'), null, NOW);
  const later = afterFailure(entry, { status: 429, retryAfter: '30' }, 'busy', NOW, () => 0);
  assert.equal(later.nextAttemptAt, NOW + 30_000);
});

test('when the server is back, clicks held back by a server-wide failure are due at once', () => {
  const down = afterFailure(newEntry(body('a'), null, NOW), { status: 0 }, 'down', NOW, () => 0.5);
  const poison = afterFailure(newEntry(body('b'), null, NOW), { status: 500 }, 'error', NOW, () => 0.5);
  const fresh = newEntry(body('c'), null, NOW + 10_000);
  const later = NOW + 100;
  const recovered = dueAgainAfterRecovery([down, poison, fresh], later);
  assert.deepEqual(recovered.map((e) => [e.clickId, e.nextAttemptAt]), [['a', later]]);
});

test('the next due time is the earliest of the waiting clicks', () => {
  assert.equal(nextDueAt([]), null);
  const a = { ...newEntry(body('a'), null, NOW), nextAttemptAt: NOW + 9 };
  const b = { ...newEntry(body('b'), null, NOW), nextAttemptAt: NOW + 3 };
  assert.equal(nextDueAt([a, b]), NOW + 3);
});
