import assert from 'node:assert/strict';
import { test } from 'node:test';

import { clickBody } from '../../src/lib/click.js';

const measurement = (changes = {}) => ({
  clickId: '0b5e1a0c-4f3e-4c55-9b1e-2f8f6b7a9d10',
  pageUrl: 'https://www.youtube.com/watch?v=VESeA6leQuk&list=PLx&index=3',
  x: 320.5,
  y: 100.25,
  player: { width: 640, height: 480 },
  video: { width: 640, height: 360 },
  timestamp: 12.345678,
  ...changes,
});

test('a measurement becomes the body of POST /api/v1/clicks', () => {
  assert.deepEqual(clickBody(measurement()), {
    body: {
      clickId: '0b5e1a0c-4f3e-4c55-9b1e-2f8f6b7a9d10',
      videoId: 'VESeA6leQuk',
      x: 320.5,
      y: 100.25,
      timestamp: 12.345678,
      player: { width: 640, height: 480 },
      video: { width: 640, height: 360 },
    },
  });
});

test('a click on a black band is still a click (the server flags it)', () => {
  const { body } = clickBody(measurement({ y: 10 }));
  assert.equal(body.y, 10);
});

test('the body carries only what the server expects', () => {
  const { body } = clickBody(measurement({ extra: 'x', player: { width: 640, height: 480, top: 5 } }));
  assert.deepEqual(Object.keys(body).sort(), ['clickId', 'player', 'timestamp', 'video', 'videoId', 'x', 'y']);
  assert.deepEqual(body.player, { width: 640, height: 480 });
});

test('the video id comes from the page URL in any of its forms', () => {
  assert.equal(clickBody(measurement({ pageUrl: 'https://www.youtube.com/shorts/abcdefghijk' })).body.videoId, 'abcdefghijk');
  assert.equal(clickBody(measurement({ pageUrl: 'https://www.youtube.com/live/abcdefghijk' })).body.videoId, 'abcdefghijk');
});

test('no body without a video, a picture, a sane position or a click id', () => {
  for (const [what, changes] of [
    ['home page', { pageUrl: 'https://www.youtube.com/' }],
    ['no page', { pageUrl: undefined }],
    ['no frame yet', { video: { width: 0, height: 0 } }],
    ['no element size', { player: { width: 0, height: 480 } }],
    ['missing sizes', { player: undefined }],
    ['negative x', { x: -1 }],
    ['NaN y', { y: NaN }],
    ['string x', { x: '3' }],
    ['beyond the element', { x: 641 }],
    ['below the element', { y: 480.5 }],
    ['negative time', { timestamp: -0.1 }],
    ['infinite time', { timestamp: Infinity }],
    ['bad click id', { clickId: 'not-a-uuid' }],
    ['no click id', { clickId: undefined }],
  ]) {
    const result = clickBody(measurement(changes));
    assert.ok(result.error && !result.body, what);
  }
  assert.ok(clickBody(null).error);
  assert.ok(clickBody('click').error);
});

test('the edge of the element is still on it', () => {
  assert.ok(clickBody(measurement({ x: 640, y: 480 })).body);
  assert.ok(clickBody(measurement({ x: 0, y: 0 })).body);
});
