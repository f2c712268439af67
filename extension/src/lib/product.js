// What the product card shows, from the server's product and the click's match. Pure
// (node tests it).
//
// Everything the server says is data, never markup: the card is built from DOM nodes
// and text. The picture is taken only from an http(s) URL: no data:, blob:, javascript:
// or extension URLs. The service worker fetches it and hands the card its bytes as a
// data: URL of an image type: YouTube's page then loads nothing from the shop's host
// (no mixed content for an http picture, no request from YouTube to a server on the
// local network, no Referer naming the video). When the worker cannot fetch it, the
// card may load it itself, from an https URL only.

import { isArticle } from './match-poll.js';
import { formatPrice } from './price.js';

const MAX_NAME = 200;
const MAX_URL = 2_048;

/** The URL of a picture, when it is an absolute http(s) URL; null otherwise. */
export function safeImageUrl(value) {
  if (typeof value !== 'string' || !value || value.length > MAX_URL) return null;
  let url;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  if (url.username || url.password) return null;
  return url.href;
}

/**
 * The card's content, or null when there is nothing to offer (no such product, no
 * longer sold, or a body that is not a product).
 * @param {any} product  the body of `GET /api/v1/products/{article}`
 * @param {{article: string, additionalIdentifier?: string | null}} match
 * @param {string | string[]} [locale]
 * @returns {{article: string, name: string, variant: string | null, priceText: string,
 *   imageUrl: string | null, inStock: boolean | null} | null}
 */
export function cardProduct(product, match, locale = undefined) {
  if (!product || typeof product !== 'object') return null;
  if (!isArticle(product.article) || product.article !== match?.article) return null;
  if (product.active === false) return null;
  const name = typeof product.name === 'string' ? product.name.replace(/\s+/g, ' ').trim() : '';
  if (!name) return null;
  const priceText = formatPrice(product.price_minor, product.currency, locale);
  if (priceText === null) return null;
  const available =
    Number.isFinite(product.stock) && Number.isFinite(product.reserved ?? 0)
      ? product.stock - (product.reserved ?? 0) > 0
      : null;
  return {
    article: product.article,
    name: name.length > MAX_NAME ? `${name.slice(0, MAX_NAME - 1)}…` : name,
    variant: match.additionalIdentifier ?? null,
    priceText,
    imageUrl: safeImageUrl(product.image_url),
    inStock: available,
  };
}

/** A picture larger than this is not shown. */
export const PICTURE_MAX_BYTES = 1_048_576;

const PICTURE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'image/svg+xml']);

/** The picture type of a Content-Type header (`image/png; q=…` → `image/png`), or null. */
export function pictureType(contentType) {
  const type = String(contentType ?? '').split(';')[0].trim().toLowerCase();
  return PICTURE_TYPES.has(type) ? type : null;
}

/** A data: URL of `bytes` (a Uint8Array) of picture type `type`. */
export function pictureDataUrl(type, bytes) {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return `data:${type};base64,${btoa(binary)}`;
}

const PICTURE_DATA_URL = /^data:image\/(png|jpeg|gif|webp|avif|svg\+xml);base64,[A-Za-z0-9+/]+=*$/;

/**
 * What the card's <img> may load: the fetched picture's data: URL when there is one,
 * else the picture's URL when it is https; null for no picture.
 */
export function pictureSource(imageUrl, dataUrl) {
  if (typeof dataUrl === 'string' && PICTURE_DATA_URL.test(dataUrl)) return dataUrl;
  const url = safeImageUrl(imageUrl);
  return url?.startsWith('https:') ? url : null;
}
