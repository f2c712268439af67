//! Probing videos, sampling their frames and reading stills through FFmpeg.

mod common;

use std::path::{Path, PathBuf};

use common::{media, read_frames};
use framecart_detector::{DetectorError, Frame, probe, read_image, video_frames, video_frames_from};

#[test]
fn probe_reports_size_rate_duration_codec_and_container() {
    let info = probe(&media("bikes.mp4")).expect("bikes.mp4 probes");
    assert_eq!((info.width, info.height), (640, 272));
    assert!((info.fps - 25.0).abs() < 0.01, "{}", info.fps);
    assert!((info.duration - 10.0).abs() < 0.2, "{}", info.duration);
    assert_eq!(info.codec, "h264");
    assert!(info.format.contains("mp4"), "{}", info.format);
}

#[test]
fn probe_says_a_still_image_is_not_a_video() {
    let err = probe(&media("dog.jpg")).expect_err("a JPEG is not a video");
    assert!(matches!(err, DetectorError::NotAVideo { .. }), "{err:?}");
    assert!(err.to_string().contains("still image"), "{err}");
}

#[test]
fn probe_says_a_text_file_is_not_a_video() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let err = probe(&path).expect_err("Cargo.toml is not a video");
    assert!(err.to_string().contains("is not a readable video"), "{err}");
    let err = probe(std::path::Path::new("/nonexistent.mp4")).expect_err("no file");
    assert!(err.to_string().contains("no such file"), "{err}");
}

#[test]
fn frames_are_decoded_at_the_sampling_rate_and_the_original_size() {
    let frames = read_frames(&media("bikes.mp4"), 5.0);
    assert!((49..=51).contains(&frames.len()), "10 s at 5 fps gave {} frames", frames.len());
    for (i, f) in frames.iter().enumerate() {
        assert_eq!((f.width, f.height, f.rgb.len()), (640, 272, 640 * 272 * 3));
        assert!((f.timestamp - i as f64 * 0.2).abs() < 1e-9, "frame {i} at {}", f.timestamp);
    }
    // Consecutive samples of a moving scene differ.
    assert_ne!(frames[0].rgb, frames[10].rgb);
}

#[test]
fn sampling_can_start_part_way_through() {
    let all = read_frames(&media("bikes.mp4"), 2.0);
    let from_five: Vec<Frame> =
        video_frames_from(&media("bikes.mp4"), 2.0, 5.0).expect("starts").collect::<Result<_, _>>().expect("decodes");
    assert!((9..=11).contains(&from_five.len()), "{} frames after 5 s", from_five.len());
    assert_eq!(from_five[0].timestamp, 5.0);
    // 25 fps has no frame at 5.5 s: the first one presented after it.
    assert!((from_five[1].timestamp - 5.52).abs() < 1e-9, "{}", from_five[1].timestamp);
    // The frame at 5 s is the same picture whether decoding started there or at 0.
    let at_five = all.iter().find(|f| f.timestamp == 5.0).expect("a frame at 5 s");
    let mean_diff = at_five.rgb.iter().zip(&from_five[0].rgb).map(|(a, b)| f64::from(a.abs_diff(*b))).sum::<f64>()
        / at_five.rgb.len() as f64;
    assert!(mean_diff < 1.0, "the frames at 5 s differ by {mean_diff} on average");
}

#[test]
fn next_into_reuses_the_frame_buffer() {
    let mut frames = video_frames(&media("bikes.mp4"), 5.0).expect("starts");
    assert_eq!(frames.info().width, 640);
    let mut frame = Frame { width: 0, height: 0, rgb: Vec::new(), timestamp: 0.0 };
    assert!(frames.next_into(&mut frame).expect("decodes"));
    let buffer = frame.rgb.as_ptr();
    assert!(frames.next_into(&mut frame).expect("decodes"));
    assert_eq!(frame.rgb.as_ptr(), buffer, "the second frame landed in the first one's buffer");
    assert_eq!(frame.timestamp, 0.2);
}

#[test]
fn stopping_early_ends_ffmpeg() {
    // Dropping the iterator part-way must not hang on ffmpeg's full pipe.
    let first = video_frames(&media("bikes.mp4"), 25.0).expect("starts").next();
    assert!(matches!(first, Some(Ok(_))));
}

#[test]
fn the_sampling_rate_and_start_must_make_sense() {
    for (fps, start) in [(0.0, 0.0), (-1.0, 0.0), (f64::NAN, 0.0), (5.0, -1.0)] {
        let err = video_frames_from(&media("bikes.mp4"), fps, start).expect_err("refused");
        assert!(matches!(err, DetectorError::InvalidConfig(_)), "{err:?}");
    }
}

#[test]
fn stills_are_read_at_their_size() {
    let dog = read_image(&media("dog.jpg")).expect("dog.jpg reads");
    assert_eq!((dog.width, dog.height, dog.rgb.len()), (768, 576, 768 * 576 * 3));
    let astronaut = read_image(&media("astronaut.png")).expect("astronaut.png reads");
    assert_eq!((astronaut.width, astronaut.height), (512, 512));
    assert_eq!(astronaut.timestamp, 0.0);
}

#[test]
fn a_still_that_is_not_an_image_is_refused() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let err = read_image(&path).expect_err("Cargo.toml is not an image");
    assert!(err.to_string().contains("is not a readable image"), "{err}");
}

#[test]
fn ffmpeg_reads_stills_the_image_crate_does_not() {
    // A BMP goes through FFmpeg.
    let dir = tempfile::tempdir().expect("temp dir");
    let bmp = dir.path().join("dog.bmp");
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(media("dog.jpg"))
        .arg(&bmp)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    let frame = read_image(&bmp).expect("the BMP reads");
    assert_eq!((frame.width, frame.height), (768, 576));
}

// ----- Which frames are sampled, at which times, on generated videos -----------------------

/// Runs ffmpeg quietly with `args`; panics with its message on failure.
fn ffmpeg(args: &[&str]) {
    let output = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs");
    assert!(output.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// A lossless H.264 video whose frame `n` is a flat grey of luma `16 + 4n`, so that each
/// decoded frame says which one it is (see [`frame_number`]). `filters` may retime it.
fn numbered_video(
    dir: &Path,
    name: &str,
    size: &str,
    rate: &str,
    frames: u32,
    filters: &str,
    pix_fmt: &str,
) -> PathBuf {
    let path = dir.join(name);
    let source = format!("color=black:s={size}:r={rate},format={pix_fmt},geq=lum='16+4*N':cb=128:cr=128");
    let frames = frames.to_string();
    let mut args = vec!["-f", "lavfi", "-i", &source, "-frames:v", &frames];
    if !filters.is_empty() {
        args.extend(["-vf", filters, "-fps_mode", "vfr"]);
    }
    args.extend(["-c:v", "libx264", "-qp", "0", "-pix_fmt", pix_fmt, "-video_track_timescale", "30000"]);
    let out = path.to_str().expect("utf-8 path");
    args.push(out);
    ffmpeg(&args);
    path
}

/// Which frame of a [`numbered_video`] this is (its grey level, back through the range
/// expansion of the conversion to RGB).
fn frame_number(frame: &Frame) -> u32 {
    let mean = frame.rgb.iter().map(|&v| f64::from(v)).sum::<f64>() / frame.rgb.len() as f64;
    (mean * 219.0 / 255.0 / 4.0).round() as u32
}

/// Every frame's presentation time, as ffprobe reports it.
fn presentation_times(path: &Path) -> Vec<f64> {
    let output = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split(',').next().and_then(|t| t.trim().parse().ok()))
        .collect()
}

/// What sampling at `fps` must give: (frame number, time) of the first frame presented in
/// each interval `[k/fps, (k+1)/fps)` that has one.
fn expected_samples(times: &[f64], fps: f64) -> Vec<(u32, f64)> {
    let mut samples: Vec<(u32, f64)> = Vec::new();
    for (n, &t) in times.iter().enumerate() {
        let interval = (t * fps + 1e-6).floor();
        if samples.last().is_none_or(|&(_, last)| (last * fps + 1e-6).floor() < interval) {
            samples.push((n as u32, t));
        }
    }
    samples
}

fn sampled(frames: &[Frame]) -> Vec<(u32, f64)> {
    frames.iter().map(|f| (frame_number(f), f.timestamp)).collect()
}

fn assert_samples(what: &str, got: &[(u32, f64)], expected: &[(u32, f64)]) {
    assert_eq!(got.len(), expected.len(), "{what}: got {got:?}, expected {expected:?}");
    for (g, e) in got.iter().zip(expected) {
        assert!(g.0 == e.0 && (g.1 - e.1).abs() < 1e-6, "{what}: got {got:?}, expected {expected:?}");
    }
}

#[test]
fn sampled_frames_are_the_first_of_each_interval_at_their_presentation_times() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 25 fps: exactly the frames at k/5 (FFmpeg's fps filter would hand over 5k + 2, the
    // picture 80 ms later, labelled k/5). 29.97 fps: the first frame at or after k/5.
    for (name, rate, frames) in [("cfr25.mp4", "25", 50), ("ntsc.mp4", "30000/1001", 60)] {
        let video = numbered_video(dir.path(), name, "64x48", rate, frames, "", "yuv420p");
        let got = sampled(&read_frames(&video, 5.0));
        assert_samples(name, &got, &expected_samples(&presentation_times(&video), 5.0));
        if rate == "25" {
            let at_k_over_5: Vec<(u32, f64)> = (0..10).map(|k| (5 * k, f64::from(k) / 5.0)).collect();
            assert_samples(name, &got, &at_k_over_5);
        }
    }
}

#[test]
fn variable_frame_rate_video_is_sampled_at_its_presentation_times_without_repeats() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Five frames 0.15 s apart, nothing for 0.9 s, then frames every 50 ms.
    let retime = "setpts='if(lt(N,5),N*0.15,if(eq(N,5),1.5,1.5+(N-5)*0.05))/TB'";
    let video = numbered_video(dir.path(), "vfr.mp4", "64x48", "20", 20, retime, "yuv420p");
    let times = presentation_times(&video);
    assert!(times.windows(2).any(|w| w[1] - w[0] > 0.8), "the video has a gap: {times:?}");
    let expected = expected_samples(&times, 5.0);
    let got = sampled(&read_frames(&video, 5.0));
    assert_samples("vfr.mp4", &got, &expected);
    // Nothing repeated into the gap: fewer samples than intervals.
    let duration = times.last().expect("frames");
    assert!((got.len() as f64) < duration * 5.0, "{got:?}");

    // A worker resuming after the last frame before the gap starts with the first after it.
    let (_, before_gap) = expected.iter().rev().find(|(_, t)| *t < 1.0).copied().expect("a frame before the gap");
    let start = framecart_detector::next_interval_start(before_gap, 5.0);
    let resumed: Vec<Frame> =
        video_frames_from(&video, 5.0, start).expect("starts").collect::<Result<_, _>>().expect("decodes");
    let after: Vec<(u32, f64)> = expected.iter().copied().filter(|(_, t)| *t > before_gap).collect();
    assert_samples("vfr.mp4 resumed", &sampled(&resumed), &after);
}

#[test]
fn a_rotation_tag_is_applied_and_odd_sizes_are_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    // White left half, black right half, then tagged to be shown turned by 90°.
    let plain = dir.path().join("plain.mp4");
    let source = "color=white:s=64x48:r=10,drawbox=x=32:y=0:w=32:h=48:color=black:t=fill";
    ffmpeg(&["-f", "lavfi", "-i", source, "-frames:v", "10", "-c:v", "libx264", "-pix_fmt", "yuv420p", path(&plain)]);
    let rotated = dir.path().join("rotated.mp4");
    ffmpeg(&["-i", path(&plain), "-c", "copy", "-metadata:s:v:0", "rotate=90", path(&rotated)]);
    let info = probe(&rotated).expect("probes");
    assert_eq!((info.width, info.height), (48, 64), "the displayed size");
    let frame = read_frames(&rotated, 5.0).into_iter().next().expect("a frame");
    assert_eq!((frame.width, frame.height), (48, 64));
    // Turned: the halves are now the top and the bottom, each row one colour.
    let luma = |x: u32, y: u32| frame.rgb[((y * frame.width + x) * 3) as usize];
    let (top, bottom) = (luma(24, 4), luma(24, 60));
    assert!(top.abs_diff(bottom) > 200, "top {top}, bottom {bottom}");
    assert!((0..48).all(|x| luma(x, 4).abs_diff(top) < 30 && luma(x, 60).abs_diff(bottom) < 30));

    // An odd width and height (H.264 in 4:4:4, which allows them).
    let odd = numbered_video(dir.path(), "odd.mp4", "63x47", "10", 10, "", "yuv444p");
    let frames = read_frames(&odd, 5.0);
    assert_eq!(frames.len(), 5, "1 s at 5 fps");
    for f in &frames {
        assert_eq!((f.width, f.height, f.rgb.len()), (63, 47, 63 * 47 * 3));
    }
    assert_eq!(sampled(&frames).iter().map(|s| s.0).collect::<Vec<_>>(), [0, 2, 4, 6, 8]);
    let found = common::detector().detect(&frames[..2]).expect("odd-sized frames go through the detector");
    assert_eq!(found.len(), 2);
}

#[test]
fn sampled_pixels_are_what_ffmpeg_gives_any_tool() {
    // The frame at 1 s of bikes.mp4 (25 fps: frame 25), as `ffmpeg … frame.ppm` writes it.
    let dir = tempfile::tempdir().expect("temp dir");
    let ppm = dir.path().join("frame.ppm");
    ffmpeg(&["-i", path(&media("bikes.mp4")), "-vf", "select=eq(n\\,25)", "-frames:v", "1", path(&ppm)]);
    let bytes = std::fs::read(&ppm).expect("ppm");
    let header = b"P6\n640 272\n255\n";
    assert_eq!(&bytes[..header.len()], header);
    let ours = read_frames(&media("bikes.mp4"), 5.0).into_iter().find(|f| f.timestamp == 1.0).expect("t = 1 s");
    assert!(ours.rgb == bytes[header.len()..], "the frame at 1 s differs from FFmpeg's own");
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
