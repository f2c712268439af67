//! Why a video command was refused.

use super::MIN_CONFIDENCE;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VideoError {
    #[error("no file has been uploaded for this video yet")]
    NotUploaded,
    #[error("the sample rate must be above 0 and at most {max} frames per second")]
    InvalidSampleRate { max: f64 },
    #[error("the minimum confidence must be between {MIN_CONFIDENCE} and 1")]
    InvalidConfidence,
    #[error("object label ids are the model's class index + 1 (1 is the first class); {0} is not")]
    InvalidLabelId(u32),
    #[error("object label names are 1 to 64 printable characters")]
    InvalidLabelName,
    #[error("the uploaded file description is incomplete: {0}")]
    InvalidFile(&'static str),
    #[error("a link's time window needs 0 <= from <= to")]
    InvalidWindow,
    #[error("a link names a label of 1 to 64 printable characters or a track id")]
    InvalidTarget,
    #[error("the additional identifier is at most 200 printable characters")]
    InvalidIdentifier,
    #[error("this video has no such link")]
    LinkNotFound,
}
