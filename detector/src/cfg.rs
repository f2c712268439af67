//! The darknet `.cfg` format: sections (`[convolutional]`, `[route]`, …) of `key=value`
//! lines, read into typed layers with their output shapes worked out.
//!
//! Defaults follow darknet's parser (`src/parser.c`), the owner of the format. What the
//! detector cannot run (an unknown layer type, an activation or option it does not
//! implement) is an error naming the line, never silently ignored. Training-only keys
//! (`learning_rate`, `jitter`, …) are ignored, as darknet does at inference.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::DetectorError;

/// A parsed darknet network: the input and the layers in order.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkCfg {
    /// Where the cfg came from, for error messages.
    pub path: PathBuf,
    /// Network input width in pixels (`[net] width`).
    pub width: usize,
    /// Network input height in pixels (`[net] height`).
    pub height: usize,
    /// Input channels (`[net] channels`, 3 for RGB).
    pub channels: usize,
    /// The layers, indexed as darknet indexes them (route and shortcut refer to these).
    pub layers: Vec<Layer>,
}

/// One darknet layer and the shape of its output.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// The layer itself.
    pub kind: LayerKind,
    /// The 1-based line of its `[section]` header, for error messages.
    pub line: usize,
    /// Output shape `[channels, height, width]`.
    pub output: [usize; 3],
}

/// The layer types this detector runs.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerKind {
    Convolutional(ConvCfg),
    MaxPool(MaxPoolCfg),
    Route(RouteCfg),
    /// Nearest-neighbour upsampling by an integer factor.
    Upsample {
        stride: usize,
    },
    /// Adds the output of layer `from` to the previous layer's, then applies `activation`.
    Shortcut {
        from: usize,
        activation: Activation,
    },
    Yolo(YoloCfg),
}

/// `[convolutional]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvCfg {
    pub in_channels: usize,
    pub filters: usize,
    pub size: usize,
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
    pub groups: usize,
    pub batch_normalize: bool,
    pub activation: Activation,
}

impl ConvCfg {
    /// Number of weights (not counting biases and batch-norm parameters).
    pub fn weight_count(&self) -> usize {
        self.filters * (self.in_channels / self.groups) * self.size * self.size
    }

    /// Number of f32 values this layer reads from a darknet weights file.
    pub fn param_count(&self) -> usize {
        let per_filter = if self.batch_normalize { 4 } else { 1 };
        self.filters * per_filter + self.weight_count()
    }
}

/// `[maxpool]`: windows start `padding / 2` before the input; outside the input counts
/// as minus infinity.
#[derive(Debug, Clone, PartialEq)]
pub struct MaxPoolCfg {
    pub size: usize,
    pub stride: usize,
    pub padding: usize,
}

/// `[route]`: the concatenation along channels of earlier layers' outputs; with
/// `groups = n`, only the `group_id`-th of `n` equal channel slices of each.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteCfg {
    /// Absolute layer indexes.
    pub layers: Vec<usize>,
    pub groups: usize,
    pub group_id: usize,
}

/// `[yolo]`: a detection head over the previous layer's output.
#[derive(Debug, Clone, PartialEq)]
pub struct YoloCfg {
    pub classes: usize,
    /// The anchors this head uses (`anchors` selected by `mask`), `(width, height)` in
    /// network input pixels.
    pub anchors: Vec<(f32, f32)>,
    /// Box centre scaling of YOLOv4 (`scale_x_y`), 1 when absent.
    pub scale_x_y: f32,
}

/// Activation functions after a convolution or shortcut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Linear,
    /// Leaky ReLU with slope 0.1, as darknet's `leaky`.
    Leaky,
    Relu,
    Logistic,
    Mish,
    Swish,
}

impl Activation {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "linear" => Self::Linear,
            "leaky" => Self::Leaky,
            "relu" => Self::Relu,
            "logistic" => Self::Logistic,
            "mish" => Self::Mish,
            "swish" => Self::Swish,
            _ => return None,
        })
    }
}

/// A section as written: its name, line and options.
struct Section {
    name: String,
    line: usize,
    options: HashMap<String, (String, usize)>,
}

impl NetworkCfg {
    /// Reads and parses a cfg file.
    pub fn from_file(path: &Path) -> Result<Self, DetectorError> {
        let text = std::fs::read_to_string(path).map_err(|e| DetectorError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses cfg text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, DetectorError> {
        let err = |line: usize, message: String| DetectorError::Cfg { path: path.to_path_buf(), line, message };
        let sections = split_sections(text).map_err(|(line, m)| err(line, m))?;
        let mut sections = sections.into_iter();
        let net =
            sections.next().ok_or_else(|| err(0, "the cfg has no sections; a darknet cfg starts with [net]".into()))?;
        if net.name != "net" && net.name != "network" {
            return Err(err(net.line, format!("the first section is [{}], expected [net]", net.name)));
        }
        let opts = Options { section: &net, path };
        let width = opts.usize_or("width", 0)?;
        let height = opts.usize_or("height", 0)?;
        let channels = opts.usize_or("channels", 0)?;
        if width == 0 || height == 0 || channels == 0 {
            return Err(err(net.line, "[net] needs positive width, height and channels".into()));
        }

        let mut layers: Vec<Layer> = Vec::new();
        for section in sections {
            let index = layers.len();
            let input = layers.last().map_or([channels, height, width], |l| l.output);
            let layer = parse_layer(&section, path, index, input, &layers)?;
            if layer.output.contains(&0) {
                return Err(err(
                    section.line,
                    format!("[{}] gives an empty output {:?}; the input is too small", section.name, layer.output),
                ));
            }
            layers.push(layer);
        }
        if !layers.iter().any(|l| matches!(l.kind, LayerKind::Yolo(_))) {
            return Err(err(0, "the cfg has no [yolo] layer; only darknet YOLO detectors are supported".into()));
        }
        let classes: Vec<usize> = layers
            .iter()
            .filter_map(|l| match &l.kind {
                LayerKind::Yolo(y) => Some(y.classes),
                _ => None,
            })
            .collect();
        if classes.windows(2).any(|w| w[0] != w[1]) {
            return Err(err(0, format!("the [yolo] layers disagree on the number of classes: {classes:?}")));
        }
        Ok(Self { path: path.to_path_buf(), width, height, channels, layers })
    }

    /// Number of classes the network detects.
    pub fn classes(&self) -> usize {
        self.yolo_layers().next().map_or(0, |(_, y)| y.classes)
    }

    /// The YOLO heads with their layer indexes, in order.
    pub fn yolo_layers(&self) -> impl Iterator<Item = (usize, &YoloCfg)> {
        self.layers.iter().enumerate().filter_map(|(i, l)| match &l.kind {
            LayerKind::Yolo(y) => Some((i, y)),
            _ => None,
        })
    }

    /// Number of f32 values a matching darknet weights file holds after its header.
    pub fn param_count(&self) -> usize {
        self.layers
            .iter()
            .map(|l| match &l.kind {
                LayerKind::Convolutional(c) => c.param_count(),
                _ => 0,
            })
            .sum()
    }
}

/// Splits the text into sections, keeping line numbers. Whitespace is removed everywhere,
/// as darknet does (`anchors = 10,14,  23,27` is `10,14,23,27`).
fn split_sections(text: &str) -> Result<Vec<Section>, (usize, String)> {
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or_else(|| (line_no, format!("a section header must end with ']': {raw:?}")))?;
            sections.push(Section { name: name.to_string(), line: line_no, options: HashMap::new() });
            continue;
        }
        let (key, value) =
            line.split_once('=').ok_or_else(|| (line_no, format!("expected key=value or [section], found {raw:?}")))?;
        let section =
            sections.last_mut().ok_or_else(|| (line_no, format!("{raw:?} comes before the first [section]")))?;
        section.options.insert(key.to_string(), (value.to_string(), line_no));
    }
    Ok(sections)
}

/// Typed access to a section's options with errors that name the line.
struct Options<'a> {
    section: &'a Section,
    path: &'a Path,
}

impl Options<'_> {
    fn err(&self, line: usize, message: String) -> DetectorError {
        DetectorError::Cfg { path: self.path.to_path_buf(), line, message }
    }

    fn header_err(&self, message: String) -> DetectorError {
        self.err(self.section.line, format!("[{}]: {message}", self.section.name))
    }

    fn raw(&self, key: &str) -> Option<(&str, usize)> {
        self.section.options.get(key).map(|(v, l)| (v.as_str(), *l))
    }

    fn parse<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, DetectorError> {
        match self.raw(key) {
            None => Ok(None),
            Some((v, line)) => v
                .parse()
                .map(Some)
                .map_err(|_| self.err(line, format!("{key}={v} is not a valid {}", std::any::type_name::<T>()))),
        }
    }

    fn usize_or(&self, key: &str, default: usize) -> Result<usize, DetectorError> {
        Ok(self.parse::<usize>(key)?.unwrap_or(default))
    }

    fn i64_or(&self, key: &str, default: i64) -> Result<i64, DetectorError> {
        Ok(self.parse::<i64>(key)?.unwrap_or(default))
    }

    fn f32_or(&self, key: &str, default: f32) -> Result<f32, DetectorError> {
        Ok(self.parse::<f32>(key)?.unwrap_or(default))
    }

    fn list<T: std::str::FromStr>(&self, key: &str) -> Result<Option<Vec<T>>, DetectorError> {
        let Some((v, line)) = self.raw(key) else { return Ok(None) };
        v.split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<T>().map_err(|_| self.err(line, format!("{key}: {s:?} is not a number"))))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn activation(&self) -> Result<Activation, DetectorError> {
        match self.raw("activation") {
            None => Ok(Activation::Linear),
            Some((v, line)) => Activation::parse(v).ok_or_else(|| {
                self.err(
                    line,
                    format!("activation={v} is not supported (linear, leaky, relu, logistic, mish, swish are)"),
                )
            }),
        }
    }

    /// Rejects options that change the computation in ways this detector does not implement.
    fn reject(&self, key: &str, allowed: &str) -> Result<(), DetectorError> {
        match self.raw(key) {
            Some((v, line)) if v != allowed => {
                Err(self.err(line, format!("[{}] {key}={v} is not supported", self.section.name)))
            }
            _ => Ok(()),
        }
    }
}

fn parse_layer(
    section: &Section,
    path: &Path,
    index: usize,
    input: [usize; 3],
    layers: &[Layer],
) -> Result<Layer, DetectorError> {
    let o = Options { section, path };
    let [c, h, w] = input;
    let (kind, output) = match section.name.as_str() {
        "convolutional" | "conv" => {
            for key in ["antialiasing", "flipped", "binary", "xnor", "deform"] {
                o.reject(key, "0")?;
            }
            o.reject("dilation", "1")?;
            if o.raw("share_index").is_some() {
                return Err(o.header_err("share_index is not supported".into()));
            }
            let size = o.usize_or("size", 1)?;
            let stride = o.usize_or("stride", 1)?;
            for key in ["stride_x", "stride_y"] {
                if let Some(s) = o.parse::<usize>(key)?
                    && s != stride
                {
                    return Err(o.header_err(format!("{key}={s} differs from stride={stride}; not supported")));
                }
            }
            let filters = o.usize_or("filters", 1)?;
            let groups = o.usize_or("groups", 1)?;
            let padding = if o.usize_or("pad", 0)? != 0 { size / 2 } else { o.usize_or("padding", 0)? };
            if size == 0 || stride == 0 || filters == 0 || groups == 0 {
                return Err(o.header_err("size, stride, filters and groups must be positive".into()));
            }
            if c % groups != 0 || filters % groups != 0 {
                return Err(
                    o.header_err(format!("groups={groups} does not divide {c} input channels and {filters} filters"))
                );
            }
            if h + 2 * padding < size || w + 2 * padding < size {
                return Err(o.header_err(format!("a {size}x{size} kernel does not fit the {h}x{w} input")));
            }
            let conv = ConvCfg {
                in_channels: c,
                filters,
                size,
                stride,
                padding,
                groups,
                batch_normalize: o.usize_or("batch_normalize", 0)? != 0,
                activation: o.activation()?,
            };
            let out = |x: usize| (x + 2 * padding - size) / stride + 1;
            (LayerKind::Convolutional(conv), [filters, out(h), out(w)])
        }
        "maxpool" | "max" => {
            o.reject("maxpool_depth", "0")?;
            o.reject("antialiasing", "0")?;
            let stride = o.usize_or("stride", 1)?;
            let size = o.usize_or("size", stride)?;
            if size == 0 || stride == 0 {
                return Err(o.header_err("size and stride must be positive".into()));
            }
            for key in ["stride_x", "stride_y"] {
                if let Some(s) = o.parse::<usize>(key)?
                    && s != stride
                {
                    return Err(o.header_err(format!("{key}={s} differs from stride={stride}; not supported")));
                }
            }
            let padding = o.usize_or("padding", size - 1)?;
            if h + padding < size || w + padding < size {
                return Err(o.header_err(format!("a {size}x{size} window does not fit the {h}x{w} input")));
            }
            let out = |x: usize| (x + padding - size) / stride + 1;
            (LayerKind::MaxPool(MaxPoolCfg { size, stride, padding }), [c, out(h), out(w)])
        }
        "route" => {
            let refs: Vec<i64> = o.list("layers")?.ok_or_else(|| o.header_err("needs layers=".into()))?;
            let groups = o.usize_or("groups", 1)?;
            let group_id = o.usize_or("group_id", 0)?;
            if groups == 0 || group_id >= groups {
                return Err(o.header_err(format!("group_id={group_id} must be below groups={groups}")));
            }
            let mut abs = Vec::with_capacity(refs.len());
            let mut channels = 0;
            let mut hw: Option<[usize; 2]> = None;
            for r in refs {
                let target = resolve(r, index).ok_or_else(|| {
                    o.header_err(format!("layers refers to {r}, which is not an earlier layer (this is layer {index})"))
                })?;
                let [tc, th, tw] = layers[target].output;
                if tc % groups != 0 {
                    return Err(
                        o.header_err(format!("layer {target} has {tc} channels, not divisible by groups={groups}"))
                    );
                }
                if let Some([ph, pw]) = hw
                    && [ph, pw] != [th, tw]
                {
                    return Err(o.header_err(format!(
                        "layers of different sizes ({ph}x{pw} and {th}x{tw}) cannot be concatenated"
                    )));
                }
                hw = Some([th, tw]);
                channels += tc / groups;
                abs.push(target);
            }
            let [rh, rw] = hw.ok_or_else(|| o.header_err("layers= is empty".into()))?;
            (LayerKind::Route(RouteCfg { layers: abs, groups, group_id }), [channels, rh, rw])
        }
        "upsample" => {
            let stride = o.i64_or("stride", 2)?;
            if stride <= 0 {
                return Err(o.header_err(format!("stride={stride}: only upsampling (a positive stride) is supported")));
            }
            if o.f32_or("scale", 1.0)? != 1.0 {
                return Err(o.header_err("scale other than 1 is not supported".into()));
            }
            let s = stride as usize;
            (LayerKind::Upsample { stride: s }, [c, h * s, w * s])
        }
        "shortcut" => {
            let from = o.parse::<i64>("from")?.ok_or_else(|| o.header_err("needs from=".into()))?;
            o.reject("weights_type", "none")?;
            let target = resolve(from, index)
                .ok_or_else(|| o.header_err(format!("from={from} is not an earlier layer (this is layer {index})")))?;
            if layers[target].output != input {
                return Err(o.header_err(format!(
                    "adds layer {target} of shape {:?} to an input of shape {input:?}; only equal shapes are supported",
                    layers[target].output
                )));
            }
            (LayerKind::Shortcut { from: target, activation: o.activation()? }, input)
        }
        "yolo" => {
            o.reject("new_coords", "0")?;
            let classes = o.usize_or("classes", 20)?;
            let all: Vec<f32> = o.list("anchors")?.unwrap_or_default();
            let num = o.usize_or("num", all.len() / 2)?;
            if all.len() != num * 2 || num == 0 {
                return Err(o.header_err(format!("num={num} needs {} anchor numbers, found {}", num * 2, all.len())));
            }
            let mask: Vec<usize> = o.list("mask")?.unwrap_or_else(|| (0..num).collect());
            let mut anchors = Vec::with_capacity(mask.len());
            for m in mask {
                if m >= num {
                    return Err(o.header_err(format!("mask refers to anchor {m} but there are {num}")));
                }
                anchors.push((all[2 * m], all[2 * m + 1]));
            }
            let expected = anchors.len() * (classes + 5);
            if c != expected {
                return Err(o.header_err(format!(
                    "its input has {c} channels but {} anchors x ({classes} classes + 5) = {expected}; \
                     set filters={expected} in the [convolutional] before it",
                    anchors.len()
                )));
            }
            let scale_x_y = o.f32_or("scale_x_y", 1.0)?;
            (LayerKind::Yolo(YoloCfg { classes, anchors, scale_x_y }), input)
        }
        other => {
            return Err(o.header_err(format!(
                "layer type [{other}] is not supported (convolutional, maxpool, route, upsample, shortcut, yolo are)"
            )));
        }
    };
    Ok(Layer { kind, line: section.line, output })
}

/// Darknet layer references: negative counts back from the current layer.
fn resolve(r: i64, index: usize) -> Option<usize> {
    let abs = if r < 0 { index as i64 + r } else { r };
    (0..index as i64).contains(&abs).then_some(abs as usize)
}

#[cfg(test)]
mod tests;
