// Framecart's content script on YouTube: a click on the picture of the main video
// becomes a click measurement for the service worker, which queues and sends it.
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

  // The URL of the page whose video is on screen. It changes when YouTube has finished
  // an in-site navigation (no reload), not when the address bar changes: until then the
  // previous video is still the one being watched.
  let pageUrl = location.href;

  const onNavigateFinish = () => {
    pageUrl = location.href;
  };

  // Capture on the window, registered before any of YouTube's scripts run: YouTube lays
  // its own elements over the <video> and may stop a click's propagation, so the event's
  // target says little. What counts is where the point falls on the video's box.
  window.addEventListener('click', onClick, true);
  window.addEventListener('yt-navigate-finish', onNavigateFinish, true);

  function onClick(event) {
    // Only a person's single primary click: the second click of a double-click toggles
    // fullscreen, it is not a second pick.
    if (!event.isTrusted || event.button !== 0 || event.detail > 1) return;
    const video = document.querySelector(MAIN_VIDEO);
    if (!video) return;
    const player = video.closest(PLAYER) ?? video.parentElement;
    const path = event.composedPath();
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

    send({
      clickId: crypto.randomUUID(),
      pageUrl,
      x,
      y,
      player: { width: box.width, height: box.height },
      video: { width: video.videoWidth, height: video.videoHeight },
      timestamp: video.currentTime,
    });
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
      return;
    }
    // The service worker stores the click before it answers; its answer is not needed here.
    chrome.runtime.sendMessage({ type: 'framecart:click', measurement }).catch(() => {});
  }
})();
