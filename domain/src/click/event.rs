//! Events of the click aggregate. Type names and versions are stable strings.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::geometry::{FrameHit, Size};
use crate::matching::{Candidate, UnmatchedReason};
use crate::personal::{Personal, stored_in_clear};
use crate::upcast::Upcaster;
use crate::{UserId, VideoId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClickEvent {
    ClickRecorded(ClickRecorded),
    ClickMatched(ClickMatched),
    ClickUnmatched(ClickUnmatched),
}

/// The click hit an object linked to a product. A later one replaces it when the
/// detections or the links change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClickMatched {
    pub click_id: Uuid,
    pub video_id: VideoId,
    pub run_id: Uuid,
    /// The best candidate: the object clicked, its box at the click's time, its product.
    pub best: Candidate,
    /// Every candidate within the near-miss radius, best first.
    pub candidates: Vec<Candidate>,
    pub reason: String,
    pub evaluated_at: DateTime<Utc>,
}

/// The click matched no product, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClickUnmatched {
    pub click_id: Uuid,
    pub video_id: VideoId,
    pub run_id: Uuid,
    pub reason: UnmatchedReason,
    pub explanation: String,
    pub candidates: Vec<Candidate>,
    pub evaluated_at: DateTime<Utc>,
}

/// A viewer clicked on a video. Holds the raw client facts and the frame point derived
/// from them, so the stored fact is complete and the mapping can be re-checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClickRecorded {
    pub click_id: Uuid,
    pub click_id_from_client: bool,
    /// Canonical YouTube id.
    pub video_id: VideoId,
    pub video_id_reported: String,
    pub user_id: Option<UserId>,
    pub x: f64,
    pub y: f64,
    /// Media time in seconds.
    pub timestamp: f64,
    pub player: Option<Size>,
    pub video: Option<Size>,
    /// Where the click landed in the played frame; absent without sizes.
    pub frame: Option<FrameHit>,
    /// The click landed on a black band beside or above the picture.
    pub on_black_band: bool,
    pub during_ad: bool,
    /// Personal data: sealed since event version 2.0, in clear before.
    pub client_ip: Personal<IpAddr>,
    pub viewer_cookie: Option<Personal<String>>,
    pub received_at: DateTime<Utc>,
}

pub const CLICK_RECORDED: &str = "ClickRecorded";
pub const CLICK_MATCHED: &str = "ClickMatched";
pub const CLICK_UNMATCHED: &str = "ClickUnmatched";

/// The version of `ClickRecorded` written today; the verdicts are still at 1.0.
pub const CLICK_RECORDED_VERSION: &str = "2.0";

impl crate::upcast::Upcast for ClickEvent {
    const UPCASTERS: &'static [Upcaster] =
        &[Upcaster { event_type: CLICK_RECORDED, to_version: CLICK_RECORDED_VERSION, rewrite: personal_in_clear }];
}

/// 1.0 → 2.0: the address and the cookie were written in clear; they are read as
/// [`Personal::Clear`], and such events cannot be shredded.
fn personal_in_clear(v: serde_json::Value) -> serde_json::Value {
    stored_in_clear(v, CLICK_RECORDED, &["client_ip", "viewer_cookie"])
}

impl DomainEvent for ClickEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ClickRecorded(_) => CLICK_RECORDED.to_owned(),
            Self::ClickMatched(_) => CLICK_MATCHED.to_owned(),
            Self::ClickUnmatched(_) => CLICK_UNMATCHED.to_owned(),
        }
    }

    fn event_version(&self) -> String {
        match self {
            Self::ClickRecorded(_) => CLICK_RECORDED_VERSION,
            Self::ClickMatched(_) | Self::ClickUnmatched(_) => "1.0",
        }
        .to_owned()
    }
}
