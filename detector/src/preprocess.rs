//! Frame to network input: a plain (not letterboxed) bilinear resize of the whole RGB frame
//! to the network's size, then planar f32 in [0, 1].
//!
//! The resize reproduces OpenCV's `INTER_LINEAR` on 8-bit images, which the reference
//! (`cv2.dnn_DetectionModel`, via `blobFromImage`) uses: half-pixel centres, no
//! antialiasing, edge pixels repeated, 11-bit fixed-point weights, and the rounding of
//! OpenCV's vectorised vertical pass. Other resizers (ffmpeg's scalers) moved confidences
//! by up to 0.09 against the reference; this one is meant to agree to the last bit.

/// Fixed-point weights are scaled by 2^11, as `INTER_RESIZE_COEF_BITS` in OpenCV.
const COEF_BITS: u32 = 11;
const COEF_SCALE: f32 = (1 << COEF_BITS) as f32;

/// Source positions and weights for one axis of a resize.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AxisPlan {
    /// The two source pixels each destination pixel reads (the second is the next one,
    /// both clamped to the edge).
    offsets: Vec<[usize; 2]>,
    /// The two weights, summing to 2^11.
    weights: Vec<[i32; 2]>,
}

impl AxisPlan {
    /// `clamp_weights`: OpenCV moves the whole weight onto the edge pixel for columns that
    /// fall outside the source, but for rows it only clamps the row index and keeps the
    /// weights, which rounds differently; both are reproduced.
    fn new(src: usize, dst: usize, clamp_weights: bool) -> Self {
        let scale = src as f64 / dst as f64;
        let last = src as i64 - 1;
        let mut offsets = Vec::with_capacity(dst);
        let mut weights = Vec::with_capacity(dst);
        for d in 0..dst {
            // OpenCV computes the position in double and rounds it to float.
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let s = f.floor() as i64;
            let mut frac = f - s as f32;
            if clamp_weights && (s < 0 || s >= last) {
                frac = 0.0;
            }
            offsets.push([s.clamp(0, last) as usize, (s + 1).clamp(0, last) as usize]);
            weights.push([round_half_even((1.0 - frac) * COEF_SCALE), round_half_even(frac * COEF_SCALE)]);
        }
        Self { offsets, weights }
    }
}

/// `cvRound`: to nearest, ties to even.
fn round_half_even(x: f32) -> i32 {
    x.round_ties_even() as i32
}

/// A resize from one frame size to the network's, computed once per frame size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resizer {
    src: [usize; 2],
    dst: [usize; 2],
    x: AxisPlan,
    y: AxisPlan,
}

impl Resizer {
    /// A resize of `src_w` x `src_h` RGB frames to `dst_w` x `dst_h`.
    pub fn new(src_w: usize, src_h: usize, dst_w: usize, dst_h: usize) -> Self {
        Self {
            src: [src_w, src_h],
            dst: [dst_w, dst_h],
            x: AxisPlan::new(src_w, dst_w, true),
            y: AxisPlan::new(src_h, dst_h, false),
        }
    }

    /// The source size `[width, height]` this resizer was made for.
    pub fn source_size(&self) -> [usize; 2] {
        self.src
    }

    /// Resizes interleaved RGB `rgb` (`src_w * src_h * 3` bytes) into interleaved RGB
    /// `out` (`dst_w * dst_h * 3` bytes).
    pub fn resize_rgb(&self, rgb: &[u8], out: &mut [u8]) {
        let [sw, sh] = self.src;
        let [dw, dh] = self.dst;
        debug_assert_eq!(rgb.len(), sw * sh * 3);
        debug_assert_eq!(out.len(), dw * dh * 3);
        if [sw, sh] == [dw, dh] {
            out.copy_from_slice(rgb);
            return;
        }
        // Horizontally resized rows, as OpenCV's `HResizeLinear`, cached by source row.
        let mut rows: [(usize, Vec<i32>); 2] = [(usize::MAX, vec![0; dw * 3]), (usize::MAX, vec![0; dw * 3])];
        for (dy, out_row) in out.chunks_exact_mut(dw * 3).enumerate() {
            let [sy0, sy1] = self.y.offsets[dy];
            for (slot, sy) in [sy0, sy1].into_iter().enumerate() {
                if rows[slot].0 == sy {
                    continue;
                }
                let other = 1 - slot;
                if rows[other].0 == sy {
                    let copy = rows[other].1.clone();
                    rows[slot] = (sy, copy);
                    continue;
                }
                let src_row = &rgb[sy * sw * 3..(sy + 1) * sw * 3];
                self.hresize(src_row, &mut rows[slot].1);
                rows[slot].0 = sy;
            }
            let [b0, b1] = self.y.weights[dy];
            let (r0, r1) = (&rows[0].1, &rows[1].1);
            for ((o, &a), &b) in out_row.iter_mut().zip(r0).zip(r1) {
                *o = vertical(a, b, b0, b1);
            }
        }
    }

    fn hresize(&self, src_row: &[u8], out: &mut [i32]) {
        for (dx, px) in out.chunks_exact_mut(3).enumerate() {
            let [sx0, sx1] = self.x.offsets[dx];
            let [a0, a1] = self.x.weights[dx];
            for c in 0..3 {
                px[c] = i32::from(src_row[sx0 * 3 + c]) * a0 + i32::from(src_row[sx1 * 3 + c]) * a1;
            }
        }
    }

    /// Resizes interleaved RGB and writes planar (`[3, dst_h, dst_w]`) values scaled to
    /// [0, 1] into `out`; `scratch` is reused between calls.
    pub fn to_input(&self, rgb: &[u8], scratch: &mut Vec<u8>, out: &mut [f32]) {
        let [dw, dh] = self.dst;
        scratch.resize(dw * dh * 3, 0);
        self.resize_rgb(rgb, scratch);
        let plane = dw * dh;
        debug_assert_eq!(out.len(), 3 * plane);
        let (r, rest) = out.split_at_mut(plane);
        let (g, b) = rest.split_at_mut(plane);
        for (i, px) in scratch.chunks_exact(3).enumerate() {
            r[i] = f32::from(px[0]) * (1.0 / 255.0);
            g[i] = f32::from(px[1]) * (1.0 / 255.0);
            b[i] = f32::from(px[2]) * (1.0 / 255.0);
        }
    }
}

/// OpenCV's vectorised vertical pass (`VResizeLinearVec_32s8u`): the 2^22-scaled sum is
/// formed from 16-bit high products, then rounded and saturated to a byte.
fn vertical(a: i32, b: i32, b0: i32, b1: i32) -> u8 {
    let hi = |v: i32, w: i32| ((v >> 4) * w) >> 16;
    ((hi(a, b0) + hi(b, b1) + 2) >> 2).clamp(0, 255) as u8
}

#[cfg(test)]
mod tests;
