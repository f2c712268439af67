//! Commands to a detection run, sent by detector workers.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::event::FrameDetections;
use crate::VideoId;

#[derive(Debug, Clone, PartialEq)]
pub enum DetectionCommand {
    StartDetection(StartDetection),
    RecordDetections(RecordDetections),
    CompleteDetection(CompleteDetection),
    FailDetection(FailDetection),
}

/// A worker takes the run (first time, or over from a worker that died).
#[derive(Debug, Clone, PartialEq)]
pub struct StartDetection {
    pub run_id: Uuid,
    pub video_id: VideoId,
    pub video_version: u32,
    pub worker: String,
    pub model: String,
    pub frames_total: u64,
    pub started_at: DateTime<Utc>,
}

/// The next batch of sampled frames with what was found in them.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordDetections {
    pub video_id: VideoId,
    /// The attempt the worker got when it started: stale workers are fenced off.
    pub attempt: u32,
    /// Batches count from 0, without gaps.
    pub batch: u32,
    pub frames: Vec<FrameDetections>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompleteDetection {
    pub video_id: VideoId,
    pub attempt: u32,
    pub elapsed_ms: u64,
    pub completed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FailDetection {
    pub run_id: Uuid,
    pub video_id: VideoId,
    /// `None` when the run failed before any worker started it.
    pub attempt: Option<u32>,
    /// What went wrong, in words a merchant can act on.
    pub reason: String,
    pub failed_at: DateTime<Utc>,
}
