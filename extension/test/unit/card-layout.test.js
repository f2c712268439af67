import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Script } from 'node:vm';

import '../../src/lib/card-layout.js';

const { GAP, cardBounds, placeCard, scalePoint } = globalThis.framecartCardLayout;

const CARD = { width: 240, height: 200 };
// A 640×480 player at (40, 80) in a 1024×768 viewport, less the margin.
const VIEWPORT = { width: 1024, height: 768 };
const PLAYER = { left: 40, top: 80, right: 680, bottom: 560 };
const BOUNDS = cardBounds(PLAYER, VIEWPORT);

function rect(spot, size = CARD) {
  return { left: spot.left, top: spot.top, right: spot.left + size.width, bottom: spot.top + size.height };
}
function inside(inner, outer) {
  return inner.left >= outer.left - 1e-9 && inner.top >= outer.top - 1e-9 &&
    inner.right <= outer.right + 1e-9 && inner.bottom <= outer.bottom + 1e-9;
}
function covers(r, p) {
  return p.x >= r.left && p.x <= r.right && p.y >= r.top && p.y <= r.bottom;
}

test('the bounds are the player within the viewport, less a margin', () => {
  assert.deepEqual(BOUNDS, { left: 48, top: 88, right: 672, bottom: 552 });
  // Scrolled so that the player's top is above the viewport, and wider than the window.
  assert.deepEqual(cardBounds({ left: -100, top: -50, right: 1200, bottom: 400 }, VIEWPORT), {
    left: 8,
    top: 8,
    right: 1016,
    bottom: 392,
  });
  // Out of view: the player's own box.
  assert.deepEqual(cardBounds({ left: 0, top: 900, right: 640, bottom: 1380 }, VIEWPORT, 0), {
    left: 0,
    top: 900,
    right: 640,
    bottom: 1380,
  });
});

test('to the right of the click, centred on it', () => {
  const click = { x: 200, y: 300 };
  const spot = placeCard(click, CARD, BOUNDS);
  assert.deepEqual(spot, { left: 200 + GAP, top: 200, side: 'right' });
});

test('to the left when the right has no room; below or above when neither has', () => {
  const nearRight = { x: 600, y: 300 };
  assert.deepEqual(placeCard(nearRight, CARD, BOUNDS), { left: 600 - GAP - 240, top: 200, side: 'left' });
  const narrow = { left: 0, top: 0, right: 300, bottom: 600 };
  assert.equal(placeCard({ x: 150, y: 100 }, CARD, narrow).side, 'below');
  assert.equal(placeCard({ x: 150, y: 500 }, CARD, narrow).side, 'above');
});

test('near an edge the card slides along it instead of leaving the bounds', () => {
  const top = placeCard({ x: 200, y: 95 }, CARD, BOUNDS);
  assert.equal(top.top, BOUNDS.top);
  const bottom = placeCard({ x: 200, y: 550 }, CARD, BOUNDS);
  assert.equal(bottom.top, BOUNDS.bottom - CARD.height);
});

test('wherever the click, the card stays within the bounds and beside the click', () => {
  for (let x = BOUNDS.left; x <= BOUNDS.right; x += 16) {
    for (let y = BOUNDS.top; y <= BOUNDS.bottom; y += 16) {
      const click = { x, y };
      const spot = placeCard(click, CARD, BOUNDS);
      const r = rect(spot);
      assert.ok(inside(r, BOUNDS), `(${x}, ${y}) → ${JSON.stringify(spot)}`);
      assert.notEqual(spot.side, 'over', `(${x}, ${y}) has room beside it`);
      assert.ok(!covers(r, click), `(${x}, ${y}) is covered`);
    }
  }
});

test('a card larger than the bounds keeps its top-left corner in them', () => {
  const small = { left: 10, top: 20, right: 210, bottom: 170 };
  const spot = placeCard({ x: 100, y: 100 }, CARD, small);
  assert.deepEqual(spot, { left: 10, top: 20, side: 'over' });
});

test('a click keeps its place on a resized element', () => {
  assert.deepEqual(scalePoint({ x: 320, y: 120 }, { width: 640, height: 480 }, { width: 1280, height: 960 }), {
    x: 640,
    y: 240,
  });
  assert.deepEqual(scalePoint({ x: 10, y: 10 }, { width: 0, height: 0 }, { width: 100, height: 100 }), { x: 0, y: 0 });
});

test('the content scripts are classic scripts (content scripts cannot be modules)', () => {
  for (const file of ['../../src/lib/card-layout.js', '../../src/card.js', '../../src/content.js']) {
    const code = readFileSync(new URL(file, import.meta.url), 'utf8');
    assert.doesNotThrow(() => new Script(code, { filename: file }), file);
  }
});

test('the manifest loads the layout, then the card, then the content script', () => {
  const manifest = JSON.parse(readFileSync(new URL('../../manifest.json', import.meta.url), 'utf8'));
  assert.deepEqual(manifest.content_scripts[0].js, ['src/lib/card-layout.js', 'src/card.js', 'src/content.js']);
});
