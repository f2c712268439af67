//! Frames from media files through the system's FFmpeg: probing a video (`ffprobe`),
//! decoding it at the sampling rate only (one frame per sampling interval, each with its
//! presentation time, rgb24 at the displayed size, into reused buffers), and reading a
//! still image.
//!
//! # Which frames, and their times
//!
//! A video is sampled at `fps` by taking, in each interval `[k/fps, (k+1)/fps)` of media
//! time, the first frame presented in it, and that frame's own presentation time is its
//! timestamp. On constant-rate video whose rate is a multiple of the sampling rate these
//! are the frames at exactly `k/fps`. FFmpeg's `fps` filter is not used: it takes the
//! *last* frame of an interval centred on `k/fps` and labels it `k/fps`, so on 25 fps video
//! at 5 fps it hands over the frame at `k/5 + 0.08 s`, and on variable-rate video its
//! labels can be a whole interval off the picture. An interval without a frame (a still
//! held by variable-rate video) gives no sample, rather than a repeated one.
//!
//! The pixels are what FFmpeg's default conversion to RGB gives (what `ffmpeg -i v
//! frame%d.png` writes, and what OpenCV's own video reader gets), so other tools looking at
//! "the frame at t" see the same pixels. Rotation metadata is applied (FFmpeg's autorotate),
//! and odd sizes are kept as they are.
//!
//! Frames are decoded by `ffmpeg` processes (through `ffmpeg-sidecar`, without its
//! download feature) rather than linked libraries, so a broken file can only fail its
//! own process.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;

use ffmpeg_sidecar::command::FfmpegCommand;
use serde::Deserialize;

use crate::DetectorError;

/// One RGB frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    /// Interleaved RGB, row-major, `width * height * 3` bytes.
    pub rgb: Vec<u8>,
    /// Media time in seconds (0 for a still image).
    pub timestamp: f64,
}

impl Frame {
    /// Checks that the buffer matches the size.
    pub fn validate(&self) -> Result<(), DetectorError> {
        let expected = self.width as usize * self.height as usize * 3;
        if self.width == 0 || self.height == 0 || self.rgb.len() != expected {
            return Err(DetectorError::InvalidFrame(format!(
                "a {}x{} RGB frame needs {expected} bytes, this one has {}",
                self.width,
                self.height,
                self.rgb.len()
            )));
        }
        Ok(())
    }
}

/// What `probe` learns about a video.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Seconds.
    pub duration: f64,
    /// Displayed width in pixels (after the rotation the file asks for).
    pub width: u32,
    /// Displayed height in pixels.
    pub height: u32,
    /// Average frame rate (0 when unknown).
    pub fps: f64,
    /// FFmpeg's codec name, e.g. `h264`.
    pub codec: String,
    /// FFmpeg's demuxer name, e.g. `mov,mp4,m4a,3gp,3g2,mj2`.
    pub format: String,
}

#[derive(Deserialize)]
struct ProbeOutput {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    format: Option<ProbeFormat>,
}

#[derive(Deserialize)]
struct ProbeStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    duration: Option<String>,
    nb_frames: Option<String>,
    #[serde(default)]
    disposition: std::collections::HashMap<String, i64>,
    #[serde(default)]
    tags: std::collections::HashMap<String, String>,
    #[serde(default)]
    side_data_list: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct ProbeFormat {
    format_name: Option<String>,
    duration: Option<String>,
}

/// Demuxers that read still images; a file they read is not a video.
fn is_image_format(format: &str) -> bool {
    format == "image2" || format.ends_with("_pipe")
}

/// Probes a video file with `ffprobe -of json`. A file that is not a video (not media at
/// all, audio only, or a still image) is a `NotAVideo` error that says which.
pub fn probe(path: &Path) -> Result<VideoInfo, DetectorError> {
    let not_video = |message: String| DetectorError::NotAVideo { path: path.to_path_buf(), message };
    if !path.is_file() {
        return Err(not_video("no such file".into()));
    }
    let output = Command::new(ffmpeg_sidecar::ffprobe::ffprobe_path())
        .args(["-v", "error", "-of", "json", "-show_format", "-show_streams"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| DetectorError::FfmpegMissing { program: "ffprobe", source })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(not_video(format!("ffprobe cannot read it ({})", last_line(&stderr))));
    }
    let parsed: ProbeOutput =
        serde_json::from_slice(&output.stdout).map_err(|e| not_video(format!("unexpected ffprobe output: {e}")))?;
    let format = parsed.format.as_ref().and_then(|f| f.format_name.clone()).unwrap_or_default();
    if is_image_format(&format) {
        return Err(not_video(format!("it is a still image ({format}), not a video")));
    }
    let stream = parsed
        .streams
        .iter()
        .find(|s| {
            s.codec_type.as_deref() == Some("video") && s.disposition.get("attached_pic").copied().unwrap_or(0) == 0
        })
        .ok_or_else(|| not_video("it has no video stream".into()))?;
    let (Some(w), Some(h)) = (stream.width, stream.height) else {
        return Err(not_video("its video stream has no size".into()));
    };
    if w == 0 || h == 0 {
        return Err(not_video("its video stream has no size".into()));
    }
    let (width, height) = if rotation(stream).rem_euclid(180) == 90 { (h, w) } else { (w, h) };
    let fps = [&stream.avg_frame_rate, &stream.r_frame_rate]
        .into_iter()
        .filter_map(|r| r.as_deref().and_then(parse_rate))
        .next()
        .unwrap_or(0.0);
    let seconds =
        |s: &Option<String>| s.as_deref().and_then(|d| d.parse::<f64>().ok()).filter(|d| d.is_finite() && *d > 0.0);
    let duration = parsed
        .format
        .as_ref()
        .and_then(|f| seconds(&f.duration))
        .or_else(|| seconds(&stream.duration))
        .or_else(|| {
            let frames = stream.nb_frames.as_deref()?.parse::<f64>().ok()?;
            (fps > 0.0).then(|| frames / fps)
        })
        .ok_or_else(|| not_video("its duration is unknown".into()))?;
    Ok(VideoInfo { duration, width, height, fps, codec: stream.codec_name.clone().unwrap_or_default(), format })
}

/// The rotation in degrees the file asks players to apply (display matrix or the older
/// `rotate` tag); FFmpeg applies it when decoding.
fn rotation(stream: &ProbeStream) -> i64 {
    let from_side_data =
        stream.side_data_list.iter().find_map(|d| d.get("rotation").and_then(serde_json::Value::as_f64));
    let from_tag = stream.tags.get("rotate").and_then(|r| r.parse::<f64>().ok());
    from_side_data.or(from_tag).map_or(0, |r| r.round() as i64)
}

/// `"30000/1001"` → 29.97; `"0/0"` → None.
fn parse_rate(rate: &str) -> Option<f64> {
    let (n, d) = rate.split_once('/').unwrap_or((rate, "1"));
    let (n, d) = (n.parse::<f64>().ok()?, d.parse::<f64>().ok()?);
    (n > 0.0 && d > 0.0).then(|| n / d)
}

fn last_line(text: &str) -> String {
    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim().to_string()
}

/// Reads a still image as an RGB frame with timestamp 0.
///
/// JPEG, PNG and WebP are decoded by the `image` crate, whose JPEG decoder matches
/// libjpeg-turbo (what OpenCV's `imread` uses) to within a few levels, and the EXIF
/// orientation is applied as `imread` does; FFmpeg's JPEG decoding differs by up to 65
/// levels at colour edges. Any other format FFmpeg reads goes through FFmpeg.
pub fn read_image(path: &Path) -> Result<Frame, DetectorError> {
    let not_image = |message: String| DetectorError::NotAnImage { path: path.to_path_buf(), message };
    if !path.is_file() {
        return Err(not_image("no such file".into()));
    }
    let reader = image::ImageReader::open(path)
        .map_err(|e| DetectorError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DetectorError::io(path, e))?;
    if matches!(reader.format(), Some(image::ImageFormat::Jpeg | image::ImageFormat::Png | image::ImageFormat::WebP)) {
        use image::ImageDecoder;
        let mut decoder = reader.into_decoder().map_err(|e| not_image(e.to_string()))?;
        let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
        let mut decoded = image::DynamicImage::from_decoder(decoder).map_err(|e| not_image(e.to_string()))?;
        decoded.apply_orientation(orientation);
        let rgb = decoded.into_rgb8();
        let (width, height) = rgb.dimensions();
        return Ok(Frame { width, height, rgb: rgb.into_raw(), timestamp: 0.0 });
    }
    let (width, height) = image_size(path).map_err(|e| match e {
        DetectorError::NotAVideo { message, .. } => not_image(message),
        other => other,
    })?;
    let mut stream = FrameStream::spawn(path, width, height, &["-frames:v", "1"], 0.0, false)?;
    let mut frame = Frame { width, height, rgb: Vec::new(), timestamp: 0.0 };
    if !stream.read_into(&mut frame)? {
        return Err(not_image("FFmpeg decoded no picture from it".into()));
    }
    Ok(frame)
}

/// The size of the first video stream of any file ffprobe reads, images included.
fn image_size(path: &Path) -> Result<(u32, u32), DetectorError> {
    let not_image = |message: String| DetectorError::NotAVideo { path: path.to_path_buf(), message };
    let output = Command::new(ffmpeg_sidecar::ffprobe::ffprobe_path())
        .args(["-v", "error", "-of", "json", "-select_streams", "v:0", "-show_streams"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| DetectorError::FfmpegMissing { program: "ffprobe", source })?;
    if !output.status.success() {
        return Err(not_image(format!(
            "ffprobe cannot read it ({})",
            last_line(&String::from_utf8_lossy(&output.stderr))
        )));
    }
    let parsed: ProbeOutput =
        serde_json::from_slice(&output.stdout).map_err(|e| not_image(format!("unexpected ffprobe output: {e}")))?;
    let stream = parsed.streams.first().ok_or_else(|| not_image("it has no picture".into()))?;
    match (stream.width, stream.height) {
        (Some(w), Some(h)) if w > 0 && h > 0 => {
            Ok(if rotation(stream).rem_euclid(180) == 90 { (h, w) } else { (w, h) })
        }
        _ => Err(not_image("its picture has no size".into())),
    }
}

/// Frames of a video sampled at `sample_fps` frames per second of media time, from the
/// start. See [`video_frames_from`].
pub fn video_frames(path: &Path, sample_fps: f64) -> Result<VideoFrames, DetectorError> {
    video_frames_from(path, sample_fps, 0.0)
}

/// Frames of a video sampled at `sample_fps` frames per second of media time, starting at
/// `start_at` seconds (so a worker can resume): the first frame presented in each sampling
/// interval from there, with its presentation time (see the module docs). Only the sampled
/// frames are converted and copied out of FFmpeg.
pub fn video_frames_from(path: &Path, sample_fps: f64, start_at: f64) -> Result<VideoFrames, DetectorError> {
    if !(sample_fps.is_finite() && sample_fps > 0.0) {
        return Err(DetectorError::InvalidConfig(format!("the sampling rate must be positive, got {sample_fps}")));
    }
    if !(start_at.is_finite() && start_at >= 0.0) {
        return Err(DetectorError::InvalidConfig(format!("the start time must be 0 or later, got {start_at}")));
    }
    let info = probe(path)?;
    let filter = sampling_filter(sample_fps);
    let stream = FrameStream::spawn(
        path,
        info.width,
        info.height,
        // Every selected frame once, none repeated to fill a gap (rawvideo has no timestamps,
        // and FFmpeg would otherwise make the output constant-rate).
        &["-vf", &filter, "-fps_mode", "passthrough"],
        start_at,
        true,
    )?;
    Ok(VideoFrames { info, stream, start_at })
}

/// The filter that keeps the first frame of each sampling interval and logs its
/// presentation time (`showinfo`, read back from FFmpeg's log). `t` is the frame's time in
/// seconds; the small epsilon keeps a frame at exactly `k/fps` in interval `k` despite the
/// rounding of `pts × time_base`.
pub fn sampling_filter(sample_fps: f64) -> String {
    let interval = |t: &str| format!("floor({t}*{sample_fps}+1e-6)");
    format!(
        "select='isnan(prev_selected_t)+gte({}-{}\\,1)',showinfo=checksum=0",
        interval("t"),
        interval("prev_selected_t")
    )
}

/// The sampling interval that follows the one holding `timestamp`: where sampling resumes
/// after a frame at `timestamp` was recorded.
pub fn next_interval_start(timestamp: f64, sample_fps: f64) -> f64 {
    ((timestamp * sample_fps + 1e-6).floor() + 1.0) / sample_fps
}

/// An iterator over sampled frames; `next_into` reuses a frame's buffer instead.
#[derive(Debug)]
pub struct VideoFrames {
    info: VideoInfo,
    stream: FrameStream,
    start_at: f64,
}

impl VideoFrames {
    /// What the probe found.
    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// Decodes the next sampled frame into `frame`, reusing its buffer. `Ok(false)` at the
    /// end of the video.
    pub fn next_into(&mut self, frame: &mut Frame) -> Result<bool, DetectorError> {
        if !self.stream.read_into(frame)? {
            return Ok(false);
        }
        // FFmpeg's times start at 0 where decoding started (`-ss`); a first frame presented
        // before the start of the file (an edit list) counts as at its start.
        frame.timestamp = (self.start_at + self.stream.next_time()?).max(0.0);
        Ok(true)
    }
}

impl Iterator for VideoFrames {
    type Item = Result<Frame, DetectorError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut frame = Frame { width: 0, height: 0, rgb: Vec::new(), timestamp: 0.0 };
        match self.next_into(&mut frame) {
            Ok(true) => Some(Ok(frame)),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// A running `ffmpeg` writing raw RGB frames of a known size to its standard output.
#[derive(Debug)]
struct FrameStream {
    path: PathBuf,
    child: Child,
    stdout: Option<ChildStdout>,
    /// FFmpeg's log, read as it comes: the errors, kept for a message.
    stderr: Option<JoinHandle<String>>,
    /// The presentation times `showinfo` logged, in output order, when asked for.
    times: Option<mpsc::Receiver<f64>>,
    width: u32,
    height: u32,
    finished: bool,
}

impl FrameStream {
    /// Starts FFmpeg on `path` from `start_at` with the `extra` output options. With
    /// `timed`, the filters in `extra` end in `showinfo`, whose frame times are collected.
    fn spawn(
        path: &Path,
        width: u32,
        height: u32,
        extra: &[&str],
        start_at: f64,
        timed: bool,
    ) -> Result<Self, DetectorError> {
        let mut cmd = video_input(path, start_at, if timed { "level+info" } else { "level+error" });
        cmd.args(extra)
            // The displayed size is asked for explicitly so that the frame size is certain;
            // at that size the scaler only converts to RGB, with FFmpeg's default flags.
            .args(["-s", &format!("{width}x{height}")])
            .rawvideo();
        let inner = cmd.as_inner_mut();
        inner.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = inner.spawn().map_err(|source| DetectorError::FfmpegMissing { program: "ffmpeg", source })?;
        let stdout = child.stdout.take();
        let (sender, times) = mpsc::channel();
        let stderr = child.stderr.take().map(|err| std::thread::spawn(move || read_log(err, &sender)));
        Ok(Self {
            path: path.to_path_buf(),
            child,
            stdout,
            stderr,
            times: timed.then_some(times),
            width,
            height,
            finished: false,
        })
    }

    /// The presentation time, in seconds from where decoding started, of the frame read last.
    fn next_time(&mut self) -> Result<f64, DetectorError> {
        let times = self.times.as_ref().ok_or_else(|| self.fail("frame times were not asked for".into()))?;
        times.recv().map_err(|_| self.fail("FFmpeg gave a frame without its presentation time".into()))
    }

    /// Reads one frame into `frame` (resizing its buffer once); `Ok(false)` at a clean end.
    fn read_into(&mut self, frame: &mut Frame) -> Result<bool, DetectorError> {
        if self.finished {
            return Ok(false);
        }
        let len = self.width as usize * self.height as usize * 3;
        frame.width = self.width;
        frame.height = self.height;
        frame.rgb.resize(len, 0);
        let Some(stdout) = self.stdout.as_mut() else { return Ok(false) };
        let mut filled = 0;
        while filled < len {
            match stdout.read(&mut frame.rgb[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(format!("reading frames from ffmpeg: {e}"))),
            }
        }
        if filled == len {
            return Ok(true);
        }
        self.finished = true;
        self.stdout = None;
        let status = self.child.wait().map_err(|e| DetectorError::io(&self.path, e))?;
        let stderr = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        if !status.success() {
            return Err(self.fail(format!("ffmpeg exited with {status}: {}", last_line(&stderr))));
        }
        if filled != 0 {
            return Err(self.fail(format!("the last frame was cut short ({filled} of {len} bytes)")));
        }
        Ok(false)
    }

    fn fail(&self, message: String) -> DetectorError {
        DetectorError::Decode { path: self.path.clone(), message }
    }
}

impl Drop for FrameStream {
    fn drop(&mut self) {
        if !self.finished {
            // Stopped early: the process would block on a full pipe otherwise.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads FFmpeg's log (lines prefixed with their level, `-loglevel level+…`): sends the
/// presentation time of each frame `showinfo` logs, and returns the error lines.
fn read_log(stderr: impl Read, times: &mpsc::Sender<f64>) -> String {
    use std::io::BufRead;
    let mut errors = String::new();
    let mut time_base = None;
    for line in std::io::BufReader::new(stderr).split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line);
        if line.contains("Parsed_showinfo") {
            if let Some(base) = field(&line, "config in time_base:").and_then(parse_time_base) {
                time_base = Some(base);
            } else if let (Some(Ok(pts)), Some((num, den))) = (field(&line, " pts:").map(str::parse::<i64>), time_base)
            {
                // The reader may have stopped early; the rest of the log is still drained.
                let _ = times.send(pts as f64 * num as f64 / den as f64);
            }
        } else if ["[error]", "[fatal]", "[panic]"].iter().any(|level| line.contains(level)) {
            errors.push_str(&line.replace("[error] ", "").replace("[fatal] ", "").replace("[panic] ", ""));
            errors.push('\n');
        }
    }
    errors
}

/// The word after `key` in a log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.split_whitespace().next().map(|v| v.trim_end_matches(','))
}

/// `"1/12800"` → (1, 12800).
fn parse_time_base(text: &str) -> Option<(i64, i64)> {
    let (num, den) = text.split_once('/')?;
    let (num, den) = (num.parse().ok()?, den.parse().ok()?);
    (num > 0 && den > 0).then_some((num, den))
}

/// FFmpeg reading the first video stream of `path` from media time `start_at`, logging at
/// `loglevel` without progress lines (read by no one); the caller adds the output.
fn video_input(path: &Path, start_at: f64, loglevel: &str) -> FfmpegCommand {
    let mut cmd = FfmpegCommand::new();
    cmd.args(["-hide_banner", "-nostdin", "-nostats", "-loglevel", loglevel]);
    if start_at > 0.0 {
        // Before the input: a fast seek to the key frame, then decoding up to it exactly.
        cmd.args(["-ss", &format!("{start_at}")]);
    }
    cmd.input(path).args(["-map", "0:v:0", "-an", "-sn", "-dn"]);
    cmd
}

/// One frame of a video as a JPEG picture, `width` pixels wide (the height keeps the
/// displayed aspect), at media time `t`: the frame shown at that moment. What a page shows
/// under a heatmap, or as a poster.
pub fn still_jpeg(path: &Path, t: f64, width: u32) -> Result<Vec<u8>, DetectorError> {
    if !(t.is_finite() && t >= 0.0) {
        return Err(DetectorError::InvalidConfig(format!("the time must be 0 or later, got {t}")));
    }
    if !(16..=4096).contains(&width) {
        return Err(DetectorError::InvalidConfig(format!("the width must be 16 to 4096 pixels, got {width}")));
    }
    let mut cmd = video_input(path, t, "error");
    cmd.args(["-frames:v", "1"])
        .args(["-vf", &format!("scale={width}:-2")])
        .args(["-f", "image2pipe", "-c:v", "mjpeg", "-q:v", "4"])
        .output("-");
    let inner = cmd.as_inner_mut();
    inner.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = inner.output().map_err(|source| DetectorError::FfmpegMissing { program: "ffmpeg", source })?;
    if !out.status.success() || out.stdout.is_empty() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = if out.status.success() { "no frame at that time".to_owned() } else { last_line(&stderr) };
        return Err(DetectorError::Decode { path: path.to_path_buf(), message: format!("a still at {t} s: {why}") });
    }
    Ok(out.stdout)
}
