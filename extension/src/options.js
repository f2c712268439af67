// The options page: where the server is, and the optional viewer token.
// Both live in chrome.storage.sync, so they follow the person's browser profile.

import { DEFAULT_SETTINGS, normalizeServerUrl, normalizeToken, originPattern } from './lib/settings.js';

const form = document.getElementById('settings');
const serverInput = document.getElementById('server-url');
const tokenInput = document.getElementById('token');
const message = document.getElementById('message');

function say(text, tone = '') {
  message.textContent = text;
  message.className = tone;
}

async function load() {
  const stored = await chrome.storage.sync.get(DEFAULT_SETTINGS);
  serverInput.value = stored.serverUrl;
  tokenInput.value = stored.token;
}

async function save(event) {
  event.preventDefault();
  const url = normalizeServerUrl(serverInput.value);
  if (url.error) return say(url.error, 'bad');
  const token = normalizeToken(tokenInput.value);
  if (token.error) return say(token.error, 'bad');

  // Access to a server other than this machine's needs the person's consent; asked
  // first thing, while the click on Save still counts as their gesture. Granted or
  // already held, it resolves to true without asking again.
  let granted = false;
  try {
    granted = await chrome.permissions.request({ origins: [originPattern(url.url)] });
  } catch {
    granted = false;
  }
  await chrome.storage.sync.set({ serverUrl: url.url, token: token.token });
  serverInput.value = url.url;
  tokenInput.value = token.token;
  if (granted) {
    say('Saved.', 'ok');
  } else {
    say(`Saved, but without access to ${new URL(url.url).host} clicks reach it only if the ` +
        'server allows this extension by CORS.', 'bad');
  }
}

async function check() {
  // The service worker checks the saved settings, so a changed form is saved first.
  const stored = await chrome.storage.sync.get(DEFAULT_SETTINGS);
  const typed = normalizeServerUrl(serverInput.value);
  if (typed.url !== stored.serverUrl || tokenInput.value.trim() !== stored.token) {
    return say('Save first, then check.', 'bad');
  }
  say('Checking…');
  const status = await chrome.runtime.sendMessage({ type: 'framecart:status' });
  if (status?.reachable) {
    say(`${status.serverUrl} answers.`, 'ok');
  } else {
    const why = status?.healthError ?? (status?.healthStatus ? `HTTP ${status.healthStatus}` : 'no answer');
    say(`${status?.serverUrl ?? 'The server'} does not answer (${why}).`, 'bad');
  }
}

form.addEventListener('submit', (event) => {
  save(event).catch((error) => say(`Not saved: ${error.message}`, 'bad'));
});
document.getElementById('check').addEventListener('click', () => {
  check().catch((error) => say(`Check failed: ${error.message}`, 'bad'));
});
load().catch((error) => say(`Cannot read the settings: ${error.message}`, 'bad'));
