// What every page of the studio shares: the session, calls to the API, building elements,
// showing a page, and formatting.

const TOKEN = 'framecart.studio.token';
const main = document.getElementById('main');

/** The signed-in account: {token, user_id, roles, email}, or null. */
export let session = null;
let leave = () => {}; // stops what the page on screen keeps doing (a timer, a stream)
let onSignOut = () => {};

/** An error the API answered, with its stable code and its message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api(path, { method = 'GET', body, token = session?.token } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, 'unreachable', 'The server could not be reached. Check the connection and try again.');
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    if (response.status === 401 && session) signOut();
    throw new ApiError(response.status, json?.error?.code ?? 'error', json?.error?.message ?? response.statusText);
  }
  return json;
}

/** A media URL for an element that cannot send headers (`<video>`, `<img>`). */
export const mediaUrl = (path, query = {}) => {
  const params = new URLSearchParams({ ...query, token: session.token });
  return `${path}?${params}`;
};

/**
 * Builds an element: `h('p', {class: 'x'}, 'text', child)`. Styles come as an object,
 * `{style: {left: '4px', '--at': 0.5}}`, and are set through the CSSOM: the content
 * security policy refuses inline style attributes.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === 'style') setStyle(element, value);
    else if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  element.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

export function setStyle(element, style) {
  for (const [property, value] of Object.entries(style)) element.style.setProperty(property, String(value));
}

/** An SVG element, built as `h` builds HTML ones. */
export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    element.setAttribute(name, String(value));
  }
  element.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

/** Shows a page: stops what the previous one kept doing, then puts `content` in `main`. */
export function show(title, ...content) {
  leave();
  leave = () => {};
  document.title = `${title} · Framecart Studio`;
  main.replaceChildren(...content);
  main.focus({ preventScroll: true });
}

/** What to stop when the page on screen is left. */
export function onLeave(stop) {
  const before = leave;
  leave = () => {
    before();
    stop();
  };
}

export function toast(message) {
  const box = document.getElementById('toast');
  box.textContent = message;
  setTimeout(() => {
    if (box.textContent === message) box.textContent = '';
  }, 4000);
}

/** Whether the account has one of the roles (an admin has every one). */
export const can = (...roles) => Boolean(session && (session.roles.includes('admin') || roles.some((r) => session.roles.includes(r))));

export function signIn(s) {
  session = s;
  sessionStorage.setItem(TOKEN, s.token);
}

export async function restore() {
  const token = sessionStorage.getItem(TOKEN);
  if (!token) return;
  try {
    const me = await api('/api/v1/users/me', { token });
    session = { token, user_id: me.user_id, roles: me.roles, email: me.email };
  } catch {
    sessionStorage.removeItem(TOKEN);
  }
}

export function whenSignedOut(callback) {
  onSignOut = callback;
}

export function signOut() {
  session = null;
  sessionStorage.removeItem(TOKEN);
  onSignOut();
}

export function formatSeconds(seconds) {
  const s = Math.max(0, Math.floor(seconds ?? 0));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** The currency's format and its digits after the point (2 for EUR), or null if unknown. */
function currencyFormat(currency) {
  try {
    const format = new Intl.NumberFormat('en', { style: 'currency', currency });
    return { format, digits: format.resolvedOptions().maximumFractionDigits };
  } catch {
    return null;
  }
}

/** Minor units of a currency as a price: 12900 EUR → "€129.00". */
export function formatMoney(minor, currency) {
  const known = currency && currencyFormat(currency);
  return known ? known.format.format(minor / 10 ** known.digits) : currency ? `${minor} ${currency}` : String(minor);
}

/** Parses a price typed by a person ("129", "129.5", "129,50") into minor units. */
export function parseMoney(text, currency) {
  const digits = currencyFormat(currency)?.digits ?? 2;
  const value = Number(String(text).trim().replace(',', '.'));
  if (!Number.isFinite(value) || value < 0) return null;
  return Math.round(value * 10 ** digits);
}

/**
 * Reads with `read` until `settled(value)` holds, a few seconds at most, and returns the
 * last value: the views trail the answers of the writes they show by moments.
 */
export async function settle(read, settled) {
  let value = await read();
  for (let tries = 0; !settled(value) && tries < 25; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    value = await read();
  }
  return value;
}

export const formatTime = (iso) => (iso ? new Date(iso).toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short' }) : '');

/** A labelled field: `<label>Text <input></label>` with the input's id. */
export function field(text, input, hint) {
  return h('label', { for: input.id }, text, input, hint && h('small', { class: 'hint' }, hint));
}

/** A message for an empty list or table. */
export const emptyRow = (columns, text) => h('tr', {}, h('td', { colspan: columns, class: 'empty' }, text));
