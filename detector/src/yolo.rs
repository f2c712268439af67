//! From raw `[yolo]` head outputs to boxes in frame pixels, and per-class non-maximum
//! suppression.
//!
//! This follows OpenCV's `DetectionModel` on darknet models (the reference): every anchor
//! of every cell proposes one box, of the class with the highest `objectness * class
//! probability`; a box is kept when that confidence is above the threshold; then greedy
//! NMS runs separately per class. Boxes are mapped from the network's input to the frame
//! by plain scaling (the input is a plain resize, not a letterbox) and clipped to it.

use crate::cfg::YoloCfg;

/// A box proposed by a head, before or after NMS.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub class_id: usize,
    pub confidence: f32,
    /// `[xmin, ymin, xmax, ymax]` in frame pixels, clipped to the frame.
    pub bbox: [f32; 4],
}

/// The sizes involved in mapping a head's cells to frame pixels.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    /// Network input `[width, height]`: anchors are in these pixels.
    pub network: [usize; 2],
    /// Frame `[width, height]`.
    pub frame: [usize; 2],
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Appends to `out` the boxes of image `image` in a head's output (`dims` =
/// `[batch, anchors * (5 + classes), h, w]`, NCHW) whose confidence exceeds `threshold`.
pub fn decode(
    data: &[f32],
    dims: [usize; 4],
    image: usize,
    yolo: &YoloCfg,
    geometry: Geometry,
    threshold: f32,
    out: &mut Vec<Candidate>,
) {
    let [_, channels, gh, gw] = dims;
    let cells = gh * gw;
    let stride = 5 + yolo.classes;
    debug_assert_eq!(channels, yolo.anchors.len() * stride);
    let image_data = &data[image * channels * cells..(image + 1) * channels * cells];
    let [net_w, net_h] = geometry.network.map(|v| v as f32);
    let [frame_w, frame_h] = geometry.frame.map(|v| v as f32);
    let s = yolo.scale_x_y;
    for (a, &(anchor_w, anchor_h)) in yolo.anchors.iter().enumerate() {
        let at = |k: usize, cell: usize| image_data[(a * stride + k) * cells + cell];
        for cell in 0..cells {
            // Confidence is objectness times a class probability, so an objectness at or
            // below the threshold rules the cell out without looking at the classes.
            let objectness = sigmoid(at(4, cell));
            if objectness <= threshold {
                continue;
            }
            let (mut class_id, mut best) = (0, f32::NEG_INFINITY);
            for c in 0..yolo.classes {
                let logit = at(5 + c, cell);
                if logit > best {
                    (class_id, best) = (c, logit);
                }
            }
            let confidence = objectness * sigmoid(best);
            if confidence <= threshold {
                continue;
            }
            let (x, y) = ((cell % gw) as f32, (cell / gw) as f32);
            let cx = (x + (sigmoid(at(0, cell)) - 0.5) * s + 0.5) / gw as f32 * frame_w;
            let cy = (y + (sigmoid(at(1, cell)) - 0.5) * s + 0.5) / gh as f32 * frame_h;
            let w = at(2, cell).exp() * anchor_w / net_w * frame_w;
            let h = at(3, cell).exp() * anchor_h / net_h * frame_h;
            let bbox = [
                (cx - w / 2.0).clamp(0.0, frame_w),
                (cy - h / 2.0).clamp(0.0, frame_h),
                (cx + w / 2.0).clamp(0.0, frame_w),
                (cy + h / 2.0).clamp(0.0, frame_h),
            ];
            out.push(Candidate { class_id, confidence, bbox });
        }
    }
}

/// Intersection over union of two `[xmin, ymin, xmax, ymax]` boxes (0 when both are empty).
pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: [f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// Greedy NMS within each class: highest confidence first, a box is dropped when it
/// overlaps an already kept box of its class by more than `iou_threshold`. The result is
/// ordered by confidence, highest first; equal confidences keep their input order.
pub fn nms_per_class(mut candidates: Vec<Candidate>, iou_threshold: f32) -> Vec<Candidate> {
    candidates.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let mut kept: Vec<Candidate> = Vec::with_capacity(candidates.len());
    for c in candidates {
        let suppressed = kept.iter().any(|k| k.class_id == c.class_id && iou(k.bbox, c.bbox) > iou_threshold);
        if !suppressed {
            kept.push(c);
        }
    }
    kept
}

#[cfg(test)]
mod tests;
