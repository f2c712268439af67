// Debian's Chromium with the unchanged extension loaded, driven by playwright-core.

import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

export const EXTENSION_DIR = fileURLToPath(new URL('../../../', import.meta.url));
export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

/**
 * Launches Chromium with a fresh profile in `userDataDir`, www.youtube.com mapped to the
 * fake YouTube on `youtubePort`, and the extension loaded.
 * @returns {Promise<{context: import('playwright-core').BrowserContext, worker: import('playwright-core').Worker, extensionId: string}>}
 */
export async function launchWithExtension(userDataDir, youtubePort) {
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    // Headless, but the new mode (the old one cannot load extensions), asked for by flag.
    headless: false,
    // Playwright disables extensions by default.
    ignoreDefaultArgs: ['--disable-extensions'],
    args: [
      '--headless=new',
      `--load-extension=${EXTENSION_DIR}`,
      `--disable-extensions-except=${EXTENSION_DIR}`,
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
      `--host-resolver-rules=MAP www.youtube.com 127.0.0.1:${youtubePort}`,
      '--ignore-certificate-errors',
      '--autoplay-policy=no-user-gesture-required',
    ],
    viewport: { width: 1024, height: 768 },
    ignoreHTTPSErrors: true,
    // On Ctrl-C or a time-out the test run takes everything down itself, the browser
    // first; Playwright's own handlers would exit before the rest is removed.
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
  const worker =
    context.serviceWorkers().find((w) => w.url().startsWith('chrome-extension://')) ??
    (await context.waitForEvent('serviceworker', { timeout: 60_000 }));
  const extensionId = new URL(worker.url()).host;
  return { context, worker, extensionId };
}
