import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  DEFAULT_SERVER_URL,
  effectiveSettings,
  normalizeServerUrl,
  normalizeToken,
  originPattern,
  requestHeaders,
} from '../../src/lib/settings.js';

test('the default server is this machine, port 8000', () => {
  assert.equal(DEFAULT_SERVER_URL, 'http://127.0.0.1:8000');
  assert.deepEqual(effectiveSettings({}), { serverUrl: 'http://127.0.0.1:8000', token: '' });
  assert.deepEqual(effectiveSettings(undefined), { serverUrl: 'http://127.0.0.1:8000', token: '' });
});

test('server addresses are normalised to origin and path, no trailing slash', () => {
  assert.deepEqual(normalizeServerUrl(' http://127.0.0.1:8000/ '), { url: 'http://127.0.0.1:8000' });
  assert.deepEqual(normalizeServerUrl('https://Shop.Example/framecart//'), { url: 'https://shop.example/framecart' });
  assert.deepEqual(normalizeServerUrl('https://shop.example:443'), { url: 'https://shop.example' });
  assert.deepEqual(normalizeServerUrl('http://[::1]:8000'), { url: 'http://[::1]:8000' });
});

test('addresses that cannot be a server are refused with a reason', () => {
  for (const input of ['', '   ', 'localhost:8000', '127.0.0.1', 'ftp://x.example', 'https://u:p@x.example',
    'https://x.example/?a=1', 'https://x.example/#top', 'javascript:alert(1)', null]) {
    const result = normalizeServerUrl(input);
    assert.ok(result.error && !result.url, String(input));
  }
});

test('a bearer token goes into the Authorization header, only when set', () => {
  assert.deepEqual(requestHeaders({ token: '' }, { 'Content-Type': 'application/json' }), {
    'Content-Type': 'application/json',
  });
  assert.deepEqual(requestHeaders({ token: 'abc.DEF-123' }), { Authorization: 'Bearer abc.DEF-123' });
});

test('tokens are trimmed, and refused when they could break the header', () => {
  assert.deepEqual(normalizeToken('  abc~+/=  '), { token: 'abc~+/=' });
  assert.deepEqual(normalizeToken(undefined), { token: '' });
  for (const bad of ['a b', 'abc\r\nX-Evil: 1', 'naïve', 'a=b']) assert.ok(normalizeToken(bad).error, bad);
});

test('stored settings that are unusable fall back to the defaults', () => {
  assert.deepEqual(effectiveSettings({ serverUrl: 'nonsense', token: 'a b' }), {
    serverUrl: DEFAULT_SERVER_URL,
    token: '',
  });
  assert.deepEqual(effectiveSettings({ serverUrl: 'https://shop.example/', token: 't' }), {
    serverUrl: 'https://shop.example',
    token: 't',
  });
});

test('the permission asked for covers the host on every port', () => {
  assert.equal(originPattern('https://shop.example:8443/framecart'), 'https://shop.example/*');
  assert.equal(originPattern('http://127.0.0.1:8000'), 'http://127.0.0.1/*');
});
