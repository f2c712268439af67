// Everything one browser test run needs, made fresh and taken down at the end, failed
// or not: a database, a NATS namespace, a media folder, the real server (unless the
// run talks to a stand-in only), the fake YouTube, and Chromium with the extension.

import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { EXTENSION_DIR, launchWithExtension } from './browser.js';
import { startFakeYouTube } from './fake-youtube.js';
import { Framecart, freePort } from './framecart.js';
import { deleteStream } from './nats.js';
import { createDatabase, dropDatabase } from './postgres.js';

export const PINNED_EXTENSION_ID = (await readFile(join(EXTENSION_DIR, 'extension-id.txt'), 'utf8')).trim();

export class TestRun {
  #undo = [];

  /**
   * Sets everything up; on a failure half-way, takes down what was made.
   * @param {{framecart?: boolean}} options  `framecart: false` for tests that talk to a
   *   stand-in server only: no database, namespace or real server then.
   */
  static async start({ framecart = true } = {}) {
    const run = new TestRun();
    try {
      await run.#setUp(framecart);
    } catch (error) {
      await run.close();
      throw error;
    }
    return run;
  }

  async #setUp(framecart) {
    this.dir = await mkdtemp(join(tmpdir(), 'fcext-'));
    this.#undo.push(() => rm(this.dir, { recursive: true, force: true }));
    if (framecart) await this.#startFramecart();

    this.youtube = await startFakeYouTube(this.dir);
    this.#undo.push(() => this.youtube.close());

    const browser = await launchWithExtension(join(this.dir, 'profile'), this.youtube.port);
    this.#undo.push(() => browser.context.close());
    Object.assign(this, browser);
  }

  async #startFramecart() {
    const suffix = randomBytes(6).toString('hex');
    this.database = `fcext_${suffix}`;
    const databaseUrl = await createDatabase(this.database);
    this.#undo.push(() => dropDatabase(this.database));

    // The server creates the stream on start; it is deleted after the server stops.
    this.namespace = `fcext${suffix}`;
    this.#undo.push(() => deleteStream(this.namespace));

    const mediaDir = join(this.dir, 'media');
    await mkdir(mediaDir);
    this.server = new Framecart({
      databaseUrl,
      namespace: this.namespace,
      mediaDir,
      port: await freePort(),
      corsOrigins: [`chrome-extension://${PINNED_EXTENSION_ID}`],
    });
    this.#undo.push(() => this.server.stop());
    await this.server.start();
  }

  /** Takes everything down, newest first; one failure does not stop the rest. */
  async close() {
    const errors = [];
    while (this.#undo.length) {
      try {
        await this.#undo.pop()();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length) throw new AggregateError(errors, 'clean-up failed');
  }

  /** Runs `body`; when it fails, the server's last log lines go with the error. */
  async withServerLog(body) {
    try {
      return await body();
    } catch (error) {
      error.message += `\n--- framecart log (tail) ---\n${this.server?.logTail() ?? ''}`;
      throw error;
    }
  }
}
