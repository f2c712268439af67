// Framecart Studio in Debian's Chromium, driven by playwright-core, against the real
// `framecart serve` (its own database, namespace and media folder, as the extension's
// browser tests have them). Screenshots of each page go to $STUDIO_ARTIFACTS
// (default studio/test-results/).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { ADMIN, Framecart, freePort } from '../../extension/test/browser/harness/framecart.js';
import { deleteStream } from '../../extension/test/browser/harness/nats.js';
import { createDatabase, dropDatabase } from '../../extension/test/browser/harness/postgres.js';
import { waitFor } from '../../extension/test/browser/harness/wait.js';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const ARTIFACTS = process.env.STUDIO_ARTIFACTS ?? fileURLToPath(new URL('../test-results/', import.meta.url));
const MEDIA = process.env.FRAMECART_TEST_MEDIA ?? join(homedir(), '.cache/framecart/test-media');
const MERCHANT = { email: 'merchant@studio.test', password: 'studio merchant password' };

const undo = [];
let server;
let browser;

async function json(path, { method = 'GET', token, body } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${server.url}${path}`, { method, headers, body: body && JSON.stringify(body) });
  const answer = await response.json().catch(() => null);
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${JSON.stringify(answer)}`);
  return answer;
}

before(async () => {
  const suffix = randomBytes(6).toString('hex');
  const dir = await mkdtemp(join(tmpdir(), 'fcstudio-'));
  undo.push(() => rm(dir, { recursive: true, force: true }));
  const database = `fcstudio_${suffix}`;
  const databaseUrl = await createDatabase(database);
  undo.push(() => dropDatabase(database));
  const namespace = `fcstudio${suffix}`;
  undo.push(() => deleteStream(namespace));
  await mkdir(join(dir, 'media'));
  server = new Framecart({ databaseUrl, namespace, mediaDir: join(dir, 'media'), port: await freePort(), corsOrigins: [] });
  undo.push(() => server.stop());
  await server.start();
  // A merchant: registered, then given the role by the first admin.
  const admin = (await json('/api/v1/sessions', { method: 'POST', body: ADMIN })).token;
  const user = await json('/api/v1/users', { method: 'POST', body: MERCHANT });
  await json(`/api/v1/users/${user.user_id}/roles`, { method: 'POST', token: admin, body: { role: 'merchant' } });

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  undo.push(() => browser.close());
  await mkdir(ARTIFACTS, { recursive: true });
});

after(async () => {
  while (undo.length) {
    try {
      await undo.pop()();
    } catch (error) {
      console.error('clean-up:', error);
    }
  }
});

/** A page of its own, failing the test on any uncaught script error. */
async function studioPage(t) {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  const errors = [];
  const refused = [];
  page.on('pageerror', (error) => errors.push(error));
  // What the content security policy refuses (an inline style, say) is only logged.
  page.on('console', (message) => message.type() === 'error' && /Content Security Policy/.test(message.text()) && refused.push(message.text()));
  t.after(async () => {
    await page.close();
    assert.deepEqual(errors.map(String), [], 'no uncaught script error');
    assert.deepEqual(refused, [], 'nothing refused by the content security policy');
  });
  return page;
}

/**
 * A person the upload test's detection found after the first second, with its track
 * (known once the run completed: each view catches up on its own) and the detections.
 */
async function detectedPerson(token) {
  let found;
  await waitFor(async () => {
    const { items } = await json('/api/v1/videos/VESeA6leQuk/detections?limit=1000', { token });
    const person = items.find((d) => d.label === 'person' && d.track_id && d.timestamp > 1);
    found = person && { person, items };
    return Boolean(found);
  }, { timeout: 30_000, what: 'a detected person with its track' });
  return found;
}

/** Every control on the page has a name a screen reader says (its label, or aria-label). */
async function assertLabelled(page, where) {
  const unnamed = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button, [role=button]')]
    .filter((c) => c.offsetParent !== null || c.type === 'file')
    .filter((c) => {
      if (c.getAttribute('aria-label')) return false;
      if (['INPUT', 'SELECT', 'TEXTAREA'].includes(c.tagName)) return !(c.labels && c.labels.length);
      return !c.textContent.trim();
    })
    .map((c) => c.outerHTML.slice(0, 120)));
  assert.deepEqual(unnamed, [], `controls without a label on ${where}`);
}

/**
 * Seeks the player to `at` and waits until the boxes drawn are those of that moment (the
 * boxes of the moment before stay until the new scene arrives).
 */
async function seekTo(page, at) {
  await page.waitForFunction(() => document.querySelector('[data-testid="player"]')?.readyState >= 1);
  await page.getByTestId('player').evaluate((video, t) => { video.currentTime = t; }, at);
  await page.waitForFunction(() => {
    const video = document.querySelector('[data-testid="player"]');
    const boxes = document.querySelector('[data-testid="detection-boxes"]');
    return !video.seeking && boxes?.dataset.sceneTime === String(video.currentTime);
  });
}

async function signIn(page, who = MERCHANT) {
  await page.goto(`${server.url}/studio/`);
  await page.getByTestId('login-email').waitFor();
  assert.ok(await page.getByRole('button', { name: 'Sign out' }).isHidden(), 'no account menu before signing in');
  await page.screenshot({ path: join(ARTIFACTS, 'sign-in.png') });
  await assertLabelled(page, 'the sign-in page');
  await page.getByTestId('login-email').fill(who.email);
  await page.getByTestId('login-password').fill(who.password);
  // Enter submits, as the button does.
  await page.getByTestId('login-password').press('Enter');
  await page.getByRole('heading', { name: 'Videos', exact: true }).waitFor();
}

/** A user with `role`, registered and granted it by the first admin. */
async function staff(email, role) {
  const who = { email, password: `${role} password of the studio tests` };
  const admin = (await json('/api/v1/sessions', { method: 'POST', body: ADMIN })).token;
  const user = await json('/api/v1/users', { method: 'POST', body: who });
  await json(`/api/v1/users/${user.user_id}/roles`, { method: 'POST', token: admin, body: { role } });
  return who;
}

test('a wrong password is refused on the sign-in page, with a message', async (t) => {
  const page = await studioPage(t);
  await page.goto(`${server.url}/studio/`);
  // The keyboard: the email has focus, Tab goes to the password, then to the button.
  await page.waitForFunction(() => document.activeElement?.dataset.testid === 'login-email');
  await page.keyboard.type(MERCHANT.email);
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'login-password');
  await page.keyboard.type('not the password');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'login-submit');
  await page.keyboard.press('Enter');
  await page.getByRole('alert').filter({ hasText: 'do not match' }).waitFor();
  assert.equal(await page.getByTestId('upload-video-id').count(), 0);
  await page.screenshot({ path: join(ARTIFACTS, 'sign-in-refused.png') });
});

test('a merchant uploads a video and sees detection complete without reloading', async (t) => {
  const page = await studioPage(t);
  await signIn(page);
  await page.getByRole('cell', { name: /No videos yet/ }).waitFor();
  await page.screenshot({ path: join(ARTIFACTS, 'videos-empty.png') });

  await page.getByTestId('upload-video-id').fill('https://www.youtube.com/watch?v=VESeA6leQuk');
  await page.getByTestId('upload-input').setInputFiles(join(MEDIA, 'pan.mp4'));
  await page.getByTestId('upload-submit').click();
  const row = page.locator('[data-testid="video-row"][data-video-id="VESeA6leQuk"]');
  await row.waitFor();
  const loaded = await page.evaluate(() => performance.getEntriesByType('navigation').length);
  await page.screenshot({ path: join(ARTIFACTS, 'videos-uploaded.png') });
  await row.getByTestId('video-status').filter({ hasText: /^completed/ }).waitFor({ timeout: 180_000 });
  assert.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), loaded, 'no reload');
  await page.screenshot({ path: join(ARTIFACTS, 'videos-completed.png') });

  // The keyboard opens a video: focus its row, Enter.
  await row.focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'VESeA6leQuk' }).waitFor();
  assert.match(page.url(), /#\/videos\/VESeA6leQuk$/);
  await page.screenshot({ path: join(ARTIFACTS, 'video.png') });
});

test('the player boxes the person where the detections say, at the moment it is seeked to', async (t) => {
  const page = await studioPage(t);
  await signIn(page);
  const token = (await json('/api/v1/sessions', { method: 'POST', body: MERCHANT })).token;
  const { person, items } = await detectedPerson(token);

  await page.locator('[data-testid="video-row"][data-video-id="VESeA6leQuk"]').click();
  const player = page.getByTestId('player');
  await player.waitFor();
  await seekTo(page, person.timestamp);
  const box = page.locator(`[data-testid="detection-box"][data-track-id="${person.track_id}"]`);
  await box.waitFor();
  assert.equal(await box.getAttribute('data-label'), 'person');

  // Where the detection's pixels land in the letterboxed player, against the box drawn.
  const expected = await player.evaluate((video, d) => {
    const r = video.getBoundingClientRect();
    const scale = Math.min(r.width / video.videoWidth, r.height / video.videoHeight);
    const left = r.left + (r.width - video.videoWidth * scale) / 2;
    const top = r.top + (r.height - video.videoHeight * scale) / 2;
    return { x: left + d.xmin * scale, y: top + d.ymin * scale, width: (d.xmax - d.xmin) * scale, height: (d.ymax - d.ymin) * scale };
  }, person);
  const drawn = await box.boundingBox();
  for (const edge of ['x', 'y', 'width', 'height']) {
    assert.ok(Math.abs(drawn[edge] - expected[edge]) < 1.5, `${edge}: drawn ${drawn[edge]}, detection ${expected[edge]}`);
  }
  // Only the boxes of this moment are in the page.
  const tracksNow = new Set(items.filter((d) => Math.abs(d.timestamp - person.timestamp) < 1e-6).map((d) => d.track_id));
  for (const drawnBox of await page.getByTestId('detection-box').all()) {
    assert.ok(tracksNow.has(await drawnBox.getAttribute('data-track-id')), 'a box of another moment');
  }
  await page.screenshot({ path: join(ARTIFACTS, 'video-player.png') });
});

test('a box opens "link a product": a fragment finds the product and links it to the track', async (t) => {
  const page = await studioPage(t);
  const admin = (await json('/api/v1/sessions', { method: 'POST', body: ADMIN })).token;
  await json('/api/v1/products', {
    method: 'POST', token: admin,
    body: { article: 'JACKET-BLUE-7', name: 'Blue rain jacket', price_minor: 12900, currency: 'EUR', stock: 5 },
  });
  const { person } = await detectedPerson(admin);
  await signIn(page);
  await page.locator('[data-testid="video-row"][data-video-id="VESeA6leQuk"]').click();
  await seekTo(page, person.timestamp);
  await page.locator(`[data-testid="detection-box"][data-track-id="${person.track_id}"]`).click();

  const search = page.getByTestId('link-product-search');
  await search.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'link-product-search', 'the search has focus');
  await search.fill('jacket-bl');
  const submit = page.getByTestId('link-product-submit');
  await page.waitForFunction(() => !document.querySelector('[data-testid="link-product-submit"]').disabled);
  await page.screenshot({ path: join(ARTIFACTS, 'link-product.png') });
  await submit.click();
  await page.getByTestId('link-row').filter({ hasText: 'JACKET-BLUE-7' }).waitFor();

  const { items: links } = await json('/api/v1/videos/VESeA6leQuk/links', { token: admin });
  const link = links.find((l) => l.article === 'JACKET-BLUE-7');
  assert.ok(link, 'the link is in the API');
  assert.equal(link.kind, 'track');
  assert.equal(link.track_id, person.track_id);
  await page.screenshot({ path: join(ARTIFACTS, 'linked.png') });

  // Escape closes the panel again.
  await page.locator(`[data-testid="detection-box"][data-track-id="${person.track_id}"]`).click();
  await search.waitFor();
  await page.keyboard.press('Escape');
  await search.waitFor({ state: 'detached' });
});

/** The funnel's numbers as the page shows them. */
const funnelOf = (page) => page.getByTestId('funnel').evaluate((f) => ({
  clicks: Number(f.dataset.clicks), matched: Number(f.dataset.matched), orders: Number(f.dataset.orders),
  paid: Number(f.dataset.paid), revenue: Number(f.dataset.revenueMinor),
}));

test('the preview tells what a viewer’s click would match, and a track’s lane opens "link a product"', async (t) => {
  const page = await studioPage(t);
  const admin = (await json('/api/v1/sessions', { method: 'POST', body: ADMIN })).token;
  const { person } = await detectedPerson(admin);
  await signIn(page);
  await page.locator('[data-testid="video-row"][data-video-id="VESeA6leQuk"]').click();
  await seekTo(page, person.timestamp);
  const box = page.locator(`[data-testid="detection-box"][data-track-id="${person.track_id}"]`);
  await box.waitFor();

  // Preview mode: a click in the middle of the person's box would match the jacket linked
  // to its track (the test before linked it), with the ranked candidates and their reasons.
  await page.getByTestId('preview-toggle').check();
  const r = await box.boundingBox();
  await page.mouse.click(r.x + r.width / 2, r.y + r.height / 2);
  const result = page.getByTestId('preview-result');
  await result.and(page.locator('[data-status]')).waitFor();
  assert.equal(await result.getAttribute('data-status'), 'matched', await result.textContent());
  assert.equal(await result.getAttribute('data-article'), 'JACKET-BLUE-7');
  assert.match(await result.textContent(), /contains the click/);
  assert.equal(await page.getByTestId('link-product-search').count(), 0, 'a preview click links nothing');
  // The same point through the API's preview agrees with what the page shows.
  await assertLabelled(page, 'the video page');
  await page.screenshot({ path: join(ARTIFACTS, 'video-preview.png'), fullPage: true });

  // The timeline: a lane per track; the person's opens "link a product" for its track.
  await page.getByTestId('preview-toggle').uncheck();
  const lane = page.locator(`[data-testid="track-lane"][data-track-id="${person.track_id}"]`);
  await lane.waitFor();
  await lane.focus();
  await page.keyboard.press('Enter');
  await page.getByTestId('link-product-search').waitFor();
  assert.match(await page.getByRole('heading', { level: 3 }).textContent(), new RegExp(`person ${person.track_id.split(':').pop()}`));
  await page.screenshot({ path: join(ARTIFACTS, 'video-timeline.png'), fullPage: true });
  await page.keyboard.press('Escape');
  await page.getByTestId('link-product-search').waitFor({ state: 'detached' });
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'track-lane', 'focus goes back to the lane');
});

test('clicks posted through the API are counted by the heatmap and the funnel, live', async (t) => {
  const page = await studioPage(t);
  const admin = (await json('/api/v1/sessions', { method: 'POST', body: ADMIN })).token;
  const { person } = await detectedPerson(admin);
  const video = await json('/api/v1/videos/VESeA6leQuk', { token: admin });
  const viewer = { email: 'viewer@studio.test', password: 'studio viewer password' };
  await json('/api/v1/users', { method: 'POST', body: viewer });
  const viewerToken = (await json('/api/v1/sessions', { method: 'POST', body: viewer })).token;
  // The player shows the upload at its own size: frame pixels are CSS pixels.
  const size = { width: video.width, height: video.height };
  const click = (x, y, token) => json('/api/v1/clicks', {
    method: 'POST', token,
    body: { clickId: crypto.randomUUID(), videoId: 'VESeA6leQuk', x, y, timestamp: person.timestamp, player: size, video: size },
  });
  const centre = [(person.xmin + person.xmax) / 2, (person.ymin + person.ymax) / 2];
  const onPerson = await click(...centre, viewerToken);
  await click(2, 2);
  await waitFor(async () => (await json(`/api/v1/clicks/${onPerson.click_id}/match`, { token: viewerToken })).status === 'matched',
    { timeout: 30_000, what: 'the click on the person to match the jacket' });
  // The viewer buys the jacket from that click, and pays.
  const response = await fetch(`${server.url}/api/v1/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${viewerToken}`, 'idempotency-key': 'studio-order-1' },
    body: JSON.stringify({
      lines: [{ article: 'JACKET-BLUE-7', quantity: 1 }], click_id: onPerson.click_id,
      contact: { name: 'Ada Viewer', email: viewer.email },
      shipping_address: { line1: 'Hauptstraße 1', city: 'Berlin', postal_code: '10115', country: 'de' },
    }),
  });
  const answer = await response.text();
  assert.equal(response.status, 201, answer);
  const order = JSON.parse(answer);
  await json(`/api/v1/orders/${order.id}/payments`, { method: 'POST', token: viewerToken, body: { provider: 'fake', card_number: '4242424242424242' } });
  await waitFor(async () => (await json(`/api/v1/orders/${order.id}`, { token: viewerToken })).status === 'paid', { what: 'the order to be paid' });

  await signIn(page);
  await page.locator('[data-testid="video-row"][data-video-id="VESeA6leQuk"]').click();
  await page.getByTestId('video-analytics').click();
  await page.getByTestId('funnel').waitFor();
  await waitFor(async () => {
    const f = await funnelOf(page);
    return f.clicks === 2 && f.paid === 1;
  }, { timeout: 30_000, what: 'the funnel to count both clicks and the paid order' });
  const analytics = await json('/api/v1/videos/VESeA6leQuk/analytics', { token: admin });
  assert.deepEqual(await funnelOf(page), {
    clicks: 2, matched: analytics.matched, orders: 1, paid: 1, revenue: 12900,
  });
  assert.ok(analytics.matched >= 1);
  const product = page.locator('[data-testid="funnel-product"][data-article="JACKET-BLUE-7"]');
  assert.match(await product.textContent(), /129\.00/);

  // The heatmap: both clicks, the one on the person in its cell, over a frame of the video.
  const heatmap = page.getByTestId('heatmap');
  assert.equal(await heatmap.getAttribute('data-clicks'), '2');
  const grid = analytics.heatmap.grid;
  const cell = [Math.floor((centre[0] / video.width) * grid), Math.floor((centre[1] / video.height) * grid)];
  assert.equal(await heatmap.locator(`rect[x="${cell[0]}"][y="${cell[1]}"]`).count(), 1, 'the person click’s cell');
  const picture = page.locator('.heat-stage img');
  await page.waitForFunction(() => document.querySelector('.heat-stage img')?.naturalWidth > 0);
  // The map covers the picture exactly.
  const [p, m] = [await picture.boundingBox(), await heatmap.boundingBox()];
  for (const edge of ['x', 'y', 'width', 'height']) assert.ok(Math.abs(p[edge] - m[edge]) < 1, `${edge}: ${p[edge]} ≠ ${m[edge]}`);
  assert.equal(await page.getByTestId('click-histogram').getAttribute('data-clicks'), '2');
  await assertLabelled(page, 'the analytics page');
  await page.screenshot({ path: join(ARTIFACTS, 'video-analytics.png'), fullPage: true });

  // Live: a new click is counted without a reload.
  await click(...centre);
  await waitFor(async () => (await funnelOf(page)).clicks === 3, { timeout: 30_000, what: 'the funnel to count a new click' });
});

test('a merchant creates a product, changes its price and stock, and retires it', async (t) => {
  const page = await studioPage(t);
  await signIn(page);
  await page.getByTestId('nav-products').click();
  await page.getByRole('heading', { name: 'Products', exact: true }).waitFor();
  await page.getByTestId('product-article').fill('SCARF-RED-1');
  await page.getByTestId('product-name').fill('Red scarf');
  await page.getByTestId('product-price').fill('24.90');
  await page.getByTestId('product-stock').fill('7');
  await page.getByTestId('product-create').click();
  const row = page.locator('[data-testid="product-row"][data-article="SCARF-RED-1"]');
  await row.waitFor();
  assert.match(await row.textContent(), /€24\.90/);
  await assertLabelled(page, 'the products page');
  await page.screenshot({ path: join(ARTIFACTS, 'products.png') });

  await row.getByRole('button', { name: 'Edit SCARF-RED-1' }).click();
  await page.getByTestId('edit-price').fill('19.50');
  await page.getByTestId('edit-stock').fill('12');
  await page.getByTestId('edit-save').click();
  await row.filter({ hasText: '€19.50' }).waitFor();
  let product = await json('/api/v1/products/SCARF-RED-1');
  assert.deepEqual([product.price_minor, product.stock], [1950, 12]);

  // Retire asks first; Escape keeps it, the confirmation retires it.
  await row.getByRole('button', { name: 'Retire SCARF-RED-1' }).click();
  await page.keyboard.press('Escape');
  await row.getByRole('button', { name: 'Retire SCARF-RED-1' }).waitFor();
  assert.equal((await json('/api/v1/products/SCARF-RED-1')).active, true);
  await row.getByRole('button', { name: 'Retire SCARF-RED-1' }).click();
  await page.screenshot({ path: join(ARTIFACTS, 'products-retire.png') });
  await row.getByTestId('confirm').click();
  await row.waitFor({ state: 'detached' }); // retired products are hidden by default
  product = await json('/api/v1/products/SCARF-RED-1');
  assert.equal(product.active, false);
});

test('a merchant lists paid orders and ships one, then completes it, each after a confirmation', async (t) => {
  const page = await studioPage(t);
  const admin = (await json('/api/v1/sessions', { method: 'POST', body: ADMIN })).token;
  const { items: paid } = await json('/api/v1/orders?status=paid', { token: admin });
  assert.ok(paid.length >= 1, 'the analytics test paid an order');
  const order = paid[0];
  await signIn(page);
  await page.getByTestId('nav-orders').click();
  await page.getByTestId('order-status-filter').selectOption('paid');
  const row = page.locator(`[data-testid="order-row"][data-order-id="${order.id}"]`);
  await row.waitFor();
  await assertLabelled(page, 'the orders page');
  await page.screenshot({ path: join(ARTIFACTS, 'orders.png') });

  await row.getByTestId('order-ship').click();
  await row.getByTestId('order-tracking').fill('TRACK-0001');
  await page.screenshot({ path: join(ARTIFACTS, 'orders-ship.png') });
  await row.getByTestId('confirm').click();
  await waitFor(async () => (await json(`/api/v1/orders/${order.id}`, { token: admin })).status === 'shipped', { what: 'the order shipped' });
  // Shipped, it leaves the list of paid orders; under "shipped" it can be completed.
  await row.waitFor({ state: 'detached' });
  await page.getByTestId('order-status-filter').selectOption('shipped');
  await row.getByTestId('order-complete').click();
  await row.getByTestId('confirm').click();
  await waitFor(async () => (await json(`/api/v1/orders/${order.id}`, { token: admin })).status === 'completed', { what: 'the order completed' });
});

test('an auditor reads the history, filters it, opens an event and verifies the chain', async (t) => {
  const page = await studioPage(t);
  const auditor = await staff('auditor@studio.test', 'auditor');
  await signIn(page, auditor);
  assert.equal(await page.getByTestId('upload-video-id').count(), 0, 'an auditor uploads nothing');
  await page.getByTestId('nav-audit').click();
  await page.getByRole('heading', { name: 'Audit', exact: true }).waitFor();
  await page.getByTestId('audit-event').first().waitFor();
  assert.equal(await page.getByTestId('audit-event').first().getAttribute('data-position'), '1', 'in log order');

  await page.getByTestId('audit-verify').click();
  const result = page.getByTestId('audit-verify-result');
  await result.and(page.locator('[data-ok]')).waitFor();
  assert.equal(await result.getAttribute('data-ok'), 'true', await result.textContent());

  // Only the orders' events; one opened shows its payload.
  await page.getByTestId('audit-aggregate-type').selectOption('order');
  await page.getByTestId('audit-filter').click();
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="audit-event"]')].every((r) => r.children[2].textContent === 'order'));
  const first = page.getByTestId('audit-event').first();
  await first.focus();
  await page.keyboard.press('Enter');
  const payload = page.getByTestId('audit-payload').first();
  await payload.waitFor();
  assert.match(await payload.textContent(), /OrderPlaced/);
  await assertLabelled(page, 'the audit page');
  await page.screenshot({ path: join(ARTIFACTS, 'audit.png'), fullPage: true });
});

test('a merchant has no audit page', async (t) => {
  const page = await studioPage(t);
  await signIn(page);
  assert.ok(await page.getByTestId('nav-audit').isHidden(), 'no link to it');
  await page.goto(`${server.url}/studio/#/audit`);
  await page.getByRole('heading', { name: 'Not for this account' }).waitFor();
});
