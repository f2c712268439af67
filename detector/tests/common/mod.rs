//! What the integration tests need from the machine, prepared by
//! `detector/scripts/setup.sh`: the test media, the model, and the Python venv with the
//! reference implementation. A missing piece fails the test with a message that names the
//! script; nothing is skipped.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use framecart_detector::{Detector, DetectorConfig, Frame, ModelFiles, default_model_dir, locate_model};

pub const SETUP: &str = "run detector/scripts/setup.sh to prepare the machine";

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

/// The venv's Python.
pub fn python() -> PathBuf {
    let venv = std::env::var_os("FRAMECART_VENV").map_or_else(|| cache_dir().join("venv"), PathBuf::from);
    let python = venv.join("bin").join("python");
    assert!(python.is_file(), "the Python venv {} is missing; {SETUP}", venv.display());
    python
}

pub fn reference_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("reference").join("opencv_reference.py")
}

/// Runs the reference script and returns its JSON output.
pub fn run_reference(args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let output = Command::new(python())
        .arg(reference_script())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the reference script: {e}; {SETUP}"));
    assert!(
        output.status.success(),
        "the reference script failed ({}): {}; {SETUP}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the reference script prints JSON")
}

/// Writes a frame as a binary PPM, which OpenCV reads losslessly.
pub fn write_ppm(frame: &Frame, path: &Path) {
    let mut bytes = format!("P6\n{} {}\n255\n", frame.width, frame.height).into_bytes();
    bytes.extend_from_slice(&frame.rgb);
    std::fs::write(path, bytes).expect("write ppm");
}

/// All frames of a video sampled at `fps`.
pub fn read_frames(path: &Path, fps: f64) -> Vec<Frame> {
    framecart_detector::video_frames(path, fps)
        .unwrap_or_else(|e| panic!("{e}"))
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{e}"))
}
