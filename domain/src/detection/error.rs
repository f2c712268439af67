//! Why a detection-run command was refused.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetectionError {
    #[error("this detection run has already finished")]
    AlreadyFinished,
    #[error("this detection run has not been started")]
    NotStarted,
    #[error("attempt {given} is no longer the run's current attempt ({current}): another worker took over")]
    StaleAttempt { given: u32, current: u32 },
    #[error("batch {given} arrived but batch {expected} is next")]
    OutOfOrder { given: u32, expected: u32 },
    #[error("a detection has an invalid box or confidence")]
    InvalidDetection,
}
