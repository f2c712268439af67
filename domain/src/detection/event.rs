//! Events of a detection run. Type names and versions are stable strings.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::VideoId;
use crate::geometry::BoundingBox;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DetectionEvent {
    DetectionStarted(DetectionStarted),
    DetectionsRecorded(DetectionsRecorded),
    DetectionCompleted(DetectionCompleted),
    DetectionFailed(DetectionFailed),
}

/// One object found in one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectedObject {
    /// The original system's id: the model's class index + 1.
    pub class_id: u32,
    pub label: String,
    pub confidence: f64,
    /// In pixels of the uploaded file.
    pub bbox: BoundingBox,
}

/// What was found in one sampled frame (possibly nothing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameDetections {
    /// Media time in seconds.
    pub timestamp: f64,
    pub objects: Vec<DetectedObject>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionStarted {
    pub run_id: Uuid,
    pub video_id: VideoId,
    pub video_version: u32,
    /// 1 for the first worker; more when a worker took over from one that died.
    pub attempt: u32,
    pub worker: String,
    pub model: String,
    /// Frames the run will sample (an estimate from the duration).
    pub frames_total: u64,
    /// Frames already recorded by earlier attempts, where this attempt resumes.
    pub resume_from_frame: u64,
    pub started_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionsRecorded {
    pub run_id: Uuid,
    pub video_id: VideoId,
    pub attempt: u32,
    pub batch: u32,
    pub frames: Vec<FrameDetections>,
    /// Frames recorded so far, this batch included.
    pub frames_done: u64,
    pub frames_total: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionCompleted {
    pub run_id: Uuid,
    pub video_id: VideoId,
    pub video_version: u32,
    pub frames: u64,
    pub objects: u64,
    pub model: String,
    pub elapsed_ms: u64,
    pub completed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionFailed {
    pub run_id: Uuid,
    pub video_id: VideoId,
    pub reason: String,
    pub failed_at: DateTime<Utc>,
}

pub const DETECTION_STARTED: &str = "DetectionStarted";
pub const DETECTIONS_RECORDED: &str = "DetectionsRecorded";
pub const DETECTION_COMPLETED: &str = "DetectionCompleted";
pub const DETECTION_FAILED: &str = "DetectionFailed";

/// No stored shape has changed yet: see [`crate::upcast`] for how one would.
impl crate::upcast::Upcast for DetectionEvent {}

impl DomainEvent for DetectionEvent {
    fn event_type(&self) -> String {
        match self {
            Self::DetectionStarted(_) => DETECTION_STARTED,
            Self::DetectionsRecorded(_) => DETECTIONS_RECORDED,
            Self::DetectionCompleted(_) => DETECTION_COMPLETED,
            Self::DetectionFailed(_) => DETECTION_FAILED,
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
