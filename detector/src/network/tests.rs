use super::*;
use crate::weights::ConvParams;
use std::path::Path;

fn network(cfg: &str, convs: Vec<ConvParams>) -> (NetworkCfg, Network) {
    let cfg = NetworkCfg::parse(cfg, Path::new("test.cfg")).expect("valid cfg");
    let mut convs = convs.into_iter();
    let layers = cfg
        .layers
        .iter()
        .map(|l| matches!(l.kind, LayerKind::Convolutional(_)).then(|| convs.next().expect("enough convolutions")))
        .collect();
    let net =
        Network::new(&cfg, Weights { layers, sha256: String::new() }, Device::flex(), true).expect("network builds");
    (cfg, net)
}

/// The single head's output for `input`, as `[channel][y][x]`.
fn run(net: &Network, input: Vec<f32>) -> Vec<Vec<Vec<f32>>> {
    let heads = net.forward(input, 1).expect("forward runs");
    assert_eq!(heads.len(), 1);
    let (data, [_, c, h, w]) = &heads[0];
    (0..*c).map(|ch| (0..*h).map(|y| data[(ch * h + y) * w..(ch * h + y + 1) * w].to_vec()).collect()).collect()
}

#[test]
fn routes_split_and_concatenate_channels_and_pooling_and_upsampling_move_pixels() {
    // Input: 2 channels of 4x4. An identity 1x1 convolution, the second half of its
    // channels, a 2x2 max pool, a 2x upsample, then [upsampled, conv output] → 3 channels,
    // and a 1x1 convolution that copies channel k % 3 into head channel k.
    let cfg = "
[net]
width=4
height=4
channels=2
[convolutional]
filters=2
size=1
[route]
layers=-1
groups=2
group_id=1
[maxpool]
size=2
stride=2
[upsample]
stride=2
[route]
layers=-1,0
[convolutional]
filters=6
size=1
[yolo]
mask=0
anchors=1,1
classes=1
num=1
";
    let identity = ConvParams { weight: vec![1.0, 0.0, 0.0, 1.0], bias: vec![0.0; 2] };
    let pick = ConvParams {
        weight: (0..6).flat_map(|k| (0..3).map(move |c| if c == k % 3 { 1.0 } else { 0.0 })).collect(),
        bias: vec![0.0; 6],
    };
    let (_, net) = network(cfg, vec![identity, pick]);
    let ch0: Vec<f32> = (0..16).map(|v| v as f32).collect();
    let ch1: Vec<f32> = (0..16).map(|v| (v * 7 % 16) as f32).collect();
    let out = run(&net, [ch0.clone(), ch1.clone()].concat());
    let rows = |v: &[f32]| v.chunks(4).map(<[f32]>::to_vec).collect::<Vec<_>>();
    // Max over each 2x2 block of channel 1, repeated over the block.
    let pooled: Vec<Vec<f32>> = (0..4)
        .map(|y| {
            (0..4)
                .map(|x| {
                    let (by, bx) = (y / 2 * 2, x / 2 * 2);
                    [ch1[by * 4 + bx], ch1[by * 4 + bx + 1], ch1[(by + 1) * 4 + bx], ch1[(by + 1) * 4 + bx + 1]]
                        .into_iter()
                        .fold(f32::MIN, f32::max)
                })
                .collect()
        })
        .collect();
    assert_eq!(out[0], pooled);
    assert_eq!(out[1], rows(&ch0));
    assert_eq!(out[2], rows(&ch1));
    assert_eq!(out[3], pooled);
}

#[test]
fn three_by_three_convolutions_pad_with_zeros_and_apply_leaky() {
    // Both ways to run a convolution: small outputs go through one matrix product.
    let cfg = "
[net]
width=3
height=3
channels=2
[convolutional]
filters=6
size=3
pad=1
activation=leaky
[yolo]
mask=0
anchors=1,1
classes=1
num=1
";
    // Filter f, channel c, tap (ky, kx): (f + 1) * (9 c + 3 ky + kx + 1), so that a
    // transposed or shifted kernel shows; filter 0 has bias -100 so that some outputs go
    // negative. The input's second channel is negative.
    let params = || ConvParams {
        weight: (0..6).flat_map(|f| (0..18).map(move |t| ((f + 1) * (t + 1)) as f32)).collect(),
        bias: vec![-100.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    };
    let (cfg_parsed, net) = network(cfg, vec![params()]);
    assert!(matches!(net.ops[0], Op::GemmConv(_)));
    let input: Vec<f32> = (1..=9).chain((1..=9).map(|v| -2 * v)).map(|v| v as f32).collect();
    let out = run(&net, input.clone());
    for (f, plane) in out.iter().enumerate() {
        for (y, row) in plane.iter().enumerate() {
            for (x, &got) in row.iter().enumerate() {
                let mut v = if f == 0 { -100.0 } else { 0.0 };
                for c in 0..2 {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (iy, ix) = (y + ky, x + kx);
                            if (1..=3).contains(&iy) && (1..=3).contains(&ix) {
                                let w = ((f + 1) * (c * 9 + ky * 3 + kx + 1)) as f32;
                                v += w * input[c * 9 + (iy - 1) * 3 + ix - 1];
                            }
                        }
                    }
                }
                let expected = if v >= 0.0 { v } else { 0.1 * v };
                assert!((got - expected).abs() < 1e-3, "filter {f} at ({x},{y}): {got} != {expected}");
            }
        }
    }
    assert!(out[0].iter().flatten().any(|&v| v < 0.0), "leaky was exercised");
    // burn's own convolution gives the same.
    let direct =
        Network::new(&cfg_parsed, Weights { layers: vec![None, None], sha256: String::new() }, Device::flex(), true);
    assert!(direct.is_err(), "a convolution without weights is refused");
    // (As on a GPU: every convolution burn's.)
    let weights = Weights { layers: vec![Some(params()), None], sha256: String::new() };
    let direct = Network::new(&cfg_parsed, weights, Device::flex(), false).expect("builds");
    assert!(matches!(direct.ops[0], Op::Conv { .. }));
    let direct_out = run(&direct, input);
    for (a, b) in direct_out.iter().flatten().flatten().zip(out.iter().flatten().flatten()) {
        assert!((a - b).abs() < 1e-3, "{a} != {b}");
    }
}

#[test]
fn the_own_convolution_equals_burns_on_tiled_strided_and_pointwise_layers() {
    // Each path: im2col in two tiles (a stride of 2 with padding), Winograd (odd height,
    // a cut block at the bottom edge), a 1x1 product; leaky, linear and logistic.
    let cfg = "
[net]
width=75
height=61
channels=40
[convolutional]
filters=32
size=3
stride=2
pad=1
activation=leaky
[convolutional]
filters=16
size=3
stride=1
pad=1
activation=linear
[convolutional]
filters=6
size=1
stride=1
pad=0
activation=logistic
[yolo]
mask=0
anchors=1,1
classes=1
num=1
";
    // The first layer's columns (40 x 9 values per pixel) take two tiles.
    let sizes = [(32, 40 * 9), (16, 32 * 9), (6, 16)];
    let params: Vec<ConvParams> = sizes
        .iter()
        .enumerate()
        .map(|(l, &(filters, k))| ConvParams {
            // Deterministic values of both signs, different per layer, filter and tap.
            weight: (0..filters * k).map(|i| (((i * 7 + l * 13) % 23) as f32 - 11.0) / 37.0).collect(),
            bias: (0..filters).map(|f| (f as f32 - 2.0) / 5.0).collect(),
        })
        .collect();
    let (parsed, own) = network(cfg, params.clone());
    let paths: Vec<(usize, bool)> = own
        .ops
        .iter()
        .filter_map(|op| if let Op::GemmConv(c) = op { Some((c.size, c.winograd.is_some())) } else { None })
        .collect();
    assert_eq!(paths, [(3, false), (3, true), (1, false)]);
    let burn = Network::new(
        &parsed,
        Weights { layers: params.into_iter().map(Some).chain([None]).collect(), sha256: String::new() },
        Device::flex(),
        false,
    )
    .expect("builds");
    let input: Vec<f32> = (0..40 * 61 * 75).map(|i| ((i * 31 % 97) as f32) / 97.0).collect();
    // Two images in one batch: the second must not see the first.
    let mut batch = input.clone();
    batch.extend(input.iter().map(|v| 1.0 - v));
    let (a, b) = (own.forward(batch.clone(), 2).expect("runs"), burn.forward(batch, 2).expect("runs"));
    let ((a, shape), (b, _)) = (&a[0], &b[0]);
    assert_eq!(shape, &[2, 6, 31, 38]);
    let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "largest difference {worst}");
    assert!(a[..a.len() / 2] != a[a.len() / 2..], "the two images differ");
}

#[test]
fn an_overlapping_max_pool_treats_the_outside_as_minus_infinity() {
    // yolov3-tiny's size=2 stride=1 pool keeps the size; the window reaches one pixel past
    // the right and bottom edges.
    let cfg = "
[net]
width=3
height=3
channels=6
[maxpool]
size=2
stride=1
[yolo]
mask=0
anchors=1,1
classes=1
num=1
";
    let (_, net) = network(cfg, vec![]);
    let input: Vec<f32> = (0..6).flat_map(|_| [-1.0, -5.0, -3.0, -4.0, -2.0, -6.0, -9.0, -8.0, -7.0]).collect();
    let out = run(&net, input);
    assert_eq!(out[0], vec![vec![-1.0, -2.0, -3.0], vec![-2.0, -2.0, -6.0], vec![-8.0, -7.0, -7.0]]);
}
