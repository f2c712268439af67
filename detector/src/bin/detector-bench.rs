//! Framecart's detector against OpenCV's DNN module on the same frames, in one run.
//!
//! Samples a video at 5 fps (by default), then measures for both, in alternating rounds
//! (3 by default; each figure is the median over the rounds, as the machine may be busy):
//! - latency: one frame at a time, from RGB frame to detections (median and p90);
//! - throughput: seconds of video per second of wall time over all sampled frames (for
//!   Framecart, frames given to `detect` all at once, so its threads work side by side).
//!
//! Framecart's end-to-end throughput (decoding with FFmpeg at the same time) is printed too,
//! and, given the `framecart` binary (`--framecart PATH` or `FRAMECART_BIN`), the whole job
//! on a video for each side in its own process, model load included: `framecart detect CLIP
//! --json --sample-fps N` against the reference script's `video` command (ffmpeg `fps=N`
//! frames into a folder, then OpenCV on each), on a 10 s, 480×360, 10 fps clip of the video.
//! OpenCV runs in the venv detector/scripts/setup.sh prepares, through
//! detector/reference/opencv_reference.py, on the very pixels Framecart decoded; the
//! agreement of both on those frames is printed too (as the real-footage test counts it:
//! boxes of confidence ≥ 0.3 on either side, matched by label at IoU ≥ 0.85).
//!
//! ```sh
//! cargo run --release -p framecart-detector --bin detector-bench -- [--video PATH]
//!     [--sample-fps 5] [--batch N] [--threads N] [--max-frames N] [--rounds 3] [--skip-opencv]
//!     [--framecart target/release/framecart] [--backend cpu|wgpu|cuda]
//! ```

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use framecart_detector::reference::{self, Agreement, Found};
use framecart_detector::{Detector, DetectorConfig, Frame, ModelFiles, default_model_dir, locate_model, video_frames};

struct Args {
    video: PathBuf,
    sample_fps: f64,
    config: DetectorConfig,
    max_frames: usize,
    rounds: usize,
    skip_opencv: bool,
    /// The `framecart` binary, for the whole-video figure.
    framecart: Option<PathBuf>,
}

fn cache_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/framecart")
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let media = std::env::var_os("FRAMECART_TEST_MEDIA").map_or_else(|| cache_dir().join("test-media"), PathBuf::from);
    let mut args = Args {
        video: media.join("bikes.mp4"),
        sample_fps: 5.0,
        config: DetectorConfig::default(),
        max_frames: usize::MAX,
        rounds: 3,
        skip_opencv: false,
        framecart: std::env::var_os("FRAMECART_BIN").map(PathBuf::from),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--video" => args.video = value()?.into(),
            "--sample-fps" => args.sample_fps = value()?.parse()?,
            "--batch" => args.config.batch_size = value()?.parse()?,
            "--threads" => args.config.threads = value()?.parse()?,
            "--max-frames" => args.max_frames = value()?.parse()?,
            "--rounds" => args.rounds = value()?.parse::<usize>()?.max(1),
            "--skip-opencv" => args.skip_opencv = true,
            "--framecart" => args.framecart = Some(value()?.into()),
            "--backend" => {
                let backend: framecart_detector::Backend = value()?.parse()?;
                args.config = DetectorConfig { threads: args.config.threads, ..DetectorConfig::on(backend) };
            }
            "-h" | "--help" => {
                println!(
                    "detector-bench [--video PATH] [--sample-fps 5] [--batch N] [--threads N] [--max-frames N] [--rounds 3] [--skip-opencv] [--framecart PATH] [--backend cpu|wgpu|cuda]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}; see --help").into()),
        }
    }
    Ok(args)
}

/// Median and 90th percentile of milliseconds.
fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9))
}

#[derive(Clone, Copy)]
struct Figures {
    /// Per-frame latency, ms.
    median: f64,
    p90: f64,
    /// Seconds of video per second.
    throughput: f64,
}

impl Figures {
    fn median_of(rounds: &[Figures]) -> Figures {
        let mid = |f: fn(&Figures) -> f64| percentiles(rounds.iter().map(f).collect()).0;
        Figures { median: mid(|r| r.median), p90: mid(|r| r.p90), throughput: mid(|r| r.throughput) }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let files = locate_model(&default_model_dir())?;
    let detector = Detector::load(&files, args.config)?;
    if let Some(why) = detector.fallback() {
        println!("backend:  {} asked for; on the CPU instead: {why}", args.config.backend);
    }
    let threads = match args.config.threads {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        n => n,
    };
    let info = framecart_detector::probe(&args.video)?;
    println!("model:    {}", detector.model_name());
    println!(
        "video:    {} ({}x{}, {:.2} fps, {:.1} s, {}), sampled at {} fps",
        args.video.display(),
        info.width,
        info.height,
        info.fps,
        info.duration,
        info.codec,
        args.sample_fps
    );
    println!(
        "machine:  {} CPU threads; detector on {}, threads {threads}, batch size {}",
        num_cpus(),
        detector.backend(),
        detector.config().batch_size
    );

    // Decoding alone.
    let started = Instant::now();
    let frames: Vec<Frame> =
        video_frames(&args.video, args.sample_fps)?.take(args.max_frames).collect::<Result<_, _>>()?;
    let decode_s = started.elapsed().as_secs_f64();
    let video_s = frames.len() as f64 / args.sample_fps;
    println!(
        "decode:   {} frames in {decode_s:.2} s ({:.1} video s/s, FFmpeg alone)",
        frames.len(),
        video_s / decode_s
    );
    if frames.is_empty() {
        return Err("the video gave no frames".into());
    }

    // Rounds of Framecart then OpenCV, so that both see the machine in about the same
    // state; each figure is the median over the rounds.
    let frames_dir = if args.skip_opencv { None } else { Some(FramesOnDisk::write(&frames)?) };
    detector.detect(&frames[..1])?; // warm-up
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut objects = 0;
    let mut found = Vec::new();
    for _ in 0..args.rounds {
        let latencies: Vec<f64> = frames
            .iter()
            .map(|f| {
                let t = Instant::now();
                detector.detect(std::slice::from_ref(f)).map(|_| t.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_, _>>()?;
        let started = Instant::now();
        let detections = detector.detect(&frames)?;
        let detect_s = started.elapsed().as_secs_f64();
        objects = detections.iter().map(Vec::len).sum();
        found = detections;
        let (median, p90) = percentiles(latencies);
        ours.push(Figures { median, p90, throughput: video_s / detect_s });
        if let Some(dir) = &frames_dir {
            let (figures, about) = opencv(&files, &dir.paths, args.sample_fps)?;
            if theirs.is_empty() {
                println!("opencv:   {about}");
            }
            theirs.push(figures);
        }
    }
    let agreement = match &frames_dir {
        Some(dir) => Some(agreement(&files, &dir.paths, &found)?),
        None => None,
    };
    drop(frames_dir);
    let ours = Figures::median_of(&ours);

    // Framecart end to end: FFmpeg decoding while the detector works.
    let e2e = end_to_end(&detector, &args, threads)?;

    println!();
    println!("{:<26} {:>12} {:>12} {:>18}", "", "median ms", "p90 ms", "video s per s");
    let label = format!("framecart ({} backend)", detector.backend());
    println!("{label:<26} {:>12.1} {:>12.1} {:>18.2}", ours.median, ours.p90, ours.throughput);
    println!("{:<26} {:>12} {:>12} {:>18.2}", "framecart incl. decoding", "", "", e2e);
    if theirs.is_empty() {
        println!("({objects} objects found; OpenCV skipped)");
    } else {
        let opencv = Figures::median_of(&theirs);
        println!(
            "{:<26} {:>12.1} {:>12.1} {:>18.2}",
            "opencv dnn (reference)", opencv.median, opencv.p90, opencv.throughput
        );
        println!();
        println!(
            "ratio framecart / opencv: latency {:.2}x (median), throughput {:.2}x  ({objects} objects found; {} rounds)",
            ours.median / opencv.median,
            ours.throughput / opencv.throughput,
            args.rounds
        );
        if let Some(a) = agreement {
            println!("agreement on these frames ({a})");
        }
        match &args.framecart {
            Some(framecart) => {
                let (ours, theirs) = whole_video(framecart, &files, &args.video, args.sample_fps, args.rounds)?;
                println!();
                println!(
                    "whole video (10 s 480x360 10 fps clip of it, {} fps sampled, each a process, model load included, best of {}):",
                    args.sample_fps, args.rounds
                );
                println!("{:<26} {:>12.2} s", "framecart detect --json", ours);
                println!("{:<26} {:>12.2} s", "python, ffmpeg + opencv", theirs);
                println!("ratio framecart / opencv: whole-video throughput {:.2}x", theirs / ours);
            }
            None => println!("(whole video: pass --framecart target/release/framecart, or FRAMECART_BIN, to time it)"),
        }
    }
    Ok(())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Decodes and detects at the same time, as a worker does: one thread reads frames from
/// FFmpeg into a small queue, the detector takes them a round of batches at a time.
fn end_to_end(detector: &Detector, args: &Args, threads: usize) -> Result<f64, Box<dyn Error>> {
    let round = threads * detector.config().batch_size;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Frame>(round * 2);
    let started = Instant::now();
    let mut count = 0usize;
    std::thread::scope(|scope| -> Result<(), Box<dyn Error>> {
        let video = args.video.clone();
        let (fps, max) = (args.sample_fps, args.max_frames);
        let reader = scope.spawn(move || -> Result<(), framecart_detector::DetectorError> {
            for frame in video_frames(&video, fps)?.take(max) {
                if tx.send(frame?).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let mut batch = Vec::with_capacity(round);
        loop {
            let next = rx.recv().ok();
            if let Some(f) = next.as_ref() {
                batch.push(f.clone());
            }
            if batch.len() == round || (next.is_none() && !batch.is_empty()) {
                count += detector.detect(&batch)?.len();
                batch.clear();
            }
            if next.is_none() {
                break;
            }
        }
        reader.join().map_err(|_| "the decoding thread panicked")??;
        Ok(())
    })?;
    Ok(count as f64 / args.sample_fps / started.elapsed().as_secs_f64())
}

/// The sampled frames as PPM files, which OpenCV reads losslessly; removed on drop.
struct FramesOnDisk {
    dir: PathBuf,
    paths: Vec<PathBuf>,
}

impl FramesOnDisk {
    fn write(frames: &[Frame]) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("framecart-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let paths = frames
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let path = dir.join(format!("{i:05}.ppm"));
                reference::write_ppm(f, &path).map(|()| path)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { dir, paths })
    }
}

impl Drop for FramesOnDisk {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs OpenCV's detector on the same frames through the reference script.
/// Also returns OpenCV's version and thread count, in words.
fn opencv(model: &ModelFiles, frames: &[PathBuf], sample_fps: f64) -> Result<(Figures, String), Box<dyn Error>> {
    let json = run_reference("bench", model, frames)?;
    let latencies: Vec<f64> = json["latencies_ms"]
        .as_array()
        .ok_or("no latencies from the OpenCV bench")?
        .iter()
        .filter_map(serde_json::Value::as_f64)
        .collect();
    let total = json["total_s"].as_f64().ok_or("no total from the OpenCV bench")?;
    let (median, p90) = percentiles(latencies);
    let about = format!(
        "OpenCV {} with {} threads",
        json["opencv"].as_str().unwrap_or("?"),
        json["threads"].as_i64().unwrap_or(0)
    );
    Ok((Figures { median, p90, throughput: frames.len() as f64 / sample_fps / total }, about))
}

/// The reference script's `command` (`bench` or `detect`) on `frames`, its JSON output.
fn run_reference(command: &str, model: &ModelFiles, frames: &[PathBuf]) -> Result<serde_json::Value, Box<dyn Error>> {
    Ok(reference::on_frames(command, model, frames)
        .map_err(|e| format!("OpenCV's {command}: {e} (or pass --skip-opencv)"))?)
}

/// OpenCV's detections (the reference script's `detect`) on the bench's frames against
/// ours, counted as [`Agreement`] counts them.
fn agreement(
    model: &ModelFiles,
    frames: &[PathBuf],
    ours: &[Vec<framecart_detector::Detection>],
) -> Result<Agreement, Box<dyn Error>> {
    let json = run_reference("detect", model, frames)?;
    let images = json["images"].as_array().ok_or("no images from the OpenCV detect")?;
    let mut agreement = Agreement::default();
    for (image, mine) in images.iter().zip(ours) {
        let mine: Vec<Found> = mine.iter().map(Found::from).collect();
        agreement.add(&reference::detections(image)?, &mine);
    }
    Ok(agreement)
}

/// The whole job on a video, as a merchant would run it, each side in its own process:
/// `framecart detect CLIP --json --sample-fps N` (model load, decoding, detection) against
/// the reference script's `video` command (model load, `ffmpeg -vf fps=N` into a folder,
/// OpenCV on each frame). The clip is cut from the bench video: 10 s, 480×360, 10 fps,
/// H.264. Returns the best wall time of each over `rounds`, alternating.
fn whole_video(
    framecart: &Path,
    files: &framecart_detector::ModelFiles,
    source: &Path,
    sample_fps: f64,
    rounds: usize,
) -> Result<(f64, f64), Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("framecart-bench-video-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let clip = dir.join("clip.mp4");
    let made = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-i"])
        .arg(source)
        .args(["-t", "10", "-vf", "scale=480:360,fps=10", "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(&clip)
        .status()?;
    if !made.success() {
        return Err("ffmpeg could not cut the 480x360 clip".into());
    }
    let fps = sample_fps.to_string();
    let model_dir = files.cfg.parent().ok_or("the model has no folder")?;
    let (python, script) = (reference::python(), reference::script());
    let timed = |command: &mut Command| -> Result<f64, Box<dyn Error>> {
        let started = Instant::now();
        let output = command.stdin(Stdio::null()).output()?;
        if !output.status.success() {
            return Err(format!("{command:?} failed: {}", String::from_utf8_lossy(&output.stderr)).into());
        }
        Ok(started.elapsed().as_secs_f64())
    };
    let (mut ours, mut theirs) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..rounds {
        ours = ours.min(timed(
            Command::new(framecart)
                .arg("detect")
                .arg(&clip)
                .args(["--json", "--sample-fps", &fps, "--model-dir"])
                .arg(model_dir)
                .env("RUST_LOG", "warn"),
        )?);
        theirs = theirs.min(timed(
            Command::new(&python)
                .arg(&script)
                .args(["video", "--sample-fps", &fps, "--cfg"])
                .arg(&files.cfg)
                .arg("--weights")
                .arg(&files.weights)
                .arg(&clip),
        )?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok((ours, theirs))
}
