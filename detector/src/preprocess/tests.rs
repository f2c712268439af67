use super::*;

/// A frame of grey pixels (`r = g = b = v`) from a row-major list of values.
fn grey(values: &[u8]) -> Vec<u8> {
    values.iter().flat_map(|&v| [v, v, v]).collect()
}

fn red_channel(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks_exact(3).map(|p| p[0]).collect()
}

fn resize(values: &[u8], src: [usize; 2], dst: [usize; 2]) -> Vec<u8> {
    let r = Resizer::new(src[0], src[1], dst[0], dst[1]);
    let mut out = vec![0; dst[0] * dst[1] * 3];
    r.resize_rgb(&grey(values), &mut out);
    red_channel(&out)
}

#[test]
fn halving_averages_pixel_pairs_rounding_half_up() {
    // 4 → 2 columns: each output pixel sits halfway between two inputs (half-pixel centres).
    assert_eq!(resize(&[10, 20, 30, 40], [4, 1], [2, 1]), vec![15, 35]);
    // 10.5 → 11 and 127.5 → 128, as OpenCV's fixed point rounds.
    assert_eq!(resize(&[10, 11, 0, 255], [4, 1], [2, 1]), vec![11, 128]);
}

#[test]
fn doubling_interpolates_at_quarter_positions_and_repeats_the_edges() {
    // 2 → 4 columns: positions -0.25 (clamped to the edge), 0.25, 0.75, 1.25 (clamped).
    assert_eq!(resize(&[0, 100], [2, 1], [4, 1]), vec![0, 25, 75, 100]);
    // The same along rows, where OpenCV clamps the row index but keeps the weights.
    assert_eq!(resize(&[0, 100], [1, 2], [1, 4]), vec![0, 25, 75, 100]);
}

#[test]
fn both_axes_combine() {
    // 2x2 → 4x4; the centre 2x2 block mixes all four corners.
    let out = resize(&[0, 100, 100, 200], [2, 2], [4, 4]);
    assert_eq!(out, vec![0, 25, 75, 100, 25, 50, 100, 125, 75, 100, 150, 175, 100, 125, 175, 200]);
}

#[test]
fn the_same_size_is_a_copy() {
    let rgb: Vec<u8> = (0..2 * 3 * 3).map(|i| (i * 13) as u8).collect();
    let r = Resizer::new(3, 2, 3, 2);
    let mut out = vec![0; rgb.len()];
    r.resize_rgb(&rgb, &mut out);
    assert_eq!(out, rgb);
}

#[test]
fn channels_are_resized_independently() {
    let rgb = vec![255, 0, 10, 0, 255, 20];
    let r = Resizer::new(2, 1, 1, 1);
    let mut out = vec![0; 3];
    r.resize_rgb(&rgb, &mut out);
    assert_eq!(out, vec![128, 128, 15]);
}

#[test]
fn weights_always_sum_to_one_in_fixed_point() {
    for (src, dst) in [(1280, 416), (640, 416), (272, 416), (416, 416), (7, 416), (1920, 416), (1080, 416)] {
        for clamp in [true, false] {
            let plan = AxisPlan::new(src, dst, clamp);
            assert!(plan.weights.iter().all(|[a, b]| a + b == 1 << COEF_BITS), "{src} → {dst}");
            assert!(plan.offsets.iter().all(|[a, b]| *a < src && *b < src && b - a <= 1), "{src} → {dst}");
        }
    }
}

#[test]
fn network_input_is_planar_rgb_in_zero_to_one() {
    let rgb = vec![255, 0, 51, 0, 255, 102];
    let r = Resizer::new(2, 1, 2, 1);
    let mut scratch = Vec::new();
    let mut out = vec![0.0; 6];
    r.to_input(&rgb, &mut scratch, &mut out);
    let expected = [1.0, 0.0, 0.0, 1.0, 0.2, 0.4];
    assert!(out.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6), "{out:?}");
}
