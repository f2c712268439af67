//! Why a click command was refused.

/// A refused click. Each variant is the client's doing (HTTP 409 or 422), never a storage
/// failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClickError {
    #[error("the media time must be a finite number of seconds, at least 0 and below {max}")]
    InvalidMediaTime { max: f64 },
    #[error("the click position must be finite and not negative")]
    InvalidPosition,
    #[error("the click at ({x}, {y}) lies outside the {width}×{height} player")]
    OutsidePlayer { x: f64, y: f64, width: f64, height: f64 },
    #[error("`player` and `video` sizes must be sent together")]
    IncompleteSizes,
    #[error("this click id was already used for a different click")]
    ClickIdReused,
    #[error("no click is recorded under this id")]
    NotRecorded,
    #[error(transparent)]
    Text(#[from] crate::text::TextError),
}
