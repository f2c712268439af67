//! The detector's own convolution: im2col in cache-sized tiles straight into a reused
//! buffer, one `gemm` per tile writing into the NCHW output, then bias and activation in
//! one pass. burn flex's convolution converts to NHWC, allocates each tile's product and
//! copies it back, and applies the bias and the activation as separate passes over the
//! whole output; on YOLOv4-tiny those copies were about a quarter of the time (see the
//! detector README).
//!
//! The only unsafe code of the detector: `gemm`'s entry point takes raw pointers and
//! strides, and the tiles write disjoint columns of one output.
#![allow(unsafe_code)]

use rayon::prelude::*;

use crate::cfg::Activation;

/// Values of one im2col tile: about 1 MB, the L2 cache of the machines measured.
const TILE_VALUES: usize = 256 * 1024;
/// Outputs this small run as one tile, the threads splitting the product instead.
const ONE_TILE_MAX_OUTPUT: usize = 32 * 32;

/// A convolution with `groups = 1`, its batch norm folded into `weight` and `bias`.
#[derive(Debug, Clone)]
pub struct GemmConv {
    /// `[filters, in_channels * size * size]`, row-major.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub in_shape: [usize; 3],
    pub out_shape: [usize; 3],
    pub size: usize,
    pub stride: usize,
    pub padding: usize,
    pub activation: Activation,
}

impl GemmConv {
    fn k(&self) -> usize {
        self.in_shape[0] * self.size * self.size
    }

    /// Runs the convolution over a batch of `in_shape` images (NCHW) and returns the
    /// `out_shape` outputs. Uses the current rayon pool's threads.
    pub fn forward(&self, input: &[f32], batch: usize) -> Vec<f32> {
        let [c, h, w] = self.in_shape;
        let [f, oh, ow] = self.out_shape;
        let (per_in, per_out) = (c * h * w, f * oh * ow);
        let mut output = vec![0.0f32; batch * per_out];
        for (image, out) in input.chunks_exact(per_in).zip(output.chunks_exact_mut(per_out)) {
            self.image(image, out);
        }
        output
    }

    fn image(&self, input: &[f32], output: &mut [f32]) {
        let [f, oh, ow] = self.out_shape;
        let pixels = oh * ow;
        let k = self.k();
        let direct = self.size == 1 && self.stride == 1 && self.padding == 0;
        let threads = rayon::current_num_threads();
        if direct {
            // A 1x1 convolution is the product itself: the input is the column matrix.
            let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
            product(&self.weight, f, k, input, pixels, 0, pixels, output, pixels, parallelism);
        } else if pixels <= ONE_TILE_MAX_OUTPUT {
            let mut columns = vec![0.0f32; k * pixels];
            self.im2col(input, 0, pixels, &mut columns);
            let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
            product(&self.weight, f, k, &columns, pixels, 0, pixels, output, pixels, parallelism);
        } else {
            // Tiles of output pixels side by side, each with its own buffer; every tile
            // writes its own columns of the output.
            let tile = (TILE_VALUES / k).clamp(16, pixels).next_multiple_of(16).min(pixels);
            let tiles = pixels.div_ceil(tile);
            let out = SharedOut(output.as_mut_ptr(), output.len());
            (0..tiles).into_par_iter().for_each_init(
                || vec![0.0f32; k * tile],
                |columns, t| {
                    let start = t * tile;
                    let n = tile.min(pixels - start);
                    let columns = &mut columns[..k * n];
                    self.im2col(input, start, n, columns);
                    // SAFETY: tiles cover disjoint columns `start..start + n` of every row.
                    let output = unsafe { out.slice() };
                    product(&self.weight, f, k, columns, n, start, n, output, pixels, gemm::Parallelism::None);
                },
            );
        }
        let bias = &self.bias;
        let activation = self.activation;
        output.par_chunks_mut(pixels).zip(bias.par_iter()).for_each(|(plane, &b)| finish(plane, b, activation));
    }

    /// Columns `start..start + n` of the im2col matrix `[k, pixels]`, as `[k, n]`.
    fn im2col(&self, input: &[f32], start: usize, n: usize, columns: &mut [f32]) {
        let [c, h, w] = self.in_shape;
        let [_, _, ow] = self.out_shape;
        let (size, stride, pad) = (self.size, self.stride, self.padding);
        let mut row = 0;
        for ci in 0..c {
            let plane = &input[ci * h * w..(ci + 1) * h * w];
            for ky in 0..size {
                for kx in 0..size {
                    let dst = &mut columns[row * n..(row + 1) * n];
                    let mut p = start;
                    let mut at = 0;
                    while at < n {
                        let (oy, ox0) = (p / ow, p % ow);
                        let run = (ow - ox0).min(n - at);
                        let iy = (oy * stride + ky) as isize - pad as isize;
                        let out = &mut dst[at..at + run];
                        if iy < 0 || iy >= h as isize {
                            out.fill(0.0);
                        } else {
                            let line = &plane[iy as usize * w..(iy as usize + 1) * w];
                            // Output `j` reads input column `ix0 + j * stride`: those in
                            // `lo..hi` lie inside the row, the rest in the padding.
                            let ix0 = (ox0 * stride + kx) as isize - pad as isize;
                            let lo = if ix0 >= 0 { 0 } else { ix0.unsigned_abs().div_ceil(stride) }.min(run);
                            let hi = if ix0 >= w as isize {
                                0
                            } else {
                                (w as isize - ix0).unsigned_abs().div_ceil(stride).min(run)
                            }
                            .max(lo);
                            out[..lo].fill(0.0);
                            out[hi..].fill(0.0);
                            let first = (ix0 + (lo * stride) as isize) as usize;
                            if stride == 1 {
                                out[lo..hi].copy_from_slice(&line[first..first + (hi - lo)]);
                            } else {
                                for (v, x) in out[lo..hi].iter_mut().zip(line[first..].iter().step_by(stride)) {
                                    *v = *x;
                                }
                            }
                        }
                        at += run;
                        p += run;
                    }
                    row += 1;
                }
            }
        }
    }
}

/// The output as raw parts, for tiles that each write their own columns.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32, usize);

impl SharedOut {
    /// The whole output.
    ///
    /// # Safety
    /// Callers write disjoint parts only, while the output is alive.
    unsafe fn slice(self) -> &'static mut [f32] {
        // SAFETY: see above; the pointer and length come from one live `&mut [f32]`.
        unsafe { std::slice::from_raw_parts_mut(self.0, self.1) }
    }
}
// SAFETY: the tiles write disjoint columns, and the output outlives the parallel loop.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

/// `output[.., column..column + n] = weight [m, k] x columns [k, n]` (row strides `n` for
/// the columns and `out_stride` for the output).
#[allow(clippy::too_many_arguments, reason = "a gemm call: sizes, operands and strides")]
fn product(
    weight: &[f32],
    m: usize,
    k: usize,
    columns: &[f32],
    n: usize,
    column: usize,
    columns_stride: usize,
    output: &mut [f32],
    out_stride: usize,
    parallelism: gemm::Parallelism,
) {
    assert!(weight.len() >= m * k && columns.len() >= (k - 1) * columns_stride + n);
    assert!(output.len() >= (m - 1) * out_stride + column + n);
    // SAFETY: the asserts keep every access in bounds; the operands do not overlap the
    // output.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            output.as_mut_ptr().add(column),
            1,
            out_stride as isize,
            false,
            weight.as_ptr(),
            1,
            k as isize,
            columns.as_ptr(),
            1,
            columns_stride as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Adds the bias and applies the activation to one output plane, in place.
fn finish(plane: &mut [f32], bias: f32, activation: Activation) {
    match activation {
        Activation::Linear => plane.iter_mut().for_each(|v| *v += bias),
        Activation::Leaky => plane.iter_mut().for_each(|v| {
            let x = *v + bias;
            *v = if x > 0.0 { x } else { 0.1 * x };
        }),
        Activation::Relu => plane.iter_mut().for_each(|v| *v = (*v + bias).max(0.0)),
        Activation::Logistic => plane.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-(*v + bias)).exp())),
        Activation::Mish => plane.iter_mut().for_each(|v| {
            let x = *v + bias;
            *v = x * x.exp().ln_1p().tanh();
        }),
        Activation::Swish => plane.iter_mut().for_each(|v| {
            let x = *v + bias;
            *v = x / (1.0 + (-x).exp());
        }),
    }
}
