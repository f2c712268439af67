//! Matching a click to the object it hit, and the object to a product.
//!
//! Everything is compared in normalized frame coordinates (the played resolution and the
//! uploaded file's may differ), and distances are measured in the viewer's CSS pixels,
//! the unit a hand misses by. Each object's box grows by a near-miss radius; a click's
//! signed distance to a box is negative inside it. Candidates rank:
//!
//! 1. a box that contains the click before a near miss;
//! 2. then the smallest box (the most specific object);
//! 3. then a box linked to a product;
//! 4. then higher confidence.
//!
//! The best candidate is what was clicked. A click during an ad, or on a black band,
//! never matches; the ranked candidates are kept with their reasons, so every outcome
//! can be explained.

use serde::{Deserialize, Serialize};

use crate::geometry::{BoundingBox, FrameHit, Size};

/// Near-miss radius for a mouse, in CSS pixels.
pub const DEFAULT_RADIUS_CSS: f64 = 12.0;

/// Where a click landed, in the terms matching needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClickPoint {
    /// Normalized frame coordinates (0..1 inside the picture).
    pub u: f64,
    pub v: f64,
    /// CSS pixels per unit of `u` and of `v`: the picture's width and height on screen.
    pub css_width: f64,
    pub css_height: f64,
    pub on_frame: bool,
    pub during_ad: bool,
}

impl ClickPoint {
    /// A click that landed at `hit` on a picture of `frame`'s size (the played resolution,
    /// whose pixels `hit.scale` converts to CSS pixels).
    pub fn from_hit(hit: &FrameHit, frame: Size, during_ad: bool) -> Self {
        Self {
            u: hit.u,
            v: hit.v,
            css_width: frame.width() * hit.scale,
            css_height: frame.height() * hit.scale,
            on_frame: hit.on_frame,
            during_ad,
        }
    }
}

/// An object present at the click's time: a track's (interpolated) box.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectAt {
    pub track_id: String,
    pub class_id: u32,
    pub label: String,
    /// Normalized by the uploaded file's size.
    pub bbox: BoundingBox,
    pub confidence: f64,
    /// The product linked to this object at this time, if any.
    pub product: Option<LinkedProduct>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedProduct {
    pub article: String,
    pub additional_identifier: String,
    pub link_id: String,
}

/// One ranked candidate, with why it ranks where it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub track_id: String,
    pub class_id: u32,
    pub label: String,
    /// Normalized box at the click's time.
    pub bbox: BoundingBox,
    pub confidence: f64,
    /// Signed distance from the click to the box in CSS pixels (negative inside).
    pub distance: f64,
    pub contains: bool,
    /// Area of the normalized box (share of the picture).
    pub area: f64,
    pub product: Option<LinkedProduct>,
    pub reason: String,
}

/// Why a click matched no product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmatchedReason {
    DuringAd,
    BlackBand,
    NoObjectNear,
    NotLinked,
}

impl UnmatchedReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::DuringAd => "during_ad",
            Self::BlackBand => "black_band",
            Self::NoObjectNear => "no_object_near",
            Self::NotLinked => "not_linked",
        }
    }
}

/// The outcome of matching one click.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[allow(
    clippy::large_enum_variant,
    reason = "built once per command or event and moved a few times; boxing would only add an allocation"
)]
pub enum Outcome {
    Matched { best: Candidate, candidates: Vec<Candidate>, reason: String },
    Unmatched { reason: UnmatchedReason, explanation: String, candidates: Vec<Candidate> },
}

/// Signed distance in CSS pixels from a point to a box (negative inside: minus the
/// distance to the nearest edge).
pub fn signed_distance(x: f64, y: f64, b: &BoundingBox) -> f64 {
    let dx = (b.xmin - x).max(x - b.xmax);
    let dy = (b.ymin - y).max(y - b.ymax);
    if dx <= 0.0 && dy <= 0.0 { dx.max(dy) } else { dx.max(0.0).hypot(dy.max(0.0)) }
}

/// The candidates within `radius_css` of the click, best first.
pub fn rank(click: &ClickPoint, objects: &[ObjectAt], radius_css: f64) -> Vec<Candidate> {
    let (px, py) = (click.u * click.css_width, click.v * click.css_height);
    let mut candidates: Vec<Candidate> = objects
        .iter()
        .filter_map(|o| {
            let on_screen = BoundingBox {
                xmin: o.bbox.xmin * click.css_width,
                ymin: o.bbox.ymin * click.css_height,
                xmax: o.bbox.xmax * click.css_width,
                ymax: o.bbox.ymax * click.css_height,
            };
            let distance = signed_distance(px, py, &on_screen);
            (distance <= radius_css).then(|| Candidate {
                track_id: o.track_id.clone(),
                class_id: o.class_id,
                label: o.label.clone(),
                bbox: o.bbox,
                confidence: o.confidence,
                distance,
                contains: distance <= 0.0,
                area: o.bbox.area(),
                product: o.product.clone(),
                reason: String::new(),
            })
        })
        .collect();
    candidates.sort_by(|a, b| {
        b.contains
            .cmp(&a.contains)
            .then(a.area.total_cmp(&b.area))
            .then(b.product.is_some().cmp(&a.product.is_some()))
            .then(b.confidence.total_cmp(&a.confidence))
            .then(a.track_id.cmp(&b.track_id))
    });
    let n = candidates.len();
    for (i, c) in candidates.iter_mut().enumerate() {
        let place = if c.contains {
            format!("contains the click ({:.1} px inside)", -c.distance)
        } else {
            format!("{:.1} px from the click, within the {radius_css} px near-miss radius", c.distance)
        };
        let link = match &c.product {
            Some(p) => format!("linked to {}", p.article),
            None => "linked to no product".to_owned(),
        };
        c.reason = format!(
            "#{} of {n}: {} {place}; {:.2}% of the picture; {link}; confidence {:.2}",
            i + 1,
            c.label,
            c.area * 100.0,
            c.confidence
        );
    }
    candidates
}

/// Matches one click against the objects present at its time.
pub fn decide(click: &ClickPoint, objects: &[ObjectAt], radius_css: f64) -> Outcome {
    if click.during_ad {
        return Outcome::Unmatched {
            reason: UnmatchedReason::DuringAd,
            explanation: "the player was showing an ad, not the video".into(),
            candidates: vec![],
        };
    }
    if !click.on_frame {
        return Outcome::Unmatched {
            reason: UnmatchedReason::BlackBand,
            explanation: "the click landed on a black band beside or above the picture".into(),
            candidates: vec![],
        };
    }
    let candidates = rank(click, objects, radius_css);
    match candidates.first() {
        None => Outcome::Unmatched {
            reason: UnmatchedReason::NoObjectNear,
            explanation: format!("no detected object within {radius_css} px of the click"),
            candidates,
        },
        Some(best) if best.product.is_none() => Outcome::Unmatched {
            reason: UnmatchedReason::NotLinked,
            explanation: format!("the clicked {} is linked to no product", best.label),
            candidates,
        },
        Some(best) => Outcome::Matched { best: best.clone(), reason: best.reason.clone(), candidates },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn click(u: f64, v: f64) -> ClickPoint {
        ClickPoint { u, v, css_width: 1000.0, css_height: 500.0, on_frame: true, during_ad: false }
    }

    fn object(id: &str, b: [f64; 4], confidence: f64, article: Option<&str>) -> ObjectAt {
        ObjectAt {
            track_id: id.into(),
            class_id: 1,
            label: id.into(),
            bbox: BoundingBox { xmin: b[0], ymin: b[1], xmax: b[2], ymax: b[3] },
            confidence,
            product: article.map(|a| LinkedProduct {
                article: a.into(),
                additional_identifier: String::new(),
                link_id: "l".into(),
            }),
        }
    }

    fn best(outcome: &Outcome) -> Option<&str> {
        match outcome {
            Outcome::Matched { best, .. } => Some(&best.track_id),
            Outcome::Unmatched { .. } => None,
        }
    }

    #[test]
    fn signed_distance_is_negative_inside_and_euclidean_outside() {
        let b = BoundingBox { xmin: 0.0, ymin: 0.0, xmax: 10.0, ymax: 10.0 };
        assert_eq!(signed_distance(5.0, 5.0, &b), -5.0);
        assert_eq!(signed_distance(2.0, 5.0, &b), -2.0);
        assert_eq!(signed_distance(13.0, 14.0, &b), 5.0);
        assert_eq!(signed_distance(-3.0, 5.0, &b), 3.0);
    }

    /// Each row: objects, click, expected best track (None: unmatched) and reason.
    #[test]
    fn the_ranking_table() {
        let big = [0.1, 0.1, 0.9, 0.9];
        let small = [0.4, 0.4, 0.6, 0.6];
        type Row<'a> = (&'a str, Vec<ObjectAt>, ClickPoint, Option<&'a str>, Option<UnmatchedReason>);
        let rows: Vec<Row<'_>> = vec![
            ("inside one linked box", vec![object("a", small, 0.9, Some("SKU-1"))], click(0.5, 0.5), Some("a"), None),
            (
                "a containing box beats a nearer-edged near miss",
                vec![
                    object("near", [0.505, 0.4, 0.6, 0.6], 0.99, Some("SKU-2")),
                    object("in", big, 0.5, Some("SKU-1")),
                ],
                click(0.5, 0.5),
                Some("in"),
                None,
            ),
            (
                "the smallest containing box wins",
                vec![object("big", big, 0.99, Some("SKU-1")), object("small", small, 0.5, Some("SKU-2"))],
                click(0.5, 0.5),
                Some("small"),
                None,
            ),
            (
                "equal boxes: the linked one wins",
                vec![object("plain", small, 0.99, None), object("linked", small, 0.5, Some("SKU-1"))],
                click(0.5, 0.5),
                Some("linked"),
                None,
            ),
            (
                "equal linked boxes: the more confident one wins",
                vec![object("low", small, 0.6, Some("SKU-1")), object("high", small, 0.9, Some("SKU-2"))],
                click(0.5, 0.5),
                Some("high"),
                None,
            ),
            (
                "a near miss within 12 px matches",
                // 0.6 × 1000 = 600 px; the click at 0.61 is 10 px right of the box.
                vec![object("a", small, 0.9, Some("SKU-1"))],
                click(0.61, 0.5),
                Some("a"),
                None,
            ),
            (
                "beyond the radius nothing is near",
                vec![object("a", small, 0.9, Some("SKU-1"))],
                click(0.62, 0.5),
                None,
                Some(UnmatchedReason::NoObjectNear),
            ),
            (
                "the clicked object is not linked",
                vec![object("a", small, 0.9, None)],
                click(0.5, 0.5),
                None,
                Some(UnmatchedReason::NotLinked),
            ),
            (
                "a smaller unlinked object in front wins over a linked one behind",
                vec![object("bike", big, 0.9, Some("SKU-1")), object("cup", small, 0.9, None)],
                click(0.5, 0.5),
                None,
                Some(UnmatchedReason::NotLinked),
            ),
            (
                "a black band never matches",
                vec![object("a", big, 0.9, Some("SKU-1"))],
                ClickPoint { on_frame: false, ..click(0.5, -0.01) },
                None,
                Some(UnmatchedReason::BlackBand),
            ),
            (
                "an ad never matches",
                vec![object("a", big, 0.9, Some("SKU-1"))],
                ClickPoint { during_ad: true, ..click(0.5, 0.5) },
                None,
                Some(UnmatchedReason::DuringAd),
            ),
        ];
        for (what, objects, c, expected, reason) in rows {
            let outcome = decide(&c, &objects, DEFAULT_RADIUS_CSS);
            assert_eq!(best(&outcome), expected, "{what}: {outcome:?}");
            if let (Some(reason), Outcome::Unmatched { reason: got, .. }) = (reason, &outcome) {
                assert_eq!(*got, reason, "{what}");
            }
        }
    }

    #[test]
    fn candidates_carry_their_reasons_in_rank_order() {
        let objects = vec![
            object("big", [0.1, 0.1, 0.9, 0.9], 0.9, Some("SKU-1")),
            object("small", [0.4, 0.4, 0.6, 0.6], 0.8, Some("SKU-2")),
        ];
        let Outcome::Matched { candidates, reason, .. } = decide(&click(0.5, 0.5), &objects, 12.0) else {
            panic!("matched");
        };
        assert_eq!(candidates.len(), 2);
        assert!(candidates[0].reason.starts_with("#1 of 2: small contains the click"), "{}", candidates[0].reason);
        assert!(candidates[1].reason.starts_with("#2 of 2: big"));
        assert_eq!(reason, candidates[0].reason);
    }
}
