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
  page.on('pageerror', (error) => errors.push(error));
  t.after(async () => {
    await page.close();
    assert.deepEqual(errors.map(String), [], 'no uncaught script error');
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

async function signIn(page) {
  await page.goto(`${server.url}/studio/`);
  await page.getByTestId('login-email').waitFor();
  assert.ok(await page.getByRole('button', { name: 'Sign out' }).isHidden(), 'no account menu before signing in');
  await page.screenshot({ path: join(ARTIFACTS, 'sign-in.png') });
  await page.getByTestId('login-email').fill(MERCHANT.email);
  await page.getByTestId('login-password').fill(MERCHANT.password);
  // Enter submits, as the button does.
  await page.getByTestId('login-password').press('Enter');
  await page.getByTestId('upload-video-id').waitFor();
}

test('a wrong password is refused on the sign-in page, with a message', async (t) => {
  const page = await studioPage(t);
  await page.goto(`${server.url}/studio/`);
  await page.getByTestId('login-email').fill(MERCHANT.email);
  await page.getByTestId('login-password').fill('not the password');
  await page.getByTestId('login-submit').click();
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
  await page.waitForFunction(() => document.querySelector('[data-testid="player"]').readyState >= 1);
  await player.evaluate((video, at) => { video.currentTime = at; }, person.timestamp);
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
  await page.waitForFunction(() => document.querySelector('[data-testid="player"]')?.readyState >= 1);
  await page.getByTestId('player').evaluate((video, at) => { video.currentTime = at; }, person.timestamp);
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
