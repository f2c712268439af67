//! Linking a video's detections into tracks over time, and a track's box at any time.
//!
//! Detections are sampled a few times a second, so the sample nearest a click can be off
//! by half an interval. Tracks fix that: detections of one class in successive frames are
//! associated by IoU with each track's predicted box (ByteTrack-style: confident
//! detections first, then the weak ones to the tracks still unmatched), and a track's box
//! between two samples is interpolated linearly. Past a track's ends it is held for at
//! most one sample interval, never extrapolated further.
//!
//! The result is a pure function of the detections: the same run always gives the same
//! tracks with the same numbers, so every reader computes identical, stable track ids.

use serde::{Deserialize, Serialize};

use crate::detection::FrameDetections;
use crate::geometry::BoundingBox;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackerConfig {
    /// Detections at or above this confidence start tracks and are associated first.
    pub high_confidence: f64,
    /// Least IoU between a confident detection and a track's predicted box.
    pub match_iou: f64,
    /// Least IoU for a weak detection (it only continues a track).
    pub weak_match_iou: f64,
    /// Sampled frames a track may go unseen before it ends.
    pub max_missed: u32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self { high_confidence: 0.5, match_iou: 0.3, weak_match_iou: 0.5, max_missed: 2 }
    }
}

/// One observation of a tracked object.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Media time in seconds.
    pub t: f64,
    pub bbox: BoundingBox,
    pub confidence: f64,
}

/// One object followed through the video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    /// 1, 2, 3… in order of first appearance (ties: by position in the frame's list).
    pub number: u32,
    pub class_id: u32,
    pub label: String,
    /// In time order.
    pub samples: Vec<Sample>,
}

impl Track {
    pub fn start(&self) -> f64 {
        self.samples.first().map_or(0.0, |s| s.t)
    }

    pub fn end(&self) -> f64 {
        self.samples.last().map_or(0.0, |s| s.t)
    }

    /// The box at media time `t`: interpolated between samples, held at the ends for at
    /// most `interval` seconds, `None` outside.
    pub fn at(&self, t: f64, interval: f64) -> Option<Sample> {
        let (first, last) = (self.samples.first()?, self.samples.last()?);
        if t < first.t - interval || t > last.t + interval {
            return None;
        }
        if t <= first.t {
            return Some(Sample { t, ..*first });
        }
        if t >= last.t {
            return Some(Sample { t, ..*last });
        }
        // The first sample after t; samples are in time order.
        let after = self.samples.partition_point(|s| s.t <= t);
        let (a, b) = (self.samples[after - 1], self.samples[after]);
        let w = if b.t > a.t { (t - a.t) / (b.t - a.t) } else { 0.0 };
        let lerp = |x: f64, y: f64| x + (y - x) * w;
        Some(Sample {
            t,
            bbox: BoundingBox {
                xmin: lerp(a.bbox.xmin, b.bbox.xmin),
                ymin: lerp(a.bbox.ymin, b.bbox.ymin),
                xmax: lerp(a.bbox.xmax, b.bbox.xmax),
                ymax: lerp(a.bbox.ymax, b.bbox.ymax),
            },
            confidence: lerp(a.confidence, b.confidence),
        })
    }

    /// Where the track should be at `t`, continuing its last motion.
    fn predict(&self, t: f64) -> BoundingBox {
        let last = self.samples[self.samples.len() - 1];
        let Some(prev) = self.samples.len().checked_sub(2).map(|i| self.samples[i]) else {
            return last.bbox;
        };
        let dt = last.t - prev.t;
        if dt <= 0.0 {
            return last.bbox;
        }
        let k = (t - last.t) / dt;
        let shift = |a: f64, b: f64| b + (b - a) * k;
        BoundingBox {
            xmin: shift(prev.bbox.xmin, last.bbox.xmin),
            ymin: shift(prev.bbox.ymin, last.bbox.ymin),
            xmax: shift(prev.bbox.xmax, last.bbox.xmax),
            ymax: shift(prev.bbox.ymax, last.bbox.ymax),
        }
    }
}

struct Live {
    track: Track,
    missed: u32,
}

/// Links detections (frames in any order) into tracks, numbered by first appearance.
pub fn track(frames: &[FrameDetections], config: TrackerConfig) -> Vec<Track> {
    let mut order: Vec<&FrameDetections> = frames.iter().collect();
    order.sort_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
    let mut live: Vec<Live> = Vec::new();
    let mut done: Vec<Track> = Vec::new();
    let mut next_number = 1;
    for frame in order {
        let t = frame.timestamp;
        let predicted: Vec<BoundingBox> = live.iter().map(|l| l.track.predict(t)).collect();
        let mut taken_track = vec![false; live.len()];
        let mut taken_object = vec![false; frame.objects.len()];
        for (confident, min_iou) in [(true, config.match_iou), (false, config.weak_match_iou)] {
            let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
            for (oi, object) in frame.objects.iter().enumerate() {
                if taken_object[oi] || (object.confidence >= config.high_confidence) != confident {
                    continue;
                }
                for (ti, l) in live.iter().enumerate() {
                    if taken_track[ti] || l.track.class_id != object.class_id {
                        continue;
                    }
                    let iou = predicted[ti].iou(&object.bbox);
                    if iou >= min_iou {
                        pairs.push((iou, ti, oi));
                    }
                }
            }
            // Best overlaps first; ties in a fixed order so the result is deterministic.
            pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            for (_, ti, oi) in pairs {
                if taken_track[ti] || taken_object[oi] {
                    continue;
                }
                taken_track[ti] = true;
                taken_object[oi] = true;
                let object = &frame.objects[oi];
                live[ti].track.samples.push(Sample { t, bbox: object.bbox, confidence: object.confidence });
                live[ti].missed = 0;
            }
        }
        for (ti, l) in live.iter_mut().enumerate() {
            if !taken_track[ti] {
                l.missed += 1;
            }
        }
        let (ended, going): (Vec<Live>, Vec<Live>) = live.into_iter().partition(|l| l.missed > config.max_missed);
        done.extend(ended.into_iter().map(|l| l.track));
        live = going;
        for (oi, object) in frame.objects.iter().enumerate() {
            if taken_object[oi] || object.confidence < config.high_confidence {
                continue;
            }
            live.push(Live {
                track: Track {
                    number: next_number,
                    class_id: object.class_id,
                    label: object.label.clone(),
                    samples: vec![Sample { t, bbox: object.bbox, confidence: object.confidence }],
                },
                missed: 0,
            });
            next_number += 1;
        }
    }
    done.extend(live.into_iter().map(|l| l.track));
    done.sort_by_key(|t| t.number);
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::DetectedObject;
    use proptest::prelude::*;

    fn object(class_id: u32, x: f64, conf: f64) -> DetectedObject {
        DetectedObject {
            class_id,
            label: if class_id == 1 { "person".into() } else { "bicycle".into() },
            confidence: conf,
            bbox: BoundingBox { xmin: x, ymin: 10.0, xmax: x + 50.0, ymax: 110.0 },
        }
    }

    fn frame(t: f64, objects: Vec<DetectedObject>) -> FrameDetections {
        FrameDetections { timestamp: t, objects }
    }

    #[test]
    fn a_moving_object_is_one_track_and_two_objects_are_two() {
        let frames: Vec<_> = (0..10)
            .map(|i| frame(f64::from(i) * 0.2, vec![object(1, 10.0 + 8.0 * f64::from(i), 0.9), object(2, 300.0, 0.8)]))
            .collect();
        let tracks = track(&frames, TrackerConfig::default());
        assert_eq!(tracks.len(), 2);
        assert_eq!((tracks[0].number, tracks[0].label.as_str(), tracks[0].samples.len()), (1, "person", 10));
        assert_eq!((tracks[1].number, tracks[1].label.as_str(), tracks[1].samples.len()), (2, "bicycle", 10));
    }

    #[test]
    fn weak_detections_continue_a_track_but_never_start_one() {
        let frames = vec![
            frame(0.0, vec![object(1, 10.0, 0.9)]),
            frame(0.2, vec![object(1, 12.0, 0.3), object(1, 400.0, 0.3)]),
            frame(0.4, vec![object(1, 14.0, 0.9)]),
        ];
        let tracks = track(&frames, TrackerConfig::default());
        assert_eq!(tracks.len(), 1);
        assert_eq!(tracks[0].samples.len(), 3);
    }

    #[test]
    fn a_track_survives_short_gaps_and_ends_after_long_ones() {
        let mut frames =
            vec![frame(0.0, vec![object(1, 10.0, 0.9)]), frame(0.2, vec![]), frame(0.4, vec![object(1, 10.0, 0.9)])];
        assert_eq!(track(&frames, TrackerConfig::default()).len(), 1);
        frames.splice(1..2, (1..=4).map(|i| frame(f64::from(i) * 0.05, vec![])));
        assert_eq!(track(&frames, TrackerConfig::default()).len(), 2);
    }

    #[test]
    fn boxes_are_interpolated_between_samples_and_held_for_one_interval_at_the_ends() {
        let t = Track {
            number: 1,
            class_id: 1,
            label: "person".into(),
            samples: vec![
                Sample { t: 1.0, bbox: BoundingBox { xmin: 0.0, ymin: 0.0, xmax: 10.0, ymax: 10.0 }, confidence: 0.8 },
                Sample { t: 2.0, bbox: BoundingBox { xmin: 10.0, ymin: 0.0, xmax: 20.0, ymax: 10.0 }, confidence: 0.6 },
            ],
        };
        let mid = t.at(1.5, 0.2).expect("inside");
        assert_eq!((mid.bbox.xmin, mid.bbox.xmax), (5.0, 15.0));
        assert!((mid.confidence - 0.7).abs() < 1e-9);
        assert_eq!(t.at(0.85, 0.2).map(|s| s.bbox.xmin), Some(0.0));
        assert_eq!(t.at(2.2, 0.2).map(|s| s.bbox.xmin), Some(10.0));
        assert!(t.at(0.79, 0.2).is_none());
        assert!(t.at(2.21, 0.2).is_none());
    }

    proptest! {
        #[test]
        fn tracking_is_deterministic_and_keeps_every_confident_detection(
            xs in proptest::collection::vec((0.0..500.0f64, 0.5..1.0f64, 1u32..3), 1..8),
            frames_n in 1usize..12,
        ) {
            let frames: Vec<_> = (0..frames_n)
                .map(|i| frame(i as f64 * 0.2, xs.iter().map(|(x, c, k)| object(*k, *x + i as f64, *c)).collect()))
                .collect();
            let a = track(&frames, TrackerConfig::default());
            let b = track(&frames, TrackerConfig::default());
            prop_assert_eq!(&a, &b);
            let samples: usize = a.iter().map(|t| t.samples.len()).sum();
            prop_assert_eq!(samples, frames_n * xs.len());
            for t in &a {
                prop_assert!(t.samples.windows(2).all(|w| w[0].t < w[1].t));
            }
        }
    }
}
