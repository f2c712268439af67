// The options page: where the server is, the optional viewer token (pasted, or got by
// signing in), and the contact and shipping address that orders carry. All live in
// chrome.storage.sync, so they follow the person's browser profile; the password typed
// to sign in is sent to the server (through the service worker) and never kept.

import { DEFAULT_ORDER_SETTINGS, normalizeAddress, normalizeContact } from './lib/order.js';
import { DEFAULT_SETTINGS, normalizeServerUrl, normalizeToken, originPattern } from './lib/settings.js';

const $ = (id) => document.getElementById(id);
const form = $('settings');
const serverInput = $('server-url');
const tokenInput = $('token');
const message = $('message');

// The form's fields of each stored object, by the object's key.
const CONTACT_INPUTS = { name: $('contact-name'), email: $('contact-email'), phone: $('contact-phone') };
const ADDRESS_INPUTS = {
  line1: $('address-line1'),
  line2: $('address-line2'),
  city: $('address-city'),
  postal_code: $('address-postal-code'),
  country: $('address-country'),
};

function say(text, tone = '', where = message) {
  where.textContent = text;
  where.className = tone;
}

function read(inputs) {
  return Object.fromEntries(Object.entries(inputs).map(([key, input]) => [key, input.value]));
}

function fill(inputs, values) {
  for (const [key, input] of Object.entries(inputs)) input.value = values?.[key] ?? '';
}

async function load() {
  const stored = await chrome.storage.sync.get({ ...DEFAULT_SETTINGS, ...DEFAULT_ORDER_SETTINGS });
  serverInput.value = stored.serverUrl;
  tokenInput.value = stored.token;
  fill(CONTACT_INPUTS, stored.contact);
  fill(ADDRESS_INPUTS, stored.shippingAddress);
}

/** Says what is wrong with a field and puts the cursor there. */
function refuse(error, input) {
  say(error, 'bad');
  input?.focus();
}

async function save(event) {
  event.preventDefault();
  const url = normalizeServerUrl(serverInput.value);
  if (url.error) return refuse(url.error, serverInput);
  const token = normalizeToken(tokenInput.value);
  if (token.error) return refuse(token.error, tokenInput);
  const contact = normalizeContact(read(CONTACT_INPUTS));
  if (contact.error) return refuse(contact.error, CONTACT_INPUTS[contact.field]);
  const address = normalizeAddress(read(ADDRESS_INPUTS));
  if (address.error) return refuse(address.error, ADDRESS_INPUTS[address.field]);

  // Access to a server other than this machine's needs the person's consent; asked
  // first thing, while the click on Save still counts as their gesture. Granted or
  // already held, it resolves to true without asking again.
  let granted = false;
  try {
    granted = await chrome.permissions.request({ origins: [originPattern(url.url)] });
  } catch {
    granted = false;
  }
  await chrome.storage.sync.set({
    serverUrl: url.url,
    token: token.token,
    contact: contact.contact,
    shippingAddress: address.address,
  });
  serverInput.value = url.url;
  tokenInput.value = token.token;
  fill(CONTACT_INPUTS, contact.contact);
  fill(ADDRESS_INPUTS, address.address);
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

async function signIn(event) {
  event.preventDefault();
  const where = $('sign-in-message');
  // The service worker signs in on the saved server, so a changed address is saved first.
  const stored = await chrome.storage.sync.get(DEFAULT_SETTINGS);
  if (normalizeServerUrl(serverInput.value).url !== stored.serverUrl) {
    return say('Save the server address first, then sign in.', 'bad', where);
  }
  const email = $('sign-in-email').value.trim();
  const password = $('sign-in-password').value;
  if (!email || !password) return say('Enter your email address and password.', 'bad', where);
  say('Signing in…', '', where);
  const answer = await chrome.runtime.sendMessage({ type: 'framecart:sign-in', email, password });
  if (!answer?.ok) return say(answer?.error ?? 'No answer from the extension.', 'bad', where);
  $('sign-in-password').value = '';
  tokenInput.value = answer.token;
  const until = answer.expiresAt ? new Date(answer.expiresAt) : null;
  const validity = until && !Number.isNaN(until.getTime()) ? ` It is valid until ${until.toLocaleString()}.` : '';
  say(`Signed in as ${email}; the token is saved.${validity}`, 'ok', where);
}

$('sign-in').addEventListener('submit', (event) => {
  signIn(event).catch((error) => say(`Not signed in: ${error.message}`, 'bad', $('sign-in-message')));
});
form.addEventListener('submit', (event) => {
  save(event).catch((error) => say(`Not saved: ${error.message}`, 'bad'));
});
document.getElementById('check').addEventListener('click', () => {
  check().catch((error) => say(`Check failed: ${error.message}`, 'bad'));
});
load().catch((error) => say(`Cannot read the settings: ${error.message}`, 'bad'));
