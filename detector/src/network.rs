//! The darknet network as a burn model, built layer by layer from a parsed cfg and its
//! (batch-norm folded) weights: on the `flex` CPU backend with the detector's own
//! convolution, or on a GPU device with burn's.
//!
//! `forward` takes a batch of network-sized images and returns the raw output of every
//! `[yolo]` head, `[batch, anchors * (5 + classes), h, w]`; decoding the boxes is
//! `yolo.rs`'s job.

use burn::tensor::module::{conv2d, interpolate, max_pool2d};
use burn::tensor::ops::{ConvOptions, InterpolateMode, InterpolateOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData, activation, s};

use crate::DetectorError;
use crate::cfg::{Activation, LayerKind, NetworkCfg};
use crate::weights::Weights;

mod gemm_conv;
use gemm_conv::GemmConv;

/// One runnable layer.
#[derive(Debug)]
#[allow(clippy::large_enum_variant, reason = "one per layer of the cfg, built once; burn's tensors make `Conv` large")]
enum Op {
    /// burn's convolution: on a GPU, and the grouped ones, which the detector's own does
    /// not run.
    Conv {
        weight: Tensor<4>,
        bias: Tensor<1>,
        options: ConvOptions<2>,
        activation: Activation,
    },
    /// The detector's own convolution (tiled im2col and gemm, bias and activation fused).
    GemmConv(GemmConv),
    MaxPool {
        options: MaxPoolOptions<2>,
    },
    /// Non-overlapping `size` x `size` windows that tile the input exactly: the maximum of
    /// strided views, ten times faster in flex than its general max pooling.
    TiledMaxPool {
        size: usize,
    },
    Route {
        layers: Vec<usize>,
        groups: usize,
        group_id: usize,
    },
    Upsample {
        stride: usize,
    },
    Shortcut {
        from: usize,
        activation: Activation,
    },
    /// A detection head: its input is one of the network's outputs.
    Yolo,
}

/// One head's raw output: the values and their shape `[batch, channels, h, w]`.
pub type HeadOutput = (Vec<f32>, [usize; 4]);

/// The network, ready to run.
#[derive(Debug)]
pub struct Network {
    ops: Vec<Op>,
    /// For each layer, the last layer that reads its output (itself when none does), so
    /// intermediate tensors are dropped as soon as they are no longer needed.
    last_use: Vec<usize>,
    device: Device,
    /// `[channels, height, width]` of the input.
    input: [usize; 3],
}

impl Network {
    /// Builds the network from a cfg and weights read for that cfg, on `device`. With
    /// `own_conv` (CPU only), convolutions without groups run the detector's own kernel.
    pub fn new(cfg: &NetworkCfg, weights: Weights, device: Device, own_conv: bool) -> Result<Self, DetectorError> {
        let mut ops = Vec::with_capacity(cfg.layers.len());
        for (index, (layer, params)) in cfg.layers.iter().zip(weights.layers).enumerate() {
            let op = match &layer.kind {
                LayerKind::Convolutional(c) => {
                    let params =
                        params.ok_or_else(|| DetectorError::Internal("a convolution lost its weights".into()))?;
                    if own_conv && c.groups == 1 {
                        Op::GemmConv(GemmConv::new(
                            params.weight,
                            params.bias,
                            input_shape(cfg, index),
                            layer.output,
                            c.size,
                            c.stride,
                            c.padding,
                            c.activation,
                        ))
                    } else {
                        let shape = [c.filters, c.in_channels / c.groups, c.size, c.size];
                        Op::Conv {
                            weight: Tensor::from_data(TensorData::new(params.weight, shape), &device),
                            bias: Tensor::from_data(TensorData::new(params.bias, [c.filters]), &device),
                            options: ConvOptions::new([c.stride; 2], [c.padding; 2], [1; 2], c.groups),
                            activation: c.activation,
                        }
                    }
                }
                LayerKind::MaxPool(m) => {
                    let [_, in_h, in_w] = input_shape(cfg, index);
                    // Darknet starts windows padding/2 before the input and pads the end as far
                    // as the last window reaches.
                    let begin = m.padding / 2;
                    let [_, out_h, out_w] = layer.output;
                    let end = |inp: usize, out: usize| ((out - 1) * m.stride + m.size).saturating_sub(inp + begin);
                    let tiles = m.size == m.stride && begin == 0 && in_h % m.size == 0 && in_w % m.size == 0;
                    if tiles {
                        Op::TiledMaxPool { size: m.size }
                    } else {
                        let mut options = MaxPoolOptions::new([m.size; 2]);
                        options.stride = [m.stride; 2];
                        options.padding = [(begin, end(in_h, out_h)), (begin, end(in_w, out_w))];
                        Op::MaxPool { options }
                    }
                }
                LayerKind::Route(r) => Op::Route { layers: r.layers.clone(), groups: r.groups, group_id: r.group_id },
                LayerKind::Upsample { stride } => Op::Upsample { stride: *stride },
                LayerKind::Shortcut { from, activation } => Op::Shortcut { from: *from, activation: *activation },
                LayerKind::Yolo(_) => Op::Yolo,
            };
            ops.push(op);
        }
        let mut last_use: Vec<usize> = (0..ops.len()).collect();
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Route { layers, .. } => layers.iter().for_each(|&l| last_use[l] = last_use[l].max(i)),
                Op::Shortcut { from, .. } => last_use[*from] = last_use[*from].max(i),
                _ => {}
            }
            if i > 0 {
                last_use[i - 1] = last_use[i - 1].max(i);
            }
        }
        Ok(Self { ops, last_use, device, input: [cfg.channels, cfg.height, cfg.width] })
    }

    /// `[channels, height, width]` the network takes.
    pub fn input_shape(&self) -> [usize; 3] {
        self.input
    }

    /// Runs a batch. `input` holds `batch` images of `input_shape()`, planar (CHW), in
    /// [0, 1]. Returns one `(data, [batch, channels, h, w])` per `[yolo]` head, in cfg order.
    pub fn forward(&self, input: Vec<f32>, batch: usize) -> Result<Vec<HeadOutput>, DetectorError> {
        let [c, h, w] = self.input;
        if input.len() != batch * c * h * w {
            return Err(DetectorError::Internal(format!(
                "network input has {} values, expected {batch}x{c}x{h}x{w}",
                input.len()
            )));
        }
        let x: Tensor<4> = Tensor::from_data(TensorData::new(input, [batch, c, h, w]), &self.device);
        let mut outputs: Vec<Option<Tensor<4>>> = Vec::with_capacity(self.ops.len());
        let mut heads = Vec::new();
        let mut current = x;
        for (i, op) in self.ops.iter().enumerate() {
            let prev = current;
            let out = match op {
                Op::Conv { weight, bias, options, activation } => {
                    let y = conv2d(prev, weight.clone(), Some(bias.clone()), options.clone());
                    activate(y, *activation)
                }
                Op::GemmConv(conv) => {
                    let batch = prev.dims()[0];
                    let data = prev
                        .into_data()
                        .try_into_vec::<f32>()
                        .map_err(|e| DetectorError::Internal(format!("a convolution's input: {e:?}")))?;
                    let [filters, h, w] = conv.out_shape;
                    Tensor::from_data(TensorData::new(conv.forward(&data, batch), [batch, filters, h, w]), &self.device)
                }
                Op::MaxPool { options } => max_pool2d(prev, options.clone()),
                Op::TiledMaxPool { size } => tiled_max_pool(prev, *size),
                Op::Route { layers, groups, group_id } => {
                    let parts: Vec<Tensor<4>> = layers
                        .iter()
                        .map(|&l| {
                            let t = if l + 1 == i { prev.clone() } else { taken(&outputs, l)? };
                            Ok(if *groups == 1 {
                                t
                            } else {
                                let part = t.dims()[1] / groups;
                                t.narrow(1, part * group_id, part)
                            })
                        })
                        .collect::<Result<_, DetectorError>>()?;
                    if parts.len() == 1 {
                        parts.into_iter().next().ok_or_else(|| DetectorError::Internal("empty route".into()))?
                    } else {
                        Tensor::cat(parts, 1)
                    }
                }
                Op::Upsample { stride } => {
                    let [_, _, ih, iw] = prev.dims();
                    let mut options = InterpolateOptions::new(InterpolateMode::Nearest);
                    options.output_size = Some([ih * stride, iw * stride]);
                    interpolate(prev, options)
                }
                Op::Shortcut { from, activation } => {
                    let other = if from + 1 == i { prev.clone() } else { taken(&outputs, *from)? };
                    activate(prev + other, *activation)
                }
                Op::Yolo => {
                    heads.push(prev.clone());
                    prev
                }
            };
            // Keep an output only while a later layer still reads it.
            outputs.push((self.last_use[i] > i + 1).then(|| out.clone()));
            for (j, slot) in outputs.iter_mut().enumerate().take(i) {
                if self.last_use[j] <= i {
                    *slot = None;
                }
            }
            current = out;
        }
        drop(current);
        heads
            .into_iter()
            .map(|t| {
                let dims = t.dims();
                let data = t
                    .into_data()
                    .try_into_vec::<f32>()
                    .map_err(|e| DetectorError::Internal(format!("reading a yolo head: {e:?}")))?;
                Ok((data, dims))
            })
            .collect()
    }
}

fn taken(outputs: &[Option<Tensor<4>>], layer: usize) -> Result<Tensor<4>, DetectorError> {
    outputs
        .get(layer)
        .and_then(Clone::clone)
        .ok_or_else(|| DetectorError::Internal(format!("the output of layer {layer} was dropped too early")))
}

/// Max over `size` x `size` tiles: first across rows, then across columns, each over
/// strided views of the input.
fn tiled_max_pool(x: Tensor<4>, size: usize) -> Tensor<4> {
    let rows = (1..size)
        .fold(x.clone().slice(s![.., .., 0..;size, ..]), |acc, i| max(acc, x.clone().slice(s![.., .., i..;size, ..])));
    (1..size).fold(rows.clone().slice(s![.., .., .., 0..;size]), |acc, i| {
        max(acc, rows.clone().slice(s![.., .., .., i..;size]))
    })
}

/// Element-wise maximum as `relu(a - b) + b`: branch-free, where burn's `max_pair` (a
/// comparison and a masked select) mispredicts on real activations and runs nine times
/// slower. Equal to `max(a, b)` up to one rounding of the larger value.
fn max(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    activation::relu(a - b.clone()) + b
}

fn activate(x: Tensor<4>, a: Activation) -> Tensor<4> {
    match a {
        Activation::Linear => x,
        Activation::Leaky => activation::leaky_relu(x, 0.1),
        Activation::Relu => activation::relu(x),
        Activation::Logistic => activation::sigmoid(x),
        Activation::Mish => activation::mish(x),
        Activation::Swish => activation::silu(x),
    }
}

fn input_shape(cfg: &NetworkCfg, index: usize) -> [usize; 3] {
    if index == 0 { [cfg.channels, cfg.height, cfg.width] } else { cfg.layers[index - 1].output }
}

#[cfg(test)]
mod tests;
