use super::*;

/// Two convolutions: one batch-normalised (2 filters, 1x1 over 3 channels), one with a
/// bias (6 filters, 1x1 over 2 channels) feeding a one-anchor, one-class yolo head.
const CFG: &str = "
[net]
width=4
height=4
channels=3
[convolutional]
batch_normalize=1
filters=2
size=1
activation=leaky
[convolutional]
filters=6
size=1
[yolo]
mask=0
anchors=2,3
classes=1
num=1
";

fn cfg() -> NetworkCfg {
    NetworkCfg::parse(CFG, Path::new("tiny.cfg")).expect("valid cfg")
}

fn header(major: i32, minor: i32) -> Vec<u8> {
    let mut bytes = Vec::new();
    for v in [major, minor, 0] {
        bytes.extend(v.to_le_bytes());
    }
    if major * 10 + minor >= 2 {
        bytes.extend(12_345_i64.to_le_bytes());
    } else {
        bytes.extend(12_345_i32.to_le_bytes());
    }
    bytes
}

/// The parameters in file order: conv 0 biases, scales, means, variances, weights; conv 1
/// biases, weights.
fn params() -> Vec<f32> {
    let mut p = Vec::new();
    p.extend([0.5, -1.0]); // biases (batch-norm betas)
    p.extend([2.0, 3.0]); // scales
    p.extend([1.0, -2.0]); // rolling means
    p.extend([4.0, 0.25]); // rolling variances
    p.extend([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]); // weights [2, 3, 1, 1]
    p.extend([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]); // conv 1 biases
    p.extend((0..12).map(|i| i as f32)); // conv 1 weights [6, 2, 1, 1]
    p
}

fn file(header: Vec<u8>, params: &[f32]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tiny.weights");
    let mut bytes = header;
    for p in params {
        bytes.extend(p.to_le_bytes());
    }
    std::fs::write(&path, bytes).expect("write weights");
    (dir, path)
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4)
}

#[test]
fn loads_weights_and_folds_batch_norm_into_the_convolution() {
    let (_dir, path) = file(header(0, 2), &params());
    let w = Weights::from_file(&path, &cfg(), None).expect("weights load");
    assert_eq!(w.layers.len(), 3);
    let conv0 = w.layers[0].as_ref().expect("conv 0 params");
    // filter 0: k = 2 / sqrt(4 + 1e-6) ≈ 1; filter 1: k = 3 / sqrt(0.25 + 1e-6) ≈ 6.
    let k0 = 2.0 / (4.0f32 + 1e-6).sqrt();
    let k1 = 3.0 / (0.25f32 + 1e-6).sqrt();
    assert!(close(&conv0.weight, &[k0, 2.0 * k0, 3.0 * k0, 4.0 * k1, 5.0 * k1, 6.0 * k1]), "{:?}", conv0.weight);
    assert!(close(&conv0.bias, &[0.5 - k0, -1.0 + 2.0 * k1]), "{:?}", conv0.bias);
    let conv1 = w.layers[1].as_ref().expect("conv 1 params");
    assert!(close(&conv1.bias, &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]));
    assert_eq!(conv1.weight, (0..12).map(|i| i as f32).collect::<Vec<_>>());
    assert!(w.layers[2].is_none(), "a yolo layer has no parameters");
}

#[test]
fn reads_the_old_header_with_a_32_bit_seen_count() {
    let (_dir, path) = file(header(0, 1), &params());
    let w = Weights::from_file(&path, &cfg(), None).expect("weights load");
    assert_eq!(w.layers[1].as_ref().map(|c| c.bias.len()), Some(6));
}

#[test]
fn a_weights_file_one_float_short_is_a_size_error() {
    let mut p = params();
    p.pop();
    let (_dir, path) = file(header(0, 2), &p);
    let err = Weights::from_file(&path, &cfg(), None).expect_err("a short file is refused");
    assert!(matches!(err, DetectorError::WeightsSize { actual: 144, expected: 148, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("144 bytes") && msg.contains("needs 148") && msg.contains("do not belong together"), "{msg}");
}

#[test]
fn a_weights_file_with_extra_data_is_a_size_error() {
    let mut p = params();
    p.push(0.0);
    let (_dir, path) = file(header(0, 2), &p);
    let err = Weights::from_file(&path, &cfg(), None).expect_err("a long file is refused");
    assert!(matches!(err, DetectorError::WeightsSize { actual: 152, expected: 148, .. }), "{err:?}");
}

#[test]
fn a_file_too_short_for_a_header_is_a_size_error() {
    let (_dir, path) = file(vec![1, 2, 3], &[]);
    let err = Weights::from_file(&path, &cfg(), None).expect_err("refused");
    assert!(matches!(err, DetectorError::WeightsSize { actual: 3, .. }), "{err:?}");
}

#[test]
fn a_wrong_sha256_is_a_hash_error_before_anything_else() {
    let (_dir, path) = file(header(0, 2), &params());
    let wrong = "0".repeat(64);
    let err = Weights::from_file(&path, &cfg(), Some(&wrong)).expect_err("refused");
    let DetectorError::WeightsHash { expected, actual, .. } = &err else {
        panic!("expected a hash error, got {err:?}")
    };
    assert_eq!(expected, &wrong);
    assert_eq!(actual.len(), 64);
    assert!(err.to_string().contains("framecart model fetch"), "{err}");
}

#[test]
fn the_right_sha256_in_any_case_is_accepted() {
    let (_dir, path) = file(header(0, 2), &params());
    let sha = sha256_hex(&std::fs::read(&path).expect("read back"));
    let w = Weights::from_file(&path, &cfg(), Some(&sha.to_uppercase())).expect("accepted");
    assert_eq!(w.sha256, sha);
}

#[test]
fn a_missing_file_names_its_path() {
    let err = Weights::from_file(Path::new("/nonexistent/x.weights"), &cfg(), None).expect_err("refused");
    assert!(err.to_string().contains("/nonexistent/x.weights"), "{err}");
}
