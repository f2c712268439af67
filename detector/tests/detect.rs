//! The detector on the real model: loading, its checks, detection, batching, and an
//! object that moves over a video.

mod common;

use common::{detector, media, model, read_frames};
use framecart_detector::{Detector, DetectorConfig, DetectorError, ModelFiles, locate_model, read_image};

#[test]
fn the_default_model_loads_with_its_classes_and_name() {
    let files = model();
    assert!(files.weights_sha256.is_some(), "set-up records the expected weights hash");
    let detector = detector();
    assert_eq!(detector.classes().len(), 80);
    assert_eq!(detector.classes()[0], "person");
    assert_eq!(detector.classes()[79], "toothbrush");
    assert_eq!(detector.model_name(), "yolov4-tiny (weights sha256 cf9fbfd0…)");
    assert_eq!(detector.input_size(), [416, 416]);
}

#[test]
fn an_empty_model_directory_says_to_fetch_the_model() {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = locate_model(dir.path()).expect_err("nothing to find");
    assert!(err.to_string().contains("run `framecart model fetch`"), "{err}");
    let err = locate_model(&dir.path().join("absent")).expect_err("nothing to find");
    assert!(err.to_string().contains("run `framecart model fetch`"), "{err}");
}

#[test]
fn a_merchant_model_is_found_by_extension_with_its_hash_file() {
    let files = model();
    let dir = tempfile::tempdir().expect("temp dir");
    let link = |from: &std::path::Path, name: &str| std::fs::copy(from, dir.path().join(name)).expect("copy");
    link(&files.cfg, "shop.cfg");
    link(&files.names, "shop.names");
    link(&files.weights, "shop.weights");
    let found = locate_model(dir.path()).expect("found");
    assert_eq!(found.cfg, dir.path().join("shop.cfg"));
    assert_eq!(found.weights_sha256, None);
    std::fs::write(
        dir.path().join("shop.weights.sha256"),
        "CF9FBFD0F6D4869B35762F56100F50ED05268084078805F0E7989EFE5BB8CA87  shop.weights\n",
    )
    .expect("write hash");
    let found = locate_model(dir.path()).expect("found");
    assert_eq!(
        found.weights_sha256.as_deref(),
        Some("cf9fbfd0f6d4869b35762f56100f50ed05268084078805f0e7989efe5bb8ca87")
    );
    let detector = Detector::load(&found, DetectorConfig::default()).expect("loads");
    assert_eq!(detector.model_name(), "shop (weights sha256 cf9fbfd0…)");
}

#[test]
fn weights_with_another_hash_are_refused() {
    let files = ModelFiles { weights_sha256: Some("ab".repeat(32)), ..model() };
    let err = Detector::load(&files, DetectorConfig::default()).expect_err("refused");
    assert!(matches!(err, DetectorError::WeightsHash { .. }), "{err:?}");
}

#[test]
fn weights_for_another_cfg_are_refused() {
    let files = model();
    let dir = tempfile::tempdir().expect("temp dir");
    // The same network with 20 classes needs smaller output convolutions.
    let cfg = std::fs::read_to_string(&files.cfg)
        .expect("read cfg")
        .replace("filters=255", "filters=75")
        .replace("classes=80", "classes=20");
    let cfg_path = dir.path().join("voc.cfg");
    std::fs::write(&cfg_path, cfg).expect("write cfg");
    let names_path = dir.path().join("voc.names");
    std::fs::write(&names_path, (0..20).map(|i| format!("class{i}\n")).collect::<String>()).expect("write names");
    let files = ModelFiles { cfg: cfg_path, names: names_path, weights_sha256: None, ..files };
    let err = Detector::load(&files, DetectorConfig::default()).expect_err("refused");
    assert!(matches!(err, DetectorError::WeightsSize { actual: 24_251_276, .. }), "{err:?}");
    assert!(err.to_string().contains("do not belong together"), "{err}");
}

#[test]
fn names_that_do_not_fit_the_cfg_are_refused() {
    let files = model();
    let dir = tempfile::tempdir().expect("temp dir");
    let names = dir.path().join("short.names");
    std::fs::write(&names, "person\nbicycle\n").expect("write names");
    let err = Detector::load(&ModelFiles { names, ..files }, DetectorConfig::default()).expect_err("refused");
    assert!(err.to_string().contains("2 class names but the cfg's [yolo] layers have classes=80"), "{err}");
}

#[test]
fn settings_out_of_range_are_refused() {
    for config in [
        DetectorConfig { confidence: 1.5, ..Default::default() },
        DetectorConfig { nms_iou: 0.0, ..Default::default() },
        DetectorConfig { batch_size: 0, ..Default::default() },
    ] {
        let err = Detector::load(&model(), config).expect_err("refused");
        assert!(matches!(err, DetectorError::InvalidConfig(_)), "{err:?}");
    }
}

#[test]
fn finds_the_dog_the_bicycle_and_the_truck() {
    let detector = detector();
    let frame = read_image(&media("dog.jpg")).expect("reads");
    let found = detector.detect(std::slice::from_ref(&frame)).expect("detects");
    let mut labels: Vec<&str> = found[0].iter().map(|d| d.label.as_str()).collect();
    labels.sort_unstable();
    assert_eq!(labels, ["bicycle", "dog", "truck"]);
    for d in &found[0] {
        let [x0, y0, x1, y1] = d.bbox;
        assert!(0.0 <= x0 && x0 < x1 && x1 <= 768.0 && 0.0 <= y0 && y0 < y1 && y1 <= 576.0, "{d:?}");
    }
    assert!(found[0].windows(2).all(|w| w[0].confidence >= w[1].confidence), "most confident first");
}

#[test]
fn a_malformed_frame_is_refused() {
    let detector = detector();
    let frame = framecart_detector::Frame { width: 10, height: 10, rgb: vec![0; 299], timestamp: 0.0 };
    let err = detector.detect(&[frame]).expect_err("refused");
    assert!(matches!(err, DetectorError::InvalidFrame(_)), "{err:?}");
}

#[test]
fn batches_give_the_same_detections_as_single_frames() {
    let files = model();
    let frames: Vec<_> = ["dog.jpg", "person.jpg", "horses.jpg", "kite.jpg", "giraffe.jpg"]
        .iter()
        .map(|n| read_image(&media(n)).expect("reads"))
        .collect();
    let one_by_one =
        Detector::load(&files, DetectorConfig { batch_size: 1, threads: 1, ..Default::default() }).expect("loads");
    let batched =
        Detector::load(&files, DetectorConfig { batch_size: 2, threads: 2, ..Default::default() }).expect("loads");
    let expected: Vec<_> =
        frames.iter().map(|f| one_by_one.detect(std::slice::from_ref(f)).expect("detects").remove(0)).collect();
    let got = batched.detect(&frames).expect("detects");
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g.len(), e.len());
        for (a, b) in g.iter().zip(e) {
            assert_eq!(a.class_id, b.class_id);
            assert!((a.confidence - b.confidence).abs() < 1e-3, "{a:?} vs {b:?}");
            assert!(framecart_detector::iou(a.bbox, b.bbox) > 0.99, "{a:?} vs {b:?}");
        }
    }
}

#[test]
fn a_person_moving_across_the_video_is_followed() {
    // pan.mp4: a 320x320 window panning right across person.jpg over 3 s, so the person
    // (x 191 to 273 in the still) moves left in the frame and leaves it after about 2 s.
    let detector = detector();
    let frames: Vec<_> = read_frames(&media("pan.mp4"), 2.0).into_iter().filter(|f| f.timestamp <= 1.5).collect();
    assert_eq!(frames.len(), 4);
    let found = detector.detect(&frames).expect("detects");
    let centres: Vec<f32> = found
        .iter()
        .map(|ds| {
            let p = ds.iter().find(|d| d.label == "person").expect("the person is found in every frame");
            (p.bbox[0] + p.bbox[2]) / 2.0
        })
        .collect();
    assert!(centres.windows(2).all(|w| w[1] < w[0]), "the person moves left: {centres:?}");
    assert!(centres[0] - centres[centres.len() - 1] > 100.0, "{centres:?}");
}

#[test]
fn a_gpu_backend_without_a_device_or_this_builds_feature_falls_back_to_the_cpu_and_finds_the_same() {
    use framecart_detector::Backend;
    let frame = read_image(&media("dog.jpg")).expect("reads");
    let on_cpu = detector().detect(std::slice::from_ref(&frame)).expect("detects");
    for wanted in [Backend::Wgpu, Backend::Cuda] {
        let detector = Detector::load(&model(), DetectorConfig::on(wanted)).expect("loads, on some backend");
        if detector.backend() == wanted {
            continue; // a machine with that GPU and a build with its feature
        }
        assert_eq!(detector.backend(), Backend::Cpu);
        let why = detector.fallback().expect("says why it is on the CPU");
        assert!(why.contains(&wanted.to_string()), "{why}");
        assert_eq!(detector.config().batch_size, DetectorConfig::default().batch_size, "the CPU's batches");
        assert_eq!(detector.detect(std::slice::from_ref(&frame)).expect("detects"), on_cpu);
    }
}
