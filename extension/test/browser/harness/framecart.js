// The real Framecart server (`framecart serve`), on a port of the run's own, against
// the run's own database, namespace and media folder.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';

import { waitFor } from './wait.js';

export const FRAMECART_BIN =
  process.env.FRAMECART_BIN || join(homedir(), '.cache/framecart/target/debug/framecart');

/** A TCP port that was free a moment ago (the server cannot print the one it got). */
export async function freePort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** The first admin each test server is started with. */
export const ADMIN = { email: 'admin@framecart.test', password: 'extension-tests-admin' };

export class Framecart {
  /**
   * @param {{databaseUrl: string, namespace: string, mediaDir: string, port: number, corsOrigins: string[]}} config
   */
  constructor(config) {
    this.config = config;
    this.url = `http://127.0.0.1:${config.port}`;
    this.process = null;
    this.log = [];
  }

  /** Starts the server and waits until it is ready (store and log reachable). */
  async start() {
    if (this.process) throw new Error('framecart is already running');
    this.token = null;
    const { databaseUrl, namespace, mediaDir, port, corsOrigins } = this.config;
    const child = spawn(FRAMECART_BIN, ['serve'], {
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl,
        FRAMECART_NAMESPACE: namespace,
        FRAMECART_MEDIA_DIR: mediaDir,
        // Tests only: a fixed key (production sets its own).
        FRAMECART_MASTER_KEY: process.env.FRAMECART_MASTER_KEY ?? '74657374206b6579206f662074686520657874656e73696f6e27732074657374',
        FRAMECART_BIND: `127.0.0.1:${port}`,
        FRAMECART_CORS_ORIGINS: corsOrigins.join(','),
        // The first admin: the clicks view is staff-only, and the tests read it.
        FRAMECART_ADMIN_EMAIL: ADMIN.email,
        FRAMECART_ADMIN_PASSWORD: ADMIN.password,
        RUST_LOG: process.env.RUST_LOG ?? 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.process = child;
    const keep = (chunk) => {
      this.log.push(...chunk.toString().split('\n').filter(Boolean));
      if (this.log.length > 400) this.log.splice(0, this.log.length - 400);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('exit', (code, signal) => {
      this.log.push(`[framecart exited: ${signal ?? code}]`);
      if (this.process === child) this.process = null;
    });
    await waitFor(
      async () => {
        if (!this.process) throw new Error(`framecart exited:\n${this.logTail()}`);
        const response = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2_000) });
        return response.ok;
      },
      { timeout: 60_000, what: `framecart to be ready at ${this.url}` },
    );
  }

  /** Stops the server (SIGTERM, then SIGKILL if it lingers) and waits for its exit. */
  async stop() {
    const child = this.process;
    if (!child) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  /** The clicks the server's `clicks` view holds for a video (read as the admin). */
  async clicks(videoId) {
    const response = await fetch(`${this.url}/api/v1/clicks?video_id=${videoId}&limit=1000`, {
      headers: { Authorization: `Bearer ${await this.adminToken()}` },
    });
    if (!response.ok) throw new Error(`GET clicks: HTTP ${response.status}`);
    return (await response.json()).items;
  }

  /** A token of the configured first admin (signed in once per server run). */
  async adminToken() {
    if (this.token) return this.token;
    const response = await fetch(`${this.url}/api/v1/sessions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(ADMIN),
    });
    if (!response.ok) throw new Error(`POST sessions: HTTP ${response.status}`);
    this.token = (await response.json()).token;
    return this.token;
  }

  logTail(lines = 60) {
    return this.log.slice(-lines).join('\n');
  }
}
