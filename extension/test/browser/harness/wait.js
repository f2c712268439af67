// Polling instead of fixed sleeps: the tests run on 2 cores, sometimes beside other
// load, so every wait is "until this holds, or a generous timeout".

import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Calls `check` until it returns a truthy value, and returns that value.
 * @param {() => any | Promise<any>} check
 * @param {{timeout?: number, interval?: number, what?: string}} options
 */
export async function waitFor(check, { timeout = 30_000, interval = 200, what = 'a condition' } = {}) {
  const deadline = Date.now() + timeout;
  let lastError;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const why = lastError ? ` (last error: ${lastError.message ?? lastError})` : '';
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${why}`);
    }
    await sleep(interval);
  }
}
