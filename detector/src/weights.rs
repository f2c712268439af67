//! Darknet `.weights` files: a version header, then for each convolutional layer in cfg
//! order its biases, its batch-norm scales, rolling means and rolling variances (when
//! batch-normalised), then its weights; little-endian f32 throughout.
//!
//! The file must be exactly as long as the cfg says, so a weights file that belongs to a
//! different cfg is caught before any number is used. Batch norm is folded into the
//! convolution here, once, so inference runs one convolution with a bias per layer.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::DetectorError;
use crate::cfg::{ConvCfg, LayerKind, NetworkCfg};

/// Darknet's batch-norm epsilon (`normalize_cpu`), also what OpenCV uses for darknet models.
const BN_EPSILON: f32 = 1e-6;

/// A convolution ready to run: batch norm folded in.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvParams {
    /// `[filters, in_channels / groups, size, size]`, row-major.
    pub weight: Vec<f32>,
    /// One per filter.
    pub bias: Vec<f32>,
}

/// The parameters of every convolutional layer, indexed like `NetworkCfg::layers`
/// (`None` for layers without parameters).
#[derive(Debug, Clone)]
pub struct Weights {
    pub layers: Vec<Option<ConvParams>>,
    /// sha256 of the whole file, lowercase hex.
    pub sha256: String,
}

impl Weights {
    /// Reads `path`, checks its sha256 against `expected_sha256` (when given) and its size
    /// against `cfg`.
    pub fn from_file(path: &Path, cfg: &NetworkCfg, expected_sha256: Option<&str>) -> Result<Self, DetectorError> {
        let bytes = std::fs::read(path).map_err(|e| DetectorError::io(path, e))?;
        let sha256 = sha256_hex(&bytes);
        if let Some(expected) = expected_sha256
            && !expected.eq_ignore_ascii_case(&sha256)
        {
            return Err(DetectorError::WeightsHash {
                path: path.to_path_buf(),
                expected: expected.to_ascii_lowercase(),
                actual: sha256,
            });
        }
        Self::parse(&bytes, path, cfg, sha256)
    }

    fn parse(bytes: &[u8], path: &Path, cfg: &NetworkCfg, sha256: String) -> Result<Self, DetectorError> {
        let header = header_len(bytes).ok_or_else(|| DetectorError::WeightsSize {
            path: path.to_path_buf(),
            cfg: cfg.path.clone(),
            actual: bytes.len() as u64,
            expected: 20 + 4 * cfg.param_count() as u64,
            header: 20,
            params: cfg.param_count() as u64,
        })?;
        let params = cfg.param_count();
        let expected = (header + 4 * params) as u64;
        if bytes.len() as u64 != expected {
            return Err(DetectorError::WeightsSize {
                path: path.to_path_buf(),
                cfg: cfg.path.clone(),
                actual: bytes.len() as u64,
                expected,
                header: header as u64,
                params: params as u64,
            });
        }
        let mut reader = F32Reader { bytes: &bytes[header..] };
        let layers = cfg
            .layers
            .iter()
            .map(|layer| match &layer.kind {
                LayerKind::Convolutional(conv) => Some(read_conv(&mut reader, conv)),
                _ => None,
            })
            .collect();
        Ok(Self { layers, sha256 })
    }
}

/// Length of the header: major, minor, revision (i32), then `seen` as i64 from version 0.2
/// on and as i32 before. `None` when the file is too short to hold it.
fn header_len(bytes: &[u8]) -> Option<usize> {
    let int = |i: usize| bytes.get(4 * i..4 * i + 4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let (major, minor) = (int(0)?, int(1)?);
    let len = if major * 10 + minor >= 2 && major < 1000 && minor < 1000 { 20 } else { 16 };
    (bytes.len() >= len).then_some(len)
}

struct F32Reader<'a> {
    bytes: &'a [u8],
}

impl F32Reader<'_> {
    /// Takes the next `n` floats; the caller has checked the total length.
    fn take(&mut self, n: usize) -> Vec<f32> {
        let (head, rest) = self.bytes.split_at(4 * n);
        self.bytes = rest;
        head.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    }
}

fn read_conv(reader: &mut F32Reader<'_>, conv: &ConvCfg) -> ConvParams {
    let n = conv.filters;
    let mut bias = reader.take(n);
    let bn = conv.batch_normalize.then(|| (reader.take(n), reader.take(n), reader.take(n)));
    let mut weight = reader.take(conv.weight_count());
    if let Some((scales, means, variances)) = bn {
        let per_filter = weight.len() / n;
        for f in 0..n {
            let k = scales[f] / (variances[f] + BN_EPSILON).sqrt();
            for w in &mut weight[f * per_filter..(f + 1) * per_filter] {
                *w *= k;
            }
            bias[f] -= means[f] * k;
        }
    }
    ConvParams { weight, bias }
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests;
