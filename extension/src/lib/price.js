// Prices in words: an amount in minor units of an ISO 4217 currency, formatted for the
// reader's locale. Pure (node tests it).
//
// The server counts money in minor units (1999 EUR is 19.99 €). How many minor units
// make a major one depends on the currency: 100 for EUR, 1 for JPY (no decimals), 1000
// for BHD or KWD (three decimals). Intl knows each currency's number of decimals.

const CURRENCY = /^[A-Z]{3}$/;

/**
 * The number of decimals of `currency` (2 for EUR, 0 for JPY, 3 for BHD), or null when
 * it is not a currency code Intl accepts.
 */
export function currencyDigits(currency, locale = undefined) {
  return formatter(currency, locale)?.resolvedOptions().maximumFractionDigits ?? null;
}

/**
 * `minor` units of `currency` as the reader would write them ("€19.99", "¥1,999",
 * "BHD 1.999"), or null when the amount or the currency is unusable.
 * @param {number} minor  an integer amount in minor units
 * @param {string} currency  ISO 4217, upper case
 * @param {string | string[]} [locale]  the browser's locale when left out
 */
export function formatPrice(minor, currency, locale = undefined) {
  if (!Number.isSafeInteger(minor)) return null;
  const format = formatter(currency, locale);
  if (!format) return null;
  const digits = format.resolvedOptions().maximumFractionDigits;
  return format.format(minor / 10 ** digits);
}

function formatter(currency, locale) {
  if (typeof currency !== 'string' || !CURRENCY.test(currency)) return null;
  try {
    return new Intl.NumberFormat(locale, { style: 'currency', currency });
  } catch {
    return null;
  }
}
