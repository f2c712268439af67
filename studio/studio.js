// Framecart Studio: the merchant's and the auditor's pages, over the public API with a
// bearer token. No build step and no library: plain modules, served by `framecart serve`
// from the binary itself.

import { analyticsPage, statusBadge, videoPage } from './video.js';
import { auditPage } from './audit.js';
import { can, api, field, formatSeconds, h, onLeave, restore, session, show, signIn, signOut, toast, whenSignedOut } from './lib.js';
import { ordersPage } from './orders.js';
import { productsPage } from './products.js';

/** How often the videos list is refreshed while it is shown (status and progress). */
const REFRESH_MS = 1000;

// ---- session -------------------------------------------------------------------

function chrome() {
  const signedIn = Boolean(session);
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('who').hidden = !signedIn;
  document.getElementById('who-email').textContent = session?.email ?? '';
  const path = location.hash.replace(/^#/, '');
  for (const link of document.querySelectorAll('#nav a')) {
    link.hidden = !can(...link.dataset.roles.split(' '));
    const here = path.startsWith(link.getAttribute('href').replace(/^#/, ''));
    if (here) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

function loginPage() {
  const error = h('p', { class: 'error', role: 'alert' });
  const email = h('input', { type: 'email', id: 'login-email', 'data-testid': 'login-email', autocomplete: 'username', required: true });
  const password = h('input', {
    type: 'password', id: 'login-password', 'data-testid': 'login-password', autocomplete: 'current-password', required: true,
  });
  const submit = h('button', { type: 'submit', 'data-testid': 'login-submit' }, 'Sign in');
  const form = h(
    'form',
    {
      class: 'stack',
      onsubmit: async (event) => {
        event.preventDefault();
        submit.disabled = true;
        error.textContent = '';
        try {
          const s = await api('/api/v1/sessions', { method: 'POST', body: { email: email.value, password: password.value }, token: null });
          signIn({ token: s.token, user_id: s.user_id, roles: s.roles, email: email.value.trim().toLowerCase() });
          location.hash = home();
        } catch (e) {
          error.textContent = e.code === 'invalid_credentials' ? 'That email and password do not match an account.' : e.message;
          submit.disabled = false;
          password.select();
        }
      },
    },
    field('Email', email),
    field('Password', password),
    error,
    submit,
  );
  show('Sign in', h('section', { class: 'card' }, h('h1', {}, 'Sign in to Framecart Studio'), form));
  email.focus();
}

// ---- videos --------------------------------------------------------------------

function videoRows(videos) {
  if (!videos.length) return [h('tr', {}, h('td', { colspan: 4, class: 'empty' }, 'No videos yet: upload the first one above.'))];
  return videos.map((video) => {
    const open = () => (location.hash = `#/videos/${encodeURIComponent(video.video_id)}`);
    return h(
      'tr',
      {
        'data-testid': 'video-row', 'data-video-id': video.video_id, tabindex: 0,
        onclick: open, onkeydown: (e) => e.key === 'Enter' && open(),
      },
      h('td', {}, h('a', { href: `#/videos/${encodeURIComponent(video.video_id)}`, tabindex: -1 }, video.video_id)),
      h('td', {}, statusBadge(video)),
      h('td', {}, formatSeconds(video.duration)),
      h('td', {}, `${video.width}×${video.height}`),
    );
  });
}

function uploadForm(onUploaded) {
  const id = h('input', { type: 'text', id: 'upload-video-id', 'data-testid': 'upload-video-id', placeholder: 'VESeA6leQuk or a YouTube URL', required: true });
  const file = h('input', { type: 'file', id: 'upload-input', 'data-testid': 'upload-input', accept: 'video/*', required: true });
  const submit = h('button', { type: 'submit', 'data-testid': 'upload-submit' }, 'Upload');
  const bar = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': 'Upload progress', 'data-testid': 'upload-progress' });
  const error = h('p', { class: 'error', role: 'alert' });
  const form = h(
    'form',
    {
      class: 'row',
      onsubmit: (event) => {
        event.preventDefault();
        error.textContent = '';
        const body = new FormData();
        body.append('video_id', id.value.trim());
        body.append('file', file.files[0]);
        // XMLHttpRequest: fetch cannot report an upload's progress.
        const request = new XMLHttpRequest();
        request.open('POST', '/api/v1/videos');
        request.setRequestHeader('authorization', `Bearer ${session.token}`);
        request.upload.onprogress = (e) => e.lengthComputable && (bar.value = e.loaded / e.total);
        request.onload = () => {
          submit.disabled = false;
          bar.hidden = true;
          let json = null;
          try {
            json = request.responseText ? JSON.parse(request.responseText) : null;
          } catch {
            json = null;
          }
          if (request.status === 201) {
            toast(`Uploaded ${json.video_id}: detection ${json.status === 'queued' ? 'queued' : 'not started'}.`);
            form.reset();
            onUploaded();
          } else {
            error.textContent = json?.error?.message ?? `The upload failed (${request.status}).`;
          }
        };
        request.onerror = () => {
          submit.disabled = false;
          bar.hidden = true;
          error.textContent = 'The upload did not reach the server.';
        };
        submit.disabled = true;
        bar.hidden = false;
        bar.value = 0;
        request.send(body);
      },
    },
    field('YouTube id or URL', id),
    field('Video file', file),
    submit,
    bar,
    error,
  );
  return form;
}

async function videosPage() {
  const body = h('tbody', {}, h('tr', {}, h('td', { colspan: 4, class: 'empty' }, 'Loading…')));
  const error = h('p', { class: 'error', role: 'alert' });
  const refresh = async () => {
    try {
      const { items } = await api('/api/v1/videos');
      body.replaceChildren(...videoRows(items));
      error.textContent = '';
    } catch (e) {
      error.textContent = `The videos could not be loaded: ${e.message}`;
    }
  };
  const upload = can('merchant')
    ? h('section', { class: 'card' }, h('h2', {}, 'Upload a video'), uploadForm(refresh))
    : null;
  show(
    'Videos',
    h('h1', {}, 'Videos'),
    upload,
    h(
      'section',
      { class: 'card' },
      error,
      h('table', {}, h('thead', {}, h('tr', {}, ...['Video', 'Status', 'Length', 'Frame'].map((c) => h('th', { scope: 'col' }, c)))), body),
    ),
  );
  await refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  onLeave(() => clearInterval(timer));
}

function forbiddenPage() {
  show('Not allowed', h('section', { class: 'card' }, h('h1', {}, 'Not for this account'), h('p', {}, 'Your account’s role does not open this page.')));
}

// ---- routing -------------------------------------------------------------------

/** The pages, each with the roles that open it. */
const PAGES = [
  [/^\/videos$/, ['merchant', 'auditor'], () => videosPage()],
  [/^\/videos\/([^/]+)\/analytics$/, ['merchant', 'auditor'], (m) => analyticsPage(decodeURIComponent(m[1]))],
  [/^\/videos\/([^/]+)$/, ['merchant', 'auditor'], (m) => videoPage(decodeURIComponent(m[1]))],
  [/^\/products$/, ['merchant', 'auditor'], () => productsPage()],
  [/^\/orders$/, ['merchant', 'auditor'], () => ordersPage()],
  [/^\/audit$/, ['auditor'], () => auditPage()],
];

/** Where an account lands after sign-in: the videos, or the first page its role opens. */
const home = () => (can('merchant', 'auditor') ? '#/videos' : '#/forbidden');

async function route() {
  const path = location.hash.replace(/^#/, '') || '/videos';
  if (!session && path !== '/login') {
    location.hash = '#/login';
    return;
  }
  chrome();
  if (path === '/login') return session ? (location.hash = home()) : loginPage();
  for (const [pattern, roles, page] of PAGES) {
    const match = path.match(pattern);
    if (match) return can(...roles) ? page(match) : forbiddenPage();
  }
  if (path === '/forbidden') return forbiddenPage();
  show('Not found', h('section', { class: 'card' }, h('h1', {}, 'No such page'), h('p', {}, h('a', { href: '#/videos' }, 'Go to the videos'))));
}

whenSignedOut(() => {
  location.hash = '#/login';
  route();
});
document.getElementById('sign-out').addEventListener('click', async () => {
  await api('/api/v1/sessions', { method: 'DELETE' }).catch(() => {});
  signOut();
});
window.addEventListener('hashchange', route);
await restore();
await route();
