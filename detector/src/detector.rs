//! The detector: a loaded model plus the pre- and post-processing around it.

use std::path::Path;
use std::sync::Mutex;

use crate::DetectorError;
use crate::backend::{self, Backend};
use crate::cfg::NetworkCfg;
use crate::media::Frame;
use crate::model_files::ModelFiles;
use crate::network::Network;
use crate::preprocess::Resizer;
use crate::weights::Weights;
use crate::yolo::{self, Candidate, Geometry};

/// Thresholds and batching.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorConfig {
    /// A detection is kept when its confidence (objectness times class probability) is
    /// above this. Darknet's and OpenCV's default, 0.25.
    pub confidence: f32,
    /// Within a class, a box overlapping a more confident one by more than this IoU is
    /// dropped. Darknet's default, 0.45.
    pub nms_iou: f32,
    /// Frames per forward pass, at most. `detect` spreads the frames it is given over its
    /// threads, one pass per thread at a time, so a caller feeding frames as they come
    /// should hand it `batch_size` frames per call. The default, one per CPU thread, keeps
    /// every thread busy with one frame, the fastest on flex (larger passes are slower).
    pub batch_size: usize,
    /// CPU threads to use; 0 means one per CPU thread of the machine.
    pub threads: usize,
    /// Where the network runs. A GPU backend this build lacks, or that finds no device,
    /// falls back to the CPU: see [`Detector::fallback`].
    pub backend: Backend,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self { confidence: 0.25, nms_iou: 0.45, batch_size: available_threads(), threads: 0, backend: Backend::Cpu }
    }
}

/// Frames per pass on a GPU: enough to keep it busy on 416² inputs, few enough for any
/// card's memory.
const GPU_BATCH: usize = 8;

impl DetectorConfig {
    /// The defaults for `backend`: on a GPU, [`GPU_BATCH`] frames per pass.
    pub fn on(backend: Backend) -> Self {
        let batch_size = if backend.is_gpu() { GPU_BATCH } else { available_threads() };
        Self { backend, batch_size, ..Self::default() }
    }
}

fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// One detected object.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Index into `Detector::classes`.
    pub class_id: usize,
    pub label: String,
    pub confidence: f32,
    /// `[xmin, ymin, xmax, ymax]` in frame pixels, clipped to the frame.
    pub bbox: [f32; 4],
}

/// A darknet YOLO model loaded for inference on the CPU. `Send + Sync`: share one between
/// threads rather than loading several.
///
/// Threads: burn's flex backend parallelises each operation, but its operations scale
/// poorly (1.4x on two cores, against 1.7x for two frames side by side), so when `detect`
/// is given several frames, each thread runs whole passes on its own (a "lane", a
/// one-thread pool). A single frame runs on all threads at once, for the lowest latency.
#[derive(Debug)]
pub struct Detector {
    cfg: NetworkCfg,
    network: Network,
    classes: Vec<String>,
    config: DetectorConfig,
    model_name: String,
    /// The backend in use, and why it is not the one asked for.
    backend: Backend,
    fallback: Option<String>,
    /// Resize plans by frame size; a video has one size, so this stays tiny.
    resizers: Mutex<Vec<Resizer>>,
    /// All threads, for a single batch.
    pool: rayon::ThreadPool,
    /// One single-thread pool per thread, for batches side by side.
    lanes: Vec<rayon::ThreadPool>,
}

/// How many frame sizes keep their resize plan.
const RESIZER_CACHE: usize = 4;

impl Detector {
    /// Loads the cfg, the class names and the weights (checking their size against the cfg
    /// and their sha256 when `files.weights_sha256` is set).
    pub fn load(files: &ModelFiles, mut config: DetectorConfig) -> Result<Self, DetectorError> {
        validate_config(&config)?;
        let cfg = NetworkCfg::from_file(&files.cfg)?;
        if cfg.channels != 3 {
            return Err(DetectorError::Cfg {
                path: files.cfg.clone(),
                line: 0,
                message: format!("the network takes {} channels; only RGB (channels=3) is supported", cfg.channels),
            });
        }
        let classes = read_names(&files.names, cfg.classes())?;
        let weights = Weights::from_file(&files.weights, &cfg, files.weights_sha256.as_deref())?;
        let model_name = format!(
            "{} (weights sha256 {}…)",
            files.cfg.file_stem().map_or_else(|| "darknet".into(), |s| s.to_string_lossy()),
            &weights.sha256[..8]
        );
        let opened = backend::open(config.backend);
        if opened.backend != config.backend {
            // Fell back to the CPU: its batches, not the GPU's.
            config = DetectorConfig { backend: opened.backend, batch_size: available_threads(), ..config };
        }
        // The detector's own convolution is CPU code; on a GPU every layer is burn's.
        let network = Network::new(&cfg, weights, opened.device, opened.backend == Backend::Cpu)?;
        let threads = match config.threads {
            0 => available_threads(),
            n => n,
        };
        let pool = |n: usize, name: &'static str| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .thread_name(move |i| format!("{name}-{i}"))
                .build()
                .map_err(|e| DetectorError::Internal(format!("cannot start detector threads: {e}")))
        };
        let lanes = (0..threads).map(|_| pool(1, "detector-lane")).collect::<Result<_, _>>()?;
        Ok(Self {
            cfg,
            network,
            classes,
            config,
            model_name,
            backend: opened.backend,
            fallback: opened.fallback,
            resizers: Mutex::new(Vec::new()),
            pool: pool(threads, "detector")?,
            lanes,
        })
    }

    /// Class names by class index.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The cfg's name and the start of the weights' sha256, e.g.
    /// `yolov4-tiny (weights sha256 cf9fbfd0…)`.
    pub fn model_name(&self) -> String {
        self.model_name.clone()
    }

    /// The thresholds and batch size in use.
    pub fn config(&self) -> DetectorConfig {
        self.config
    }

    /// The backend the network runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Why the backend in use is not the one the config asked for (a GPU backend this
    /// build lacks, or one without a usable device): for the caller to log.
    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// Network input `[width, height]`.
    pub fn input_size(&self) -> [usize; 2] {
        [self.cfg.width, self.cfg.height]
    }

    /// Detects objects in each frame; one list per frame, most confident first. Several
    /// frames are spread over the threads, at most `batch_size` per forward pass.
    pub fn detect(&self, frames: &[Frame]) -> Result<Vec<Vec<Detection>>, DetectorError> {
        frames.iter().try_for_each(Frame::validate)?;
        let lanes = self.lanes.len();
        if self.backend.is_gpu() {
            // One pass per batch: the device runs the frames of a pass side by side.
            let mut results = Vec::with_capacity(frames.len());
            for batch in frames.chunks(self.config.batch_size) {
                results.extend(self.detect_batch(batch)?);
            }
            return Ok(results);
        }
        if frames.len() <= 1 || lanes <= 1 {
            let mut results = Vec::with_capacity(frames.len());
            for batch in frames.chunks(self.config.batch_size) {
                results.extend(self.pool.install(|| self.detect_batch(batch))?);
            }
            return Ok(results);
        }
        let per_pass = frames.len().div_ceil(lanes).min(self.config.batch_size);
        let batches: Vec<&[Frame]> = frames.chunks(per_pass).collect();
        // Batches side by side, one lane each; a lane takes the next batch when done.
        let next = std::sync::atomic::AtomicUsize::new(0);
        type Slot = Mutex<Option<Result<Vec<Vec<Detection>>, DetectorError>>>;
        let slots: Vec<Slot> = batches.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|scope| {
            for lane in &self.lanes {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(batch) = batches.get(i) else { break };
                        let result = lane.install(|| self.detect_batch(batch));
                        *slots[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(result);
                    }
                });
            }
        });
        let mut results = Vec::with_capacity(frames.len());
        for slot in slots {
            match slot.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
                Some(batch) => results.extend(batch?),
                None => return Err(DetectorError::Internal("a detection batch did not run".into())),
            }
        }
        Ok(results)
    }

    fn detect_batch(&self, frames: &[Frame]) -> Result<Vec<Vec<Detection>>, DetectorError> {
        let [c, h, w] = self.network.input_shape();
        let per_image = c * h * w;
        let mut input = vec![0.0f32; frames.len() * per_image];
        let mut scratch = Vec::new();
        for (frame, out) in frames.iter().zip(input.chunks_exact_mut(per_image)) {
            let resizer = self.resizer(frame.width as usize, frame.height as usize);
            resizer.to_input(&frame.rgb, &mut scratch, out);
        }
        let heads = self.network.forward(input, frames.len())?;
        let yolos: Vec<_> = self.cfg.yolo_layers().map(|(_, y)| y).collect();
        if heads.len() != yolos.len() {
            return Err(DetectorError::Internal(format!("{} heads for {} [yolo] layers", heads.len(), yolos.len())));
        }
        let mut results = Vec::with_capacity(frames.len());
        for (i, frame) in frames.iter().enumerate() {
            let geometry = Geometry {
                network: [self.cfg.width, self.cfg.height],
                frame: [frame.width as usize, frame.height as usize],
            };
            let mut candidates: Vec<Candidate> = Vec::new();
            for ((data, dims), yolo_cfg) in heads.iter().zip(&yolos) {
                yolo::decode(data, *dims, i, yolo_cfg, geometry, self.config.confidence, &mut candidates);
            }
            let kept = yolo::nms_per_class(candidates, self.config.nms_iou);
            results.push(
                kept.into_iter()
                    .map(|c| Detection {
                        class_id: c.class_id,
                        label: self.classes[c.class_id].clone(),
                        confidence: c.confidence,
                        bbox: c.bbox,
                    })
                    .collect(),
            );
        }
        Ok(results)
    }

    fn resizer(&self, width: usize, height: usize) -> Resizer {
        let mut cache = self.resizers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = cache.iter().find(|r| r.source_size() == [width, height]) {
            return r.clone();
        }
        let r = Resizer::new(width, height, self.cfg.width, self.cfg.height);
        if cache.len() == RESIZER_CACHE {
            cache.remove(0);
        }
        cache.push(r.clone());
        r
    }
}

fn validate_config(config: &DetectorConfig) -> Result<(), DetectorError> {
    let bad = |m: String| Err(DetectorError::InvalidConfig(m));
    if !(0.0..1.0).contains(&config.confidence) {
        return bad(format!("the confidence threshold must be in [0, 1), got {}", config.confidence));
    }
    if !(config.nms_iou > 0.0 && config.nms_iou <= 1.0) {
        return bad(format!("the NMS IoU threshold must be in (0, 1], got {}", config.nms_iou));
    }
    if config.batch_size == 0 {
        return bad("the batch size must be at least 1".into());
    }
    if config.threads > 1024 {
        return bad(format!("{} threads is not a sensible number", config.threads));
    }
    Ok(())
}

/// Class names, one a line; blank lines at the end are ignored. Their number must match
/// the cfg's classes.
fn read_names(path: &Path, classes: usize) -> Result<Vec<String>, DetectorError> {
    let text = std::fs::read_to_string(path).map_err(|e| DetectorError::io(path, e))?;
    let mut names: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    while names.last().is_some_and(String::is_empty) {
        names.pop();
    }
    if names.len() != classes {
        return Err(DetectorError::Names {
            path: path.to_path_buf(),
            message: format!("{} class names but the cfg's [yolo] layers have classes={classes}", names.len()),
        });
    }
    Ok(names)
}
