// The manifest as Chromium will read it: every file it names exists, the pinned key
// yields the id in extension-id.txt, and the private key is not in the tree.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const manifest = JSON.parse(readFileSync(join(ROOT, 'manifest.json'), 'utf8'));

/** Chromium's extension id: sha256 of the DER public key, 32 hex digits mapped 0-f → a-p. */
function extensionId(base64Key) {
  const hex = createHash('sha256').update(Buffer.from(base64Key, 'base64')).digest('hex').slice(0, 32);
  return [...hex].map((h) => String.fromCharCode(97 + parseInt(h, 16))).join('');
}

test('the key pins the id written in extension-id.txt', () => {
  const pinned = readFileSync(join(ROOT, 'extension-id.txt'), 'utf8').trim();
  assert.match(pinned, /^[a-p]{32}$/);
  assert.equal(extensionId(manifest.key), pinned);
});

test('no private key is kept in the tree', () => {
  const walk = (dir) =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.name === 'node_modules' || e.name === '.git' ? [] : e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
    );
  const marker = ['PRIVATE', 'KEY-----'].join(' '); // spelt so that this file does not match
  for (const file of walk(ROOT)) {
    assert.ok(!/\.(pem|key|crx)$/.test(file), file);
    assert.ok(!readFileSync(file).includes(marker), file);
  }
});

test('a Manifest V3 extension whose named files all exist', () => {
  assert.equal(manifest.manifest_version, 3);
  const files = [
    manifest.background.service_worker,
    manifest.action.default_popup,
    manifest.options_ui.page,
    ...manifest.content_scripts.flatMap((c) => c.js),
    ...Object.values(manifest.icons),
    ...Object.values(manifest.action.default_icon),
  ];
  for (const file of files) assert.ok(existsSync(join(ROOT, file)), file);
});

test('the content script runs on YouTube from document start; the worker is a module', () => {
  const [script] = manifest.content_scripts;
  assert.deepEqual(script.matches, ['https://www.youtube.com/*']);
  assert.equal(script.run_at, 'document_start');
  assert.equal(manifest.background.type, 'module');
  assert.ok(manifest.permissions.includes('storage') && manifest.permissions.includes('alarms'));
  assert.ok(manifest.host_permissions.includes('http://127.0.0.1/*'), 'the default server is reachable');
});

test('the pure modules use no chrome.* API, so node can run them', () => {
  const dir = join(ROOT, 'src/lib');
  for (const name of readdirSync(dir)) {
    const code = readFileSync(join(dir, name), 'utf8').replace(/^\s*\/\/.*$/gm, '');
    assert.doesNotMatch(code, /\bchrome\./, name);
  }
});
