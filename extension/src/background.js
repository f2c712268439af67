// Framecart's service worker: receives clicks from the content script, keeps them in
// the outbox until the server has them, looks up what an accepted click matched (the
// content script shows the product card), places orders from that card, and answers
// the popup and the options page.
//
// Listeners are added at the top level, synchronously, as MV3 requires: a stopped
// worker is restarted for an event only if its listener exists right after start-up.

import { ALARM, enqueue, flush, recordError, status, waiting } from './background/outbox.js';
import { placeOrder, signIn } from './background/orders.js';
import { checkHealth, loadOrderSettings, loadSettings } from './background/server.js';
import { clickBody } from './lib/click.js';
import { orderReadiness } from './lib/order.js';
import { nextDueAt } from './lib/outbox.js';

chrome.runtime.onInstalled.addListener(() => flush());
chrome.runtime.onStartup.addListener(() => flush());

chrome.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === ALARM) flush();
});

// A new server address or token may be what the waiting clicks were waiting for.
chrome.storage.onChanged.addListener((changes, area) => {
  if (area === 'sync' && ('serverUrl' in changes || 'token' in changes)) flush({ force: true });
});

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  if (sender.id !== chrome.runtime.id) return false;
  const handler = HANDLERS[message?.type];
  if (!handler) return false;
  handler(message, sender).then(sendResponse, (error) =>
    sendResponse({ ok: false, error: String(error?.message ?? error) }),
  );
  return true; // the answer comes asynchronously
});

const HANDLERS = {
  // From the content script: a click on the picture of a YouTube video.
  async 'framecart:click'(message, sender) {
    if (!sender.tab) return { ok: false, error: 'clicks come from tabs' };
    const built = clickBody(message.measurement);
    if (built.error) return { ok: false, error: built.error };
    const tab = { tabId: sender.tab.id, frameId: sender.frameId ?? 0 };
    try {
      await enqueue(built.body, tab);
    } catch (error) {
      // Storage is full or closing: the click cannot wait, and the popup should say so.
      const message = `A click could not be kept: ${error?.message ?? error}`;
      await recordError(message, built.body.clickId, Date.now()).catch(() => {});
      return { ok: false, error: message };
    }
    flush();
    return { ok: true, clickId: built.body.clickId };
  },

  // From the popup: is the server there, what waits, what went wrong last.
  async 'framecart:status'() {
    const settings = await loadSettings();
    const [health, entries, last] = await Promise.all([checkHealth(settings), waiting(), status()]);
    return {
      ok: true,
      serverUrl: settings.serverUrl,
      reachable: health.reachable,
      healthStatus: health.status,
      healthError: health.error ?? null,
      waiting: entries.length,
      nextAttemptAt: nextDueAt(entries),
      lastError: last.lastError,
      lastSentAt: last.lastSentAt,
    };
  },

  // From the popup's "Send now": every waiting click, without waiting for its backoff.
  async 'framecart:flush'() {
    await flush({ force: true });
    return { ok: true, waiting: (await waiting()).length };
  },

  // From the product card's "Order" (or "Try again", with the same key).
  async 'framecart:order'(message, sender) {
    if (!sender.tab) return { ok: false, error: 'orders come from tabs' };
    return placeOrder({
      clickId: message.clickId,
      article: message.article,
      idempotencyKey: message.idempotencyKey,
    });
  },

  // From the product card, when the settings changed: can the viewer order now?
  async 'framecart:order-readiness'() {
    return { ok: true, ...orderReadiness(await loadOrderSettings()) };
  },

  // From the product card's hint: content scripts cannot open the options page.
  async 'framecart:open-options'() {
    await chrome.runtime.openOptionsPage();
    return { ok: true };
  },

  // From the options page's sign-in form. The password goes to the server only.
  async 'framecart:sign-in'(message, sender) {
    if (!fromExtensionPage(sender)) return { ok: false, error: 'sign in on the options page' };
    return signIn({ email: message.email, password: message.password });
  },
};

/** True for the extension's own pages (options, popup), not for content scripts. */
function fromExtensionPage(sender) {
  return typeof sender.url === 'string' && sender.url.startsWith(chrome.runtime.getURL(''));
}
