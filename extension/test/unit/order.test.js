import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  DEFAULT_ORDER_SETTINGS,
  isIdempotencyKey,
  normalizeAddress,
  normalizeContact,
  orderBody,
  orderOutcome,
  orderReadiness,
  orderRetryDelay,
  ORDER_RETRY_DELAYS_MS,
} from '../../src/lib/order.js';

const CLICK = '1B4E28BA-2FA1-41D2-883F-0016D3CCA427';
const CONTACT = { name: ' Ana  Lima ', email: 'ana@example.com', phone: '' };
const ADDRESS = { line1: 'Hauptstr. 1', line2: '', city: 'Berlin', postal_code: '10115', country: 'de' };

test('contact: trimmed and checked; empty is allowed', () => {
  assert.deepEqual(normalizeContact(CONTACT), { contact: { name: 'Ana Lima', email: 'ana@example.com', phone: '' } });
  assert.deepEqual(normalizeContact(DEFAULT_ORDER_SETTINGS.contact), { contact: { name: '', email: '', phone: '' } });
  assert.deepEqual(normalizeContact(undefined), { contact: { name: '', email: '', phone: '' } });
  assert.equal(normalizeContact({ ...CONTACT, phone: '+49 (30) 123-45' }).contact.phone, '+49 (30) 123-45');
  assert.equal(normalizeContact({ ...CONTACT, name: '' }).field, 'name');
  assert.equal(normalizeContact({ ...CONTACT, email: 'ana' }).field, 'email');
  assert.equal(normalizeContact({ ...CONTACT, email: 'ana @x.com' }).field, 'email');
  for (const email of ['ana@localhost', 'ana@.example.com', 'ana@example.', '@example.com', 'a@b@c.de']) {
    assert.equal(normalizeContact({ ...CONTACT, email }).field, 'email', email);
  }
  for (const email of ['a@b.c', 'ana.lima+shop@mail.example.co.uk']) {
    assert.equal(normalizeContact({ ...CONTACT, email }).contact?.email, email, email);
  }
  assert.equal(normalizeContact({ ...CONTACT, phone: 'call me' }).field, 'phone');
  assert.equal(normalizeContact({ ...CONTACT, name: 'x'.repeat(201) }).field, 'name');
});

test('address: trimmed, country upper-cased, and checked; empty is allowed', () => {
  assert.deepEqual(normalizeAddress(ADDRESS), {
    address: { line1: 'Hauptstr. 1', line2: '', city: 'Berlin', postal_code: '10115', country: 'DE' },
  });
  assert.equal(normalizeAddress(DEFAULT_ORDER_SETTINGS.shippingAddress).address.line1, '');
  assert.equal(normalizeAddress({ ...ADDRESS, line1: ' ' }).field, 'line1');
  assert.equal(normalizeAddress({ ...ADDRESS, city: '' }).field, 'city');
  assert.equal(normalizeAddress({ ...ADDRESS, postal_code: '' }).field, 'postal_code');
  for (const country of ['', 'D', 'DEU', 'Germany', '1A']) {
    assert.equal(normalizeAddress({ ...ADDRESS, country }).field, 'country', country);
  }
});

test('ordering needs a token, a contact and an address', () => {
  assert.deepEqual(orderReadiness({ token: 't', contact: CONTACT, shippingAddress: ADDRESS }), { ready: true, missing: [] });
  assert.deepEqual(orderReadiness({ token: '', contact: CONTACT, shippingAddress: ADDRESS }), {
    ready: false,
    missing: ['token'],
  });
  assert.deepEqual(orderReadiness({ token: 't', ...DEFAULT_ORDER_SETTINGS }), {
    ready: false,
    missing: ['contact', 'address'],
  });
  assert.deepEqual(orderReadiness({}), { ready: false, missing: ['token', 'contact', 'address'] });
  assert.deepEqual(orderReadiness({ token: 't', contact: { ...CONTACT, email: 'x' }, shippingAddress: ADDRESS }).missing, [
    'contact',
  ]);
});

test('the order body carries the line, the click id, the contact and the address', () => {
  assert.deepEqual(orderBody({ article: 'SKU-1', clickId: CLICK, contact: CONTACT, shippingAddress: ADDRESS }), {
    body: {
      lines: [{ article: 'SKU-1', quantity: 1 }],
      click_id: CLICK.toLowerCase(),
      contact: { name: 'Ana Lima', email: 'ana@example.com' },
      shipping_address: { line1: 'Hauptstr. 1', city: 'Berlin', postal_code: '10115', country: 'DE' },
    },
  });
  const full = orderBody({
    article: 'SKU-1',
    quantity: 2,
    clickId: CLICK,
    contact: { ...CONTACT, phone: '+49 30 1234' },
    shippingAddress: { ...ADDRESS, line2: 'Hinterhaus' },
  }).body;
  assert.equal(full.contact.phone, '+49 30 1234');
  assert.equal(full.shipping_address.line2, 'Hinterhaus');
  assert.equal(full.lines[0].quantity, 2);
});

test('no order body without what it needs', () => {
  const good = { article: 'SKU-1', clickId: CLICK, contact: CONTACT, shippingAddress: ADDRESS };
  for (const bad of [
    { article: 'SKU 1' },
    { article: undefined },
    { quantity: 0 },
    { quantity: 1.5 },
    { clickId: 'not-a-uuid' },
    { contact: DEFAULT_ORDER_SETTINGS.contact },
    { contact: { ...CONTACT, email: 'nope' } },
    { shippingAddress: DEFAULT_ORDER_SETTINGS.shippingAddress },
    { shippingAddress: { ...ADDRESS, country: 'Deutschland' } },
  ]) {
    const built = orderBody({ ...good, ...bad });
    assert.ok(built.error && !built.body, JSON.stringify(bad));
  }
});

test('idempotency keys: a UUID is one; blanks and odd characters are not', () => {
  assert.ok(isIdempotencyKey('0f8fad5b-d9cb-469f-a165-70867728950e'));
  for (const bad of ['', 'short', 'a b c d e f g h i j', 'x'.repeat(201), undefined, 'ü'.repeat(20)]) {
    assert.ok(!isIdempotencyKey(bad), String(bad));
  }
});

test('a placed order says its total and its status', () => {
  const body = {
    id: 'ord-1',
    status: 'awaiting_payment',
    lines: [{ article: 'SKU-1', name: 'Raincoat', quantity: 1, unit_price_minor: 1999, line_total_minor: 1999 }],
    total_minor: 1999,
    currency: 'EUR',
    click_id: CLICK,
  };
  assert.deepEqual(orderOutcome({ status: 201, body }, 'en-US'), {
    kind: 'placed',
    message: 'Order placed: €19.99, awaiting payment.',
    order: { id: 'ord-1', status: 'awaiting_payment', totalText: '€19.99' },
  });
  assert.deepEqual(orderOutcome({ status: 201, body: null }), {
    kind: 'placed',
    message: 'Order placed.',
    order: { id: null, status: null, totalText: null },
  });
});

test('refusals in words', () => {
  const error = (status, code, message = 'why') => ({ status, body: { error: { code, message } } });
  assert.equal(orderOutcome(error(409, 'insufficient_stock')).kind, 'out_of_stock');
  assert.match(orderOutcome(error(409, 'insufficient_stock')).message, /^Out of stock/);
  assert.equal(orderOutcome(error(401, 'unauthenticated')).kind, 'sign_in');
  assert.match(orderOutcome(error(401, 'unauthenticated')).message, /Sign in/);
  const contact = orderOutcome(error(422, 'invalid_contact', 'email is not valid'));
  assert.equal(contact.kind, 'invalid');
  assert.equal(contact.message, 'The shop did not accept your contact: email is not valid. Check the Framecart settings.');
  assert.match(orderOutcome(error(422, 'invalid_address')).message, /your address/);
  assert.equal(orderOutcome(error(409, 'idempotency_key_reused', 'used')).kind, 'failed');
  assert.equal(
    orderOutcome(error(400, 'missing_idempotency_key', 'no key')).message,
    'The order failed (HTTP 400 missing_idempotency_key): no key.',
  );
  assert.equal(orderOutcome({ status: 404, body: null }).message, 'The order failed (HTTP 404).');
});

test('no answer and momentary trouble may be retried with the same key', () => {
  for (const answer of [
    { status: 0, error: 'Failed to fetch' },
    { status: 503 },
    { status: 500, body: { error: { code: 'internal', message: 'oops' } } },
    { status: 429 },
    { status: 409, body: { error: { code: 'request_in_progress', message: 'wait' } } },
  ]) {
    assert.equal(orderOutcome(answer).kind, 'retry', JSON.stringify(answer));
  }
  assert.equal(orderOutcome({ status: 0, error: 'no answer in time' }).message, 'The shop did not answer (no answer in time).');
});

test('retries of one attempt: a few, spaced, honouring a short Retry-After', () => {
  const retry = { kind: 'retry' };
  assert.equal(orderRetryDelay(retry, 0), ORDER_RETRY_DELAYS_MS[0]);
  assert.equal(orderRetryDelay(retry, 1), ORDER_RETRY_DELAYS_MS[1]);
  assert.equal(orderRetryDelay(retry, ORDER_RETRY_DELAYS_MS.length), null);
  assert.equal(orderRetryDelay(retry, 0, 3_000), 3_000);
  assert.equal(orderRetryDelay(retry, 0, 60_000), null, 'a long Retry-After is left to the person');
  for (const kind of ['placed', 'out_of_stock', 'sign_in', 'invalid', 'failed']) {
    assert.equal(orderRetryDelay({ kind }, 0), null, kind);
  }
});
