//! Probing videos, sampling their frames and reading stills through FFmpeg.

mod common;

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
    assert_eq!(from_five[1].timestamp, 5.5);
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
