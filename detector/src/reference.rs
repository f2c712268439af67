//! The reference implementation the detector is compared with: OpenCV's DNN module running
//! the same darknet files, through `reference/opencv_reference.py` in the Python venv that
//! `scripts/setup.sh` prepares (`FRAMECART_VENV`, default `~/.cache/framecart/venv`). The
//! bench and the tests use it; nothing in production does.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::{Detection, Frame, ModelFiles, iou};

/// What to do when the venv is missing.
pub const SETUP: &str = "run detector/scripts/setup.sh to prepare the machine";

/// The venv's Python (which may not exist yet).
pub fn python() -> PathBuf {
    let venv = std::env::var_os("FRAMECART_VENV").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/framecart/venv"),
        PathBuf::from,
    );
    venv.join("bin").join("python")
}

/// `reference/opencv_reference.py`.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("reference").join("opencv_reference.py")
}

/// Runs the reference script with `args` and returns its JSON output; the error says what
/// failed (and, for a missing venv, what to run).
pub fn run(args: &[&OsStr]) -> Result<serde_json::Value, String> {
    let python = python();
    if !python.is_file() {
        return Err(format!("the Python venv ({}) is missing; {SETUP}", python.display()));
    }
    let output = std::process::Command::new(&python)
        .arg(script())
        .args(args)
        .output()
        .map_err(|e| format!("cannot run the reference script: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "the reference script failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("the reference script printed no JSON: {e}"))
}

/// The reference script's `command` (`detect` or `bench`) with `model`'s darknet files on
/// the image files `frames`, its JSON output.
pub fn on_frames(command: &str, model: &ModelFiles, frames: &[PathBuf]) -> Result<serde_json::Value, String> {
    let mut args: Vec<&OsStr> = vec![
        command.as_ref(),
        "--cfg".as_ref(),
        model.cfg.as_os_str(),
        "--weights".as_ref(),
        model.weights.as_os_str(),
    ];
    args.extend(frames.iter().map(|p| p.as_os_str()));
    run(&args)
}

/// Writes a frame as a binary PPM, which OpenCV reads losslessly.
pub fn write_ppm(frame: &Frame, path: &Path) -> std::io::Result<()> {
    let mut bytes = format!("P6\n{} {}\n255\n", frame.width, frame.height).into_bytes();
    bytes.extend_from_slice(&frame.rgb);
    std::fs::write(path, bytes)
}

/// One box, OpenCV's or the detector's, for comparing them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Found {
    pub class_id: usize,
    pub confidence: f32,
    /// `[xmin, ymin, xmax, ymax]` in frame pixels.
    pub bbox: [f32; 4],
}

impl From<&Detection> for Found {
    fn from(d: &Detection) -> Self {
        Self { class_id: d.class_id, confidence: d.confidence, bbox: d.bbox }
    }
}

/// The boxes of one image of the script's `detect` output (`{"detections": [{"class_id",
/// "confidence", "bbox"}]}`).
pub fn detections(image: &serde_json::Value) -> Result<Vec<Found>, String> {
    let list = image["detections"].as_array().ok_or("an image without detections")?;
    list.iter()
        .map(|d| {
            let number = |v: &serde_json::Value| v.as_f64().ok_or_else(|| format!("not a number in {d}"));
            let class_id = d["class_id"].as_u64().ok_or_else(|| format!("no class_id in {d}"))? as usize;
            let mut bbox = [0.0f32; 4];
            for (i, v) in bbox.iter_mut().enumerate() {
                *v = number(&d["bbox"][i])? as f32;
            }
            Ok(Found { class_id, confidence: number(&d["confidence"])? as f32, bbox })
        })
        .collect()
}

/// How far two detectors agree over frames, as the real-footage test and the bench count
/// it: boxes of confidence ≥ [`Agreement::COUNTED`] on either side must be found on the
/// other (same class, IoU ≥ [`Agreement::MIN_IOU`], any confidence), so that flicker at
/// the 0.25 threshold does not count.
#[derive(Debug, Clone, Copy)]
pub struct Agreement {
    /// Reference boxes counted, and of them found by ours.
    pub reference: usize,
    pub recalled: usize,
    /// Our boxes counted, and of them found by the reference.
    pub ours: usize,
    pub confirmed: usize,
    /// Over the recalled boxes and their best match: the lowest IoU, the largest
    /// confidence difference.
    pub lowest_iou: f32,
    pub largest_confidence_diff: f32,
}

impl Default for Agreement {
    fn default() -> Self {
        Self { reference: 0, recalled: 0, ours: 0, confirmed: 0, lowest_iou: 1.0, largest_confidence_diff: 0.0 }
    }
}

impl Agreement {
    pub const COUNTED: f32 = 0.3;
    pub const MIN_IOU: f32 = 0.85;

    /// Adds one frame; true when both sides found each other's counted boxes.
    pub fn add(&mut self, reference: &[Found], ours: &[Found]) -> bool {
        let before = (self.recalled, self.reference, self.confirmed, self.ours);
        for r in reference.iter().filter(|r| r.confidence >= Self::COUNTED) {
            self.reference += 1;
            let best = ours
                .iter()
                .filter(|o| o.class_id == r.class_id)
                .map(|o| (iou(o.bbox, r.bbox), (o.confidence - r.confidence).abs()))
                .max_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((overlap, diff)) = best.filter(|(overlap, _)| *overlap >= Self::MIN_IOU) {
                self.recalled += 1;
                self.lowest_iou = self.lowest_iou.min(overlap);
                self.largest_confidence_diff = self.largest_confidence_diff.max(diff);
            }
        }
        for o in ours.iter().filter(|o| o.confidence >= Self::COUNTED) {
            self.ours += 1;
            if reference.iter().any(|r| r.class_id == o.class_id && iou(r.bbox, o.bbox) >= Self::MIN_IOU) {
                self.confirmed += 1;
            }
        }
        self.recalled - before.0 == self.reference - before.1 && self.confirmed - before.2 == self.ours - before.3
    }

    /// Reference boxes found by ours (1 when there were none).
    pub fn recall(&self) -> f64 {
        share(self.recalled, self.reference)
    }

    /// Our boxes found by the reference (1 when there were none).
    pub fn precision(&self) -> f64 {
        share(self.confirmed, self.ours)
    }
}

fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 { 1.0 } else { part as f64 / whole as f64 }
}

impl fmt::Display for Agreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "boxes >= {}, same label, IoU >= {}: recall {:.3} ({}/{}), precision {:.3} ({}/{}); matched pairs: \
             lowest IoU {:.3}, largest confidence difference {:.3}",
            Self::COUNTED,
            Self::MIN_IOU,
            self.recall(),
            self.recalled,
            self.reference,
            self.precision(),
            self.confirmed,
            self.ours,
            self.lowest_iou,
            self.largest_confidence_diff
        )
    }
}
