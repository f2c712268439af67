// Framecart's content script on YouTube: a click on the picture of the main video
// becomes a click measurement for the service worker, which queues and sends it; when
// the worker reports that the click matched a product, the product card (src/card.js)
// is shown beside it.
//
// A classic script (manifest content scripts cannot be ES modules), run from
// document_start in the isolated world: YouTube's player API is out of reach, so all
// is read from the DOM at the moment of the click. The service worker turns the
// measurement into the request body (src/lib/click.js), which keeps the pure logic in
// modules that node can test.
(() => {
  'use strict';

  const MAIN_VIDEO = '#movie_player video, video.html5-main-video';
  const PLAYER = '.html5-video-player';
  const AD_CLASSES = ['ad-showing', 'ad-interrupting'];

  // Parts of the player that are controls: a click there is an order to the player
  // (play, seek, settings, an end-screen link, an ad's button), not a pick in the picture.
  const CONTROLS = [
    '.ytp-chrome-bottom',
    '.ytp-chrome-top',
    '.ytp-settings-menu',
    '.ytp-popup',
    '.ytp-contextmenu',
    '.ytp-ce-element',
    '.ytp-cards-teaser',
    '.ytp-paid-content-overlay',
    '.ytp-ad-module',
    '.ytp-endscreen-content',
    '.ytp-autonav-endscreen',
    '.ytp-pause-overlay',
    '.ytp-suggested-action',
    '.ytp-button',
    'a[href]',
    'button',
    'input',
    'select',
    'textarea',
    '[role="button"]',
    '[role="menu"]',
    '[role="menuitem"]',
    '[role="dialog"]',
  ].join(',');

  const card = globalThis.framecartCard;

  // A card is shown only for the last click made on this page, on the video still
  // watched, and not long ago: a card for an earlier pick would be beside a spot the
  // viewer has moved on from.
  const CLICK_MEMORY_MS = 120_000;
  let lastClick = null;

  // The URL of the page whose video is on screen. It changes when YouTube has finished
  // an in-site navigation (no reload), not when the address bar changes: until then the
  // previous video is still the one being watched.
  let pageUrl = location.href;

  const onNavigateFinish = () => {
    pageUrl = location.href;
    if (!card.busy()) card.close(); // its product belongs to the previous video
  };

  // Capture on the window, registered before any of YouTube's scripts run: YouTube lays
  // its own elements over the <video> and may stop a click's propagation, so the event's
  // target says little. What counts is where the point falls on the video's box.
  window.addEventListener('click', onClick, true);
  window.addEventListener('yt-navigate-finish', onNavigateFinish, true);
  chrome.runtime.onMessage.addListener(onMessage);
  chrome.storage.onChanged.addListener(onSettingsChanged);

  function onClick(event) {
    // Only a person's single primary click: the second click of a double-click toggles
    // fullscreen, it is not a second pick.
    if (!event.isTrusted || event.button !== 0 || event.detail > 1) return;
    const path = event.composedPath();
    // A click on the product card is the card's business.
    if (card.owns(path)) return;
    const video = document.querySelector(MAIN_VIDEO);
    if (!video) return;
    const player = video.closest(PLAYER) ?? video.parentElement;
    // A menu or dialog of the page drawn over the video is not the video.
    if (!player || !path.includes(player)) return;
    if (AD_CLASSES.some((name) => player.classList.contains(name))) return;
    if (onControl(path, player)) return;
    // Nothing to pick before the first frame is known.
    if (!video.videoWidth || !video.videoHeight) return;

    // Geometry is read now, on every click: fullscreen, theatre mode and window size
    // all change the element's box.
    const box = video.getBoundingClientRect();
    const x = event.clientX - box.left;
    const y = event.clientY - box.top;
    if (x < 0 || y < 0 || x > box.width || y > box.height) return;

    // A new pick: the card of the previous one goes (unless it is placing an order).
    if (!card.busy()) card.close();
    const measurement = {
      clickId: crypto.randomUUID(),
      pageUrl,
      x,
      y,
      player: { width: box.width, height: box.height },
      video: { width: video.videoWidth, height: video.videoHeight },
      timestamp: video.currentTime,
    };
    lastClick = {
      clickId: measurement.clickId,
      at: Date.now(),
      pageUrl,
      point: { x, y },
      size: measurement.player,
    };
    send(measurement);
  }

  /** Messages from the service worker: the product a click matched. */
  function onMessage(message, sender, sendResponse) {
    if (sender.id !== chrome.runtime.id || message?.type !== 'framecart:product') return false;
    sendResponse({ ok: true, shown: showProduct(message) });
    return false;
  }

  /** Shows the card for the product of the last click; false when it is not shown. */
  function showProduct(message) {
    const click = lastClick;
    if (!click || click.clickId !== message.clickId) return false;
    if (click.pageUrl !== pageUrl || Date.now() - click.at > CLICK_MEMORY_MS) return false;
    if (card.busy() || !message.product || !message.order) return false;
    const video = document.querySelector(MAIN_VIDEO);
    const player = video?.closest(PLAYER) ?? video?.parentElement;
    if (!player) return false;
    const clickId = message.clickId;
    card.show({
      player,
      video,
      point: click.point,
      size: click.size,
      product: message.product,
      readiness: message.order,
      actions: {
        order: ({ article, idempotencyKey }) =>
          chrome.runtime.sendMessage({ type: 'framecart:order', clickId, article, idempotencyKey }),
        openOptions: () => chrome.runtime.sendMessage({ type: 'framecart:open-options' }).catch(() => {}),
      },
    });
    return true;
  }

  /** The token, contact or address changed: the card may now offer "Order", or not. */
  function onSettingsChanged(changes, area) {
    if (area !== 'sync' || !card.isOpen()) return;
    if (!('token' in changes || 'contact' in changes || 'shippingAddress' in changes)) return;
    chrome.runtime
      .sendMessage({ type: 'framecart:order-readiness' })
      .then((answer) => answer?.ok && card.setReadiness({ ready: answer.ready, missing: answer.missing }))
      .catch(() => {});
  }

  /** True when the click went through one of the player's controls. */
  function onControl(path, player) {
    for (const node of path) {
      if (node === player) return false;
      if (node instanceof Element && node.matches(CONTROLS)) return true;
    }
    return false;
  }

  function send(measurement) {
    // After the extension is updated or reloaded this script is orphaned: its runtime
    // is gone, and the page's next load brings a fresh copy. Stop listening quietly.
    if (!chrome.runtime?.id) {
      window.removeEventListener('click', onClick, true);
      window.removeEventListener('yt-navigate-finish', onNavigateFinish, true);
      card.close();
      return;
    }
    // The service worker stores the click before it answers; its answer is not needed here.
    chrome.runtime.sendMessage({ type: 'framecart:click', measurement }).catch(() => {});
  }
})();
