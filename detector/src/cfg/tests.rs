use super::*;

fn parse(text: &str) -> Result<NetworkCfg, DetectorError> {
    NetworkCfg::parse(text, Path::new("test.cfg"))
}

fn err_message(text: &str) -> String {
    parse(text).expect_err("the cfg should be refused").to_string()
}

/// A small network with every layer type of YOLOv4-tiny: a channel-split route, a
/// concatenating route, a maxpool, an upsample and two yolo heads.
const TINY: &str = "
[net]
# comments and blank lines are ignored
width=32
height = 32
channels=3
learning_rate=0.001

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[route]
layers=-1
groups=2
group_id=1

[convolutional]
filters=4
size=3
stride=1
pad=1
activation=leaky

[route]
layers = -1,-3

[maxpool]
size=2
stride=2

[convolutional]
size=1
stride=1
pad=1
filters=18
activation=linear

[yolo]
mask = 1,2
anchors = 10,14,  23,27,  37,58
classes=4
num=3
scale_x_y = 1.05
jitter=.3

[route]
layers = -3

[upsample]
stride=2

[convolutional]
size=1
filters=9
activation=linear

[yolo]
mask = 0
anchors = 10,14,  23,27,  37,58
classes=4
num=3
";

#[test]
fn parses_every_yolov4_tiny_layer_type_with_shapes() {
    let cfg = parse(TINY).expect("valid cfg");
    assert_eq!((cfg.width, cfg.height, cfg.channels), (32, 32, 3));
    let shapes: Vec<[usize; 3]> = cfg.layers.iter().map(|l| l.output).collect();
    assert_eq!(
        shapes,
        vec![
            [8, 16, 16],  // conv stride 2, pad=1 → padding 1
            [4, 16, 16],  // second half of 8 channels
            [4, 16, 16],  // conv
            [12, 16, 16], // route -1 (4) + -3 (8)
            [12, 8, 8],   // maxpool
            [18, 8, 8],   // 1x1 conv
            [18, 8, 8],   // yolo
            [12, 8, 8],   // route back to the maxpool
            [12, 16, 16], // upsample
            [9, 16, 16],  // conv
            [9, 16, 16],  // yolo
        ]
    );
    match &cfg.layers[0].kind {
        LayerKind::Convolutional(c) => {
            assert_eq!((c.in_channels, c.filters, c.size, c.stride, c.padding, c.groups), (3, 8, 3, 2, 1, 1));
            assert!(c.batch_normalize);
            assert_eq!(c.activation, Activation::Leaky);
        }
        other => panic!("expected a convolution, got {other:?}"),
    }
    assert_eq!(cfg.layers[1].kind, LayerKind::Route(RouteCfg { layers: vec![0], groups: 2, group_id: 1 }));
    assert_eq!(cfg.layers[3].kind, LayerKind::Route(RouteCfg { layers: vec![2, 0], groups: 1, group_id: 0 }));
    assert_eq!(cfg.layers[4].kind, LayerKind::MaxPool(MaxPoolCfg { size: 2, stride: 2, padding: 1 }));
    assert_eq!(cfg.layers[8].kind, LayerKind::Upsample { stride: 2 });
    // A convolution without `pad` has no padding; without `activation`, it is linear.
    match &cfg.layers[9].kind {
        LayerKind::Convolutional(c) => assert_eq!((c.padding, c.activation), (0, Activation::Linear)),
        other => panic!("expected a convolution, got {other:?}"),
    }
}

#[test]
fn yolo_heads_take_the_anchors_their_mask_selects() {
    let cfg = parse(TINY).expect("valid cfg");
    let heads: Vec<(usize, &YoloCfg)> = cfg.yolo_layers().collect();
    assert_eq!(heads.len(), 2);
    assert_eq!(heads[0].0, 6);
    assert_eq!(heads[0].1.anchors, vec![(23.0, 27.0), (37.0, 58.0)]);
    assert_eq!(heads[0].1.scale_x_y, 1.05);
    assert_eq!(heads[1].1.anchors, vec![(10.0, 14.0)]);
    assert_eq!(heads[1].1.scale_x_y, 1.0);
    assert_eq!(cfg.classes(), 4);
}

#[test]
fn counts_the_parameters_a_weights_file_must_hold() {
    let cfg = parse(TINY).expect("valid cfg");
    let conv0 = 8 * 4 + 8 * 3 * 3 * 3; // biases, scales, means, variances; weights
    let conv2 = 4 + 4 * 4 * 3 * 3;
    let conv5 = 18 + 18 * 12;
    let conv9 = 9 + 9 * 12;
    assert_eq!(cfg.param_count(), conv0 + conv2 + conv5 + conv9);
}

#[test]
fn maxpool_defaults_follow_darknet() {
    let cfg = parse("[net]\nwidth=13\nheight=13\nchannels=3\n[maxpool]\nsize=2\nstride=1\n[convolutional]\nfilters=6\nsize=1\n[yolo]\nclasses=1\nanchors=1,1\n")
        .expect("valid cfg");
    // yolov3-tiny's stride-1 maxpool keeps the size: padding defaults to size - 1.
    assert_eq!(cfg.layers[0].output, [3, 13, 13]);
    assert_eq!(cfg.layers[0].kind, LayerKind::MaxPool(MaxPoolCfg { size: 2, stride: 1, padding: 1 }));
}

#[test]
fn an_unknown_layer_type_is_refused_with_its_line() {
    let msg = err_message("[net]\nwidth=8\nheight=8\nchannels=3\n\n[deconvolutional]\nfilters=3\n");
    assert!(msg.contains("test.cfg:6"), "{msg}");
    assert!(msg.contains("[deconvolutional] is not supported"), "{msg}");
}

#[test]
fn an_unsupported_activation_is_refused_with_its_line() {
    let msg = err_message("[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=3\nactivation=gelu\n");
    assert!(msg.contains("test.cfg:7"), "{msg}");
    assert!(msg.contains("activation=gelu"), "{msg}");
}

#[test]
fn a_route_to_a_later_layer_is_refused() {
    let msg = err_message("[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=3\n[route]\nlayers=5\n");
    assert!(msg.contains("not an earlier layer"), "{msg}");
}

#[test]
fn a_yolo_head_whose_input_does_not_fit_its_classes_is_refused() {
    let msg = err_message(
        "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=255\nsize=1\n[yolo]\nmask=0,1,2\nanchors=1,1,2,2,3,3\nclasses=2\nnum=3\n",
    );
    assert!(msg.contains("255 channels"), "{msg}");
    assert!(msg.contains("filters=21"), "{msg}");
}

#[test]
fn a_cfg_without_net_or_yolo_is_refused() {
    assert!(err_message("[convolutional]\nfilters=3\n").contains("expected [net]"));
    assert!(
        err_message("[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=3\n").contains("no [yolo] layer")
    );
    assert!(err_message("").contains("no sections"));
}

#[test]
fn a_malformed_line_is_refused_with_its_line() {
    let msg = err_message("[net]\nwidth=8\nheight\n");
    assert!(msg.contains("test.cfg:3"), "{msg}");
    let msg = err_message("[net]\nwidth=eight\n");
    assert!(msg.contains("width=eight"), "{msg}");
}

#[test]
fn unsupported_convolution_options_are_refused() {
    let msg = err_message("[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=3\ndilation=2\n");
    assert!(msg.contains("dilation=2 is not supported"), "{msg}");
}

#[test]
fn the_real_yolov4_tiny_cfg_shape_is_understood() {
    // The layer list of the released yolov4-tiny.cfg, as the default model uses it.
    let mut text = String::from("[net]\nwidth=416\nheight=416\nchannels=3\n");
    let conv = |f: usize, s: usize, st: usize, act: &str, bn: bool| {
        format!(
            "[convolutional]\n{}filters={f}\nsize={s}\nstride={st}\npad=1\nactivation={act}\n",
            if bn { "batch_normalize=1\n" } else { "" }
        )
    };
    let csp = |f: usize| {
        format!(
            "{}[route]\nlayers=-1\ngroups=2\ngroup_id=1\n{}{}[route]\nlayers=-1,-2\n{}[route]\nlayers=-6,-1\n[maxpool]\nsize=2\nstride=2\n",
            conv(f, 3, 1, "leaky", true),
            conv(f / 2, 3, 1, "leaky", true),
            conv(f / 2, 3, 1, "leaky", true),
            conv(f, 1, 1, "leaky", true)
        )
    };
    text += &conv(32, 3, 2, "leaky", true);
    text += &conv(64, 3, 2, "leaky", true);
    text += &csp(64);
    text += &csp(128);
    text += &csp(256);
    text += &conv(512, 3, 1, "leaky", true);
    text += &conv(256, 1, 1, "leaky", true);
    text += &conv(512, 3, 1, "leaky", true);
    text += &conv(255, 1, 1, "linear", false);
    let yolo = |mask: &str| {
        format!(
            "[yolo]\nmask={mask}\nanchors=10,14,23,27,37,58,81,82,135,169,344,319\nclasses=80\nnum=6\nscale_x_y=1.05\n"
        )
    };
    text += &yolo("3,4,5");
    text += "[route]\nlayers=-4\n";
    text += &conv(128, 1, 1, "leaky", true);
    text += "[upsample]\nstride=2\n[route]\nlayers=-1,23\n";
    text += &conv(256, 3, 1, "leaky", true);
    text += &conv(255, 1, 1, "linear", false);
    text += &yolo("1,2,3");
    let cfg = parse(&text).expect("the yolov4-tiny layout parses");
    assert_eq!(cfg.layers.len(), 38);
    let heads: Vec<[usize; 3]> = cfg.yolo_layers().map(|(i, _)| cfg.layers[i].output).collect();
    assert_eq!(heads, vec![[255, 13, 13], [255, 26, 26]]);
    // 24,251,276 bytes = 20-byte header + 6,062,814 floats.
    assert_eq!(cfg.param_count(), 6_062_814);
}
