// Where the product card goes: beside the click, inside the player, within the
// viewport. Pure geometry (node tests it).
//
// Unlike the other files of src/lib, this one is also a content script (listed before
// src/content.js in the manifest): content scripts cannot be ES modules, and importing
// a module from one would need it exposed to every YouTube page. So it has no import
// or export; it hangs its functions on the global object, which in a content script
// is the extension's isolated world (the page cannot see or change it), and node's
// tests read them from there after importing the file.

(() => {
  'use strict';

  /** Space between the click and the card, and between the card and the edges, in CSS px. */
  const GAP = 12;
  const MARGIN = 8;

  /**
   * The rectangle the card may use: the player's box within the viewport, less a margin.
   * When the player is out of view, its own box (so the card is where the player is).
   * @param {{left: number, top: number, right: number, bottom: number}} player
   * @param {{width: number, height: number}} viewport
   */
  function cardBounds(player, viewport, margin = MARGIN) {
    let left = Math.max(player.left, 0);
    let top = Math.max(player.top, 0);
    let right = Math.min(player.right, viewport.width);
    let bottom = Math.min(player.bottom, viewport.height);
    if (right <= left || bottom <= top) ({ left, top, right, bottom } = player);
    // The margin, unless the space is too small for it.
    const mx = Math.min(margin, Math.max(0, (right - left) / 4));
    const my = Math.min(margin, Math.max(0, (bottom - top) / 4));
    return { left: left + mx, top: top + my, right: right - mx, bottom: bottom - my };
  }

  /**
   * The card's top-left corner, in the coordinates of `point` and `bounds` (the
   * viewport's): to the right of the point, else to its left, else below, else above,
   * the first that fits in `bounds` without covering the point, centred on the point
   * along the other axis as far as the bounds allow. When none fits, the card is kept
   * within the bounds (as much of it as they can hold, from its top-left corner) and may
   * cover the point.
   * @param {{x: number, y: number}} point  the click
   * @param {{width: number, height: number}} size  the card's size
   * @param {{left: number, top: number, right: number, bottom: number}} bounds
   * @returns {{left: number, top: number, side: 'right' | 'left' | 'below' | 'above' | 'over'}}
   */
  function placeCard(point, size, bounds, gap = GAP) {
    const { width, height } = size;
    const centredTop = clamp(point.y - height / 2, bounds.top, bounds.bottom - height);
    const centredLeft = clamp(point.x - width / 2, bounds.left, bounds.right - width);
    const fitsAcross = width <= bounds.right - bounds.left;
    const fitsDown = height <= bounds.bottom - bounds.top;
    const candidates = [
      { side: 'right', left: point.x + gap, top: centredTop, ok: fitsDown && point.x + gap + width <= bounds.right },
      { side: 'left', left: point.x - gap - width, top: centredTop, ok: fitsDown && point.x - gap - width >= bounds.left },
      { side: 'below', left: centredLeft, top: point.y + gap, ok: fitsAcross && point.y + gap + height <= bounds.bottom },
      { side: 'above', left: centredLeft, top: point.y - gap - height, ok: fitsAcross && point.y - gap - height >= bounds.top },
    ];
    const fit = candidates.find((c) => c.ok);
    if (fit) return { left: fit.left, top: fit.top, side: fit.side };
    return {
      left: clamp(point.x + gap, bounds.left, bounds.right - width),
      top: centredTop,
      side: 'over',
    };
  }

  /**
   * Where a click made at `point` on an element of size `then` is on the same element
   * now that it has size `now` (fullscreen, theatre mode, a resized window): at the
   * same fraction of each side.
   */
  function scalePoint(point, then, now) {
    const fx = then.width > 0 ? point.x / then.width : 0;
    const fy = then.height > 0 ? point.y / then.height : 0;
    return { x: fx * now.width, y: fy * now.height };
  }

  /** `value` within [min, max]; `min` when the range is empty (the top-left wins). */
  function clamp(value, min, max) {
    return Math.max(min, Math.min(value, max));
  }

  globalThis.framecartCardLayout = Object.freeze({ GAP, MARGIN, cardBounds, placeCard, scalePoint });
})();
