// A video's page: the player with the objects of the moment boxed over it, the tracks'
// timeline, "link a product", the preview of what a viewer's click would match, a new
// detection run, and the video's analytics.

import { ApiError, api, can, emptyRow, field, formatMoney, formatSeconds, h, mediaUrl, onLeave, settle, show, svg, toast } from './lib.js';

const STATUSES = ['uploaded', 'queued', 'processing', 'completed', 'failed'];
/** How often a page refreshes what changes under it (status, analytics). */
const REFRESH_MS = 2000;

export function statusBadge(video) {
  const status = STATUSES.includes(video.status) ? video.status : 'uploaded';
  const progress = status === 'processing' ? ` ${Math.round(video.progress * 100)} %` : '';
  return h('span', { class: `status ${status}`, 'data-testid': 'video-status', 'data-progress': video.progress }, status, progress && h('span', {}, progress));
}

const trackNumber = (trackId) => trackId.split(':').pop();

/**
 * The player, with the objects on screen boxed over the picture: each box one element
 * whose rectangle is the drawn box, only those of the current time, redrawn on every
 * seek (also while paused) and as the video plays. In preview mode a click on the
 * picture asks what a viewer's click there would match instead.
 */
function player(video, { onPick, onTime }) {
  const id = encodeURIComponent(video.video_id);
  const element = h('video', {
    'data-testid': 'player', controls: true, preload: 'auto', muted: true,
    src: mediaUrl(`/api/v1/videos/${id}/file`),
    'aria-label': `Video ${video.video_id}`,
  });
  const boxes = h('div', { class: 'boxes', 'data-testid': 'detection-boxes' });
  const note = h('p', { class: 'empty' });
  let asked = null; // the time whose scene is being fetched
  let wanted = null; // the newest time asked for while one was in flight
  let previewing = false;
  const fit = () => {
    const { clientWidth: w, clientHeight: hgt, videoWidth: vw, videoHeight: vh } = element;
    if (!vw || !vh) return null;
    // object-fit: contain: the picture is scaled to fit and centred, with bands.
    const scale = Math.min(w / vw, hgt / vh);
    return { vw, vh, scale, left: (w - vw * scale) / 2, top: (hgt - vh * scale) / 2 };
  };
  const draw = (scene, t) => {
    const f = fit();
    if (!f) return;
    // Which moment the boxes show: scripts wait for it after a seek.
    boxes.dataset.sceneTime = String(t);
    // A track's box stays the same element from one redraw to the next (only moved), so
    // focus and a pointer on it survive; boxes of tracks no longer on screen go.
    const kept = new Map([...boxes.querySelectorAll('.box')].map((box) => [box.dataset.trackId, box]));
    const marker = boxes.querySelector('.click-marker');
    boxes.replaceChildren(...scene.objects.map((o) => {
      const box = kept.get(o.track_id) ?? makeBox(o);
      box.classList.toggle('linked', Boolean(o.product));
      box.title = o.product ? `${o.label} → ${o.product.article}` : `${o.label}: link a product`;
      box.style.left = `${f.left + o.bbox.xmin * f.vw * f.scale}px`;
      box.style.top = `${f.top + o.bbox.ymin * f.vh * f.scale}px`;
      box.style.width = `${(o.bbox.xmax - o.bbox.xmin) * f.vw * f.scale}px`;
      box.style.height = `${(o.bbox.ymax - o.bbox.ymin) * f.vh * f.scale}px`;
      return box;
    }), ...(marker ? [marker] : []));
  };
  const makeBox = (o) => {
    const pick = (event) => {
      if (previewing) return; // the click goes to the preview layer's handler
      event?.stopPropagation();
      element.pause();
      onPick(o, element.currentTime);
    };
    return h('div', {
      class: 'box', 'data-testid': 'detection-box', 'data-track-id': o.track_id, 'data-label': o.label,
      role: 'button', tabindex: 0, 'aria-label': `${o.label} ${trackNumber(o.track_id)}: link a product`,
      onclick: pick, onkeydown: (e) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), pick(e)),
    }, h('span', {}, `${o.label} ${trackNumber(o.track_id)}`));
  };
  const update = async () => {
    const t = element.currentTime;
    onTime?.(t);
    if (asked !== null) {
      wanted = t;
      return;
    }
    asked = t;
    try {
      draw(await api(`/api/v1/videos/${id}/scene?t=${t}`), t);
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

  // Preview: what a viewer's click at a point of the picture would match, and why.
  const result = h('div', { class: 'preview-result', 'data-testid': 'preview-result', 'aria-live': 'polite', hidden: true });
  const stage = h('div', { class: 'stage' }, element, boxes);
  const previewAt = async (event) => {
    if (!previewing) return;
    event.preventDefault();
    event.stopPropagation();
    element.pause();
    const r = element.getBoundingClientRect();
    const [x, y] = [event.clientX - r.left, event.clientY - r.top];
    boxes.querySelector('.click-marker')?.remove();
    boxes.append(h('div', { class: 'click-marker', style: { left: `${x}px`, top: `${y}px` } }));
    const query = new URLSearchParams({ t: element.currentTime, x, y, player_width: r.width, player_height: r.height });
    result.hidden = false;
    try {
      showOutcome(result, await api(`/api/v1/videos/${id}/preview?${query}`));
    } catch (e) {
      result.replaceChildren(h('p', { class: 'error', role: 'alert' }, e.status === 404 ? 'Nothing to match yet: detection has not completed.' : e.message));
    }
  };
  stage.addEventListener('click', previewAt, true);
  const toggle = h('input', {
    type: 'checkbox', id: 'preview-toggle', 'data-testid': 'preview-toggle',
    onchange: () => {
      previewing = toggle.checked;
      stage.classList.toggle('previewing', previewing);
      if (!previewing) {
        result.hidden = true;
        boxes.querySelector('.click-marker')?.remove();
      }
    },
  });
  const controls = h('div', { class: 'player-controls' },
    h('label', { class: 'check', for: 'preview-toggle' }, toggle, 'Preview mode: click the picture to see what a viewer’s click there would match'));
  return {
    card: h('section', { class: 'card' }, stage, note, controls, result),
    element,
    seek: (t) => {
      element.pause();
      element.currentTime = t;
    },
  };
}

/** The outcome of a previewed click, as the matcher would decide it. */
function showOutcome(result, outcome) {
  result.dataset.status = outcome.status;
  const headline = outcome.status === 'matched'
    ? h('p', { class: 'verdict ok' }, 'A viewer’s click here would match ', h('strong', {}, outcome.best.product.article),
      ` (${outcome.best.label} ${trackNumber(outcome.best.track_id)}).`)
    : h('p', { class: 'verdict' }, 'No product: ', outcome.explanation, '.');
  result.dataset.article = outcome.best?.product?.article ?? '';
  result.replaceChildren(
    headline,
    outcome.candidates.length
      ? h('ol', { class: 'candidates' }, outcome.candidates.map((c) => h('li', {}, c.reason)))
      : h('p', { class: 'empty' }, 'No detected object near the click.'),
  );
}

/**
 * When each track is on screen: one lane per track, the span of its samples over the
 * video's length, with a playhead. A lane opens "link a product" for its track.
 */
function timeline(video, { onPick, seek }) {
  const id = encodeURIComponent(video.video_id);
  const duration = Math.max(video.duration, 0.001);
  const head = h('div', { class: 'playhead', 'aria-hidden': 'true' });
  const lanes = h('ol', { class: 'lanes' });
  const card = h('section', { class: 'card', 'aria-labelledby': 'timeline-title' },
    h('h2', { id: 'timeline-title' }, 'Tracks'),
    h('div', { class: 'timeline' }, lanes, head));
  const pct = (t) => `${Math.min(100, Math.max(0, (t / duration) * 100))}%`;
  api(`/api/v1/videos/${id}/tracks`).then(({ items }) => {
    if (!items.length) {
      lanes.replaceChildren(h('li', { class: 'empty' }, 'No tracks yet: they appear once detection has completed.'));
      return;
    }
    lanes.replaceChildren(...items.map((track) => {
      const open = () => {
        const at = Math.min(Math.max(track.start, 0), track.end);
        seek(at);
        onPick({ track_id: track.track_id, label: track.label }, at);
      };
      return h('li', {},
        h('button', {
          type: 'button', class: 'lane', 'data-testid': 'track-lane', 'data-track-id': track.track_id, 'data-label': track.label,
          'aria-label': `${track.label} ${track.number}, ${formatSeconds(track.start)} to ${formatSeconds(track.end)}: link a product`,
          onclick: open,
        },
        h('span', { class: 'lane-name' }, `${track.label} ${track.number}`),
        h('span', { class: 'lane-track' }, h('span', { class: 'span', style: { left: pct(track.start), width: `calc(${pct(track.end - track.start)} + 2px)` } }))));
    }));
  }).catch((e) => lanes.replaceChildren(h('li', { class: e.status === 404 ? 'empty' : 'error' }, e.status === 404 ? 'No tracks yet.' : e.message)));
  return { card, at: (t) => head.style.setProperty('--at-fraction', String(Math.min(1, Math.max(0, t / duration)))) };
}

/**
 * "Link a product": for the object picked on the player or the timeline, search the
 * catalogue by a fragment of the article, then link the product found to the object's
 * track, or to its label over a time window. The video's current links are listed, each
 * removable.
 */
function linkPanel(video) {
  const id = encodeURIComponent(video.video_id);
  const panel = h('section', { class: 'card', 'aria-labelledby': 'links-title' });
  const list = h('ul', { class: 'links' });
  /** Shows the links; with `expect`, waits (a few seconds at most) until the view has that
   * link, which trails the answer of its creation by moments. */
  const refreshLinks = async (expect, gone) => {
    const { items } = await settle(
      () => api(`/api/v1/videos/${id}/links`),
      ({ items: now }) => (!expect || now.some((l) => l.link_id === expect)) && (!gone || !now.some((l) => l.link_id === gone)),
    );
    list.replaceChildren(...(items.length ? items.map((link) => h(
      'li', { 'data-testid': 'link-row', 'data-link-id': link.link_id },
      h('span', {}, `${link.article} ← ${link.kind === 'track' ? `track ${trackNumber(link.track_id)}` : `every ${link.label}`}`,
        link.from !== null || link.to !== null ? ` (${formatSeconds(link.from ?? 0)}–${link.to === null ? 'end' : formatSeconds(link.to)})` : ''),
      can('merchant') && h('button', {
        type: 'button', class: 'quiet', 'aria-label': `Remove the link of ${link.article}`,
        onclick: async (event) => {
          event.target.disabled = true;
          try {
            await api(`/api/v1/videos/${id}/links/${link.link_id}`, { method: 'DELETE' });
            toast(`Link of ${link.article} removed.`);
            refreshLinks(undefined, link.link_id);
          } catch (e) {
            toast(e.message);
            event.target.disabled = false;
          }
        },
      }, 'Remove'),
    )) : [h('li', { class: 'empty' }, 'No products linked yet: click a box on the player or a track.')]));
  };
  const form = h('div', { class: 'link-form' });
  let returnFocus = null;
  const open = (object, at) => {
    if (!can('merchant')) return;
    returnFocus = document.activeElement;
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
      try {
        const { items } = await api(`/api/v1/products?q=${encodeURIComponent(fragment)}&active=true&limit=20`);
        if (ask !== asked) return; // a newer search is on its way
        found.replaceChildren(...(items.length
          ? items.map((p) => h('li', {}, h('strong', {}, p.article), ` ${p.name}`))
          : [h('li', { class: 'empty' }, 'No product matches.')]));
        match = items.length === 1 ? items[0] : null;
        submit.disabled = !match;
        error.textContent = items.length > 1 ? '' : error.textContent;
      } catch (e) {
        if (ask === asked) error.textContent = e.message;
      }
    });
    const close = () => {
      form.replaceChildren();
      const box = document.querySelector(`[data-testid="detection-box"][data-track-id="${CSS.escape(object.track_id)}"]`);
      (returnFocus?.isConnected ? returnFocus : box)?.focus();
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
          toast(`${match.article} linked to ${byLabel.checked ? `every ${object.label} around ${formatSeconds(at)}` : `${object.label} ${trackNumber(object.track_id)}`}.`);
          form.replaceChildren();
          refreshLinks(created.link_id);
        } catch (e) {
          error.textContent = e.message;
          submit.disabled = false;
        }
      },
    },
    h('h3', {}, `Link a product to ${object.label} ${trackNumber(object.track_id)}`),
    field('Article (a fragment finds it)', search),
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

/** A new detection run: which classes to report, the sampling rate and the confidence. */
function detectionForm(video, onStarted) {
  const id = encodeURIComponent(video.video_id);
  const labels = h('select', { id: 'detect-labels', multiple: true, size: 5, 'data-testid': 'detect-labels' });
  const fps = h('input', { type: 'number', id: 'detect-fps', min: 0.1, max: 60, step: 0.1, placeholder: 'default', 'data-testid': 'detect-fps' });
  const confidence = h('input', { type: 'number', id: 'detect-confidence', min: 0, max: 1, step: 0.05, placeholder: 'default', 'data-testid': 'detect-confidence' });
  const submit = h('button', { type: 'submit', 'data-testid': 'detect-submit' }, 'Start detection');
  const error = h('p', { class: 'error', role: 'alert' });
  api('/api/v1/detector/classes').then(({ items }) => {
    labels.replaceChildren(...items.map((c) => h('option', { value: c.class_id }, c.name)));
    if (!items.length) labels.replaceChildren(h('option', { disabled: true }, 'Every class (the names are not known here)'));
  }).catch((e) => (error.textContent = e.message));
  return h('form', {
    class: 'row',
    onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = '';
      const body = {
        object_labels: Object.fromEntries([...labels.selectedOptions].map((o) => [o.value, o.textContent])),
      };
      if (fps.value) body.sample_fps = Number(fps.value);
      if (confidence.value) body.min_confidence = Number(confidence.value);
      submit.disabled = true;
      try {
        await api(`/processing/video/${id}/start`, { method: 'POST', body });
        toast(`Detection queued for ${video.video_id}.`);
        onStarted();
      } catch (e) {
        error.textContent = e.message;
      } finally {
        submit.disabled = false;
      }
    },
  },
  field('Labels (none chosen: every class)', labels),
  field('Frames per second', fps),
  field('Minimum confidence', confidence),
  submit,
  error);
}

function tabs(video, current) {
  const id = encodeURIComponent(video.video_id);
  return h('nav', { class: 'tabs', 'aria-label': 'Video' },
    h('a', { href: `#/videos/${id}`, 'aria-current': current === 'player' ? 'page' : null, 'data-testid': 'video-player-tab' }, 'Player and links'),
    h('a', { href: `#/videos/${id}/analytics`, 'aria-current': current === 'analytics' ? 'page' : null, 'data-testid': 'video-analytics' }, 'Analytics'));
}

async function loadVideo(videoId) {
  show('Video', h('h1', {}, videoId), h('p', { class: 'empty' }, 'Loading…'));
  try {
    return await api(`/api/v1/videos/${encodeURIComponent(videoId)}`);
  } catch (e) {
    show('Video', h('p', {}, h('a', { href: '#/videos' }, '← Videos')),
      h('p', { class: 'error', role: 'alert' }, e.status === 404 ? `There is no video ${videoId}.` : e.message));
    return null;
  }
}

export async function videoPage(videoId) {
  const video = await loadVideo(videoId);
  if (!video) return;
  const facts = (v) => [
    ['Status', statusBadge(v)],
    ['Length', formatSeconds(v.duration)],
    ['Frame', `${v.width}×${v.height} at ${v.frame_rate.toFixed(2)} fps`],
    ['File', `${v.original_name ?? v.file_name}, ${(v.size_bytes / 1e6).toFixed(1)} MB`],
  ].map(([k, value]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, value)));
  const factsBody = h('tbody', {}, facts(video));
  const links = linkPanel(video);
  let lanes = null;
  const play = player(video, { onPick: links.open, onTime: (t) => lanes?.at(t) });
  lanes = timeline(video, { onPick: links.open, seek: play.seek });
  // The status while a run is going; the page is built again once it completes.
  let status = video.status;
  const timer = setInterval(async () => {
    try {
      const now = await api(`/api/v1/videos/${encodeURIComponent(video.video_id)}`);
      factsBody.replaceChildren(...facts(now));
      if (now.status !== status && now.status === 'completed') toast(`Detection of ${video.video_id} completed.`);
      status = now.status;
    } catch {
      // The next tick tries again.
    }
  }, REFRESH_MS);
  show(
    video.video_id,
    h('p', {}, h('a', { href: '#/videos' }, '← Videos')),
    h('h1', {}, video.video_id),
    tabs(video, 'player'),
    play.card,
    lanes.card,
    links.panel,
    h('section', { class: 'card', 'aria-labelledby': 'facts-title' }, h('h2', { id: 'facts-title' }, 'The video'), h('table', {}, factsBody)),
    can('merchant') && h('section', { class: 'card', 'aria-labelledby': 'detect-title' }, h('h2', { id: 'detect-title' }, 'Detection'), detectionForm(video, () => {})),
  );
  onLeave(() => clearInterval(timer));
}

// ---- analytics -------------------------------------------------------------------

/** The funnel clicks → matched → orders → paid → revenue, with its numbers as data. */
function funnel(a) {
  const revenue = a.revenue.length === 1 ? a.revenue[0] : null;
  const revenueText = a.revenue.length ? a.revenue.map((r) => formatMoney(r.revenue_minor, r.currency)).join(' + ') : formatMoney(0, 'EUR');
  const stages = [['Clicks', a.clicks], ['Matched to a product', a.matched], ['Orders', a.orders], ['Paid', a.paid_orders]];
  const top = Math.max(1, a.clicks);
  return h('div', {
    class: 'funnel', 'data-testid': 'funnel',
    'data-clicks': a.clicks, 'data-matched': a.matched, 'data-orders': a.orders, 'data-paid': a.paid_orders,
    'data-revenue-minor': revenue ? revenue.revenue_minor : a.revenue.reduce((sum, r) => sum + r.revenue_minor, 0),
  },
  h('dl', {}, ...stages.flatMap(([name, n]) => [
    h('dt', {}, name),
    h('dd', {}, h('span', { class: 'bar', style: { width: `${Math.max(2, (n / top) * 100)}%` } }), h('span', { class: 'n' }, String(n))),
  ]),
  h('dt', {}, 'Revenue (paid)'), h('dd', {}, h('span', { class: 'n' }, revenueText))));
}

function productTable(products) {
  return h('table', {},
    h('thead', {}, h('tr', {}, ...['Product', 'Matched clicks', 'Orders', 'Paid', 'Revenue'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, products.length ? products.map((p) => h('tr', { 'data-testid': 'funnel-product', 'data-article': p.article },
      h('td', {}, p.article), h('td', {}, String(p.matched_clicks)), h('td', {}, String(p.orders)), h('td', {}, String(p.paid_orders)),
      h('td', {}, formatMoney(p.revenue_minor, p.currency)))) : emptyRow(5, 'No product clicked or sold yet.')));
}

/** Clicks per cell of the picture, drawn over a frame of the video. */
function heatmap(a, video, frameAt) {
  const grid = a.heatmap.grid;
  const max = Math.max(1, ...a.heatmap.cells.map((c) => c[2]));
  const total = a.heatmap.cells.reduce((sum, c) => sum + c[2], 0);
  const hottest = a.heatmap.cells.reduce((best, c) => (c[2] > (best?.[2] ?? 0) ? c : best), null);
  const label = total
    ? `Heatmap of ${total} clicks on the picture; the most, ${hottest[2]}, around ${Math.round(((hottest[0] + 0.5) / grid) * 100)}% across and ${Math.round(((hottest[1] + 0.5) / grid) * 100)}% down.`
    : 'Heatmap: no clicks on the picture yet.';
  const picture = h('img', { src: mediaUrl(`/api/v1/videos/${encodeURIComponent(video.video_id)}/frame`, { t: frameAt, width: 640 }), alt: `The frame at ${formatSeconds(frameAt)}` });
  picture.addEventListener('error', () => picture.replaceWith(h('div', { class: 'no-frame' }, 'The frame could not be shown.')));
  const map = svg('svg', {
    'data-testid': 'heatmap', 'data-clicks': total, viewBox: `0 0 ${grid} ${grid}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': label,
  },
  // Blurred a little, so the cells read as a heat map rather than a grid.
  svg('defs', {}, svg('filter', { id: 'heat-blur', x: '-10%', y: '-10%', width: '120%', height: '120%' }, svg('feGaussianBlur', { stdDeviation: 0.35 }))),
  a.heatmap.cells.map(([x, y, n]) => svg('rect', { filter: 'url(#heat-blur)', x, y, width: 1, height: 1, class: 'heat', 'fill-opacity': (0.25 + 0.65 * (n / max)).toFixed(2), 'data-clicks': n },
    svg('title', {}, `${n} click${n === 1 ? '' : 's'}`))));
  return h('figure', { class: 'heat-stage', style: { 'aspect-ratio': `${video.width} / ${video.height}` } }, picture, map);
}

/** Clicks over the video's time, in at most 60 bars. */
function histogram(a, video) {
  const duration = Math.max(video.duration, a.timeline.bin_seconds);
  const bars = Math.min(60, Math.max(1, Math.ceil(duration / a.timeline.bin_seconds)));
  const width = duration / bars;
  const counts = new Array(bars).fill(0);
  for (const [bin, n] of a.timeline.bins) {
    const at = Math.min(bars - 1, Math.floor((bin * a.timeline.bin_seconds) / width));
    counts[Math.max(0, at)] += n;
  }
  const max = Math.max(1, ...counts);
  const total = counts.reduce((s, n) => s + n, 0);
  return h('figure', { class: 'histogram' },
    svg('svg', { 'data-testid': 'click-histogram', 'data-clicks': total, viewBox: `0 0 ${bars} 100`, preserveAspectRatio: 'none', role: 'img',
      'aria-label': `Clicks over the video's time: ${total} in all, in bars of ${width.toFixed(1)} seconds.` },
    counts.map((n, i) => svg('rect', { x: i + 0.1, y: 100 - (n / max) * 100, width: 0.8, height: (n / max) * 100, class: 'bar' },
      svg('title', {}, `${formatSeconds(i * width)}–${formatSeconds((i + 1) * width)}: ${n} click${n === 1 ? '' : 's'}`)))),
    h('figcaption', {}, h('span', {}, '0:00'), h('span', {}, `Clicks over time (most: ${Math.max(...counts)} in ${width.toFixed(1)} s)`), h('span', {}, formatSeconds(duration))));
}

export async function analyticsPage(videoId) {
  const video = await loadVideo(videoId);
  if (!video) return;
  const id = encodeURIComponent(video.video_id);
  const body = h('div', { class: 'analytics' }, h('p', { class: 'empty' }, 'Loading…'));
  const error = h('p', { class: 'error', role: 'alert' });
  const frameAt = video.duration / 2;
  let shown = '';
  const refresh = async () => {
    try {
      const a = await api(`/api/v1/videos/${id}/analytics`);
      error.textContent = '';
      const key = JSON.stringify(a);
      if (key === shown) return; // nothing new: the picture is not fetched again
      shown = key;
      body.replaceChildren(
        h('section', { class: 'card', 'aria-labelledby': 'funnel-title' }, h('h2', { id: 'funnel-title' }, 'Funnel'), funnel(a), productTable(a.products)),
        h('section', { class: 'card', 'aria-labelledby': 'heatmap-title' }, h('h2', { id: 'heatmap-title' }, 'Where viewers click'), heatmap(a, video, frameAt)),
        h('section', { class: 'card', 'aria-labelledby': 'histogram-title' }, h('h2', { id: 'histogram-title' }, 'When viewers click'), histogram(a, video)),
      );
    } catch (e) {
      error.textContent = e instanceof ApiError ? `The analytics could not be loaded: ${e.message}` : String(e);
    }
  };
  show(`${video.video_id} analytics`,
    h('p', {}, h('a', { href: '#/videos' }, '← Videos')),
    h('h1', {}, video.video_id),
    tabs(video, 'analytics'),
    error,
    body);
  await refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  onLeave(() => clearInterval(timer));
}
