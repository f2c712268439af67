// Where a point on a <video> element falls in the played frame. Pure (node tests it).
//
// A <video> shows its frame with `object-fit: contain`: scaled by one factor to fit the
// element and centred, so the rest of the element is a black band (letterbox above and
// below, pillarbox left and right). The server does the same computation from the raw
// numbers the extension sends; this copy lets the extension reason about a click too.

/**
 * Maps element-relative CSS pixels to frame pixels.
 *
 * @param {{x: number, y: number}} point  CSS px from the element's top-left corner
 * @param {{width: number, height: number}} element  the element's size in CSS px
 * @param {{width: number, height: number}} frame  the played frame (videoWidth/Height)
 * @returns {{x: number, y: number, u: number, v: number, scale: number, onFrame: boolean}}
 *   frame pixels (x, y), the same normalised to [0, 1) (u, v), CSS px per frame pixel,
 *   and whether the point is on the picture rather than on a band.
 */
export function elementToFrame(point, element, frame) {
  if (!(positive(element.width) && positive(element.height))) {
    throw new RangeError('element size must be positive');
  }
  if (!(positive(frame.width) && positive(frame.height))) {
    throw new RangeError('frame size must be positive');
  }
  const scale = Math.min(element.width / frame.width, element.height / frame.height);
  const offsetX = (element.width - frame.width * scale) / 2;
  const offsetY = (element.height - frame.height * scale) / 2;
  const x = (point.x - offsetX) / scale;
  const y = (point.y - offsetY) / scale;
  return {
    x,
    y,
    u: x / frame.width,
    v: y / frame.height,
    scale,
    onFrame: x >= 0 && x < frame.width && y >= 0 && y < frame.height,
  };
}

function positive(n) {
  return Number.isFinite(n) && n > 0;
}
