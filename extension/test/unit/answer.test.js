import assert from 'node:assert/strict';
import { test } from 'node:test';

import { describeFailure, errorDetail, networkErrorText } from '../../src/lib/answer.js';

const SERVER = 'http://127.0.0.1:8000';

test('no answer says which server could not be reached', () => {
  assert.equal(describeFailure({ status: 0, error: 'Failed to fetch' }, SERVER), `Cannot reach ${SERVER}: Failed to fetch`);
  assert.equal(describeFailure({ status: 0 }, SERVER), `Cannot reach ${SERVER}: no answer`);
});

test("a Framecart error body gives its code and message", () => {
  const answer = {
    status: 422,
    body: { error: { code: 'invalid_position', message: 'the click is outside the player' } },
  };
  assert.equal(describeFailure(answer, SERVER), 'Refused (HTTP 422 invalid_position): the click is outside the player');
  assert.equal(
    describeFailure({ status: 503, body: { error: { code: 'store_unavailable', message: 'down' } } }, SERVER),
    'Server error (HTTP 503 store_unavailable): down',
  );
  assert.equal(describeFailure({ status: 429, body: null }, SERVER), 'Server busy (HTTP 429)');
});

test('bodies that are not Framecart errors are tolerated', () => {
  for (const body of [null, 'text', 42, { error: 'x' }, { error: { code: 7 } }, []]) {
    assert.doesNotThrow(() => errorDetail(body));
  }
  assert.equal(describeFailure({ status: 502, body: '<html>' }, SERVER), 'Server error (HTTP 502)');
  assert.equal(errorDetail({ error: { message: 'x'.repeat(1000) } }).message.length, 300);
});

test('a timeout reads as one', () => {
  assert.equal(networkErrorText(new DOMException('signal timed out', 'TimeoutError')), 'no answer in time');
  assert.equal(networkErrorText(new TypeError('Failed to fetch')), 'Failed to fetch');
  assert.equal(networkErrorText(undefined), 'network error');
});
