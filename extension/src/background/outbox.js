// The outbox: clicks wait in chrome.storage.local until the server has them.
//
// The service worker can be stopped whenever it is idle, so nothing lives only in
// memory: each click is stored before it is sent, a retry is scheduled with
// chrome.alarms (which wakes a stopped worker), and every send is keyed by the click's
// id so that a click sent twice (an answer lost, the worker stopped mid-request) is
// still recorded once by the server.

import { describeFailure } from '../lib/answer.js';
import {
  afterFailure,
  dueAgainAfterRecovery,
  dueEntries,
  entriesOf,
  keyOf,
  newEntry,
  nextDueAt,
} from '../lib/outbox.js';
import { outcomeOf, serverWide } from '../lib/retry.js';
import { watchMatch } from './matches.js';
import { loadSettings, postClick } from './server.js';

export const ALARM = 'framecart-outbox';
const STATUS_KEY = 'outboxStatus';

// Chrome runs alarms at most every 30 s for an installed extension. The alarm only
// wakes a stopped worker; while the worker runs, a timer keeps to the exact backoff.
const ALARM_MIN_DELAY_MS = 30_000;

/** Stores a click; sending it is flush()'s job. */
export async function enqueue(body, tab) {
  const entry = newEntry(body, tab, Date.now());
  await chrome.storage.local.set({ [keyOf(entry.clickId)]: entry });
  return entry;
}

/** The waiting clicks, oldest first. */
export async function waiting() {
  return entriesOf(await chrome.storage.local.get(null));
}

/** The last error and the time of the last accepted click. */
export async function status() {
  const { [STATUS_KEY]: stored } = await chrome.storage.local.get(STATUS_KEY);
  return stored ?? { lastError: null, lastSentAt: null };
}

// One flush at a time: a request for another while one runs makes the running one go
// round again, so a click stored meanwhile is not left for the next alarm.
let running = null;
let again = false;
let forceAgain = false;
let timer = null;

/**
 * Sends every click that is due (every waiting click when `force`), then schedules the
 * next attempt. Resolves once the outbox has nothing more to do right now; never rejects.
 */
export function flush({ force = false } = {}) {
  forceAgain ||= force;
  if (running) {
    again = true;
    return running;
  }
  running = (async () => {
    try {
      do {
        again = false;
        const forced = forceAgain;
        forceAgain = false;
        if (await sendDue(forced)) again = true;
        // A request that comes while the next attempt is being scheduled (the new
        // timer may fire at once) is one more round, not a lost one.
        if (!again) await schedule();
      } while (again);
    } catch (error) {
      // Storage failed (full, or the profile is closing): say so, and let an alarm
      // try again later rather than leave the clicks without a next attempt.
      await recordError(`The outbox failed: ${error?.message ?? error}`, null, Date.now()).catch(() => {});
      await chrome.alarms.create(ALARM, { delayInMinutes: 1 }).catch(() => {});
    } finally {
      running = null;
    }
  })();
  return running;
}

/**
 * One round over the due clicks, oldest first. Returns true when another round should
 * follow at once (the server came back and held-back clicks were made due).
 */
async function sendDue(force) {
  const settings = await loadSettings();
  const started = Date.now();
  const due = dueEntries(await waiting(), started, force);
  let accepted = false;
  for (let i = 0; i < due.length; i++) {
    const entry = due[i];
    const answer = await postClick(settings, entry.body);
    const outcome = outcomeOf(answer.status);
    if (outcome === 'retry') {
      const message = describeFailure(answer, settings.serverUrl);
      const now = Date.now();
      // When the server as a whole cannot take clicks, the rest of this round would
      // fail the same way: they count as failed with it, without a request each.
      const failed = serverWide(answer.status) ? due.slice(i) : [entry];
      await chrome.storage.local.set(
        Object.fromEntries(failed.map((e) => [keyOf(e.clickId), afterFailure(e, answer, message, now)])),
      );
      await recordError(message, entry.clickId, now);
      if (failed.length > 1) break;
      continue;
    }
    await chrome.storage.local.remove(keyOf(entry.clickId));
    if (outcome === 'sent') {
      accepted = true;
      await updateStatus({ lastSentAt: Date.now() });
    } else {
      await recordError(describeFailure(answer, settings.serverUrl), entry.clickId, Date.now());
    }
    notifyTab(entry, outcome, answer);
    // Not awaited: the next click is not held up while this one's match is looked up.
    if (outcome === 'sent') watchMatch(settings, entry);
  }
  if (!accepted) return false;
  const recovered = dueAgainAfterRecovery(await waiting(), Date.now());
  if (!recovered.length) return false;
  await chrome.storage.local.set(Object.fromEntries(recovered.map((e) => [keyOf(e.clickId), e])));
  return true;
}

/** Arms the timer and the alarm for the next due click, or clears both. */
async function schedule() {
  clearTimeout(timer);
  timer = null;
  const dueAt = nextDueAt(await waiting());
  if (dueAt === null) {
    await chrome.alarms.clear(ALARM);
    return;
  }
  const now = Date.now();
  await chrome.alarms.create(ALARM, { when: Math.max(dueAt, now + ALARM_MIN_DELAY_MS) });
  timer = setTimeout(() => flush(), Math.max(0, dueAt - Date.now()));
}

/**
 * Hands the server's final answer to the tab the click came from (the content script
 * has no use for it so far: the product card comes with `framecart:product`, once the
 * match is known). A tab that has gone, or has no listener, is not an error.
 */
function notifyTab(entry, outcome, answer) {
  if (!entry.tab) return;
  const message = {
    type: 'framecart:click-result',
    clickId: entry.clickId,
    outcome,
    status: answer.status,
    body: answer.body ?? null,
  };
  chrome.tabs.sendMessage(entry.tab.tabId, message, { frameId: entry.tab.frameId }).catch(() => {});
}

/** Keeps `message` as the last error, for the popup. */
export async function recordError(message, clickId, at) {
  await updateStatus({ lastError: { message, clickId, at } });
}

async function updateStatus(changes) {
  await chrome.storage.local.set({ [STATUS_KEY]: { ...(await status()), ...changes } });
}
