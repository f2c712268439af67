import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  PICTURE_MAX_BYTES,
  cardProduct,
  pictureDataUrl,
  pictureSource,
  pictureType,
  safeImageUrl,
} from '../../src/lib/product.js';

const PRODUCT = {
  article: 'SKU-1',
  name: 'Yellow  raincoat',
  description: 'Keeps you dry',
  price_minor: 1999,
  currency: 'EUR',
  stock: 5,
  reserved: 1,
  image_url: 'https://shop.example/img/raincoat.png',
  active: true,
};
const MATCH = { article: 'SKU-1', additionalIdentifier: 'size M' };

test('the card shows name, variant, formatted price and picture', () => {
  assert.deepEqual(cardProduct(PRODUCT, MATCH, 'en-US'), {
    article: 'SKU-1',
    name: 'Yellow raincoat',
    variant: 'size M',
    priceText: '€19.99',
    imageUrl: 'https://shop.example/img/raincoat.png',
    inStock: true,
  });
});

test('without a usable picture the card has none', () => {
  for (const image_url of [null, '', 'javascript:alert(1)', 'data:image/png;base64,AAAA', 'blob:https://x/1',
    'chrome-extension://abc/x.png', '/relative.png', 'https://u:p@shop.example/x.png', 42]) {
    assert.equal(cardProduct({ ...PRODUCT, image_url }, MATCH, 'en-US').imageUrl, null, String(image_url));
  }
  assert.equal(safeImageUrl('http://127.0.0.1:9/x.png'), 'http://127.0.0.1:9/x.png');
  assert.equal(safeImageUrl('https://shop.example/a b.png'), 'https://shop.example/a%20b.png');
});

test('stock: none left once the reserved units are counted', () => {
  assert.equal(cardProduct({ ...PRODUCT, stock: 2, reserved: 2 }, MATCH).inStock, false);
  assert.equal(cardProduct({ ...PRODUCT, stock: 0, reserved: undefined }, MATCH).inStock, false);
  assert.equal(cardProduct({ ...PRODUCT, stock: undefined }, MATCH).inStock, null);
});

test('nothing to show for an inactive, other or malformed product', () => {
  assert.equal(cardProduct({ ...PRODUCT, active: false }, MATCH), null);
  assert.equal(cardProduct({ ...PRODUCT, article: 'SKU-2' }, MATCH), null);
  assert.equal(cardProduct({ ...PRODUCT, name: '  ' }, MATCH), null);
  assert.equal(cardProduct({ ...PRODUCT, price_minor: 19.99 }, MATCH), null);
  assert.equal(cardProduct({ ...PRODUCT, currency: 'euro' }, MATCH), null);
  assert.equal(cardProduct(null, MATCH), null);
  assert.equal(cardProduct('<b>SKU-1</b>', MATCH), null);
});

test('a very long name is cut', () => {
  const card = cardProduct({ ...PRODUCT, name: 'x'.repeat(500) }, MATCH);
  assert.equal(card.name.length, 200);
  assert.ok(card.name.endsWith('…'));
});

test('markup in the name stays text (the card sets textContent)', () => {
  assert.equal(cardProduct({ ...PRODUCT, name: '<img src=x onerror=alert(1)>' }, MATCH).name, '<img src=x onerror=alert(1)>');
});

test('pictures: image types only, as data: URLs', () => {
  assert.equal(pictureType('image/png'), 'image/png');
  assert.equal(pictureType('Image/JPEG; charset=binary'), 'image/jpeg');
  assert.equal(pictureType('image/svg+xml'), 'image/svg+xml');
  for (const bad of ['text/html', 'application/octet-stream', '', null, 'image/x-icon', 'image/png-but-not']) {
    assert.equal(pictureType(bad), null, String(bad));
  }
  const bytes = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 255]);
  assert.equal(pictureDataUrl('image/png', bytes), `data:image/png;base64,${Buffer.from(bytes).toString('base64')}`);
  const large = new Uint8Array(PICTURE_MAX_BYTES).map((_, i) => i % 251);
  assert.equal(pictureDataUrl('image/png', large), `data:image/png;base64,${Buffer.from(large).toString('base64')}`);
});

test('the card loads the fetched picture, else an https URL, else nothing', () => {
  const data = 'data:image/png;base64,iVBORw0KGgo=';
  assert.equal(pictureSource('http://127.0.0.1:8000/x.png', data), data);
  assert.equal(pictureSource('https://shop.example/x.png', null), 'https://shop.example/x.png');
  // An http picture the worker could not fetch would be mixed content on YouTube.
  assert.equal(pictureSource('http://shop.example/x.png', null), null);
  assert.equal(pictureSource(null, null), null);
  for (const bad of ['data:text/html;base64,PGI+', 'data:image/png,<svg>', 'javascript:alert(1)', 'https://x/y.png']) {
    assert.equal(pictureSource(null, bad), null, bad);
  }
});
