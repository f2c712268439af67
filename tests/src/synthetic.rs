//! A processed video and its detection run, written through the real commands with
//! synthetic boxes: for the benches and the tests that need a long run, not a detector.

use chrono::Utc;
use framecart_api::commands::execute::execute;
use framecart_api::commands::{CommandError, Commands};
use framecart_api::domain::detection::{
    CompleteDetection, DetectedObject, DetectionCommand, DetectionError, FrameDetections, RecordDetections,
    StartDetection,
};
use framecart_api::domain::geometry::BoundingBox;
use framecart_api::domain::video::{RequestDetection, UploadVideo, VideoCommand, VideoFile};
use framecart_api::domain::{EventMetadata, VideoId};
use uuid::Uuid;

/// Each object is on screen this long, then another takes its place.
pub const LIFETIME: f64 = 20.0;

/// The metadata of a command sent by a bench or a test.
pub fn meta() -> EventMetadata {
    EventMetadata::for_request(&Uuid::new_v4().to_string(), None, "system:bench".into())
}

/// A video of `seconds` at 1280×720 is uploaded (version 1), detection at `fps` is
/// requested, and a worker starts the run (attempt 1): its run id.
pub async fn started_run(commands: &Commands, video: &VideoId, seconds: f64, fps: f64) -> anyhow::Result<Uuid> {
    let file = VideoFile {
        file_name: format!("{video}.mp4"),
        original_name: None,
        size_bytes: 1,
        sha256: "0".repeat(64),
        duration: seconds,
        width: 1280,
        height: 720,
        frame_rate: 25.0,
        codec: "h264".into(),
        container: "mp4".into(),
    };
    let upload = UploadVideo { video_id: video.clone(), file, uploaded_at: Utc::now(), detect: None };
    execute(&commands.videos, video.as_str(), VideoCommand::UploadVideo(upload), meta()).await?;
    let run_id = Uuid::now_v7();
    let request = RequestDetection {
        video_id: video.clone(),
        run_id,
        labels: Default::default(),
        sample_fps: fps,
        min_confidence: 0.25,
        requested_at: Utc::now(),
    };
    execute(&commands.videos, video.as_str(), VideoCommand::RequestDetection(request), meta()).await?;
    start(commands, run_id, video, (seconds * fps) as u64).await?;
    Ok(run_id)
}

/// A worker takes the run (the first time, or over from another): the next attempt.
pub async fn start(
    commands: &Commands,
    run_id: Uuid,
    video: &VideoId,
    frames_total: u64,
) -> Result<(), CommandError<DetectionError>> {
    let start = StartDetection {
        run_id,
        video_id: video.clone(),
        video_version: 1,
        worker: "synthetic".into(),
        model: "synthetic".into(),
        frames_total,
        started_at: Utc::now(),
    };
    execute(&commands.detection_runs, &run_id.to_string(), DetectionCommand::StartDetection(start), meta()).await
}

/// Object `k`'s box at time `t`: slots across the frame, drifting right, a new object
/// (track) every [`LIFETIME`] seconds.
pub fn object_box(k: usize, t: f64) -> BoundingBox {
    let phase = (t % LIFETIME) / LIFETIME;
    let x = 40.0 + (k as f64 * 150.0) % 1000.0 + phase * 60.0;
    let y = 60.0 + (k % 3) as f64 * 200.0;
    BoundingBox { xmin: x, ymin: y, xmax: x + 100.0, ymax: y + 150.0 }
}

/// Sampled frames `first..first + count` at `fps`, with `objects` moving objects each.
pub fn frames(first: u64, count: u64, fps: f64, objects: usize) -> Vec<FrameDetections> {
    (first..first + count)
        .map(|i| {
            let t = i as f64 / fps;
            FrameDetections {
                timestamp: t,
                objects: (0..objects)
                    .map(|k| DetectedObject {
                        class_id: 1 + (k % 3) as u32,
                        label: ["person", "bicycle", "car"][k % 3].into(),
                        confidence: 0.9,
                        bbox: object_box(k, t),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Records a batch of frames for `attempt`.
pub async fn record(
    commands: &Commands,
    run_id: Uuid,
    video: &VideoId,
    attempt: u32,
    batch: u32,
    frames: Vec<FrameDetections>,
) -> Result<(), CommandError<DetectionError>> {
    let record = RecordDetections { video_id: video.clone(), attempt, batch, frames };
    execute(&commands.detection_runs, &run_id.to_string(), DetectionCommand::RecordDetections(record), meta()).await
}

/// The run is complete: its detections are the video's.
pub async fn complete(
    commands: &Commands,
    run_id: Uuid,
    video: &VideoId,
    attempt: u32,
) -> Result<(), CommandError<DetectionError>> {
    let complete = CompleteDetection { video_id: video.clone(), attempt, elapsed_ms: 0, completed_at: Utc::now() };
    execute(&commands.detection_runs, &run_id.to_string(), DetectionCommand::CompleteDetection(complete), meta()).await
}
