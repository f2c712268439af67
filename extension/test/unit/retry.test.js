import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BACKOFF, backoffMs, outcomeOf, retryAfterMs, serverWide } from '../../src/lib/retry.js';

test('2xx means the server has the click', () => {
  for (const status of [200, 201, 202, 204, 299]) assert.equal(outcomeOf(status), 'sent', status);
});

test('a refusal that a retry cannot change drops the click', () => {
  for (const status of [400, 409, 413, 415, 422]) assert.equal(outcomeOf(status), 'refused', status);
});

test('timeouts, rate limits, server errors and no answer at all are retried', () => {
  for (const status of [408, 429, 500, 502, 503, 504, 599, 0, undefined, null]) {
    assert.equal(outcomeOf(status), 'retry', String(status));
  }
});

test('a setup problem keeps the click until it is fixed', () => {
  // A wrong token (401/403) or a wrong address (404, 405) is fixed in the settings.
  for (const status of [401, 403, 404, 405, 410, 301, 302, 100]) assert.equal(outcomeOf(status), 'retry', status);
});

test('no answer, 429 and gateway errors hold back the whole round', () => {
  for (const status of [0, undefined, 429, 502, 503, 504]) assert.equal(serverWide(status), true, String(status));
  for (const status of [408, 500, 401, 404]) assert.equal(serverWide(status), false, String(status));
});

test('backoff doubles from one second and stops at five minutes', () => {
  const top = () => 0.999999;
  const bottom = () => 0;
  const expected = [1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000, 300000];
  expected.forEach((ceiling, i) => {
    const failures = i + 1;
    assert.equal(backoffMs(failures, top), ceiling, `ceiling after ${failures}`);
    assert.equal(backoffMs(failures, bottom), ceiling / 2, `floor after ${failures}`);
  });
  assert.equal(backoffMs(1000, top), BACKOFF.maxMs);
});

test('jitter stays within half and all of the step', () => {
  for (let i = 0; i < 200; i++) {
    const ms = backoffMs(4, Math.random);
    assert.ok(ms >= 4000 && ms <= 8000, String(ms));
  }
});

test('nonsense failure counts count as one failure', () => {
  assert.equal(backoffMs(0, () => 0), 500);
  assert.equal(backoffMs(-3, () => 0), 500);
  assert.equal(backoffMs(2.7, () => 0), 1000);
});

test("the server's Retry-After is a lower bound, itself capped", () => {
  assert.equal(backoffMs(1, () => 0, 20_000), 20_000);
  assert.equal(backoffMs(1, () => 0, 60 * 60_000), BACKOFF.maxMs);
  assert.equal(backoffMs(5, () => 0, 1_000), 8_000);
});

test('Retry-After is read in seconds or as a date', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');
  assert.equal(retryAfterMs('120', now), 120_000);
  assert.equal(retryAfterMs(' 3 ', now), 3_000);
  assert.equal(retryAfterMs('Wed, 01 Jan 2025 00:00:30 GMT', now), 30_000);
  assert.equal(retryAfterMs('Tue, 31 Dec 2024 23:00:00 GMT', now), 0);
  for (const bad of [null, undefined, '', 'soon', '-5', '1.5']) assert.equal(retryAfterMs(bad, now), 0, String(bad));
});
