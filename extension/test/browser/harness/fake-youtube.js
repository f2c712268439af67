// A local HTTPS server that plays www.youtube.com for the browser: Chromium maps the
// host name to it (--host-resolver-rules), so the unchanged manifest's content script
// runs on the fake watch page. The certificate is self-signed, made here with openssl.

import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const FIXTURES = new URL('../fixtures/', import.meta.url);

async function selfSignedCertificate(dir) {
  const key = join(dir, 'tls-key.pem');
  const cert = join(dir, 'tls-cert.pem');
  await run('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
    '-subj', '/CN=www.youtube.com', '-addext', 'subjectAltName=DNS:www.youtube.com',
    '-keyout', key, '-out', cert,
  ], { timeout: 60_000 });
  return { key: await readFile(key), cert: await readFile(cert) };
}

/** Starts the fake YouTube on a free port of 127.0.0.1; `dir` holds its certificate. */
export async function startFakeYouTube(dir) {
  const page = await readFile(new URL('watch.html', FIXTURES));
  const script = await readFile(new URL('fake-youtube.js', FIXTURES));
  const server = createServer(await selfSignedCertificate(dir), (request, response) => {
    const path = new URL(request.url, 'https://www.youtube.com').pathname;
    const [status, type, body] =
      path === '/fake-youtube.js'
        ? [200, 'text/javascript', script]
        : path === '/favicon.ico'
          ? [204, 'image/x-icon', '']
          : [200, 'text/html; charset=utf-8', page];
    response.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
    response.end(body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: server.address().port,
    close: () =>
      new Promise((resolve) => {
        server.close(resolve);
        server.closeAllConnections();
      }),
  };
}
