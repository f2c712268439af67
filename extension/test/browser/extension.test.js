// The unchanged extension in Debian's Chromium, on a fake www.youtube.com, posting to
// the real Framecart server: real mouse clicks, read back over the server's API.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  clickOn,
  clickVideoAt,
  openWatchPage,
  readPopup,
  setServerUrl,
  stopServiceWorker,
  watchConsole,
} from './harness/pages.js';
import { elementToFrame } from '../../src/lib/geometry.js';
import { startRecorder } from './harness/recorder.js';
import { PINNED_EXTENSION_ID, TestRun } from './harness/run.js';
import { waitFor } from './harness/wait.js';

const VIDEO_A = 'fcTestVid_A';
const VIDEO_B = 'fcTestVid-B';

// The fake player: a 640×360 frame in a 640×480 element, so bands of 60 px above and
// below the picture; the top bar covers y < 40 and the bottom controls y ≥ 432.
const ELEMENT = { width: 640, height: 480 };
const FRAME = { width: 640, height: 360 };

/** Checks a click read back from the server against the one made in the browser. */
function assertArrived(stored, made, videoId) {
  assert.equal(stored.video_id, videoId);
  assert.ok(Math.abs(stored.x - made.x) < 0.01 && Math.abs(stored.y - made.y) < 0.01, 'element position');
  assert.deepEqual(stored.player, ELEMENT);
  assert.deepEqual(stored.video, FRAME);
  assert.ok(
    stored.timestamp >= made.before - 1e-6 && stored.timestamp <= made.after + 1e-6,
    `media time ${stored.timestamp} not within [${made.before}, ${made.after}]`,
  );
  // The server's mapping to the frame, against the extension's own (scale 1 here, so
  // only the band's 60 px offset: frame y = element y − 60).
  const expected = elementToFrame(made, ELEMENT, FRAME);
  assert.ok(Math.abs(expected.y - (made.y - 60)) < 1e-9);
  for (const axis of ['x', 'y', 'u', 'v']) {
    assert.ok(Math.abs(stored.frame[axis] - expected[axis]) < 1e-6, `frame ${axis}: ${stored.frame[axis]}`);
  }
  assert.equal(stored.on_black_band, !expected.onFrame);
  assert.equal(stored.during_ad, false);
}

/** The stored clicks made at element position (x, y). */
function at(clicks, made) {
  return clicks.filter((c) => Math.abs(c.x - made.x) < 0.01 && Math.abs(c.y - made.y) < 0.01);
}

describe('the extension in Chromium', { timeout: 600_000 }, () => {
  let run;
  let page;
  const problems = []; // console errors and warnings, uncaught exceptions
  const madeOnA = [];

  // Ctrl-C or a CI time-out must not leave a server, a database or a stream behind.
  // The signal may come twice (to the process group, then from the test runner): the
  // clean-up runs once, and a second signal must not cut it short.
  // Under `node --test` the runner that reads this process's output may be gone
  // already: a failed write to it must not end the process before the clean-up.
  let closing = null;
  const onSignal = (signal) => {
    process.stdout.on('error', () => {});
    process.stderr.on('error', () => {});
    closing ??= (run?.close() ?? Promise.resolve())
      .catch(() => {})
      .then(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };

  before(async () => {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    run = await TestRun.start();
    // The service worker's console too, including a worker restarted after being stopped.
    watchConsole(run.worker, problems);
    run.context.on('serviceworker', (worker) => watchConsole(worker, problems));
  });

  after(async () => {
    await page?.close().catch(() => {});
    await run?.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  });

  test('loads with the pinned extension id', () => {
    assert.equal(run.extensionId, PINNED_EXTENSION_ID);
  });

  test('clicks on the picture and on a band arrive; on controls, during an ad or off the player they do not', () =>
    run.withServerLog(async () => {
      await setServerUrl(run.context, run.extensionId, run.server.url, problems);
      page = await openWatchPage(run.context, VIDEO_A, problems);

      madeOnA.push(await clickVideoAt(page, 320, 240)); // the centre of the picture
      madeOnA.push(await clickVideoAt(page, 100, 150));
      madeOnA.push(await clickVideoAt(page, 500, 50)); // the top band, below the top bar

      // None of these may arrive.
      await clickOn(page, '.ytp-play-button');
      await clickVideoAt(page, 600, 460); // the bottom controls' bar, beside its buttons
      await clickVideoAt(page, 320, 20); // the top bar
      await page.evaluate(() => document.getElementById('movie_player').classList.add('ad-showing'));
      await clickVideoAt(page, 200, 200);
      await page.evaluate(() => {
        const player = document.getElementById('movie_player');
        player.classList.replace('ad-showing', 'ad-interrupting');
      });
      await clickVideoAt(page, 210, 210);
      await page.evaluate(() => document.getElementById('movie_player').classList.remove('ad-interrupting'));
      await clickOn(page, '#title');

      // Clicks are sent and projected in the order made: once the last one is there,
      // any click that should not have been sent would be there too.
      madeOnA.push(await clickVideoAt(page, 600, 400));
      const last = madeOnA.at(-1);
      const clicks = await waitFor(
        async () => {
          const stored = await run.server.clicks(VIDEO_A);
          return at(stored, last).length ? stored : null;
        },
        { timeout: 60_000, what: 'the clicks to reach Framecart' },
      );
      assert.equal(clicks.length, madeOnA.length, JSON.stringify(clicks, null, 1));
      for (const made of madeOnA) {
        const [stored, ...more] = at(clicks, made);
        assert.ok(stored && more.length === 0, `one click at (${made.x}, ${made.y})`);
        assertArrived(stored, made, VIDEO_A);
      }
      assert.equal(at(clicks, madeOnA[2])[0].on_black_band, true, 'the band click is flagged');
    }));

  test('clicks made while the server is down arrive once it is back, each once', () =>
    run.withServerLog(async () => {
      await run.server.stop();
      const offline = [await clickVideoAt(page, 150, 250), await clickVideoAt(page, 450, 300)];
      madeOnA.push(...offline);

      const down = await waitFor(
        async () => {
          const shown = await readPopup(run.context, run.extensionId, problems);
          return shown.waiting.startsWith('2 clicks') && shown.lastError.startsWith('Cannot reach') && shown;
        },
        { timeout: 60_000, what: 'the popup to show 2 clicks waiting and the error' },
      );
      assert.equal(down.server, run.server.url);
      assert.match(down.reachable, /^no/);

      await run.server.start();
      const clicks = await waitFor(
        async () => {
          const stored = await run.server.clicks(VIDEO_A);
          return offline.every((made) => at(stored, made).length) ? stored : null;
        },
        { timeout: 120_000, interval: 500, what: 'the clicks made offline to arrive' },
      );
      for (const made of offline) {
        assert.equal(at(clicks, made).length, 1, `once at (${made.x}, ${made.y})`);
        assertArrived(at(clicks, made)[0], made, VIDEO_A);
      }
      assert.equal(clicks.length, madeOnA.length);

      const up = await waitFor(
        async () => {
          const shown = await readPopup(run.context, run.extensionId, problems);
          return shown.waiting.startsWith('0 clicks') && shown;
        },
        { what: 'the popup to show nothing waiting' },
      );
      assert.equal(up.reachable, 'yes');
    }));

  test('a click waiting when the service worker is stopped is sent once its alarm wakes it', () =>
    run.withServerLog(async () => {
      await run.server.stop();
      const made = await clickVideoAt(page, 250, 200);
      madeOnA.push(made);
      await waitFor(
        async () => (await readPopup(run.context, run.extensionId, problems)).waiting.startsWith('1 click,'),
        { timeout: 60_000, what: 'the popup to show the click waiting' },
      );
      // Stopped, the worker loses its timers; only the alarm can bring it back.
      await stopServiceWorker(run.context, run.extensionId);
      await run.server.start();
      const [stored, ...more] = await waitFor(
        async () => {
          const found = at(await run.server.clicks(VIDEO_A), made);
          return found.length && found;
        },
        { timeout: 150_000, interval: 1_000, what: 'the alarm to send the waiting click' },
      );
      assert.equal(more.length, 0);
      assertArrived(stored, made, VIDEO_A);
    }));

  test('after in-site navigation the next click carries the new video id', () =>
    run.withServerLog(async () => {
      await page.evaluate(() => {
        window.notReloaded = true;
      });
      await page.evaluate((id) => window.fakeYouTube.navigate(id), VIDEO_B);
      assert.equal(await page.evaluate(() => window.notReloaded), true, 'the page was not reloaded');
      assert.equal(new URL(page.url()).searchParams.get('v'), VIDEO_B);

      const made = await clickVideoAt(page, 320, 240);
      const [stored] = await waitFor(() => run.server.clicks(VIDEO_B).then((c) => c.length && c), {
        timeout: 60_000,
        what: 'the click on the new video',
      });
      assertArrived(stored, made, VIDEO_B);
      assert.equal((await run.server.clicks(VIDEO_B)).length, 1);
      assert.equal((await run.server.clicks(VIDEO_A)).length, madeOnA.length, 'nothing more on the old video');
    }));

  test('the token goes with each click; a 503 is sent again, a 422 is dropped and reported', async (t) => {
    const recorder = await startRecorder();
    t.after(() => recorder.close());
    const token = 'viewer-token_1.2~3';
    await setServerUrl(run.context, run.extensionId, recorder.url, problems, token);

    recorder.answers = [503, 202];
    const retried = await clickVideoAt(page, 300, 300);
    await waitFor(() => recorder.requests.length === 2, { what: 'the click, and its retry after the 503' });
    for (const { headers, click } of recorder.requests) {
      assert.equal(headers.authorization, `Bearer ${token}`);
      assert.equal(headers.origin, `chrome-extension://${PINNED_EXTENSION_ID}`);
      assert.equal(click.videoId, VIDEO_B);
      assert.equal(click.x, retried.x);
    }
    assert.equal(recorder.requests[1].click.clickId, recorder.requests[0].click.clickId, 'a retry keeps the id');

    recorder.answers = [422];
    await clickVideoAt(page, 310, 310);
    await waitFor(() => recorder.requests.length === 3, { what: 'the click that is refused' });
    const shown = await waitFor(
      async () => {
        const popup = await readPopup(run.context, run.extensionId, problems);
        return popup.lastError.startsWith('Refused (HTTP 422 test_422)') && popup;
      },
      { what: 'the popup to report the refusal' },
    );
    assert.equal(shown.waiting, '0 clicks', 'a refused click is not kept');
    assert.equal(shown.reachable, 'yes');
  });

  test('nothing was written to the consoles', () => {
    assert.deepEqual(problems, []);
  });
});
