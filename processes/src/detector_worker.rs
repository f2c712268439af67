//! The detector worker: takes detection requests from the log and records what the
//! detector finds through commands.
//!
//! Every worker (in this process or others) pulls from one durable consumer filtered to
//! the video events, one request at a time, so they share the load. A request is acked
//! only when its run is finished; while a run goes on the worker tells JetStream it is
//! still working. A worker that dies leaves the request unacked: JetStream redelivers it
//! to another worker, which takes the run over as its next attempt and resumes after the
//! last recorded batch. The run aggregate fences off the old attempt, so each batch is
//! recorded once and the run finishes once.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer};
use chrono::Utc;
use framecart_commands::CommandError;
use framecart_commands::execute::execute;
use framecart_detector::{Detection, Detector, DetectorConfig, Frame};
use framecart_domain::EventMetadata;
use framecart_domain::detection::{
    CompleteDetection, DetectedObject, DetectionCommand, DetectionError, DetectionRun, FailDetection, FrameDetections,
    RecordDetections, StartDetection,
};
use framecart_domain::geometry::BoundingBox;
use framecart_domain::log::LoggedEvent;
use framecart_domain::video::{self, DetectionRequested, Video, VideoEvent};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use framecart_commands::Commands;
use framecart_commands::media::{self, MediaStore};
use framecart_domain::log::Namespace;

/// Sampled frames per recorded batch: small events, frequent progress.
pub const FRAMES_PER_BATCH: usize = 25;

/// What a detector worker needs: the store, the log, where files go, the model.
#[derive(Clone)]
pub struct WorkerConfig {
    pub commands: Arc<Commands>,
    pub jetstream: jetstream::Context,
    pub namespace: Namespace,
    /// The worker's own media folder: uploads it reads are fetched into
    /// `source_video_files/` from the media store when they are not there.
    pub media_dir: PathBuf,
    /// Where uploaded videos are, whichever host took them.
    pub media: MediaStore,
    /// Folder of the darknet model.
    pub model_dir: PathBuf,
    /// Where the model runs (a missing GPU falls back to the CPU, with a warning).
    pub backend: framecart_detector::Backend,
    /// Most pixels a frame may have (larger videos fail rather than decode).
    pub max_video_pixels: u64,
    /// How long JetStream waits for a sign of life before giving the job to another worker.
    pub ack_wait: Duration,
}

pub struct DetectorWorker {
    config: WorkerConfig,
    name: String,
}

/// How a job ended, for the ack.
enum Outcome {
    /// Finished (completed, failed, or nothing to do): ack.
    Done,
    /// Another attempt owns the run now: leave the message to it.
    TakenOver,
    /// Stopped by shutdown: hand the job back at once.
    Interrupted,
    /// The file is not in place yet (an upload still finishing): try again shortly.
    Retry,
}

impl DetectorWorker {
    /// The `index`th worker of this process (named `<host>-<pid>-<index>` in the runs it
    /// records).
    pub fn new(config: WorkerConfig, index: usize) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "worker".to_owned());
        Self { config, name: format!("{host}-{}-{index}", std::process::id()) }
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let Some(detector) = self.load_detector(&shutdown).await else { return };
        tracing::info!(worker = %self.name, model = %detector.model_name(), "detector worker ready");
        let mut backoff = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            match self.consume(&detector, &shutdown).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(worker = %self.name, error = %e, "detector worker stopped; starting over");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// How long JetStream waits for a sign of life before giving the job to another worker.
    fn ack_wait(&self) -> Duration {
        self.config.ack_wait.max(Duration::from_secs(2))
    }

    /// Loads the model, waiting (and saying what to do) while its files are missing.
    async fn load_detector(&self, shutdown: &CancellationToken) -> Option<Arc<Detector>> {
        let dir = self.config.model_dir.clone();
        let backend = self.config.backend;
        loop {
            let dir2 = dir.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                let files = framecart_detector::locate_model(&dir2)?;
                // Non-maximum suppression keeps a box unless a more confident one overlaps it,
                // so detecting at the lowest allowed floor and keeping each run's own
                // minimum afterwards gives every run exactly what its threshold would.
                let config = DetectorConfig { confidence: video::MIN_CONFIDENCE as f32, ..DetectorConfig::on(backend) };
                Detector::load(&files, config)
            })
            .await;
            match loaded {
                Ok(Ok(detector)) => {
                    if let Some(why) = detector.fallback() {
                        tracing::warn!(worker = %self.name, wanted = %backend, reason = why,
                            "the detector falls back to the CPU: {why}");
                    }
                    tracing::info!(worker = %self.name, backend = %detector.backend(), model = %detector.model_name(),
                        "detector loaded");
                    return Some(Arc::new(detector));
                }
                Ok(Err(e)) => tracing::error!(worker = %self.name, error = %e, "the detector cannot start"),
                Err(e) => tracing::error!(worker = %self.name, error = %e, "the detector cannot start"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
        }
    }

    async fn consume(&self, detector: &Arc<Detector>, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let ns = &self.config.namespace;
        let stream = self.config.jetstream.get_stream(ns.stream_name()).await?;
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                &ns.consumer_name("detector"),
                consumer::pull::Config {
                    durable_name: Some(ns.consumer_name("detector")),
                    description: Some("detector workers: detection requests".into()),
                    filter_subject: ns.aggregate_subject(video::AGGREGATE_TYPE),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: self.ack_wait(),
                    max_ack_pending: 10_000,
                    ..Default::default()
                },
            )
            .await?;
        loop {
            let mut batch = consumer.fetch().max_messages(1).expires(Duration::from_secs(5)).messages().await?;
            let message = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                message = batch.next() => message,
            };
            let Some(message) = message else { continue };
            let message = message.map_err(|e| anyhow::anyhow!(e))?;
            let outcome = self.handle(detector, &message, shutdown).await;
            match outcome {
                Ok(Outcome::Done) => message.ack().await.map_err(|e| anyhow::anyhow!(e))?,
                Ok(Outcome::TakenOver) => {}
                Ok(Outcome::Interrupted) => {
                    let _ = message.ack_with(AckKind::Nak(None)).await;
                    return Ok(());
                }
                Ok(Outcome::Retry) => {
                    let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(2)))).await;
                }
                Err(e) => {
                    // The store or the log failed: hand the job back and start over.
                    let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(5)))).await;
                    return Err(e);
                }
            }
        }
    }

    async fn handle(
        &self,
        detector: &Arc<Detector>,
        message: &jetstream::Message,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Outcome> {
        let event: LoggedEvent = serde_json::from_slice(&message.payload)?;
        if event.event_type != video::DETECTION_REQUESTED {
            return Ok(Outcome::Done);
        }
        let VideoEvent::DetectionRequested(request) = event.decode()? else {
            return Ok(Outcome::Done);
        };
        let correlation = event.correlation_id();
        let metadata = EventMetadata::caused_by_event(&event.event_id.to_string(), &correlation, "detector");
        let job = Job { worker: self, request, metadata };
        // The heartbeat lives inside this future: if the worker dies, so does its
        // heartbeat, and JetStream gives the job to another worker.
        let every = self.ack_wait() / 4;
        let heartbeat = async {
            loop {
                tokio::time::sleep(every).await;
                let _ = message.ack_with(AckKind::Progress).await;
            }
        };
        tokio::select! {
            outcome = job.run(detector, shutdown) => outcome,
            () = heartbeat => unreachable!("the heartbeat never ends"),
        }
    }
}

struct Job<'a> {
    worker: &'a DetectorWorker,
    request: DetectionRequested,
    metadata: EventMetadata,
}

impl Job<'_> {
    fn run_id(&self) -> String {
        self.request.run_id.to_string()
    }

    async fn send(&self, command: DetectionCommand) -> Result<(), CommandError<DetectionError>> {
        execute(&self.worker.config.commands.detection_runs, &self.run_id(), command, self.metadata.clone()).await
    }

    async fn fail(&self, attempt: Option<u32>, reason: String) -> anyhow::Result<Outcome> {
        tracing::warn!(run_id = %self.request.run_id, %reason, "detection failed");
        let command = DetectionCommand::FailDetection(FailDetection {
            run_id: self.request.run_id,
            video_id: self.request.video_id.clone(),
            attempt,
            reason,
            failed_at: Utc::now(),
        });
        match self.send(command).await {
            Ok(()) | Err(CommandError::Refused(DetectionError::AlreadyFinished)) => Ok(Outcome::Done),
            Err(CommandError::Refused(DetectionError::StaleAttempt { .. })) => Ok(Outcome::TakenOver),
            Err(e) => Err(e.into()),
        }
    }

    async fn run(&self, detector: &Arc<Detector>, shutdown: &CancellationToken) -> anyhow::Result<Outcome> {
        let config = &self.worker.config;
        let run: DetectionRun = config.commands.load(&self.run_id()).await?;
        if run.is_finished() {
            return Ok(Outcome::Done); // finished once, by whoever got there first
        }
        let video: Video = config.commands.load(self.request.video_id.as_str()).await?;
        let Some(current) = video.current() else {
            return self.fail(None, "no file was uploaded for this video".into()).await;
        };
        if current.version != self.request.video_version {
            let reason = format!(
                "version {} of the video was uploaded after this request (for version {}); request detection again",
                current.version, self.request.video_version
            );
            return self.fail(None, reason).await;
        }
        let path = config.media_dir.join(media::SOURCE_FOLDER).join(&current.file.file_name);
        if !file_matches(path.clone(), current.file.sha256.clone()).await {
            // Taken on another host (or replaced here since): the media store has it,
            // under its hash, from before the upload was recorded.
            let fetched = config.media.fetch(&current.file.sha256, &path).await;
            match fetched {
                Ok(true) => tracing::info!(video_id = %self.request.video_id, file = %current.file.file_name,
                    "fetched the upload from the media store"),
                Ok(false) if message_age_is_young(&run) => return Ok(Outcome::Retry),
                Ok(false) => {
                    let reason = format!(
                        "the file {} is in neither the media folder nor the media store",
                        current.file.file_name
                    );
                    return self.fail(None, reason).await;
                }
                Err(e @ media::MediaError::Corrupt { .. }) => return self.fail(None, e.to_string()).await,
                Err(e) => return Err(e.into()),
            }
        }
        // Uploads over the pixel budget are refused; this holds for files stored before the
        // budget was set, or lowered: a frame is decoded whole, 3 bytes a pixel.
        let pixels = u64::from(current.file.width) * u64::from(current.file.height);
        if pixels > config.max_video_pixels {
            let reason = format!(
                "the video's frames are {}×{} ({pixels} pixels), over the {} pixels a frame this installation decodes",
                current.file.width, current.file.height, config.max_video_pixels
            );
            return self.fail(None, reason).await;
        }
        let frames_total = (current.file.duration * self.request.sample_fps).ceil().max(1.0) as u64;
        let start = StartDetection {
            run_id: self.request.run_id,
            video_id: self.request.video_id.clone(),
            video_version: self.request.video_version,
            worker: self.worker.name.clone(),
            model: detector.model_name(),
            frames_total,
            started_at: Utc::now(),
        };
        match self.send(DetectionCommand::StartDetection(start)).await {
            Ok(()) => {}
            Err(CommandError::Refused(DetectionError::AlreadyFinished)) => return Ok(Outcome::Done),
            Err(e) => return Err(e.into()),
        }
        let run: DetectionRun = config.commands.load(&self.run_id()).await?;
        let attempt = run.attempt();
        tracing::info!(run_id = %self.request.run_id, video_id = %self.request.video_id, attempt,
            resume_from = run.frames_done(), "detection started");
        let started = Instant::now();
        if let Some(outcome) =
            self.detect(detector, path, attempt, run.next_batch(), run.last_timestamp(), shutdown).await?
        {
            return Ok(outcome);
        }
        let complete = CompleteDetection {
            video_id: self.request.video_id.clone(),
            attempt,
            elapsed_ms: started.elapsed().as_millis() as u64,
            completed_at: Utc::now(),
        };
        match self.send(DetectionCommand::CompleteDetection(complete)).await {
            Ok(()) => {
                tracing::info!(run_id = %self.request.run_id, "detection completed");
                Ok(Outcome::Done)
            }
            Err(CommandError::Refused(DetectionError::StaleAttempt { .. })) => Ok(Outcome::TakenOver),
            Err(CommandError::Refused(DetectionError::AlreadyFinished)) => Ok(Outcome::Done),
            Err(e) => Err(e.into()),
        }
    }

    /// Decodes and detects on a blocking thread, recording batches as they come. `None`
    /// when every frame was recorded.
    async fn detect(
        &self,
        detector: &Arc<Detector>,
        path: PathBuf,
        attempt: u32,
        first_batch: u32,
        last_timestamp: Option<f64>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<Outcome>> {
        let (tx, mut rx) = mpsc::channel::<Vec<FrameDetections>>(2);
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = Sampler {
            detector: detector.clone(),
            path,
            sample_fps: self.request.sample_fps,
            start_at: last_timestamp
                .map_or(0.0, |t| framecart_detector::next_interval_start(t, self.request.sample_fps)),
            labels: self.request.labels.clone(),
            min_confidence: self.request.min_confidence,
            stop: stop.clone(),
        };
        let decoding = tokio::task::spawn_blocking(move || sampler.run(&tx));
        let mut batch = first_batch;
        let mut outcome = None;
        loop {
            let frames = tokio::select! {
                () = shutdown.cancelled(), if outcome.is_none() => {
                    stop.store(true, Ordering::Relaxed);
                    outcome = Some(Outcome::Interrupted);
                    continue;
                }
                frames = rx.recv() => frames,
            };
            let Some(frames) = frames else { break };
            if outcome.is_some() {
                continue; // draining after a stop
            }
            let record = RecordDetections { video_id: self.request.video_id.clone(), attempt, batch, frames };
            match self.send(DetectionCommand::RecordDetections(record)).await {
                Ok(()) => batch += 1,
                Err(CommandError::Refused(DetectionError::StaleAttempt { .. })) => {
                    stop.store(true, Ordering::Relaxed);
                    outcome = Some(Outcome::TakenOver);
                }
                Err(CommandError::Refused(DetectionError::AlreadyFinished)) => {
                    stop.store(true, Ordering::Relaxed);
                    outcome = Some(Outcome::Done);
                }
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    let _ = decoding.await;
                    return Err(e.into());
                }
            }
        }
        match decoding.await? {
            Ok(()) => Ok(outcome),
            Err(_) if outcome.is_some() => Ok(outcome),
            Err(e) => self.fail(Some(attempt), e.to_string()).await.map(Some),
        }
    }
}

/// Whether a run that finds its file missing should wait a little for it: only before any
/// attempt started (an upload is finishing), never once work was done.
fn message_age_is_young(run: &DetectionRun) -> bool {
    run.attempt() == 0
}

async fn file_matches(path: PathBuf, sha256: String) -> bool {
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path).ok()?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher).ok()?;
        Some(hex::encode(hasher.finalize()) == sha256)
    })
    .await
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// The blocking side of a job: frames at the sampled rate, through the detector, in
/// batches of [`FRAMES_PER_BATCH`] frames.
struct Sampler {
    detector: Arc<Detector>,
    path: PathBuf,
    sample_fps: f64,
    start_at: f64,
    labels: std::collections::BTreeMap<u32, String>,
    min_confidence: f64,
    stop: Arc<AtomicBool>,
}

impl Sampler {
    fn run(&self, out: &mpsc::Sender<Vec<FrameDetections>>) -> Result<(), framecart_detector::DetectorError> {
        let mut frames = framecart_detector::video_frames_from(&self.path, self.sample_fps, self.start_at)?;
        let per_pass = self.detector.config().batch_size.max(1);
        let mut pending: Vec<Frame> = Vec::with_capacity(per_pass);
        let mut batch: Vec<FrameDetections> = Vec::with_capacity(FRAMES_PER_BATCH);
        let mut spare: Vec<Frame> = Vec::new();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let mut frame = spare.pop().unwrap_or(Frame { width: 0, height: 0, rgb: Vec::new(), timestamp: 0.0 });
            let more = frames.next_into(&mut frame)?;
            if more {
                pending.push(frame);
            }
            if pending.len() == per_pass || (!more && !pending.is_empty()) {
                let found = self.detector.detect(&pending)?;
                for (frame, detections) in pending.iter().zip(found) {
                    batch.push(FrameDetections { timestamp: frame.timestamp, objects: self.keep(detections) });
                    if batch.len() == FRAMES_PER_BATCH && out.blocking_send(std::mem::take(&mut batch)).is_err() {
                        return Ok(());
                    }
                }
                spare.append(&mut pending);
            }
            if !more {
                break;
            }
        }
        if !batch.is_empty() {
            let _ = out.blocking_send(batch);
        }
        Ok(())
    }

    /// The requested classes, under the requested names, above the requested confidence.
    fn keep(&self, detections: Vec<Detection>) -> Vec<DetectedObject> {
        detections
            .into_iter()
            .filter(|d| f64::from(d.confidence) >= self.min_confidence)
            .filter_map(|d| {
                let class_id = u32::try_from(d.class_id).ok()? + 1;
                let label = if self.labels.is_empty() { d.label } else { self.labels.get(&class_id)?.clone() };
                let [xmin, ymin, xmax, ymax] = d.bbox.map(|v| round(f64::from(v), 2));
                Some(DetectedObject {
                    class_id,
                    label,
                    confidence: round(f64::from(d.confidence), 4),
                    bbox: BoundingBox { xmin, ymin, xmax, ymax },
                })
            })
            .collect()
    }
}

fn round(v: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (v * scale).round() / scale
}
