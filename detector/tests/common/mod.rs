//! What the integration tests need from the machine, prepared by
//! `detector/scripts/setup.sh`: the test media, the model, and the Python venv with the
//! reference implementation. A missing piece fails the test with a message that names the
//! script; nothing is skipped.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use framecart_detector::{Detector, DetectorConfig, Frame, ModelFiles, default_model_dir, locate_model, reference};

pub use framecart_detector::reference::SETUP;

fn cache_dir() -> PathBuf {
    let home = std::env::var_os("HOME").expect("HOME is set");
    PathBuf::from(home).join(".cache").join("framecart")
}

/// The directory with the test media.
pub fn media_dir() -> PathBuf {
    std::env::var_os("FRAMECART_TEST_MEDIA").map_or_else(|| cache_dir().join("test-media"), PathBuf::from)
}

/// A test media file; panics, naming the set-up script, when it is missing.
pub fn media(name: &str) -> PathBuf {
    let path = media_dir().join(name);
    assert!(path.is_file(), "test media {} is missing; {SETUP}", path.display());
    path
}

/// The still images of the reference comparison.
pub const STILLS: [&str; 9] = [
    "dog.jpg",
    "person.jpg",
    "horses.jpg",
    "kite.jpg",
    "giraffe.jpg",
    "astronaut.png",
    "motorcycle_left.png",
    "coffee.png",
    "chelsea.png",
];

/// The model set-up fetched.
pub fn model() -> ModelFiles {
    let dir = default_model_dir();
    locate_model(&dir).unwrap_or_else(|e| panic!("{e}; {SETUP}"))
}

pub fn detector() -> Detector {
    Detector::load(&model(), DetectorConfig::default()).unwrap_or_else(|e| panic!("{e}; {SETUP}"))
}

/// Writes a frame as a binary PPM, which OpenCV reads losslessly.
pub fn write_ppm(frame: &Frame, path: &Path) {
    reference::write_ppm(frame, path).expect("write ppm");
}

/// All frames of a video sampled at `fps`.
pub fn read_frames(path: &Path, fps: f64) -> Vec<Frame> {
    framecart_detector::video_frames(path, fps)
        .unwrap_or_else(|e| panic!("{e}"))
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{e}"))
}
