// The product card in Chromium: a real click on the fake YouTube's video, a stand-in
// server that matches it to a product (a real match needs a processed video), the card
// beside the click, and orders placed from it, read back from the stand-in.

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';

import { startRecorder } from './harness/recorder.js';
import { clickVideoAt, openWatchPage, saveSettings, videoBox, watchConsole } from './harness/pages.js';
import { TestRun } from './harness/run.js';
import { waitFor } from './harness/wait.js';

const VIDEO = 'fcTestVid_C';
const TOKEN = 'viewer-token.card_1';
const CONTACT = { name: 'Ana Lima', email: 'ana@example.com', phone: '+49 30 1234567' };
const ADDRESS = { line1: 'Hauptstr. 1', line2: 'Hinterhaus', city: 'Berlin', postal_code: '10115', country: 'de' };
const GAP = 12; // src/lib/card-layout.js
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** What the page shows of the card, or null when there is none. */
function readCard(page) {
  return page.evaluate(() => {
    const host = document.querySelector('framecart-card');
    if (!host) return null;
    const root = host.shadowRoot;
    const text = (selector) => root.querySelector(selector)?.textContent.trim() ?? null;
    const box = (r) => ({ left: r.left, top: r.top, right: r.right, bottom: r.bottom });
    const img = root.querySelector('img');
    return {
      visible: getComputedStyle(host).visibility === 'visible',
      name: text('.name'),
      variant: text('.variant'),
      price: text('.price'),
      hint: text('.hint'),
      order: text('.order'),
      status: text('.status'),
      image: img && { src: img.getAttribute('src'), width: img.naturalWidth, complete: img.complete },
      rect: box(root.querySelector('.card').getBoundingClientRect()),
      player: box(document.getElementById('movie_player').getBoundingClientRect()),
      viewport: { width: document.documentElement.clientWidth, height: document.documentElement.clientHeight },
      parent: host.parentElement.id,
    };
  });
}

/** Waits for a visible card whose check passes, and returns what it shows. */
function cardShown(page, what, check = () => true) {
  return waitFor(
    async () => {
      const card = await readCard(page);
      return card?.visible && check(card) && card;
    },
    { timeout: 30_000, what },
  );
}

function noCard(page) {
  return waitFor(async () => (await readCard(page)) === null, { what: 'the card to go' });
}

/** The click the stand-in received for a click made at element position (x, y). */
function posted(standIn, made) {
  return waitFor(
    () => standIn.requests.find((r) => Math.abs(r.click.x - made.x) < 0.01 && Math.abs(r.click.y - made.y) < 0.01)?.click,
    { what: `the click at (${made.x}, ${made.y}) to reach the stand-in` },
  );
}

describe('the product card', { timeout: 600_000 }, () => {
  let run;
  let standIn;
  let page;
  const problems = [];

  let closing = null;
  const onSignal = (signal) => {
    process.stdout.on('error', () => {});
    process.stderr.on('error', () => {});
    closing ??= Promise.all([run?.close(), standIn?.close()])
      .catch(() => {})
      .then(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };

  before(async () => {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    standIn = await startRecorder();
    standIn.products.set('SKU-1', {
      article: 'SKU-1',
      name: 'Yellow raincoat',
      description: 'Keeps you dry',
      price_minor: 1999,
      currency: 'EUR',
      stock: 5,
      reserved: 0,
      image_url: `${standIn.url}/images/raincoat.png`,
      active: true,
    });
    standIn.products.set('SKU-2', {
      article: 'SKU-2',
      name: 'Green boots',
      description: '',
      price_minor: 4500,
      currency: 'JPY',
      stock: 1,
      reserved: 0,
      image_url: 'javascript:alert(1)',
      active: true,
    });
    run = await TestRun.start({ framecart: false });
    watchConsole(run.worker, problems);
    run.context.on('serviceworker', (worker) => watchConsole(worker, problems));
    await saveSettings(
      run.context,
      run.extensionId,
      { serverUrl: standIn.url, token: TOKEN, contact: CONTACT, address: ADDRESS },
      problems,
    );
    page = await openWatchPage(run.context, VIDEO, problems);
    // What reaches the player (a click on the card must not), and every card shown.
    await page.evaluate(() => {
      window.playerClicks = 0;
      window.cardsShown = [];
      const player = document.getElementById('movie_player');
      player.addEventListener('click', () => window.playerClicks++);
      new MutationObserver((mutations) => {
        for (const m of mutations) {
          for (const node of m.addedNodes) {
            if (node.localName === 'framecart-card') {
              window.cardsShown.push(node.shadowRoot.querySelector('.name').textContent);
            }
          }
        }
      }).observe(player, { childList: true });
    });
  });

  after(async () => {
    await page?.close().catch(() => {});
    await run?.close();
    await standIn?.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  });

  beforeEach(async () => {
    // Each test starts without a card, and matches everything to SKU-1.
    if (page && (await readCard(page))) {
      await page.keyboard.press('Escape');
      await noCard(page);
    }
    if (standIn) {
      standIn.verdict = (click, asked) =>
        asked === 0 ? { status: 'pending' } : { status: 'matched', article: 'SKU-1', additional_identifier: 'size M' };
    }
  });

  test('a matched click shows the card beside it, inside the player: picture, name, price', async () => {
    const made = await clickVideoAt(page, 200, 250);
    const card = await cardShown(page, 'the card of SKU-1', (c) => c.image?.complete && c.image.width > 0);
    assert.equal(card.name, 'Yellow raincoat');
    assert.equal(card.variant, 'size M');
    const price = await page.evaluate(() =>
      new Intl.NumberFormat(undefined, { style: 'currency', currency: 'EUR' }).format(19.99),
    );
    assert.equal(card.price, price);
    assert.match(card.price, /19[.,]99/);
    // The worker fetched the picture (http, on a host it may reach) and handed over its bytes.
    assert.equal(card.image.width, 48);
    const png = Buffer.from(await (await fetch(`${standIn.url}/images/raincoat.png`)).arrayBuffer());
    assert.equal(card.image.src, `data:image/png;base64,${png.toString('base64')}`);
    assert.equal(card.order, 'Order');
    assert.equal(card.parent, 'movie_player');
    const clickId = (await posted(standIn, made)).clickId;
    assert.ok(standIn.matchRequests.filter((r) => r.clickId === clickId).length >= 2, 'asked again after pending');

    const box = await videoBox(page);
    assertBeside(card, { x: box.left + made.x, y: box.top + made.y });

    // Accessible: a dialog named after the product, with a close button.
    await page.getByRole('dialog', { name: 'Yellow raincoat' }).waitFor();
    await page.getByRole('button', { name: 'Close' }).waitFor();

    // A click on the card is not a click on the video: nothing is sent, the player hears nothing.
    const clicksBefore = standIn.requests.length;
    const playerClicks = await page.evaluate(() => window.playerClicks);
    await page.locator('framecart-card .price').click();
    await page.locator('framecart-card .name').click();
    assert.equal(await page.evaluate(() => window.playerClicks), playerClicks);
    // A click on the video is sent in the same order as made: once the next is there,
    // one on the card would have been too.
    const next = await clickVideoAt(page, 600, 300);
    await posted(standIn, next);
    assert.equal(standIn.requests.length, clicksBefore + 1, 'only the click on the video was sent');

    // The new pick replaced the card; near the player's right edge it goes to the left.
    const left = await cardShown(page, 'the card beside the click near the right edge', (c) => c.rect.right < box.left + 600);
    assertBeside(left, { x: box.left + next.x, y: box.top + next.y });
    assert.ok(Math.abs(left.rect.right - (box.left + next.x - GAP)) < 1.5, JSON.stringify(left.rect));
  });

  test('Escape and the close button dismiss the card', async () => {
    await clickVideoAt(page, 150, 200);
    await cardShown(page, 'the card');
    await page.keyboard.press('Escape');
    await noCard(page);

    await clickVideoAt(page, 160, 210);
    await cardShown(page, 'the card again');
    await page.getByRole('button', { name: 'Close' }).click();
    await noCard(page);
  });

  test('Order sends the order with the click id, the line, contact, address, token and a key', async () => {
    // The first try meets a momentary failure: the worker tries again with the same key.
    standIn.orderAnswers.push({ status: 503, body: { error: { code: 'unavailable', message: 'busy' } } });
    const ordersBefore = standIn.orders.length;
    const made = await clickVideoAt(page, 220, 260);
    const { clickId } = await posted(standIn, made);
    await cardShown(page, 'the card to order from');
    const clicksBefore = standIn.requests.length;
    await page.getByRole('button', { name: 'Order', exact: true }).click();
    const placed = await cardShown(page, 'the order to be placed', (c) => c.status?.startsWith('Order placed'));

    const orders = standIn.orders.slice(ordersBefore);
    assert.equal(orders.length, 2, 'the order, and its retry after the 503');
    const [first, retry] = orders;
    assert.deepEqual(first.body, {
      lines: [{ article: 'SKU-1', quantity: 1 }],
      click_id: clickId,
      contact: CONTACT,
      shipping_address: { ...ADDRESS, country: 'DE' },
    });
    assert.equal(first.headers.authorization, `Bearer ${TOKEN}`);
    assert.equal(first.headers['content-type'], 'application/json');
    assert.match(first.headers['idempotency-key'], UUID);
    assert.equal(retry.headers['idempotency-key'], first.headers['idempotency-key'], 'a retry keeps the key');
    assert.deepEqual(retry.body, first.body);

    const total = await page.evaluate(() =>
      new Intl.NumberFormat(undefined, { style: 'currency', currency: 'EUR' }).format(19.99),
    );
    assert.ok(placed.status.startsWith(`Order placed: ${total}, awaiting payment.`), placed.status);
    assert.match(placed.status, /Order [0-9a-f-]{36}$/);
    assert.equal(placed.order, null, 'no second order from this card');
    assert.equal(standIn.requests.length, clicksBefore, 'clicks on the card are not clicks on the video');

    // Another attempt, from another card, has a key of its own.
    await page.keyboard.press('Escape');
    await noCard(page);
    await clickVideoAt(page, 240, 280);
    await cardShown(page, 'another card');
    await page.getByRole('button', { name: 'Order', exact: true }).click();
    await cardShown(page, 'the second order', (c) => c.status?.startsWith('Order placed'));
    const second = standIn.orders.at(-1);
    assert.equal(standIn.orders.length, ordersBefore + 3);
    assert.notEqual(second.headers['idempotency-key'], first.headers['idempotency-key']);
  });

  test('an order refused for want of stock shows as out of stock', async () => {
    standIn.orderAnswers.push({
      status: 409,
      body: { error: { code: 'insufficient_stock', message: 'only 0 left of SKU-1' } },
    });
    const ordersBefore = standIn.orders.length;
    await clickVideoAt(page, 180, 300);
    await cardShown(page, 'the card');
    await page.getByRole('button', { name: 'Order', exact: true }).click();
    const card = await cardShown(page, 'out of stock', (c) => /out of stock/i.test(c.status ?? ''));
    assert.equal(card.status, 'Out of stock: not enough left to order.');
    assert.equal(card.order, null);
    assert.equal(standIn.orders.length, ordersBefore + 1, 'one request, not retried');
  });

  test('an unmatched click shows no card', async () => {
    const shownBefore = await page.evaluate(() => window.cardsShown.length);
    const productsBefore = standIn.productRequests.length;
    standIn.verdict = () => ({ status: 'unmatched' });
    const made = await clickVideoAt(page, 300, 200);
    const { clickId } = await posted(standIn, made);
    await waitFor(() => standIn.matchRequests.some((r) => r.clickId === clickId && r.status === 'unmatched'), {
      what: 'the unmatched verdict to be asked for',
    });
    // The verdict ends the polling: no product is fetched, no card is shown…
    assert.equal(standIn.productRequests.length, productsBefore);
    assert.equal(await readCard(page), null);
    // …also not later: the next (matched) click's card is the only one shown since.
    standIn.verdict = () => ({ status: 'matched', article: 'SKU-2' });
    await clickVideoAt(page, 310, 210);
    const card = await cardShown(page, 'the card of the matched click', (c) => c.name === 'Green boots');
    assert.deepEqual(await page.evaluate((n) => window.cardsShown.slice(n), shownBefore), ['Green boots']);
    assert.equal(standIn.matchRequests.filter((r) => r.clickId === clickId).length, 1, 'not asked again');
    // A currency without decimals; a picture that is not http(s) is not shown.
    assert.equal(card.price, await page.evaluate(() => new Intl.NumberFormat(undefined, { style: 'currency', currency: 'JPY' }).format(4500)));
    assert.equal(card.image, null);
  });

  test('without a token the card shows the sign-in hint, sends no order, and signing in offers Order', async () => {
    await saveSettings(
      run.context,
      run.extensionId,
      { serverUrl: standIn.url, token: '', contact: CONTACT, address: ADDRESS },
      problems,
    );
    const ordersBefore = standIn.orders.length;
    await page.bringToFront();
    await clickVideoAt(page, 200, 220);
    const card = await cardShown(page, 'the card with the hint', (c) => c.hint !== null);
    assert.equal(card.hint, 'To order, sign in in the settings. Open Framecart settings');
    assert.equal(card.order, null);
    assert.equal(await page.getByRole('button', { name: 'Order', exact: true }).count(), 0);

    // The hint opens the options page, where signing in gets a token.
    const [options] = await Promise.all([
      run.context.waitForEvent('page', { timeout: 30_000 }),
      page.getByRole('button', { name: 'Open Framecart settings' }).click(),
    ]);
    watchConsole(options, problems);
    await options.waitForLoadState();
    assert.equal(options.url(), `chrome-extension://${run.extensionId}/src/options.html`);
    standIn.accounts.set('ana@example.com', { password: 'correct horse', token: 'signed-in.token_42' });
    await options.locator('#sign-in-email').fill('ana@example.com');
    await options.locator('#sign-in-password').fill('wrong');
    await options.locator('#sign-in button[type=submit]').click();
    await waitFor(async () => (await options.locator('#sign-in-message').textContent()) === 'Wrong email address or password.', {
      what: 'the wrong password to be refused',
    });
    await options.locator('#sign-in-password').fill('correct horse');
    await options.locator('#sign-in button[type=submit]').click();
    await waitFor(async () => (await options.locator('#sign-in-message').textContent()).startsWith('Signed in as ana@example.com'), {
      what: 'the sign-in',
    });
    assert.equal(await options.locator('#token').inputValue(), 'signed-in.token_42');
    assert.equal(await options.locator('#sign-in-password').inputValue(), '', 'the password field is emptied');
    const stored = await options.evaluate(async () => JSON.stringify([
      await chrome.storage.sync.get(null),
      await chrome.storage.local.get(null),
    ]));
    assert.ok(stored.includes('signed-in.token_42'), 'the token is kept');
    assert.ok(!stored.includes('correct horse'), 'the password is not');
    await options.close();

    // The card, still open, now offers Order; no order was sent so far.
    await cardShown(page, 'the card to offer Order', (c) => c.order === 'Order');
    assert.equal(standIn.orders.length, ordersBefore);
    await page.getByRole('button', { name: 'Order', exact: true }).click();
    await cardShown(page, 'the order to be placed', (c) => c.status?.startsWith('Order placed'));
    assert.equal(standIn.orders.at(-1).headers.authorization, 'Bearer signed-in.token_42');
  });

  test('nothing was written to the consoles', () => {
    assert.deepEqual(problems, []);
  });
});

/**
 * The card is beside the click (not over it, GAP away on one side), within the player
 * and the viewport.
 */
function assertBeside(card, click) {
  const { rect, player, viewport } = card;
  const shown = JSON.stringify({ rect, click });
  assert.ok(rect.left >= player.left && rect.right <= player.right, `within the player across: ${shown}`);
  assert.ok(rect.top >= player.top && rect.bottom <= player.bottom, `within the player down: ${shown}`);
  assert.ok(rect.left >= 0 && rect.top >= 0 && rect.right <= viewport.width && rect.bottom <= viewport.height, shown);
  const covers = click.x >= rect.left && click.x <= rect.right && click.y >= rect.top && click.y <= rect.bottom;
  assert.ok(!covers, `the card does not cover the click: ${shown}`);
  const dx = Math.max(rect.left - click.x, 0, click.x - rect.right);
  const dy = Math.max(rect.top - click.y, 0, click.y - rect.bottom);
  assert.ok(Math.hypot(dx, dy) <= GAP + 1.5, `the card is ${Math.hypot(dx, dy)} px from the click: ${shown}`);
}
