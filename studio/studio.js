// Framecart Studio: the merchant's and the auditor's pages, over the public API with a
// bearer token. No build step and no library: plain modules, served by `framecart serve`
// from the binary itself.

const TOKEN = 'framecart.studio.token';
/** How often the videos list is refreshed while it is shown (status and progress). */
const REFRESH_MS = 1000;

const main = document.getElementById('main');
let session = null; // {token, user_id, roles, email}
let leave = () => {}; // stops what the page on screen keeps doing (a refresh timer)

/** An error the API answered, with its stable code and its message. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, { method = 'GET', body, token = session?.token } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (!response.ok) {
    if (response.status === 401 && session) signOut();
    throw new ApiError(response.status, json?.error?.code ?? 'error', json?.error?.message ?? response.statusText);
  }
  return json;
}

/** Builds an element: `h('p', {class: 'x'}, 'text', child)`. */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  element.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

function show(title, ...content) {
  leave();
  leave = () => {};
  document.title = `${title} · Framecart Studio`;
  main.replaceChildren(...content);
  main.focus({ preventScroll: true });
}

function toast(message) {
  const box = document.getElementById('toast');
  box.textContent = message;
  setTimeout(() => {
    if (box.textContent === message) box.textContent = '';
  }, 4000);
}

const can = (...roles) => session && (session.roles.includes('admin') || roles.some((r) => session.roles.includes(r)));

// ---- session -------------------------------------------------------------------

async function restore() {
  const token = sessionStorage.getItem(TOKEN);
  if (!token) return;
  try {
    const me = await api('/api/v1/users/me', { token });
    session = { token, user_id: me.user_id, roles: me.roles, email: me.email };
  } catch {
    sessionStorage.removeItem(TOKEN);
  }
}

function signOut() {
  session = null;
  sessionStorage.removeItem(TOKEN);
  location.hash = '#/login';
  route();
}

function chrome() {
  const signedIn = Boolean(session);
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('who').hidden = !signedIn;
  document.getElementById('who-email').textContent = session?.email ?? '';
  for (const link of document.querySelectorAll('#nav a')) {
    link.hidden = !can(...link.dataset.roles.split(' '));
    link.toggleAttribute('aria-current', location.hash.startsWith(link.getAttribute('href')));
    if (link.hasAttribute('aria-current')) link.setAttribute('aria-current', 'page');
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
          session = { token: s.token, user_id: s.user_id, roles: s.roles, email: email.value.trim().toLowerCase() };
          sessionStorage.setItem(TOKEN, s.token);
          location.hash = '#/videos';
        } catch (e) {
          error.textContent = e.code === 'invalid_credentials' ? 'That email and password do not match an account.' : e.message;
          submit.disabled = false;
          password.select();
        }
      },
    },
    h('label', { for: 'login-email' }, 'Email', email),
    h('label', { for: 'login-password' }, 'Password', password),
    error,
    submit,
  );
  show('Sign in', h('section', { class: 'card' }, h('h1', {}, 'Sign in to Framecart Studio'), form));
  email.focus();
}

// ---- videos --------------------------------------------------------------------

const STATUSES = ['uploaded', 'queued', 'processing', 'completed', 'failed'];

function statusBadge(video) {
  const status = STATUSES.includes(video.status) ? video.status : 'uploaded';
  const progress = status === 'processing' ? ` ${Math.round(video.progress * 100)} %` : '';
  return h('span', { class: `status ${status}`, 'data-testid': 'video-status', 'data-progress': video.progress }, status, progress && h('span', {}, progress));
}

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

function formatSeconds(seconds) {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
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
          const json = request.responseText ? JSON.parse(request.responseText) : null;
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
    h('label', { for: 'upload-video-id' }, 'YouTube id or URL', id),
    h('label', { for: 'upload-input' }, 'Video file', file),
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
      h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Video'), h('th', {}, 'Status'), h('th', {}, 'Length'), h('th', {}, 'Frame'))), body),
    ),
  );
  await refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  leave = () => clearInterval(timer);
}

/**
 * The player, with the objects on screen boxed over the picture: each box one element
 * whose rectangle is the drawn box, only those of the current time, redrawn on every
 * seek (also while paused) and as the video plays.
 */
function player(video, onPick) {
  const id = encodeURIComponent(video.video_id);
  const element = h('video', {
    'data-testid': 'player', controls: true, preload: 'auto', muted: true,
    src: `/api/v1/videos/${id}/file?token=${encodeURIComponent(session.token)}`,
    'aria-label': `Video ${video.video_id}`,
  });
  const boxes = h('div', { class: 'boxes' });
  const note = h('p', { class: 'empty' });
  let asked = null; // the time whose scene is being fetched
  let wanted = null; // the newest time asked for while one was in flight
  const draw = (scene) => {
    const { clientWidth: w, clientHeight: hgt, videoWidth: vw, videoHeight: vh } = element;
    if (!vw || !vh) return;
    // object-fit: contain: the picture is scaled to fit and centred, with bands.
    const scale = Math.min(w / vw, hgt / vh);
    const [left, top] = [(w - vw * scale) / 2, (hgt - vh * scale) / 2];
    // A track's box stays the same element from one redraw to the next (only moved), so
    // focus and a pointer on it survive; boxes of tracks no longer on screen go.
    const kept = new Map([...boxes.children].map((box) => [box.dataset.trackId, box]));
    boxes.replaceChildren(...scene.objects.map((o) => {
      const box = kept.get(o.track_id) ?? makeBox(o);
      box.classList.toggle('linked', Boolean(o.product));
      box.title = o.product ? `${o.label} → ${o.product.article}` : `${o.label}: link a product`;
      box.style.left = `${left + o.bbox.xmin * vw * scale}px`;
      box.style.top = `${top + o.bbox.ymin * vh * scale}px`;
      box.style.width = `${(o.bbox.xmax - o.bbox.xmin) * vw * scale}px`;
      box.style.height = `${(o.bbox.ymax - o.bbox.ymin) * vh * scale}px`;
      return box;
    }));
  };
  const makeBox = (o) => {
    const pick = () => {
      element.pause();
      onPick(o, element.currentTime);
    };
    const number = o.track_id.split(':').pop();
    return h('div', {
      class: 'box', 'data-testid': 'detection-box', 'data-track-id': o.track_id, 'data-label': o.label,
      role: 'button', tabindex: 0, 'aria-label': `${o.label} ${number}: link a product`,
      onclick: pick, onkeydown: (e) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), pick()),
    }, h('span', {}, `${o.label} ${number}`));
  };
  const update = async () => {
    const t = element.currentTime;
    if (asked !== null) {
      wanted = t;
      return;
    }
    asked = t;
    try {
      draw(await api(`/api/v1/videos/${id}/scene?t=${t}`));
      note.textContent = '';
    } catch (e) {
      boxes.replaceChildren();
      note.textContent = e.status === 404 ? 'No detections yet: boxes appear once detection has completed.' : e.message;
    } finally {
      asked = null;
      if (wanted !== null && wanted !== t) {
        wanted = null;
        update();
      }
    }
  };
  for (const event of ['loadedmetadata', 'seeked', 'timeupdate']) element.addEventListener(event, update);
  new ResizeObserver(update).observe(element);
  return h('section', { class: 'card' }, h('div', { class: 'stage' }, element, boxes), note);
}

/**
 * "Link a product": for the object picked on the player, search the catalogue by a
 * fragment of the article, then link the product found to the object's track, or to its
 * label over a time window. The video's current links are listed, each removable.
 */
function linkPanel(video) {
  const id = encodeURIComponent(video.video_id);
  const panel = h('section', { class: 'card', 'aria-labelledby': 'links-title' });
  const list = h('ul', { class: 'links' });
  /** Shows the links; with `expect`, waits (a few seconds at most) until the view has that
   * link, which trails the answer of its creation by moments. */
  const refreshLinks = async (expect) => {
    let { items } = await api(`/api/v1/videos/${id}/links`);
    for (let tries = 0; expect && !items.some((l) => l.link_id === expect) && tries < 25; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      ({ items } = await api(`/api/v1/videos/${id}/links`));
    }
    list.replaceChildren(...(items.length ? items.map((link) => h(
      'li', { 'data-testid': 'link-row', 'data-link-id': link.link_id },
      h('span', {}, `${link.article} ← ${link.kind === 'track' ? `track ${link.track_id.split(':').pop()}` : `every ${link.label}`}`,
        link.from !== null || link.to !== null ? ` (${formatSeconds(link.from ?? 0)}–${link.to === null ? 'end' : formatSeconds(link.to)})` : ''),
      can('merchant') && h('button', {
        type: 'button', class: 'quiet', 'aria-label': `Remove the link of ${link.article}`,
        onclick: async () => {
          await api(`/api/v1/videos/${id}/links/${link.link_id}`, { method: 'DELETE' });
          toast(`Link of ${link.article} removed.`);
          refreshLinks();
        },
      }, 'Remove'),
    )) : [h('li', { class: 'empty' }, 'No products linked yet: click a box on the player.')]));
  };
  const form = h('div', { class: 'link-form' });
  const open = (object, at) => {
    if (!can('merchant')) return;
    const search = h('input', { type: 'search', id: 'link-product-search', 'data-testid': 'link-product-search', placeholder: 'SKU-1', autocomplete: 'off' });
    const found = h('ul', { class: 'found', 'aria-live': 'polite' });
    const byLabel = h('input', { type: 'checkbox', id: 'link-by-label' });
    const submit = h('button', { type: 'submit', 'data-testid': 'link-product-submit', disabled: true }, 'Link');
    const error = h('p', { class: 'error', role: 'alert' });
    let match = null;
    let asked = 0;
    search.addEventListener('input', async () => {
      const ask = ++asked;
      const fragment = search.value.trim();
      match = null;
      submit.disabled = true;
      if (!fragment) return found.replaceChildren();
      const { items } = await api(`/api/v1/products?q=${encodeURIComponent(fragment)}&active=true&limit=20`);
      if (ask !== asked) return; // a newer search is on its way
      found.replaceChildren(...(items.length
        ? items.map((p) => h('li', {}, h('strong', {}, p.article), ` ${p.name}`))
        : [h('li', { class: 'empty' }, 'No product matches.')]));
      match = items.length === 1 ? items[0] : null;
      submit.disabled = !match;
    });
    const close = () => {
      form.replaceChildren();
      document.querySelector(`[data-testid="detection-box"][data-track-id="${CSS.escape(object.track_id)}"]`)?.focus();
    };
    const linkForm = h('form', {
      class: 'stack',
      onkeydown: (e) => e.key === 'Escape' && close(),
      onsubmit: async (event) => {
        event.preventDefault();
        if (!match) return;
        submit.disabled = true;
        error.textContent = '';
        const body = byLabel.checked
          ? { article: match.article, label: object.label, from: Math.max(0, at - 1), to: at + 1 }
          : { article: match.article, track_id: object.track_id };
        try {
          const created = await api(`/api/v1/videos/${id}/links`, { method: 'POST', body });
          toast(`${match.article} linked to ${byLabel.checked ? `every ${object.label} around ${formatSeconds(at)}` : `${object.label} ${object.track_id.split(':').pop()}`}.`);
          form.replaceChildren();
          refreshLinks(created.link_id);
        } catch (e) {
          error.textContent = e.message;
          submit.disabled = false;
        }
      },
    },
    h('h3', {}, `Link a product to ${object.label} ${object.track_id.split(':').pop()}`),
    h('label', { for: 'link-product-search' }, 'Article (a fragment finds it)', search),
    found,
    h('label', { class: 'check', for: 'link-by-label' }, byLabel, `Every ${object.label} from ${formatSeconds(Math.max(0, at - 1))} to ${formatSeconds(at + 1)}, not only this track`),
    error,
    h('div', { class: 'actions' }, submit, h('button', { type: 'button', class: 'quiet', onclick: close }, 'Cancel')));
    form.replaceChildren(linkForm);
    search.focus();
  };
  panel.append(h('h2', { id: 'links-title' }, 'Products linked'), form, list);
  refreshLinks().catch((e) => list.replaceChildren(h('li', { class: 'error' }, e.message)));
  return { panel, open };
}

async function videoPage(videoId) {
  show('Video', h('h1', {}, videoId), h('p', { class: 'empty' }, 'Loading…'));
  try {
    const video = await api(`/api/v1/videos/${encodeURIComponent(videoId)}`);
    const facts = [
      ['Status', statusBadge(video)],
      ['Length', formatSeconds(video.duration)],
      ['Frame', `${video.width}×${video.height} at ${video.frame_rate.toFixed(2)} fps`],
      ['File', `${video.original_name ?? video.file_name}, ${(video.size_bytes / 1e6).toFixed(1)} MB`],
    ];
    const links = linkPanel(video);
    show(
      video.video_id,
      h('p', {}, h('a', { href: '#/videos' }, '← Videos')),
      h('h1', {}, video.video_id),
      player(video, links.open),
      links.panel,
      h('section', { class: 'card' }, h('table', {}, h('tbody', {}, ...facts.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, v)))))),
    );
  } catch (e) {
    show('Video', h('p', {}, h('a', { href: '#/videos' }, '← Videos')), h('p', { class: 'error', role: 'alert' }, e.status === 404 ? `There is no video ${videoId}.` : e.message));
  }
}

function forbiddenPage() {
  show('Not allowed', h('section', { class: 'card' }, h('h1', {}, 'Not for this account'), h('p', {}, 'Your account’s role does not open this page.')));
}

// ---- routing -------------------------------------------------------------------

async function route() {
  const path = location.hash.replace(/^#/, '') || '/videos';
  if (!session && path !== '/login') {
    location.hash = '#/login';
    return;
  }
  chrome();
  if (path === '/login') return loginPage();
  const video = path.match(/^\/videos\/(.+)$/);
  if (path === '/videos') return can('merchant', 'auditor') ? videosPage() : forbiddenPage();
  if (video) return can('merchant', 'auditor') ? videoPage(decodeURIComponent(video[1])) : forbiddenPage();
  show('Not found', h('section', { class: 'card' }, h('h1', {}, 'No such page'), h('p', {}, h('a', { href: '#/videos' }, 'Go to the videos'))));
}

document.getElementById('sign-out').addEventListener('click', signOut);
window.addEventListener('hashchange', route);
await restore();
await route();
