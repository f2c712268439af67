import assert from 'node:assert/strict';
import { test } from 'node:test';

import { elementToFrame } from '../../src/lib/geometry.js';

const close = (actual, expected, what) => assert.ok(Math.abs(actual - expected) < 1e-9, `${what}: ${actual} ≠ ${expected}`);

test('a frame that fills its element maps by the scale alone', () => {
  const f = elementToFrame({ x: 320, y: 180 }, { width: 640, height: 360 }, { width: 1280, height: 720 });
  close(f.scale, 0.5, 'scale');
  close(f.x, 640, 'x');
  close(f.y, 360, 'y');
  close(f.u, 0.5, 'u');
  close(f.v, 0.5, 'v');
  assert.equal(f.onFrame, true);
});

test('letterbox: a 16:9 frame in a 4:3 element has bands above and below', () => {
  const element = { width: 640, height: 480 };
  const frame = { width: 640, height: 360 };
  const centre = elementToFrame({ x: 320, y: 240 }, element, frame);
  close(centre.x, 320, 'x');
  close(centre.y, 180, 'y');
  assert.equal(centre.onFrame, true);

  const topOfPicture = elementToFrame({ x: 0, y: 60 }, element, frame);
  close(topOfPicture.y, 0, 'y');
  assert.equal(topOfPicture.onFrame, true);

  const topBand = elementToFrame({ x: 320, y: 30 }, element, frame);
  close(topBand.y, -30, 'y');
  assert.equal(topBand.onFrame, false);

  const bottomBand = elementToFrame({ x: 320, y: 420 }, element, frame);
  close(bottomBand.y, 360, 'y'); // the frame's last row is 359.x: 360 is past it
  assert.equal(bottomBand.onFrame, false);
});

test('pillarbox: a 4:3 frame in a 16:9 element has bands left and right', () => {
  const element = { width: 1280, height: 720 };
  const frame = { width: 640, height: 480 };
  const leftEdge = elementToFrame({ x: 160, y: 360 }, element, frame);
  close(leftEdge.x, 0, 'the picture starts after a 160 px band');
  assert.equal(leftEdge.onFrame, true);
  const rightEdge = elementToFrame({ x: 1120, y: 360 }, element, frame);
  close(rightEdge.x, 640, 'and ends 160 px before the right edge');
  assert.equal(rightEdge.onFrame, false);

  const f = elementToFrame({ x: 160 + 480, y: 360 }, element, frame);
  close(f.scale, 1.5, 'scale');
  close(f.x, 320, 'x');
  close(f.y, 240, 'y');
  assert.equal(f.onFrame, true);

  const left = elementToFrame({ x: 100, y: 360 }, element, frame);
  close(left.x, -40, 'x');
  assert.equal(left.onFrame, false);
  const right = elementToFrame({ x: 1200, y: 360 }, element, frame);
  assert.equal(right.onFrame, false);
  close(right.u, (1200 - 160) / 1.5 / 640, 'u');
});

test('the played resolution does not change the normalised point', () => {
  const element = { width: 854, height: 480 };
  const low = elementToFrame({ x: 500, y: 200 }, element, { width: 640, height: 360 });
  const high = elementToFrame({ x: 500, y: 200 }, element, { width: 1920, height: 1080 });
  close(low.u, high.u, 'u');
  close(low.v, high.v, 'v');
});

test('refuses sizes that are not positive', () => {
  for (const [element, frame] of [
    [{ width: 0, height: 480 }, { width: 640, height: 360 }],
    [{ width: 640, height: 480 }, { width: 640, height: 0 }],
    [{ width: NaN, height: 480 }, { width: 640, height: 360 }],
    [{ width: 640, height: 480 }, { width: -1, height: 360 }],
  ]) {
    assert.throws(() => elementToFrame({ x: 1, y: 1 }, element, frame), RangeError);
  }
});
