//! Agreement with the reference implementation, OpenCV's DNN module running the same
//! darknet files (`reference/opencv_reference.py`), on the still images and on frames of
//! the test videos: every reference detection of confidence 0.5 or more must be found
//! with the same label, IoU ≥ 0.85 and a confidence within 0.05, and every detection of
//! ours of 0.55 or more must be one the reference finds too.

mod common;

use std::path::PathBuf;

use common::{detector, media, model, read_frames, write_ppm};
use framecart_detector::{Frame, Resizer, iou, read_image, reference};

const MIN_REFERENCE_CONFIDENCE: f32 = 0.5;
const MIN_IOU: f32 = 0.85;
const MAX_CONFIDENCE_DIFF: f32 = 0.05;
/// Ours must be found by the reference from here on (a margin over 0.5 for near misses).
const MIN_OWN_CONFIDENCE: f32 = 0.55;

/// Frames of the test videos, in media time: a few of bikes.mp4 and of pan.mp4.
fn video_frames() -> Vec<(String, Frame)> {
    let mut frames = Vec::new();
    for (name, fps, take) in [("bikes.mp4", 0.5, 5), ("pan.mp4", 1.0, 3)] {
        for frame in read_frames(&media(name), fps).into_iter().take(take) {
            frames.push((format!("{name}@{:.1}s", frame.timestamp), frame));
        }
    }
    frames
}

#[test]
fn detections_agree_with_opencv_on_images_and_video_frames() {
    let files = model();
    let detector = detector();
    let dir = tempfile::tempdir().expect("temp dir");

    // Stills are read by each side with its own decoder, as each would in production;
    // video frames are decoded once, here, and handed to OpenCV losslessly as PPM.
    let mut cases: Vec<(String, Frame, PathBuf)> = common::STILLS
        .iter()
        .map(|name| {
            let path = media(name);
            let frame = read_image(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name.to_string(), frame, path)
        })
        .collect();
    for (i, (label, frame)) in video_frames().into_iter().enumerate() {
        let path = dir.path().join(format!("frame{i}.ppm"));
        write_ppm(&frame, &path);
        cases.push((label, frame, path));
    }
    assert!(cases.len() >= 15, "expected 9 stills and 8 video frames, got {}", cases.len());

    let frames: Vec<Frame> = cases.iter().map(|(_, f, _)| f.clone()).collect();
    let ours = detector.detect(&frames).expect("detection runs");

    let paths: Vec<PathBuf> = cases.iter().map(|(_, _, p)| p.clone()).collect();
    let reference = reference::on_frames("detect", &files, &paths).unwrap_or_else(|e| panic!("{e}"));
    let images = reference["images"].as_array().expect("images");
    assert_eq!(images.len(), cases.len());

    let mut failures = Vec::new();
    let (mut compared, mut worst_iou, mut worst_diff) = (0, 1.0f32, 0.0f32);
    println!("{:<22} {:<14} {:>8} {:>8} {:>6}", "image", "object", "opencv", "ours", "IoU");
    for ((label, frame, _), (mine, theirs)) in cases.iter().zip(ours.iter().zip(images)) {
        assert_eq!(
            (theirs["width"].as_u64(), theirs["height"].as_u64()),
            (Some(u64::from(frame.width)), Some(u64::from(frame.height))),
            "{label}: both sides see the same size"
        );
        let theirs = reference::detections(theirs).expect("OpenCV's detections");
        for r in theirs.iter().filter(|r| r.confidence >= MIN_REFERENCE_CONFIDENCE) {
            let name = &detector.classes()[r.class_id];
            let best = mine
                .iter()
                .filter(|d| d.class_id == r.class_id)
                .max_by(|a, b| iou(a.bbox, r.bbox).total_cmp(&iou(b.bbox, r.bbox)));
            match best {
                Some(d) => {
                    let (overlap, diff) = (iou(d.bbox, r.bbox), (d.confidence - r.confidence).abs());
                    println!("{label:<22} {name:<14} {:>8.3} {:>8.3} {overlap:>6.3}", r.confidence, d.confidence);
                    compared += 1;
                    worst_iou = worst_iou.min(overlap);
                    worst_diff = worst_diff.max(diff);
                    if overlap < MIN_IOU || diff > MAX_CONFIDENCE_DIFF {
                        failures.push(format!(
                            "{label}: {name} {:.3} at {:?}: ours {:.3} at {:?} (IoU {overlap:.3})",
                            r.confidence, r.bbox, d.confidence, d.bbox
                        ));
                    }
                }
                None => failures.push(format!("{label}: {name} {:.3} at {:?} not found by ours", r.confidence, r.bbox)),
            }
        }
        for d in mine.iter().filter(|d| d.confidence >= MIN_OWN_CONFIDENCE) {
            let found = theirs.iter().any(|r| r.class_id == d.class_id && iou(r.bbox, d.bbox) >= MIN_IOU);
            if !found {
                failures
                    .push(format!("{label}: ours {} {:.3} at {:?} not found by OpenCV", d.label, d.confidence, d.bbox));
            }
        }
    }
    println!("{compared} objects compared; lowest IoU {worst_iou:.3}, largest confidence difference {worst_diff:.3}");
    assert!(compared >= 20, "too few confident reference objects ({compared}) to say anything");
    assert!(failures.is_empty(), "disagreements with OpenCV:\n{}", failures.join("\n"));
}

#[test]
fn the_resize_matches_opencv_bit_for_bit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut frames: Vec<(String, Frame)> =
        common::STILLS.iter().map(|n| (n.to_string(), read_image(&media(n)).expect("image reads"))).collect();
    // bikes.mp4 is 640x272: its height is scaled up, which exercises the edge rows.
    frames.extend(read_frames(&media("bikes.mp4"), 1.0).into_iter().take(1).map(|f| ("bikes.mp4".to_string(), f)));
    for (name, frame) in frames {
        let (w, h) = (frame.width as usize, frame.height as usize);
        let mut ours = vec![0u8; 416 * 416 * 3];
        Resizer::new(w, h, 416, 416).resize_rgb(&frame.rgb, &mut ours);
        let raw = dir.path().join("in.raw");
        let out = dir.path().join("out.raw");
        std::fs::write(&raw, &frame.rgb).expect("write raw");
        let output = std::process::Command::new(reference::python())
            .arg(reference::script())
            .args(["resize", "--size", "416", "416"])
            .arg(&raw)
            .args([w.to_string(), h.to_string()])
            .arg(&out)
            .output()
            .expect("run the reference script");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let theirs = std::fs::read(&out).expect("read resized");
        let differing = ours.iter().zip(&theirs).filter(|(a, b)| a != b).count();
        let largest = ours.iter().zip(&theirs).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);
        assert_eq!(differing, 0, "{name}: {differing} values differ from cv2.resize (by up to {largest})");
    }
}
