//! The detection-run aggregate: one request to find objects in one version of a video,
//! carried out by detector workers. Identified by its run id.
//!
//! A worker starts the run and gets an attempt number; every batch it records carries
//! that number. A worker that took over from one that died gets the next number and
//! resumes after the last recorded batch, and the old worker, if it was only slow, is
//! refused from then on: the run is finished once, its batches recorded once each.

mod command;
mod error;
mod event;

pub use command::{CompleteDetection, DetectionCommand, FailDetection, RecordDetections, StartDetection};
pub use error::DetectionError;
pub use event::{
    DETECTION_COMPLETED, DETECTION_FAILED, DETECTION_STARTED, DETECTIONS_RECORDED, DetectedObject, DetectionCompleted,
    DetectionEvent, DetectionFailed, DetectionStarted, DetectionsRecorded, FrameDetections,
};

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const AGGREGATE_TYPE: &str = "detection_run";

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub enum RunStatus {
    #[default]
    NotStarted,
    Running,
    Completed,
    Failed,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionRun {
    run_id: Option<Uuid>,
    status: RunStatus,
    video_version: u32,
    attempt: u32,
    model: String,
    next_batch: u32,
    frames_done: u64,
    /// The media time of the last frame recorded, where a new attempt resumes after.
    last_timestamp: Option<f64>,
    frames_total: u64,
    objects: u64,
}

impl DetectionRun {
    pub fn status(&self) -> &RunStatus {
        &self.status
    }

    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The batch number the current attempt records next.
    pub fn next_batch(&self) -> u32 {
        self.next_batch
    }

    /// Sampled frames recorded so far.
    pub fn frames_done(&self) -> u64 {
        self.frames_done
    }

    /// The media time of the last frame recorded (none yet: `None`). A new attempt resumes
    /// with the sampling interval after it: counting frames would not say where, as an
    /// interval of variable-rate video may hold no frame.
    pub fn last_timestamp(&self) -> Option<f64> {
        self.last_timestamp
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.status, RunStatus::Completed | RunStatus::Failed)
    }

    pub fn decide(&self, command: DetectionCommand) -> Result<Vec<DetectionEvent>, DetectionError> {
        match command {
            DetectionCommand::StartDetection(c) => {
                if self.is_finished() {
                    return Err(DetectionError::AlreadyFinished);
                }
                Ok(vec![DetectionEvent::DetectionStarted(DetectionStarted {
                    run_id: c.run_id,
                    video_id: c.video_id,
                    video_version: c.video_version,
                    attempt: self.attempt + 1,
                    worker: c.worker,
                    model: c.model,
                    frames_total: c.frames_total.max(self.frames_done),
                    resume_from_frame: self.frames_done,
                    started_at: c.started_at,
                })])
            }
            DetectionCommand::RecordDetections(c) => {
                self.check_attempt(c.attempt)?;
                if c.batch < self.next_batch {
                    return Ok(vec![]); // a retry of a recorded batch
                }
                if c.batch > self.next_batch {
                    return Err(DetectionError::OutOfOrder { given: c.batch, expected: self.next_batch });
                }
                let valid = c.frames.iter().all(|f| {
                    f.timestamp.is_finite()
                        && f.timestamp >= 0.0
                        && f.objects.iter().all(|o| (0.0..=1.0).contains(&o.confidence) && o.bbox.is_valid())
                });
                if !valid {
                    return Err(DetectionError::InvalidDetection);
                }
                let frames_done = self.frames_done + c.frames.len() as u64;
                Ok(vec![DetectionEvent::DetectionsRecorded(DetectionsRecorded {
                    run_id: self.run_id.unwrap_or_default(),
                    video_id: c.video_id,
                    attempt: c.attempt,
                    batch: c.batch,
                    frames: c.frames,
                    frames_done,
                    frames_total: self.frames_total.max(frames_done),
                })])
            }
            DetectionCommand::CompleteDetection(c) => {
                if self.status == RunStatus::Completed {
                    return Ok(vec![]);
                }
                self.check_attempt(c.attempt)?;
                Ok(vec![DetectionEvent::DetectionCompleted(DetectionCompleted {
                    run_id: self.run_id.unwrap_or_default(),
                    video_id: c.video_id,
                    video_version: self.video_version,
                    frames: self.frames_done,
                    objects: self.objects,
                    model: self.model.clone(),
                    elapsed_ms: c.elapsed_ms,
                    completed_at: c.completed_at,
                })])
            }
            DetectionCommand::FailDetection(c) => {
                if self.is_finished() {
                    return Err(DetectionError::AlreadyFinished);
                }
                if let Some(attempt) = c.attempt {
                    self.check_attempt(attempt)?;
                }
                Ok(vec![DetectionEvent::DetectionFailed(DetectionFailed {
                    run_id: c.run_id,
                    video_id: c.video_id,
                    reason: c.reason,
                    failed_at: c.failed_at,
                })])
            }
        }
    }

    fn check_attempt(&self, given: u32) -> Result<(), DetectionError> {
        match self.status {
            RunStatus::NotStarted => Err(DetectionError::NotStarted),
            RunStatus::Completed | RunStatus::Failed => Err(DetectionError::AlreadyFinished),
            RunStatus::Running if given != self.attempt => {
                Err(DetectionError::StaleAttempt { given, current: self.attempt })
            }
            RunStatus::Running => Ok(()),
        }
    }
}

impl crate::snapshot::Snapshot for DetectionRun {
    /// 2: `last_timestamp`.
    const STATE_VERSION: u32 = 2;
    /// Each `DetectionsRecorded` carries a batch's boxes: a load reads fewer than ten.
    const SNAPSHOT_EVERY: u64 = 10;
}

impl Aggregate for DetectionRun {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = DetectionCommand;
    type Event = DetectionEvent;
    type Error = DetectionError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            DetectionEvent::DetectionStarted(e) => {
                self.run_id = Some(e.run_id);
                self.status = RunStatus::Running;
                self.video_version = e.video_version;
                self.attempt = e.attempt;
                self.model = e.model;
                self.frames_total = e.frames_total;
            }
            DetectionEvent::DetectionsRecorded(e) => {
                self.next_batch = e.batch + 1;
                self.frames_done = e.frames_done;
                self.last_timestamp = e.frames.last().map(|f| f.timestamp).or(self.last_timestamp);
                self.frames_total = e.frames_total;
                self.objects += e.frames.iter().map(|f| f.objects.len() as u64).sum::<u64>();
            }
            DetectionEvent::DetectionCompleted(_) => self.status = RunStatus::Completed,
            DetectionEvent::DetectionFailed(e) => {
                self.run_id = Some(e.run_id);
                self.status = RunStatus::Failed;
            }
        }
    }
}

#[cfg(test)]
mod tests;
