//! The detector's own convolution: Winograd F(2×2, 3×3) for the 3×3 stride-1 layers, else
//! im2col in cache-sized tiles straight into a reused buffer, one `gemm` per tile writing
//! into the NCHW output; then bias and activation in one pass. burn flex's convolution
//! converts to NHWC, allocates each tile's product and copies it back, and applies the bias
//! and the activation as separate passes over the whole output; on YOLOv4-tiny those copies
//! were about a quarter of the time (see the detector README).
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
    /// The kernels transformed for Winograd, for the layers it runs.
    pub winograd: Option<Winograd>,
}

impl GemmConv {
    #[allow(clippy::too_many_arguments, reason = "a layer's parameters, each named at the one call")]
    pub fn new(
        weight: Vec<f32>,
        bias: Vec<f32>,
        in_shape: [usize; 3],
        out_shape: [usize; 3],
        size: usize,
        stride: usize,
        padding: usize,
        activation: Activation,
    ) -> Self {
        let winograd = Winograd::fits(size, stride, padding, in_shape, out_shape)
            .then(|| Winograd::new(&weight, out_shape[0], in_shape[0]));
        Self { weight, bias, in_shape, out_shape, size, stride, padding, activation, winograd }
    }

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
        // One product split between the pool's threads (the 1x1 and the small layers).
        let threads = rayon::current_num_threads();
        let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
        if let Some(winograd) = &self.winograd {
            self.winograd(winograd, input, output);
        } else if direct {
            // A 1x1 convolution is the product itself: the input is the column matrix.
            product(&self.weight, f, k, input, pixels, 0, pixels, output, pixels, parallelism);
        } else if pixels <= ONE_TILE_MAX_OUTPUT {
            let mut columns = vec![0.0f32; k * pixels];
            self.im2col(input, 0, pixels, &mut columns);
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
                    let weight = Operand { values: &self.weight, rows: f, stride: k };
                    let columns = Operand { values: columns, rows: k, stride: n };
                    // SAFETY: each tile writes only its own columns `start..start + n` of
                    // the output's rows, which no other tile touches.
                    unsafe { product_into(weight, columns, n, out, start, pixels, gemm::Parallelism::None) };
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

/// The output as raw parts, for tiles that each write their own columns: no `&mut` to
/// the whole output exists while they run.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32, usize);
// SAFETY: the tiles write disjoint columns, and the output outlives the parallel loop.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

/// A row-major matrix operand: `rows` rows of which each starts `stride` values after the
/// one before.
#[derive(Clone, Copy)]
struct Operand<'a> {
    values: &'a [f32],
    rows: usize,
    stride: usize,
}

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
    let out = SharedOut(output.as_mut_ptr(), output.len());
    let weight = Operand { values: weight, rows: m, stride: k };
    let columns = Operand { values: columns, rows: k, stride: columns_stride };
    // SAFETY: `out` comes from the `&mut` borrowed for this call, so nothing else
    // reads or writes it meanwhile.
    unsafe { product_into(weight, columns, n, out, column, out_stride, parallelism) };
}

/// `out[.., column..column + n] = weight [m, k] x columns [k, n]`, `out` having rows of
/// `out_stride` values. Every access is checked against the operands' and the output's
/// lengths first.
///
/// # Safety
/// While it runs, nothing else may access columns `column..column + n` of the output's
/// first `m` rows.
unsafe fn product_into(
    weight: Operand<'_>,
    columns: Operand<'_>,
    n: usize,
    out: SharedOut,
    column: usize,
    out_stride: usize,
    parallelism: gemm::Parallelism,
) {
    let (m, k) = (weight.rows, columns.rows);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(weight.stride >= k && weight.values.len() >= (m - 1) * weight.stride + k);
    assert!(columns.stride >= n && columns.values.len() >= (k - 1) * columns.stride + n);
    assert!(out_stride >= column + n && out.1 >= (m - 1) * out_stride + column + n);
    // SAFETY: the asserts keep every read and write in bounds; the operands are shared
    // borrows that cannot alias the output, and the caller keeps others off its part.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.0.add(column),
            1,
            out_stride as isize,
            false,
            weight.values.as_ptr(),
            1,
            weight.stride as isize,
            columns.values.as_ptr(),
            1,
            columns.stride as isize,
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

/// Winograd F(2×2, 3×3) for the 3×3, stride-1, padding-1 layers (most of YOLOv4-tiny's
/// arithmetic): each 2×2 block of outputs comes from a 4×4 block of inputs with 16
/// multiplications per channel pair instead of 36, as 16 matrix products
/// `U_ξ [filters × channels] × V_ξ [channels × blocks]` between transforms that only add.
/// Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks" (2016).
#[derive(Debug, Clone)]
pub struct Winograd {
    /// The kernels transformed (`G g Gᵀ`), `[16][filters][channels]`.
    u: Vec<f32>,
}

impl Winograd {
    /// Whether a layer's shape is one this runs.
    pub fn fits(size: usize, stride: usize, padding: usize, in_shape: [usize; 3], out_shape: [usize; 3]) -> bool {
        size == 3 && stride == 1 && padding == 1 && in_shape[1..] == out_shape[1..]
    }

    /// Transforms `[filters, channels, 3, 3]` kernels.
    pub fn new(weight: &[f32], filters: usize, channels: usize) -> Self {
        let mut u = vec![0.0f32; 16 * filters * channels];
        for f in 0..filters {
            for c in 0..channels {
                let g = &weight[(f * channels + c) * 9..(f * channels + c + 1) * 9];
                // G g: rows g0, (g0 + g1 + g2) / 2, (g0 − g1 + g2) / 2, g2.
                let mut gg = [[0.0f32; 3]; 4];
                for x in 0..3 {
                    let (a, b, d) = (g[x], g[3 + x], g[6 + x]);
                    gg[0][x] = a;
                    gg[1][x] = (a + b + d) * 0.5;
                    gg[2][x] = (a - b + d) * 0.5;
                    gg[3][x] = d;
                }
                // (G g) Gᵀ, the same on each row.
                for (i, row) in gg.iter().enumerate() {
                    let [a, b, d] = *row;
                    let t = [a, (a + b + d) * 0.5, (a - b + d) * 0.5, d];
                    for (j, v) in t.into_iter().enumerate() {
                        u[((i * 4 + j) * filters + f) * channels + c] = v;
                    }
                }
            }
        }
        Self { u }
    }
}

std::thread_local! {
    /// The transformed inputs and products of the layer a thread runs, kept between layers
    /// and frames: every value is written before it is read, so nothing is zeroed again.
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

impl GemmConv {
    /// One image through [`Winograd`], into `output` (bias and activation still to add).
    fn winograd(&self, winograd: &Winograd, input: &[f32], output: &mut [f32]) {
        let [c, h, w] = self.in_shape;
        let [f, oh, ow] = self.out_shape;
        let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
        let blocks = th * tw;
        let (mut vbuf, mut mbuf) = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        vbuf.resize(c * 16 * blocks, 0.0);
        mbuf.resize(16 * f * blocks, 0.0);
        // V = Bᵀ d B for every channel and 4×4 input block, as `[channels][16][blocks]`,
        // a row of blocks at a time so that each step runs over contiguous values: Bᵀ d
        // takes rows d0 − d2, d1 + d2, d2 − d1, d1 − d3, and the same on columns.
        // Per rayon job: one input row with the padding around it (`line[x + 1]` is column
        // x), and each of the 4 rows of a block row transformed across (`[dy][j][bx]`).
        let rows = || (vec![0.0f32; 2 * tw + 2], vec![0.0f32; 16 * tw]);
        vbuf.par_chunks_mut(16 * blocks).enumerate().for_each_init(rows, |(line, across), (ci, v)| {
            let plane = &input[ci * h * w..(ci + 1) * h * w];
            for by in 0..th {
                for dy in 0..4 {
                    let y = (2 * by + dy) as isize - 1;
                    line.fill(0.0);
                    if y >= 0 && y < h as isize {
                        let row = &plane[y as usize * w..(y as usize + 1) * w];
                        let n = w.min(line.len() - 1);
                        line[1..=n].copy_from_slice(&row[..n]);
                    }
                    let out = &mut across[dy * 4 * tw..(dy + 1) * 4 * tw];
                    let (o0, rest) = out.split_at_mut(tw);
                    let (o1, rest) = rest.split_at_mut(tw);
                    let (o2, o3) = rest.split_at_mut(tw);
                    for (bx, (((a, b), c), d)) in
                        o0.iter_mut().zip(o1.iter_mut()).zip(o2.iter_mut()).zip(o3.iter_mut()).enumerate()
                    {
                        let x = &line[2 * bx..2 * bx + 4];
                        *a = x[0] - x[2];
                        *b = x[1] + x[2];
                        *c = x[2] - x[1];
                        *d = x[1] - x[3];
                    }
                }
                let row = |dy: usize, j: usize| &across[(dy * 4 + j) * tw..(dy * 4 + j + 1) * tw];
                for j in 0..4 {
                    let (r0, r1, r2, r3) = (row(0, j), row(1, j), row(2, j), row(3, j));
                    let at = |i: usize| (i * 4 + j) * blocks + by * tw;
                    for bx in 0..tw {
                        v[at(0) + bx] = r0[bx] - r2[bx];
                        v[at(1) + bx] = r1[bx] + r2[bx];
                        v[at(2) + bx] = r2[bx] - r1[bx];
                        v[at(3) + bx] = r1[bx] - r3[bx];
                    }
                }
            }
        });
        // M_ξ = U_ξ V_ξ, the 16 products side by side.
        let u = &winograd.u;
        let v = &vbuf;
        mbuf.par_chunks_mut(f * blocks).enumerate().for_each(|(xi, m)| {
            let u = &u[xi * f * c..(xi + 1) * f * c];
            product(u, f, c, &v[xi * blocks..], blocks, 0, 16 * blocks, m, blocks, gemm::Parallelism::None);
        });
        // Y = Aᵀ M A: rows m0 + m1 + m2 and m1 − m2 − m3, the same on columns; a 2×2 block
        // of outputs, cut at the bottom and right edges of odd sizes. A row of blocks at a
        // time, over contiguous values.
        let m = &mbuf;
        // Per rayon job: the 2 rows of a block row transformed down (`[dy][j][bx]`), and one
        // output row.
        let rows = || (vec![0.0f32; 8 * tw], vec![0.0f32; 2 * tw]);
        output.par_chunks_mut(oh * ow).enumerate().for_each_init(rows, |(down, pair), (fo, plane)| {
            for by in 0..th {
                let block = |i: usize, j: usize| {
                    let at = ((i * 4 + j) * f + fo) * blocks + by * tw;
                    &m[at..at + tw]
                };
                for j in 0..4 {
                    let (m0, m1, m2, m3) = (block(0, j), block(1, j), block(2, j), block(3, j));
                    let (top, bottom) = down.split_at_mut(4 * tw);
                    let (top, bottom) = (&mut top[j * tw..(j + 1) * tw], &mut bottom[j * tw..(j + 1) * tw]);
                    for bx in 0..tw {
                        top[bx] = m0[bx] + m1[bx] + m2[bx];
                        bottom[bx] = m1[bx] - m2[bx] - m3[bx];
                    }
                }
                for dy in 0..2 {
                    let y = 2 * by + dy;
                    if y >= oh {
                        break;
                    }
                    let r = |j: usize| &down[(dy * 4 + j) * tw..(dy * 4 + j + 1) * tw];
                    let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
                    for (bx, out) in pair.chunks_exact_mut(2).enumerate() {
                        out[0] = r0[bx] + r1[bx] + r2[bx];
                        out[1] = r1[bx] - r2[bx] - r3[bx];
                    }
                    plane[y * ow..(y + 1) * ow].copy_from_slice(&pair[..ow]);
                }
            }
        });
        SCRATCH.with(|s| *s.borrow_mut() = (vbuf, mbuf));
    }
}
