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
  assert.match(await page.getByRole('cell').first().textContent(), /No videos yet/);
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
