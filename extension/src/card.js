// The product card: picture, name and price of what a click matched, shown beside the
// click inside the player, with "Order" when the viewer can order.
//
// A classic content script (see src/content.js), run before content.js, which drives it
// through `globalThis.framecartCard` (the extension's isolated world, out of the page's
// reach). The card lives in a shadow root on an element of its own, placed absolutely
// in the player: YouTube's styles cannot reach into it, its styles cannot leak out, and
// it moves nothing on the page. Everything in it is built from DOM nodes and text: the
// server's words are never parsed as HTML.
(() => {
  'use strict';

  const { cardBounds, placeCard, scalePoint } = globalThis.framecartCardLayout;

  const HOST_TAG = 'framecart-card';
  const WIDTH = 240;

  // Events that stop at the card: the player must not take a click on the card for a
  // click on the video (play/pause), nor a key pressed on its buttons for a shortcut.
  const CONTAINED_EVENTS = [
    'click', 'dblclick', 'auxclick', 'contextmenu', 'mousedown', 'mouseup', 'pointerdown', 'pointerup',
    'touchstart', 'touchend', 'wheel', 'keydown', 'keyup', 'keypress',
  ];

  const STYLE = `
    :host { all: initial; }
    * { box-sizing: border-box; }
    .card {
      position: relative;
      width: ${WIDTH}px;
      max-width: var(--max-width, ${WIDTH}px);
      max-height: var(--max-height, none);
      overflow: auto;
      padding: 12px;
      border-radius: 10px;
      background: #fff;
      color: #1b1b1f;
      box-shadow: 0 4px 18px rgb(0 0 0 / 45%);
      font: 13px/1.4 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif;
      text-align: left;
      color-scheme: light;
    }
    .picture {
      display: block;
      width: 100%;
      height: 120px;
      margin: 0 0 8px;
      object-fit: contain;
      background: #f3f3f5;
      border-radius: 6px;
    }
    .name { margin: 0 24px 2px 0; font-size: 14px; font-weight: 600; overflow-wrap: anywhere; }
    .variant { margin: 0 0 2px; color: #5f6068; }
    .price { margin: 0 0 8px; font-size: 15px; font-weight: 600; }
    .close {
      position: absolute; top: 6px; right: 6px;
      width: 26px; height: 26px; padding: 0;
      border: 0; border-radius: 50%;
      background: transparent; color: #5f6068;
      font: 18px/26px system-ui, sans-serif; cursor: pointer;
    }
    .close:hover { background: #ececf0; color: #1b1b1f; }
    .order, .link {
      font: inherit; cursor: pointer; border-radius: 6px;
    }
    .order {
      width: 100%; padding: 6px 10px;
      border: 1px solid #c2185b; background: #c2185b; color: #fff; font-weight: 600;
    }
    .order:disabled { opacity: 0.6; cursor: progress; }
    .link {
      padding: 0; border: 0; background: none; color: #ad1457; text-decoration: underline;
    }
    .hint { margin: 0; color: #5f6068; }
    .status { margin: 8px 0 0; }
    .status:empty { display: none; }
    .status.ok { color: #1b7f3b; }
    .status.bad { color: #b3261e; }
    .order-id { display: block; margin-top: 2px; color: #5f6068; font-size: 11px; overflow-wrap: anywhere; }
    button:focus-visible { outline: 2px solid #1a73e8; outline-offset: 2px; }
  `;

  /** The card on screen, or null. One at a time. */
  let current = null;

  /**
   * Shows the card for a matched click, replacing the one on screen.
   * @param {object} o
   * @param {Element} o.player  the player element, the card's parent
   * @param {HTMLVideoElement} o.video  the main video
   * @param {{x: number, y: number}} o.point  the click, CSS px from the video's top-left
   * @param {{width: number, height: number}} o.size  the video element's size at the click
   * @param {{article: string, name: string, variant: string|null, priceText: string,
   *   picture: string|null, inStock: boolean|null}} o.product  (picture: a data: or https URL)
   * @param {{ready: boolean, missing: string[]}} o.readiness
   * @param {{order: (request: {article: string, idempotencyKey: string}) => Promise<any>,
   *   openOptions: () => void}} o.actions
   */
  function show(o) {
    close();
    current = new Card(o);
  }

  /** Closes the card on screen, if any. */
  function close() {
    current?.remove();
    current = null;
  }

  class Card {
    constructor({ player, video, point, size, product, readiness, actions }) {
      Object.assign(this, { player, video, point, size, product, readiness, actions });
      this.attemptKey = null; // the Idempotency-Key of the order attempt under way
      this.busy = false;
      this.finished = false; // ordered, or out of stock: no "Order" any more

      this.host = document.createElement(HOST_TAG);
      this.host.style.cssText =
        'all: initial !important; position: absolute !important; left: 0 !important; top: 0 !important;' +
        ' z-index: 2147483647 !important; display: block !important; visibility: hidden !important;';
      for (const type of CONTAINED_EVENTS) this.host.addEventListener(type, (e) => e.stopPropagation());
      const root = this.host.attachShadow({ mode: 'open' });
      const style = document.createElement('style');
      style.textContent = STYLE;
      root.append(style, this.build());

      // Escape closes the card wherever the focus is: heard in the capture phase, before
      // the page can stop it, and left to the page as well.
      this.onEscape = (e) => {
        if (e.key === 'Escape') close();
      };
      this.onResize = () => this.place();
      window.addEventListener('keydown', this.onEscape, true);
      window.addEventListener('resize', this.onResize);
      document.addEventListener('fullscreenchange', this.onResize);

      player.append(this.host);
      this.place();
    }

    build() {
      const { product } = this;
      const card = el('section', { class: 'card', role: 'dialog', 'aria-labelledby': 'name', 'aria-describedby': 'price' });
      const closeButton = el('button', { class: 'close', type: 'button', 'aria-label': 'Close' }, '×');
      closeButton.addEventListener('click', () => close());
      card.append(closeButton);
      const picture = pictureSource(product.picture);
      if (picture) {
        const img = el('img', { class: 'picture', alt: '', decoding: 'async' });
        img.referrerPolicy = 'no-referrer'; // the shop need not learn which video is watched
        img.addEventListener('error', () => {
          img.remove();
          this.place();
        });
        img.src = picture;
        card.append(img);
      }
      card.append(el('h2', { class: 'name', id: 'name' }, product.name));
      if (product.variant) card.append(el('p', { class: 'variant' }, product.variant));
      card.append(el('p', { class: 'price', id: 'price' }, product.priceText));
      this.actionsBox = el('div', { class: 'actions' });
      this.status = el('p', { class: 'status', role: 'status', 'aria-live': 'polite' });
      card.append(this.actionsBox, this.status);
      this.card = card;
      this.renderActions();
      return card;
    }

    /** The "Order" button, or the hint that leads to the settings. */
    renderActions() {
      this.actionsBox.replaceChildren();
      if (this.finished) return;
      if (this.product.inStock === false) {
        this.actionsBox.append(el('p', { class: 'hint' }, 'Out of stock.'));
        return;
      }
      if (!this.readiness.ready) {
        this.actionsBox.append(this.settingsHint(hintText(this.readiness.missing)));
        return;
      }
      const button = el('button', { class: 'order', type: 'button' }, this.attemptKey ? 'Try again' : 'Order');
      button.addEventListener('click', (event) => this.order(event, button));
      this.actionsBox.append(button);
    }

    settingsHint(text) {
      const hint = el('p', { class: 'hint' }, `${text} `);
      const link = el('button', { class: 'link', type: 'button' }, 'Open Framecart settings');
      link.addEventListener('click', (event) => {
        if (event.isTrusted) this.actions.openOptions();
      });
      hint.append(link);
      return hint;
    }

    async order(event, button) {
      // Only a person's click orders: the page's scripts can reach this open shadow
      // root, but cannot make a trusted event.
      if (!event.isTrusted || this.busy || this.finished) return;
      this.busy = true;
      this.attemptKey ??= crypto.randomUUID();
      button.disabled = true;
      button.setAttribute('aria-busy', 'true');
      this.say('Placing the order…');
      let result;
      try {
        result = await this.actions.order({ article: this.product.article, idempotencyKey: this.attemptKey });
      } catch (error) {
        result = { ok: false, error: String(error?.message ?? error) };
      }
      this.busy = false;
      if (!this.host.isConnected) return;
      this.showOutcome(result ?? { ok: false, error: 'no answer from the extension' });
    }

    showOutcome(result) {
      const kind = result.ok ? result.kind : 'failed';
      const message = result.ok ? result.message : `The order failed: ${result.error}.`;
      if (kind === 'placed') {
        this.finished = true;
        this.attemptKey = null;
        this.say(message, 'ok');
        if (result.order?.id) this.status.append(' ', el('span', { class: 'order-id' }, `Order ${result.order.id}`));
      } else if (kind === 'out_of_stock') {
        this.finished = true;
        this.attemptKey = null;
        this.say(message, 'bad');
      } else if (kind === 'retry') {
        this.say(`${message} Try again in a moment.`, 'bad'); // the same attempt, the same key
      } else {
        this.attemptKey = null; // a new attempt needs a new key
        this.say(message, 'bad');
      }
      if ((kind === 'sign_in' || kind === 'invalid') && !this.finished) {
        this.readiness = { ready: false, missing: kind === 'sign_in' ? ['token'] : [] };
        this.actionsBox.replaceChildren(this.settingsHint(''));
      } else {
        this.renderActions();
      }
      this.place();
    }

    /** The settings changed: offer "Order" or the hint accordingly. */
    setReadiness(readiness) {
      if (this.busy || this.finished) return;
      this.readiness = readiness;
      this.renderActions();
      this.place();
    }

    say(text, tone = '') {
      this.status.textContent = text;
      this.status.className = `status ${tone}`.trim();
    }

    /** Puts the card beside the click, inside the player and the viewport. */
    place() {
      if (!this.host.isConnected) return;
      const videoBox = this.video.getBoundingClientRect();
      const at = scalePoint(this.point, this.size, videoBox);
      const point = { x: videoBox.left + at.x, y: videoBox.top + at.y };
      const view = document.documentElement;
      const bounds = cardBounds(this.player.getBoundingClientRect(), {
        width: view.clientWidth,
        height: view.clientHeight,
      });
      this.card.style.setProperty('--max-width', `${Math.max(0, bounds.right - bounds.left)}px`);
      this.card.style.setProperty('--max-height', `${Math.max(0, bounds.bottom - bounds.top)}px`);
      // The host's origin in the viewport (its containing block need not be the player).
      this.host.style.setProperty('left', '0px', 'important');
      this.host.style.setProperty('top', '0px', 'important');
      const origin = this.host.getBoundingClientRect();
      const box = this.card.getBoundingClientRect();
      const spot = placeCard(point, { width: box.width, height: box.height }, bounds);
      this.host.style.setProperty('left', `${spot.left - origin.left}px`, 'important');
      this.host.style.setProperty('top', `${spot.top - origin.top}px`, 'important');
      this.host.style.setProperty('visibility', 'visible', 'important');
    }

    remove() {
      window.removeEventListener('keydown', this.onEscape, true);
      window.removeEventListener('resize', this.onResize);
      document.removeEventListener('fullscreenchange', this.onResize);
      this.host.remove();
    }
  }

  function hintText(missing) {
    const token = missing.includes('token');
    const details = missing.includes('contact') || missing.includes('address');
    if (token && details) return 'To order, sign in and add your contact and shipping address in the settings.';
    if (token) return 'To order, sign in in the settings.';
    return 'To order, add your contact and shipping address in the settings.';
  }

  /**
   * What the <img> may load: a data: URL of an image (the picture fetched by the service
   * worker) or an https URL; checked again here, as defence in depth (src/lib/product.js).
   */
  function pictureSource(value) {
    if (typeof value !== 'string') return null;
    if (/^data:image\/(png|jpeg|gif|webp|avif|svg\+xml);base64,/.test(value)) return value;
    try {
      const url = new URL(value);
      return url.protocol === 'https:' ? url.href : null;
    } catch {
      return null;
    }
  }

  /** An element with attributes and text: the only way this card makes nodes. */
  function el(tag, attributes = {}, text = '') {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text) node.textContent = text;
    return node;
  }

  globalThis.framecartCard = Object.freeze({
    show,
    close,
    /** True when the event went through the card (it is not a click on the video). */
    owns: (path) => !!current && path.includes(current.host),
    /** True while an order is being placed: the card must stay. */
    busy: () => !!current?.busy,
    /** The settings changed. */
    setReadiness: (readiness) => current?.setReadiness(readiness),
    isOpen: () => !!current,
  });
})();
