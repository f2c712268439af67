// The pages a person would use: the fake watch page, the options page, the popup.

import { waitFor } from './wait.js';

/**
 * Opens a fake watch page and waits until its video really plays. Collects console
 * errors and warnings, and uncaught exceptions, into `problems`.
 */
export async function openWatchPage(context, videoId, problems) {
  const page = await context.newPage();
  watchConsole(page, problems);
  await page.goto(`https://www.youtube.com/watch?v=${videoId}`);
  await waitFor(
    () =>
      page.evaluate(() => {
        const video = document.querySelector('video.html5-main-video');
        return video.videoWidth === 640 && video.currentTime > 0.3 && !video.paused;
      }),
    { timeout: 30_000, what: 'the video to play' },
  );
  return page;
}

/** Collects console errors and warnings of a page or worker, and a page's uncaught exceptions. */
export function watchConsole(target, problems) {
  target.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') {
      problems.push(`${target.url()}: console.${message.type()}: ${message.text()}`);
    }
  });
  if ('mainFrame' in target) {
    target.on('pageerror', (error) => problems.push(`${target.url()}: uncaught: ${error.message}`));
  }
}

/** The video element's box in the viewport. */
export function videoBox(page) {
  return page.evaluate(() => {
    const r = document.querySelector('video.html5-main-video').getBoundingClientRect();
    return { left: r.left, top: r.top, width: r.width, height: r.height };
  });
}

/**
 * A real mouse click at element-relative CSS px (x, y) of the video, with the video's
 * media time read just before and just after it.
 */
export async function clickVideoAt(page, x, y) {
  const box = await videoBox(page);
  const currentTime = () => page.evaluate(() => document.querySelector('video.html5-main-video').currentTime);
  const before = await currentTime();
  await page.mouse.click(box.left + x, box.top + y);
  const after = await currentTime();
  return { x, y, before, after };
}

/** A real mouse click on the centre of an element of the page. */
export async function clickOn(page, selector) {
  await page.locator(selector).first().click({ force: true });
}

/** Sets the server address (and the token) through the options page, as a person would. */
export async function setServerUrl(context, extensionId, serverUrl, problems, token = '') {
  const page = await context.newPage();
  watchConsole(page, problems);
  await page.goto(`chrome-extension://${extensionId}/src/options.html`);
  await page.locator('#server-url').fill(serverUrl);
  await page.locator('#token').fill(token);
  await page.locator('#settings button[type=submit]').click();
  await waitFor(async () => (await page.locator('#message').textContent()) === 'Saved.', {
    what: 'the options page to save',
  });
  await page.close();
}

// The options page's fields for the contact and the shipping address.
const CONTACT_FIELDS = { name: '#contact-name', email: '#contact-email', phone: '#contact-phone' };
const ADDRESS_FIELDS = {
  line1: '#address-line1',
  line2: '#address-line2',
  city: '#address-city',
  postal_code: '#address-postal-code',
  country: '#address-country',
};

/**
 * Fills in the options page as a person would and saves: the server address, the token,
 * and the contact and shipping address for orders (each field left out is emptied).
 */
export async function saveSettings(context, extensionId, { serverUrl, token = '', contact = {}, address = {} }, problems) {
  const page = await context.newPage();
  watchConsole(page, problems);
  await page.goto(`chrome-extension://${extensionId}/src/options.html`);
  await page.locator('#server-url').fill(serverUrl);
  await page.locator('#token').fill(token);
  for (const [key, selector] of Object.entries(CONTACT_FIELDS)) await page.locator(selector).fill(contact[key] ?? '');
  for (const [key, selector] of Object.entries(ADDRESS_FIELDS)) await page.locator(selector).fill(address[key] ?? '');
  await page.locator('#settings button[type=submit]').click();
  await waitFor(async () => (await page.locator('#message').textContent()) === 'Saved.', {
    what: 'the options page to save',
  });
  await page.close();
}

/** What the popup shows, read from the popup page opened in a tab. */
export async function readPopup(context, extensionId, problems) {
  const page = await context.newPage();
  watchConsole(page, problems);
  await page.goto(`chrome-extension://${extensionId}/src/popup.html`);
  await waitFor(async () => (await page.locator('#reachable').textContent()) !== 'checking…', {
    what: 'the popup to show the server state',
  });
  const text = async (id) => (await page.locator(`#${id}`).textContent()).trim();
  const shown = {
    server: await text('server'),
    reachable: await text('reachable'),
    waiting: await text('waiting'),
    lastError: await text('last-error'),
  };
  await page.close();
  return shown;
}

/**
 * Stops the extension's service worker, as Chromium does when it is idle, and waits
 * until it has stopped. Through DevTools' ServiceWorker domain on an extension page,
 * whose storage partition is the extension's.
 */
export async function stopServiceWorker(context, extensionId) {
  const page = await context.newPage();
  await page.goto(`chrome-extension://${extensionId}/src/options.html`);
  const cdp = await context.newCDPSession(page);
  const states = new Map();
  cdp.on('ServiceWorker.workerVersionUpdated', ({ versions }) => {
    for (const v of versions) states.set(v.scriptURL, v.runningStatus);
  });
  await cdp.send('ServiceWorker.enable');
  await cdp.send('ServiceWorker.stopAllWorkers');
  const script = `chrome-extension://${extensionId}/src/background.js`;
  await waitFor(() => states.get(script) === 'stopped', { what: 'the service worker to stop' });
  await cdp.detach();
  await page.close();
}
