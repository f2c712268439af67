// After the server accepted a click: ask what it matched and, when it is a product,
// tell the tab, which shows the product card beside the click.
//
// The polling lives in memory only. The worker is kept running while it waits for its
// requests; should it be stopped all the same, the card is simply not shown (the click
// itself is safe with the server).

import { matchStep, nextPollDelay, worthWatching } from '../lib/match-poll.js';
import { orderReadiness } from '../lib/order.js';
import { PICTURE_MAX_BYTES, cardProduct, pictureDataUrl, pictureSource, pictureType } from '../lib/product.js';
import { getMatch, getProduct, loadOrderSettings } from './server.js';

/** Clicks being looked up, so that a click answered twice is looked up once. */
const watching = new Set();

/**
 * Looks up the match of an accepted click and, when it is a product, sends the tab a
 * `framecart:product` message. Never rejects.
 * @param {{serverUrl: string}} settings
 * @param {{clickId: string, body: object, tab: {tabId: number, frameId: number} | null, queuedAt: number}} entry
 */
export async function watchMatch(settings, entry) {
  if (!worthWatching(entry, Date.now()) || watching.has(entry.clickId)) return;
  watching.add(entry.clickId);
  try {
    const match = await pollMatch(settings, entry.clickId);
    if (!match) return;
    const product = await fetchProduct(settings, match.article);
    const card = cardProduct(product, match);
    if (!card) return;
    card.picture = pictureSource(card.imageUrl, card.imageUrl && (await fetchPicture(card.imageUrl)));
    const { body } = entry;
    const message = {
      type: 'framecart:product',
      clickId: entry.clickId,
      position: { x: body.x, y: body.y, player: { ...body.player } },
      product: card,
      order: orderReadiness(await loadOrderSettings()),
    };
    await chrome.tabs.sendMessage(entry.tab.tabId, message, { frameId: entry.tab.frameId });
  } catch {
    // The tab is gone or was reloaded (no listener): there is no one to show the card to.
  } finally {
    watching.delete(entry.clickId);
  }
}

/** The click's match when it is a product; null when unmatched or no verdict in time. */
async function pollMatch(settings, clickId) {
  const started = Date.now();
  for (let asked = 0; ; asked++) {
    const delay = nextPollDelay(asked, Date.now() - started);
    if (delay === null) return null;
    await sleep(delay);
    const verdict = matchStep(await getMatch(settings, clickId), clickId);
    if (verdict.step === 'matched') return verdict;
    if (verdict.step === 'done') return null;
  }
}

/** The product's body, asked twice at most (once more after a momentary failure). */
async function fetchProduct(settings, article) {
  let answer = await getProduct(settings, article);
  if (!answer.status || answer.status >= 500 || answer.status === 429) {
    await sleep(1_000);
    answer = await getProduct(settings, article);
  }
  return answer.status === 200 ? answer.body : null;
}

/**
 * The picture at `url` as a data: URL, or null when it cannot be had: not reachable from
 * here (no host permission and no CORS), not an image, or too large. Never rejects.
 */
async function fetchPicture(url) {
  try {
    const response = await fetch(url, {
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
      signal: AbortSignal.timeout(PICTURE_TIMEOUT_MS),
    });
    const type = pictureType(response.headers.get('Content-Type'));
    if (!response.ok || !type || Number(response.headers.get('Content-Length')) > PICTURE_MAX_BYTES) return null;
    const bytes = new Uint8Array(await response.arrayBuffer());
    return bytes.length && bytes.length <= PICTURE_MAX_BYTES ? pictureDataUrl(type, bytes) : null;
  } catch {
    return null;
  }
}

const PICTURE_TIMEOUT_MS = 5_000;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
