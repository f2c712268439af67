import assert from 'node:assert/strict';
import { test } from 'node:test';

import { MATCH_POLL, isArticle, matchStep, nextPollDelay, pollSchedule, worthWatching } from '../../src/lib/match-poll.js';

const CLICK = '1b4e28ba-2fa1-41d2-883f-0016d3cca427';

test('asks soon, then less often, and stops within the budget', () => {
  const delays = pollSchedule();
  assert.equal(delays[0], MATCH_POLL.firstMs);
  for (let i = 1; i < delays.length; i++) assert.ok(delays[i] >= delays[i - 1], `${delays}`);
  assert.ok(delays.every((d) => d <= MATCH_POLL.maxMs));
  const total = delays.reduce((a, b) => a + b, 0);
  assert.ok(total <= MATCH_POLL.budgetMs && total > MATCH_POLL.budgetMs - MATCH_POLL.maxMs, `${total}`);
  // A verdict within 2 s of the click is seen after at most 3 questions.
  assert.ok(delays.slice(0, 3).reduce((a, b) => a + b, 0) >= 1_500);
  assert.ok(delays.length <= 10, 'a bounded number of questions');
});

test('the schedule counts the time the answers took', () => {
  assert.equal(nextPollDelay(0, 0), 300);
  assert.equal(nextPollDelay(1, 300), 480);
  assert.equal(nextPollDelay(3, 9_000), null);
  assert.equal(nextPollDelay(20, 0), MATCH_POLL.maxMs);
  assert.equal(nextPollDelay(0, MATCH_POLL.budgetMs), null);
});

test('a matched verdict gives the article and its additional identifier', () => {
  const body = { click_id: CLICK, status: 'matched', article: 'SKU-1', additional_identifier: ' size M ', label: 'shirt' };
  assert.deepEqual(matchStep({ status: 200, body }, CLICK), {
    step: 'matched',
    article: 'SKU-1',
    additionalIdentifier: 'size M',
  });
  assert.deepEqual(matchStep({ status: 200, body: { ...body, additional_identifier: null } }, CLICK.toUpperCase()), {
    step: 'matched',
    article: 'SKU-1',
    additionalIdentifier: null,
  });
});

test('pending, a click not yet in the views, and momentary trouble: ask again', () => {
  const pending = { click_id: CLICK, status: 'pending', article: null };
  for (const answer of [
    { status: 200, body: pending },
    { status: 404, body: { error: { code: 'not_found' } } },
    { status: 0, error: 'Failed to fetch' },
    { status: 503 },
    { status: 500 },
    { status: 429 },
    { status: 408 },
  ]) {
    assert.deepEqual(matchStep(answer, CLICK), { step: 'wait' }, JSON.stringify(answer));
  }
});

test('unmatched, odd verdicts and refusals end the polling without a product', () => {
  for (const answer of [
    { status: 200, body: { click_id: CLICK, status: 'unmatched', article: null, reason: 'no_object_near' } },
    { status: 200, body: { click_id: CLICK, status: 'matched', article: null } },
    { status: 200, body: { click_id: CLICK, status: 'matched', article: '../admin' } },
    { status: 200, body: { click_id: 'another', status: 'matched', article: 'SKU-1' } },
    { status: 200, body: { click_id: CLICK, status: 'something new' } },
    { status: 200, body: null },
    { status: 200, body: 'matched' },
    { status: 400 },
    { status: 401 },
    { status: 403 },
  ]) {
    assert.deepEqual(matchStep(answer, CLICK), { step: 'done' }, JSON.stringify(answer));
  }
});

test('article numbers are letters, digits, - and _', () => {
  for (const good of ['SKU-1', 'a', 'ABC_123-x']) assert.ok(isArticle(good), good);
  for (const bad of ['', 'SKU 1', 'SKU/1', '../x', 'ä', null, 7, 'x'.repeat(101)]) assert.ok(!isArticle(bad), String(bad));
});

test('only a recent click from a tab is looked up', () => {
  const now = 1_000_000;
  const tab = { tabId: 3, frameId: 0 };
  assert.equal(worthWatching({ tab, queuedAt: now - 1_000 }, now), true);
  assert.equal(worthWatching({ tab, queuedAt: now - MATCH_POLL.maxClickAgeMs - 1 }, now), false);
  assert.equal(worthWatching({ tab: null, queuedAt: now }, now), false);
  assert.equal(worthWatching(undefined, now), false);
});
