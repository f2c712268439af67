import assert from 'node:assert/strict';
import { test } from 'node:test';

import { currencyDigits, formatPrice } from '../../src/lib/price.js';

// Intl separates amount and symbol with a no-break space in many locales.
const plain = (s) => s?.replace(/[\u00a0\u202f]/g, ' ');

test('minor units become the currency’s major units, in the reader’s locale', () => {
  assert.equal(formatPrice(1999, 'EUR', 'en-US'), '€19.99');
  assert.equal(plain(formatPrice(1999, 'EUR', 'de-DE')), '19,99 €');
  assert.equal(formatPrice(5, 'USD', 'en-US'), '$0.05');
  assert.equal(formatPrice(0, 'GBP', 'en-GB'), '£0.00');
  assert.equal(formatPrice(123456789, 'EUR', 'en-US'), '€1,234,567.89');
});

test('currencies without decimals and with three', () => {
  assert.equal(currencyDigits('EUR'), 2);
  assert.equal(currencyDigits('JPY'), 0);
  assert.equal(currencyDigits('KRW'), 0);
  assert.equal(currencyDigits('BHD'), 3);
  assert.equal(currencyDigits('KWD'), 3);
  assert.equal(formatPrice(1999, 'JPY', 'en-US'), '¥1,999');
  assert.equal(plain(formatPrice(1999, 'BHD', 'en-US')), 'BHD 1.999');
  assert.equal(plain(formatPrice(12345, 'KWD', 'en-US')), 'KWD 12.345');
});

test('the browser’s locale when none is given', () => {
  assert.equal(formatPrice(1999, 'EUR'), new Intl.NumberFormat(undefined, { style: 'currency', currency: 'EUR' }).format(19.99));
});

test('unusable amounts and currencies give null, not a wrong price', () => {
  for (const [minor, currency] of [
    [19.99, 'EUR'],
    [NaN, 'EUR'],
    ['1999', 'EUR'],
    [2 ** 60, 'EUR'],
    [1999, 'eur'],
    [1999, 'EURO'],
    [1999, ''],
    [1999, null],
  ]) {
    assert.equal(formatPrice(minor, currency, 'en-US'), null, `${minor} ${currency}`);
  }
  assert.equal(currencyDigits('E1R'), null);
});
