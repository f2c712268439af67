use super::*;

fn logit(p: f32) -> f32 {
    (p / (1.0 - p)).ln()
}

/// A head of `anchors.len()` anchors, 3 classes, on a `gw` x `gh` grid, all cells
/// hopeless (objectness 0.001), for `batch` images.
struct Head {
    data: Vec<f32>,
    dims: [usize; 4],
    yolo: YoloCfg,
}

impl Head {
    fn new(batch: usize, gw: usize, gh: usize, anchors: Vec<(f32, f32)>, scale_x_y: f32) -> Self {
        let channels = anchors.len() * 8;
        let mut data = vec![0.0; batch * channels * gh * gw];
        for b in 0..batch {
            for a in 0..anchors.len() {
                for cell in 0..gw * gh {
                    data[((b * channels) + a * 8 + 4) * gw * gh + cell] = logit(0.001);
                }
            }
        }
        Self { data, dims: [batch, channels, gh, gw], yolo: YoloCfg { classes: 3, anchors, scale_x_y } }
    }

    /// Sets one prediction: raw box values, objectness and class probabilities.
    #[allow(clippy::too_many_arguments)]
    fn set(&mut self, b: usize, a: usize, x: usize, y: usize, tbox: [f32; 4], obj: f32, classes: [f32; 3]) {
        let [_, channels, gh, gw] = self.dims;
        let cell = y * gw + x;
        let mut put = |k: usize, v: f32| self.data[((b * channels) + a * 8 + k) * gw * gh + cell] = v;
        for (k, v) in tbox.into_iter().enumerate() {
            put(k, v);
        }
        put(4, logit(obj));
        for (c, p) in classes.into_iter().enumerate() {
            put(5 + c, logit(p));
        }
    }

    fn decode(&self, image: usize, frame: [usize; 2], threshold: f32) -> Vec<Candidate> {
        let mut out = Vec::new();
        let geometry = Geometry { network: [416, 416], frame };
        decode(&self.data, self.dims, image, &self.yolo, geometry, threshold, &mut out);
        out
    }
}

fn assert_close(a: [f32; 4], b: [f32; 4]) {
    assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-3), "{a:?} != {b:?}");
}

#[test]
fn a_confident_cell_becomes_a_box_in_frame_pixels() {
    let mut head = Head::new(1, 13, 13, vec![(81.0, 82.0), (135.0, 169.0)], 1.0);
    // Cell (6, 4), second anchor, centred in its cell, anchor-sized: tx = ty = tw = th = 0.
    head.set(0, 1, 6, 4, [0.0; 4], 0.9, [0.1, 0.8, 0.3]);
    let found = head.decode(0, [832, 624], 0.25);
    assert_eq!(found.len(), 1);
    let c = found[0];
    assert_eq!(c.class_id, 1);
    assert!((c.confidence - 0.72).abs() < 1e-5, "{}", c.confidence);
    // Centre (6.5 / 13, 4.5 / 13) of an 832 x 624 frame; size 135/416 and 169/416 of it.
    let (cx, cy, w, h) = (6.5 / 13.0 * 832.0, 4.5 / 13.0 * 624.0, 135.0 / 416.0 * 832.0, 169.0 / 416.0 * 624.0);
    assert_close(c.bbox, [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]);
}

#[test]
fn scale_x_y_stretches_the_offset_within_the_cell() {
    let mut head = Head::new(1, 13, 13, vec![(10.0, 10.0)], 1.05);
    // sigmoid(2) = 0.8808; offset (0.8808 - 0.5) * 1.05 + 0.5 = 0.8998; log(2) doubles the size.
    head.set(0, 0, 2, 3, [2.0, -2.0, 2f32.ln(), 0.0], 0.9, [0.9, 0.0001, 0.0001]);
    let c = head.decode(0, [416, 416], 0.25)[0];
    let sx = (1.0 / (1.0 + (-2.0f32).exp()) - 0.5) * 1.05 + 0.5;
    let sy = (1.0 / (1.0 + 2.0f32.exp()) - 0.5) * 1.05 + 0.5;
    let (cx, cy) = ((2.0 + sx) * 32.0, (3.0 + sy) * 32.0);
    assert_close(c.bbox, [cx - 10.0, cy - 5.0, cx + 10.0, cy + 5.0]);
}

#[test]
fn boxes_are_clipped_to_the_frame() {
    let mut head = Head::new(1, 13, 13, vec![(344.0, 319.0)], 1.0);
    head.set(0, 0, 0, 12, [0.0; 4], 0.9, [0.9, 0.0, 0.0]);
    let c = head.decode(0, [640, 480], 0.25)[0];
    assert_eq!(c.bbox[0], 0.0);
    assert_eq!(c.bbox[3], 480.0);
    assert!(c.bbox[1] > 0.0 && c.bbox[2] < 640.0);
}

#[test]
fn only_confidences_above_the_threshold_are_kept() {
    let mut head = Head::new(1, 4, 4, vec![(10.0, 10.0)], 1.0);
    head.set(0, 0, 0, 0, [0.0; 4], 0.5, [0.6, 0.0, 0.0]); // 0.30: kept
    head.set(0, 0, 1, 0, [0.0; 4], 0.5, [0.4, 0.0, 0.0]); // 0.20: dropped
    head.set(0, 0, 2, 0, [0.0; 4], 0.2, [1.0, 0.0, 0.0]); // objectness alone below: dropped
    let found = head.decode(0, [100, 100], 0.25);
    assert_eq!(found.len(), 1);
    assert!((found[0].confidence - 0.3).abs() < 1e-5);
}

#[test]
fn each_image_of_a_batch_is_decoded_separately() {
    let mut head = Head::new(2, 4, 4, vec![(10.0, 10.0)], 1.0);
    head.set(1, 0, 3, 3, [0.0; 4], 0.9, [0.0, 0.0, 0.9]);
    assert!(head.decode(0, [100, 100], 0.25).is_empty());
    let found = head.decode(1, [100, 100], 0.25);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].class_id, 2);
}

#[test]
fn iou_of_known_boxes() {
    assert_eq!(iou([0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]), 1.0);
    assert_eq!(iou([0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 20.0, 10.0]), 0.0);
    assert!((iou([0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]) - 1.0 / 3.0).abs() < 1e-6);
    assert_eq!(iou([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]), 0.0);
}

fn cand(class_id: usize, confidence: f32, x0: f32) -> Candidate {
    Candidate { class_id, confidence, bbox: [x0, 0.0, x0 + 10.0, 10.0] }
}

#[test]
fn nms_drops_a_less_confident_overlapping_box_of_the_same_class() {
    // IoU of boxes 2 apart: 8/12 = 0.67 > 0.45.
    let kept = nms_per_class(vec![cand(0, 0.6, 2.0), cand(0, 0.9, 0.0)], 0.45);
    assert_eq!(kept, vec![cand(0, 0.9, 0.0)]);
}

#[test]
fn nms_keeps_overlapping_boxes_of_different_classes() {
    let kept = nms_per_class(vec![cand(0, 0.6, 2.0), cand(1, 0.9, 0.0)], 0.45);
    assert_eq!(kept, vec![cand(1, 0.9, 0.0), cand(0, 0.6, 2.0)]);
}

#[test]
fn nms_keeps_boxes_that_overlap_up_to_the_threshold() {
    // Boxes 5 apart: IoU 5/15 = 0.33 ≤ 0.45: both stay.
    let kept = nms_per_class(vec![cand(0, 0.9, 0.0), cand(0, 0.8, 5.0)], 0.45);
    assert_eq!(kept.len(), 2);
    // At 0.3 the second goes.
    assert_eq!(nms_per_class(vec![cand(0, 0.9, 0.0), cand(0, 0.8, 5.0)], 0.3).len(), 1);
}

#[test]
fn nms_suppresses_only_through_kept_boxes() {
    // b overlaps a (suppressed); c overlaps b but not a, so c stays.
    let a = cand(0, 0.9, 0.0);
    let b = cand(0, 0.8, 3.0);
    let c = cand(0, 0.7, 6.0);
    assert!(iou(a.bbox, c.bbox) < 0.45 && iou(b.bbox, c.bbox) > 0.45);
    assert_eq!(nms_per_class(vec![c, b, a], 0.45), vec![a, c]);
}
