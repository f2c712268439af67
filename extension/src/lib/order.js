// Ordering from the product card: the viewer's contact and shipping address as typed
// on the options page, the body of `POST /api/v1/orders`, and what the server's answer
// means. Pure (node tests it); storage and requests are the callers' business.

import { errorDetail } from './answer.js';
import { isArticle } from './match-poll.js';
import { formatPrice } from './price.js';

/** Keys of the synced storage (the options page writes them), as before anything is typed. */
export const DEFAULT_ORDER_SETTINGS = Object.freeze({
  contact: Object.freeze({ name: '', email: '', phone: '' }),
  shippingAddress: Object.freeze({ line1: '', line2: '', city: '', postal_code: '', country: '' }),
});

const CONTACT_FIELDS = ['name', 'email', 'phone'];
const ADDRESS_FIELDS = ['line1', 'line2', 'city', 'postal_code', 'country'];

// As the server checks it: something, @, a domain with a dot neither first nor last.
const EMAIL = /^[^\s@]+@[^\s@.][^\s@]*\.[^\s@]*[^\s@.]$/;
const PHONE = /^\+?[0-9][0-9 ()./-]{3,29}$/;
const COUNTRY = /^[A-Z]{2}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const IDEMPOTENCY_KEY = /^[A-Za-z0-9_-]{16,200}$/;
const MAX_TEXT = 200;

function text(value) {
  return typeof value === 'string' ? value.replace(/\s+/g, ' ').trim() : '';
}

function blank(fields, input) {
  return fields.every((field) => !text(input?.[field]));
}

/**
 * A contact as typed: trimmed, and checked. All empty is allowed (no orders then).
 * @returns {{contact: {name: string, email: string, phone: string}} | {error: string, field: string}}
 */
export function normalizeContact(input) {
  const contact = Object.fromEntries(CONTACT_FIELDS.map((f) => [f, text(input?.[f])]));
  if (blank(CONTACT_FIELDS, contact)) return { contact };
  if (!contact.name) return { error: 'Enter your name, or leave the contact empty.', field: 'name' };
  if (!EMAIL.test(contact.email) || contact.email.length > 254) return { error: 'Enter an email address such as ana@example.com.', field: 'email' };
  if (contact.phone && !PHONE.test(contact.phone)) {
    return { error: 'A phone number may hold digits, spaces and + ( ) - . / only.', field: 'phone' };
  }
  for (const field of CONTACT_FIELDS) {
    if (contact[field].length > MAX_TEXT) return { error: `At most ${MAX_TEXT} characters.`, field };
  }
  return { contact };
}

/**
 * A shipping address as typed: trimmed, the country upper-cased, and checked. All
 * empty is allowed (no orders then).
 * @returns {{address: object} | {error: string, field: string}}
 */
export function normalizeAddress(input) {
  const address = Object.fromEntries(ADDRESS_FIELDS.map((f) => [f, text(input?.[f])]));
  address.country = address.country.toUpperCase();
  if (blank(ADDRESS_FIELDS, address)) return { address };
  if (!address.line1) return { error: 'Enter the street and number, or leave the address empty.', field: 'line1' };
  if (!address.city) return { error: 'Enter the city.', field: 'city' };
  if (!address.postal_code) return { error: 'Enter the postal code.', field: 'postal_code' };
  if (!COUNTRY.test(address.country)) {
    return { error: 'Enter the country as its two-letter code (DE, FR, US, …).', field: 'country' };
  }
  for (const field of ADDRESS_FIELDS) {
    if (address[field].length > MAX_TEXT) return { error: `At most ${MAX_TEXT} characters.`, field };
  }
  return { address };
}

/**
 * Whether the viewer can order from the card, and if not what is missing
 * (`token`, `contact`, `address`).
 * @param {{token?: string, contact?: object, shippingAddress?: object}} settings
 */
export function orderReadiness(settings) {
  const missing = [];
  if (!settings?.token) missing.push('token');
  const contact = normalizeContact(settings?.contact);
  if (contact.error || !contact.contact.name) missing.push('contact');
  const address = normalizeAddress(settings?.shippingAddress);
  if (address.error || !address.address.line1) missing.push('address');
  return { ready: missing.length === 0, missing };
}

/**
 * The body of `POST /api/v1/orders` for one unit of `article`, ordered from the card of
 * click `clickId`; optional fields left empty are left out.
 * @returns {{body: object} | {error: string}}
 */
export function orderBody({ article, quantity = 1, clickId, contact, shippingAddress }) {
  if (!isArticle(article)) return { error: 'no product to order' };
  if (!Number.isInteger(quantity) || quantity < 1 || quantity > 99) return { error: 'bad quantity' };
  if (typeof clickId !== 'string' || !UUID.test(clickId)) return { error: 'bad click id' };
  const c = normalizeContact(contact);
  if (c.error) return { error: c.error };
  if (!c.contact.name) return { error: 'no contact' };
  const a = normalizeAddress(shippingAddress);
  if (a.error) return { error: a.error };
  if (!a.address.line1) return { error: 'no shipping address' };
  return {
    body: {
      lines: [{ article, quantity }],
      click_id: clickId.toLowerCase(),
      contact: withoutEmpty(c.contact),
      shipping_address: withoutEmpty(a.address),
    },
  };
}

function withoutEmpty(object) {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== ''));
}

/** True when `key` can be sent as an Idempotency-Key (a UUID is). */
export function isIdempotencyKey(key) {
  return typeof key === 'string' && IDEMPOTENCY_KEY.test(key);
}

/** Waits before the retries of one order attempt (same Idempotency-Key), in ms. */
export const ORDER_RETRY_DELAYS_MS = Object.freeze([1_000, 2_000]);

/** At most this long is waited for a Retry-After before a retry. */
const MAX_RETRY_AFTER_MS = 5_000;

/**
 * What an answer to `POST /api/v1/orders` means for the card.
 * - `placed`: the order exists (`order` holds id, status, total);
 * - `out_of_stock`: not enough left;
 * - `sign_in`: the token is missing, wrong or expired;
 * - `invalid`: the server refused the contact or address (fix them in the settings);
 * - `retry`: no answer or momentary trouble: the same attempt may be sent again, with
 *   the same Idempotency-Key (the server replays the first answer);
 * - `failed`: refused for another reason; a new attempt needs a new key.
 * @param {{status: number, body?: any, error?: string}} answer
 * @returns {{kind: string, message: string, order?: object, code?: string}}
 */
export function orderOutcome(answer, locale = undefined) {
  const { status, body } = answer ?? {};
  const { code, message } = errorDetail(body);
  if (status >= 200 && status < 300) {
    const order = body && typeof body === 'object' ? body : {};
    const totalText = formatPrice(order.total_minor, order.currency, locale);
    const state = typeof order.status === 'string' ? order.status.replace(/_/g, ' ') : '';
    return {
      kind: 'placed',
      message: `Order placed${totalText ? `: ${totalText}` : ''}${state ? `, ${state}` : ''}.`,
      order: {
        id: typeof order.id === 'string' ? order.id : null,
        status: typeof order.status === 'string' ? order.status : null,
        totalText,
      },
    };
  }
  if (!status) {
    return { kind: 'retry', message: `The shop did not answer (${answer?.error || 'no answer'}).` };
  }
  if (status === 409 && code === 'insufficient_stock') {
    return { kind: 'out_of_stock', code, message: 'Out of stock: not enough left to order.' };
  }
  if (status === 401) {
    return { kind: 'sign_in', code, message: 'Sign in again in the Framecart settings to order.' };
  }
  if (status === 409 && code === 'request_in_progress') {
    return { kind: 'retry', code, message: 'The shop is still working on this order.' };
  }
  if (status === 408 || status === 429 || status >= 500) {
    return {
      kind: 'retry',
      code,
      message: `The shop is busy or in trouble (HTTP ${status}${message ? `: ${message}` : ''}).`,
    };
  }
  if (status === 422) {
    const what = code === 'invalid_contact' ? 'your contact' : code === 'invalid_address' ? 'your address' : 'the order';
    return {
      kind: 'invalid',
      code,
      message: `The shop did not accept ${what}${message ? `: ${message}` : ''}. Check the Framecart settings.`,
    };
  }
  return {
    kind: 'failed',
    code,
    message: `The order failed (HTTP ${status}${code ? ` ${code}` : ''})${message ? `: ${message}` : ''}.`,
  };
}

/**
 * The wait before retry number `retried + 1` of one order attempt, or null when that
 * attempt should not be retried now (the card then offers "Try again", same key).
 * @param {number} retried  retries made so far
 * @param {number} retryAfterMs  the server's Retry-After, 0 when none
 */
export function orderRetryDelay(outcome, retried, retryAfterMs = 0) {
  if (outcome.kind !== 'retry' || retried >= ORDER_RETRY_DELAYS_MS.length) return null;
  if (retryAfterMs > MAX_RETRY_AFTER_MS) return null;
  return Math.max(ORDER_RETRY_DELAYS_MS[retried], retryAfterMs);
}
