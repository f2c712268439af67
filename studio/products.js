// Products: the catalogue, searched by a fragment of the article or the name; create a
// product, change its price, stock and picture, retire it (and bring it back).

import { api, can, emptyRow, field, formatMoney, h, onLeave, parseMoney, show, toast } from './lib.js';

function createForm(onCreated) {
  const article = h('input', { type: 'text', id: 'product-article', required: true, maxlength: 64, placeholder: 'JACKET-BLUE-7', 'data-testid': 'product-article' });
  const name = h('input', { type: 'text', id: 'product-name', required: true, placeholder: 'Blue rain jacket', 'data-testid': 'product-name' });
  const price = h('input', { type: 'text', id: 'product-price', required: true, inputmode: 'decimal', placeholder: '129.00', 'data-testid': 'product-price' });
  const currency = h('input', { type: 'text', id: 'product-currency', required: true, value: 'EUR', maxlength: 3, size: 4, 'data-testid': 'product-currency' });
  const stock = h('input', { type: 'number', id: 'product-stock', required: true, min: 0, step: 1, value: 0, 'data-testid': 'product-stock' });
  const picture = h('input', { type: 'url', id: 'product-picture', placeholder: 'https://shop.example/jacket.jpg', 'data-testid': 'product-picture' });
  const submit = h('button', { type: 'submit', 'data-testid': 'product-create' }, 'Create product');
  const error = h('p', { class: 'error', role: 'alert' });
  const form = h('form', {
    class: 'row',
    onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = '';
      const minor = parseMoney(price.value, currency.value.trim().toUpperCase());
      if (minor === null) {
        error.textContent = 'The price is a number, such as 129.00.';
        price.focus();
        return;
      }
      submit.disabled = true;
      try {
        const created = await api('/api/v1/products', {
          method: 'POST',
          body: {
            article: article.value.trim(), name: name.value.trim(), price_minor: minor,
            currency: currency.value.trim().toUpperCase(), stock: Number(stock.value), image_url: picture.value.trim() || null,
          },
        });
        toast(`${created.article} created.`);
        form.reset();
        currency.value = 'EUR';
        onCreated();
      } catch (e) {
        error.textContent = e.message;
      } finally {
        submit.disabled = false;
      }
    },
  },
  field('Article', article), field('Name', name), field('Price', price), field('Currency', currency), field('Stock', stock),
  field('Picture URL (optional)', picture), submit, error);
  return form;
}

/** A product's row, or its edit form in place of it. */
function productRow(product, refresh) {
  const row = h('tr', { 'data-testid': 'product-row', 'data-article': product.article, class: product.active ? '' : 'retired' });
  const view = () => {
    row.replaceChildren(
      h('td', {}, h('strong', {}, product.article), h('div', { class: 'muted' }, product.name)),
      h('td', {}, formatMoney(product.price_minor, product.currency)),
      h('td', {}, `${product.stock}`, product.reserved ? h('span', { class: 'muted' }, ` (${product.reserved} held)`) : null),
      h('td', {}, product.image_url ? h('a', { href: product.image_url, target: '_blank', rel: 'noopener noreferrer' }, 'picture') : h('span', { class: 'muted' }, 'none')),
      h('td', {}, h('span', { class: `status ${product.active ? 'completed' : 'failed'}` }, product.active ? 'active' : 'retired')),
      h('td', { class: 'actions' }, can('merchant') && [
        h('button', { type: 'button', class: 'quiet', onclick: edit, 'aria-label': `Edit ${product.article}` }, 'Edit'),
        h('button', { type: 'button', class: 'quiet', onclick: confirmActive, 'aria-label': `${product.active ? 'Retire' : 'Reactivate'} ${product.article}` }, product.active ? 'Retire' : 'Reactivate'),
      ]),
    );
  };
  const save = async (changes, done) => {
    try {
      const changed = await api(`/api/v1/products/${encodeURIComponent(product.article)}`, { method: 'PATCH', body: changes });
      Object.assign(product, changed);
      toast(done);
      refresh();
      return null;
    } catch (e) {
      return e.message;
    }
  };
  const confirmActive = () => {
    const verb = product.active ? 'Retire' : 'Reactivate';
    const yes = h('button', {
      type: 'button', class: product.active ? 'danger' : '', 'data-testid': 'confirm',
      onclick: async () => {
        yes.disabled = true;
        const failed = await save({ active: !product.active }, `${product.article} ${product.active ? 'retired' : 'reactivated'}.`);
        if (failed) toast(failed);
        view();
      },
    }, `${verb} ${product.article}`);
    row.replaceChildren(h('td', { colspan: 6 }, h('div', { class: 'confirm', role: 'group', 'aria-label': `${verb} ${product.article}?`,
      onkeydown: (e) => e.key === 'Escape' && (view(), row.querySelector('button')?.focus()) },
    h('span', {}, product.active ? `Retire ${product.article}? Viewers can no longer order it; its links stay.` : `Reactivate ${product.article}?`),
    yes, h('button', { type: 'button', class: 'quiet', onclick: view }, 'Cancel'))));
    yes.focus();
  };
  const edit = () => {
    const key = product.article.replace(/[^A-Za-z0-9_-]/g, '_');
    const price = h('input', { type: 'text', id: `price-${key}`, inputmode: 'decimal', value: formatMoney(product.price_minor, product.currency).replace(/[^0-9.]/g, ''), 'data-testid': 'edit-price' });
    const stock = h('input', { type: 'number', id: `stock-${key}`, min: 0, step: 1, value: product.stock, 'data-testid': 'edit-stock' });
    const picture = h('input', { type: 'url', id: `picture-${key}`, value: product.image_url ?? '', 'data-testid': 'edit-picture' });
    const error = h('p', { class: 'error', role: 'alert' });
    const form = h('form', {
      class: 'row',
      onkeydown: (e) => e.key === 'Escape' && view(),
      onsubmit: async (event) => {
        event.preventDefault();
        const changes = {};
        const minor = parseMoney(price.value, product.currency);
        if (minor === null) {
          error.textContent = 'The price is a number, such as 129.00.';
          return;
        }
        if (minor !== product.price_minor) Object.assign(changes, { price_minor: minor, currency: product.currency });
        if (Number(stock.value) !== product.stock) changes.stock = Number(stock.value);
        const url = picture.value.trim() || null;
        if (url !== (product.image_url ?? null)) changes.image_url = url;
        if (!Object.keys(changes).length) return view();
        const failed = await save(changes, `${product.article} saved.`);
        if (failed) error.textContent = failed;
        else view();
      },
    },
    h('strong', {}, product.article),
    field(`Price (${product.currency})`, price), field('Stock', stock), field('Picture URL', picture),
    h('button', { type: 'submit', 'data-testid': 'edit-save' }, 'Save'),
    h('button', { type: 'button', class: 'quiet', onclick: view }, 'Cancel'),
    error);
    row.replaceChildren(h('td', { colspan: 6 }, form));
    price.focus();
  };
  view();
  return row;
}

export async function productsPage() {
  const body = h('tbody', {}, emptyRow(6, 'Loading…'));
  const error = h('p', { class: 'error', role: 'alert' });
  const search = h('input', { type: 'search', id: 'product-search', placeholder: 'Article or name', 'data-testid': 'product-search' });
  const retired = h('input', { type: 'checkbox', id: 'product-retired' });
  let asked = 0;
  const refresh = async () => {
    const ask = ++asked;
    const query = new URLSearchParams({ limit: 200 });
    if (search.value.trim()) query.set('q', search.value.trim());
    if (!retired.checked) query.set('active', 'true');
    try {
      const { items } = await api(`/api/v1/products?${query}`);
      if (ask !== asked) return;
      body.replaceChildren(...(items.length ? items.map((p) => productRow(p, refresh)) : [emptyRow(6, search.value.trim() ? 'No product matches.' : 'No products yet.')]));
      error.textContent = '';
    } catch (e) {
      error.textContent = `The catalogue could not be loaded: ${e.message}`;
    }
  };
  search.addEventListener('input', refresh);
  retired.addEventListener('change', refresh);
  show('Products',
    h('h1', {}, 'Products'),
    can('merchant') && h('section', { class: 'card', 'aria-labelledby': 'new-product' }, h('h2', { id: 'new-product' }, 'New product'), createForm(refresh)),
    h('section', { class: 'card' },
      h('div', { class: 'row' }, field('Search', search), h('label', { class: 'check', for: 'product-retired' }, retired, 'Show retired products')),
      error,
      h('table', {}, h('thead', {}, h('tr', {}, ...['Product', 'Price', 'Stock', 'Picture', 'Status', ''].map((c) => h('th', { scope: 'col' }, c)))), body)));
  await refresh();
  onLeave(() => { asked += 1; });
}
