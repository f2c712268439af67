// Orders: listed by status; a merchant ships, completes or refunds each, after a
// confirmation.

import { api, can, emptyRow, field, formatMoney, formatTime, h, onLeave, settle, show, toast } from './lib.js';

const STATUSES = ['awaiting_payment', 'paid', 'shipped', 'completed', 'cancelled', 'refunded'];
const LABELS = {
  awaiting_payment: 'awaiting payment', paid: 'paid', shipped: 'shipped', completed: 'completed', cancelled: 'cancelled', refunded: 'refunded',
};
const TONE = { awaiting_payment: 'queued', paid: 'processing', shipped: 'processing', completed: 'completed', cancelled: 'failed', refunded: 'failed' };

/** What a merchant can do next with an order in each state. */
function actionsFor(order) {
  const actions = [];
  if (order.status === 'paid') actions.push('ship');
  if (order.status === 'shipped') actions.push('complete');
  if (['paid', 'shipped', 'completed'].includes(order.status)) actions.push('refund');
  return actions;
}

const VERB = { ship: 'Ship', complete: 'Complete', refund: 'Refund' };

function orderRow(order, refresh) {
  const row = h('tr', { 'data-testid': 'order-row', 'data-order-id': order.id, 'data-status': order.status });
  const short = order.id.slice(0, 8);
  const lines = (order.lines ?? []).map((l) => `${l.quantity} × ${l.article}`).join(', ');
  const view = () => {
    row.replaceChildren(
      h('td', {}, h('code', { title: order.id }, short), h('div', { class: 'muted' }, formatTime(order.created_at))),
      h('td', {}, lines),
      h('td', {}, formatMoney(order.total_minor, order.currency), order.refunded_minor ? h('div', { class: 'muted' }, `refunded ${formatMoney(order.refunded_minor, order.currency)}`) : null),
      h('td', {}, h('span', { class: `status ${TONE[order.status] ?? ''}`, 'data-testid': 'order-status' }, LABELS[order.status] ?? order.status)),
      h('td', { class: 'actions' }, can('merchant') && actionsFor(order).map((action) => h('button', {
        type: 'button', class: 'quiet', 'data-testid': `order-${action}`, 'aria-label': `${VERB[action]} order ${short}`, onclick: () => confirm(action),
      }, VERB[action]))),
    );
  };
  const confirm = (action) => {
    const tracking = action === 'ship' ? h('input', { type: 'text', id: `tracking-${order.id}`, placeholder: 'optional', 'data-testid': 'order-tracking' }) : null;
    const error = h('p', { class: 'error', role: 'alert' });
    const question = {
      ship: `Ship order ${short} (${formatMoney(order.total_minor, order.currency)})?`,
      complete: `Mark order ${short} as delivered?`,
      refund: `Refund ${formatMoney(order.total_minor, order.currency)} of order ${short} to the buyer? This cannot be undone.`,
    }[action];
    const yes = h('button', {
      type: 'button', class: action === 'refund' ? 'danger' : '', 'data-testid': 'confirm',
      onclick: async () => {
        yes.disabled = true;
        error.textContent = '';
        const body = action === 'ship' ? { tracking: tracking.value.trim() || null } : action === 'refund' ? {} : undefined;
        try {
          await api(`/api/v1/orders/${order.id}/${action}`, { method: 'POST', body });
          toast(`Order ${short}: ${{ ship: 'shipped', complete: 'completed', refund: 'refunded' }[action]}.`);
          refresh(order.id);
        } catch (e) {
          error.textContent = e.message;
          yes.disabled = false;
        }
      },
    }, `${VERB[action]} order`);
    const cancel = () => {
      view();
      row.querySelector(`[data-testid="order-${action}"]`)?.focus();
    };
    row.replaceChildren(h('td', { colspan: 5 }, h('div', { class: 'confirm', role: 'group', 'aria-label': question, onkeydown: (e) => e.key === 'Escape' && cancel() },
      h('span', {}, question), tracking && field('Tracking number', tracking), yes,
      h('button', { type: 'button', class: 'quiet', onclick: cancel }, 'Cancel'), error)));
    (tracking ?? yes).focus();
  };
  view();
  return row;
}

export async function ordersPage() {
  const body = h('tbody', {}, emptyRow(5, 'Loading…'));
  const error = h('p', { class: 'error', role: 'alert' });
  const status = h('select', { id: 'order-status-filter', 'data-testid': 'order-status-filter' },
    h('option', { value: '' }, 'Every status'), STATUSES.map((s) => h('option', { value: s }, LABELS[s])));
  let asked = 0;
  /** Lists the orders; after an action on `changed`, until the view shows its new state. */
  const refresh = async (changed) => {
    const ask = ++asked;
    const query = new URLSearchParams({ limit: 200 });
    if (status.value) query.set('status', status.value);
    try {
      const before = changed ? body.querySelector(`[data-order-id="${changed}"]`)?.dataset.status ?? null : null;
      const { items } = await settle(() => api(`/api/v1/orders?${query}`), ({ items: now }) => {
        const order = now.find((o) => o.id === changed);
        return !changed || !order || order.status !== before;
      });
      if (ask !== asked) return;
      body.replaceChildren(...(items.length ? items.map((o) => orderRow(o, refresh)) : [emptyRow(5, status.value ? `No orders ${LABELS[status.value]}.` : 'No orders yet.')]));
      error.textContent = '';
    } catch (e) {
      error.textContent = `The orders could not be loaded: ${e.message}`;
    }
  };
  status.addEventListener('change', () => refresh());
  show('Orders',
    h('h1', {}, 'Orders'),
    h('section', { class: 'card' },
      h('div', { class: 'row' }, field('Status', status)),
      error,
      h('table', {}, h('thead', {}, h('tr', {}, ...['Order', 'Lines', 'Total', 'Status', ''].map((c) => h('th', { scope: 'col' }, c)))), body)));
  await refresh();
  onLeave(() => { asked += 1; });
}
