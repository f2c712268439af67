//! Framecart's object detector: finds objects in a merchant's video over time.
//!
//! A darknet YOLO model (by default YOLOv4-tiny on COCO; a merchant's own darknet cfg,
//! weights and class names work the same way) runs as a burn model on the pure-Rust
//! `flex` CPU backend (or a GPU, behind the cargo features `gpu-wgpu` and `gpu-cuda`:
//! `backend`). Frames come from the system's FFmpeg, sampled at a fixed rate.
//!
//! ```text
//! model dir ──locate_model/fetch_model──▶ ModelFiles ──Detector::load──▶ Detector
//! video ──video_frames(path, fps)──▶ Frame… ──Detector::detect──▶ Vec<Detection> per frame
//! ```
//!
//! - `cfg`: the darknet cfg parser (typed layers, output shapes).
//! - `weights`: the darknet weights reader (size and sha256 checks, batch norm folded).
//! - `network`: the burn model built from both.
//! - `preprocess`: the resize to the network's input (OpenCV's `INTER_LINEAR`, bit for bit).
//! - `yolo`: decoding the heads and per-class NMS (as OpenCV's `DetectionModel`).
//! - `media`: `probe`, `video_frames`, `read_image` through `ffprobe`/`ffmpeg`.
//! - `model_files`: where the model lives and how the default one is fetched.
//! - `reference`: running the reference implementation (OpenCV), for the bench and the tests.
//!
//! # Architecture invariants
//!
//! - Depends on `framecart-domain` only among Framecart's crates; no async runtime, no
//!   database, no HTTP server. Everything here blocks: callers run it on a blocking thread.
//! - Results agree with the reference implementation, OpenCV's DNN module reading the same
//!   darknet files (`cv2.dnn_DetectionModel`, input 416², scale 1/255, RGB): the
//!   preprocessing and post-processing reproduce it, and `tests/reference.rs` checks it.
//! - The network is built from the cfg, never hard-coded: every layer type or option the
//!   detector cannot run is a load-time error naming the cfg line.
//! - Model files are never in git and never fetched at build time; weights whose size does
//!   not fit the cfg, or whose sha256 differs from the expected one, are refused.
//! - Frames are decoded only at the sampled rate and keep the video's displayed size; the
//!   detector maps boxes back to those pixels and clips them to the frame.

mod backend;
mod cfg;
mod detector;
mod error;
mod media;
mod model_files;
mod network;
mod preprocess;
pub mod reference;
mod weights;
mod yolo;

pub use backend::Backend;
pub use detector::{Detection, Detector, DetectorConfig};
pub use error::DetectorError;
pub use media::{
    Frame, VideoFrames, VideoInfo, next_interval_start, probe, read_image, sampling_filter, still_jpeg, video_frames,
    video_frames_from,
};
pub use model_files::{
    DEFAULT_WEIGHTS_SHA256, MODEL_DIR_ENV, ModelFiles, default_model_dir, fetch_model, locate_model,
};
pub use preprocess::Resizer;
pub use yolo::iou;

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn detector_is_send_and_sync() {
        assert_send_sync::<super::Detector>();
    }
}
