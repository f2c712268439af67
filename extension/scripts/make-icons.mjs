// Draws the extension's icons (icons/icon-N.png) with no image library: a rounded
// square in Framecart's colour, a white play triangle, and a ring where a click lands.
// Run `node scripts/make-icons.mjs` after changing the drawing; the PNGs are committed.

import { writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';

const SIZES = [16, 32, 48, 128];
const ACCENT = [194, 24, 91];
const SAMPLES = 4; // supersampling per axis, for smooth edges

/** Coverage of each shape at a point in the unit square: [background, white]. */
function paint(x, y) {
  const r = 0.2; // corner radius
  const dx = Math.max(r - x, 0, x - (1 - r));
  const dy = Math.max(r - y, 0, y - (1 - r));
  const inSquare = dx * dx + dy * dy <= r * r;
  // Play triangle, pointing right.
  const inTriangle = x >= 0.3 && x <= 0.72 && Math.abs(y - 0.5) <= (0.72 - x) * 0.62;
  // Click ring at the lower right.
  const d = Math.hypot(x - 0.74, y - 0.74);
  const inRing = d <= 0.15 && d >= 0.09;
  return { inSquare, white: inSquare && (inTriangle || inRing) };
}

function pixels(size) {
  const data = Buffer.alloc(size * size * 4);
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      let square = 0;
      let white = 0;
      for (let sy = 0; sy < SAMPLES; sy++) {
        for (let sx = 0; sx < SAMPLES; sx++) {
          const p = paint((px + (sx + 0.5) / SAMPLES) / size, (py + (sy + 0.5) / SAMPLES) / size);
          if (p.inSquare) square++;
          if (p.white) white++;
        }
      }
      const n = SAMPLES * SAMPLES;
      const w = square ? white / square : 0;
      const i = (py * size + px) * 4;
      for (let c = 0; c < 3; c++) data[i + c] = Math.round(ACCENT[c] * (1 - w) + 255 * w);
      data[i + 3] = Math.round((255 * square) / n);
    }
  }
  return data;
}

function png(size, rgba) {
  const rows = Buffer.alloc((size * 4 + 1) * size);
  for (let y = 0; y < size; y++) rgba.copy(rows, y * (size * 4 + 1) + 1, y * size * 4, (y + 1) * size * 4);
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 6, 0, 0, 0], 8); // 8-bit RGBA, no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(rows, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

function crc32(bytes) {
  let crc = ~0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}

const dir = new URL('../icons/', import.meta.url);
for (const size of SIZES) writeFileSync(new URL(`icon-${size}.png`, dir), png(size, pixels(size)));
