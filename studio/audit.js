// Audit (auditors and admins): the history in log order, filtered by aggregate and event
// type; each event's payload; and the hash chain's verdict.

import { api, field, formatTime, h, show } from './lib.js';

const AGGREGATES = ['click', 'video', 'detection_run', 'product', 'user', 'order', 'payment', 'data_subject'];
const PAGE = 100;

function verifyPanel() {
  const result = h('p', { 'data-testid': 'audit-verify-result', 'aria-live': 'polite', class: 'verdict' });
  const button = h('button', {
    type: 'button', 'data-testid': 'audit-verify',
    onclick: async () => {
      button.disabled = true;
      result.removeAttribute('data-ok');
      result.className = 'verdict';
      result.textContent = 'Checking every event’s hash…';
      try {
        const v = await api('/api/v1/audit/verify');
        result.dataset.ok = String(v.ok);
        result.classList.add(v.ok ? 'ok' : 'bad');
        result.textContent = v.ok
          ? `The chain holds: ${v.checked} events, each hash recomputed.`
          : v.first_bad_position
            ? `The chain breaks at log position ${v.first_bad_position}: ${v.reason}.`
            : `${v.reason} (${v.unlogged_count} events).`;
      } catch (e) {
        result.dataset.ok = 'false';
        result.classList.add('bad');
        result.textContent = `The check could not run: ${e.message}`;
      } finally {
        button.disabled = false;
      }
    },
  }, 'Verify the hash chain');
  return h('section', { class: 'card', 'aria-labelledby': 'verify-title' },
    h('h2', { id: 'verify-title' }, 'Integrity'),
    h('p', { class: 'muted' }, 'Recomputes the hash of every event in log order and checks each one chains to the one before it.'),
    h('div', { class: 'row' }, button), result);
}

function eventRows(event, filterBy) {
  const details = h('tr', { class: 'details', hidden: true },
    h('td', { colspan: 6 },
      h('h3', {}, 'Payload'), h('pre', { 'data-testid': 'audit-payload' }, JSON.stringify(event.payload, null, 2)),
      event.personal_data.length ? h('p', { class: 'muted' }, `Personal data: ${event.personal_data.map((p) => `${p.field} (${p.subject}, ${p.state})`).join('; ')}`) : null,
      h('h3', {}, 'Metadata'), h('pre', {}, JSON.stringify(event.metadata, null, 2)),
      h('p', { class: 'muted' }, 'Hash ', h('code', {}, event.hash ?? 'none yet'))));
  const toggle = () => {
    details.hidden = !details.hidden;
    row.setAttribute('aria-expanded', String(!details.hidden));
  };
  const row = h('tr', {
    'data-testid': 'audit-event', 'data-position': event.position, tabindex: 0, 'aria-expanded': 'false', class: 'clickable',
    onclick: toggle, onkeydown: (e) => (e.key === 'Enter' || e.key === ' ') && e.target === row && (e.preventDefault(), toggle()),
  },
  h('td', {}, String(event.position ?? '')),
  h('td', {}, formatTime(event.recorded_at)),
  h('td', {}, event.aggregate_type),
  h('td', {}, h('button', {
    type: 'button', class: 'link', title: 'Only this aggregate', 'aria-label': `Only ${event.aggregate_type} ${event.aggregate_id}`,
    onclick: (e) => (e.stopPropagation(), filterBy(event.aggregate_type, event.aggregate_id)),
  }, event.aggregate_id.length > 24 ? `${event.aggregate_id.slice(0, 24)}…` : event.aggregate_id)),
  h('td', {}, h('strong', {}, event.event_type)),
  h('td', {}, `${event.sequence} · v${event.event_version}`));
  return [row, details];
}

export async function auditPage() {
  const type = h('select', { id: 'audit-aggregate-type', 'data-testid': 'audit-aggregate-type' },
    h('option', { value: '' }, 'Every aggregate'), AGGREGATES.map((a) => h('option', { value: a }, a)));
  const aggregateId = h('input', { type: 'text', id: 'audit-aggregate-id', placeholder: 'any', 'data-testid': 'audit-aggregate-id' });
  const eventType = h('input', { type: 'text', id: 'audit-event-type', placeholder: 'e.g. OrderPaid', 'data-testid': 'audit-event-type' });
  const body = h('tbody');
  const more = h('button', { type: 'button', class: 'quiet', hidden: true }, 'Load more');
  const error = h('p', { class: 'error', role: 'alert' });
  let after = 0;
  let asked = 0;
  const load = async (fresh) => {
    const ask = ++asked;
    if (fresh) after = 0;
    const query = new URLSearchParams({ after, limit: PAGE });
    if (type.value) query.set('aggregate_type', type.value);
    if (aggregateId.value.trim()) query.set('aggregate_id', aggregateId.value.trim());
    if (eventType.value.trim()) query.set('event_type', eventType.value.trim());
    try {
      const page = await api(`/api/v1/audit/events?${query}`);
      if (ask !== asked) return;
      error.textContent = '';
      const rows = page.items.flatMap((e) => eventRows(e, filterBy));
      if (fresh) body.replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 6, class: 'empty' }, 'No events match.'))]));
      else body.append(...rows);
      after = page.next_after ?? after;
      more.hidden = page.next_after === null || page.next_after === undefined;
    } catch (e) {
      error.textContent = `The history could not be loaded: ${e.message}`;
    }
  };
  const filterBy = (aggregate, id) => {
    type.value = aggregate;
    aggregateId.value = id;
    load(true);
  };
  more.addEventListener('click', () => load(false));
  const filters = h('form', {
    class: 'row', role: 'search',
    onsubmit: (event) => {
      event.preventDefault();
      load(true);
    },
  },
  field('Aggregate type', type), field('Aggregate id', aggregateId), field('Event type', eventType),
  h('button', { type: 'submit', 'data-testid': 'audit-filter' }, 'Filter'),
  h('button', { type: 'reset', class: 'quiet', onclick: () => setTimeout(() => load(true)) }, 'Clear'));
  show('Audit',
    h('h1', {}, 'Audit'),
    verifyPanel(),
    h('section', { class: 'card', 'aria-labelledby': 'history-title' },
      h('h2', { id: 'history-title' }, 'History, in log order'),
      filters, error,
      h('table', { class: 'events' },
        h('thead', {}, h('tr', {}, ...['#', 'Recorded', 'Aggregate', 'Id', 'Event', 'Sequence'].map((c) => h('th', { scope: 'col' }, c)))),
        body),
      more));
  await load(true);
}
