//! Commands to the click aggregate.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::geometry::Size;
use crate::matching::Outcome;
use crate::personal::Sealed;
use crate::{UserId, VideoId};

#[derive(Debug, Clone, PartialEq)]
pub enum ClickCommand {
    RecordClick(RecordClick),
    /// The matcher's verdict on the click, from the detections and links it knew.
    RecordMatch(RecordMatch),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordMatch {
    pub outcome: Outcome,
    /// The detection run whose tracks were matched.
    pub run_id: Uuid,
    pub evaluated_at: DateTime<Utc>,
}

/// Record one click on a video as the client reported it, with the facts the server
/// observed (peer address, cookie, time of receipt) looked up before.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordClick {
    pub click_id: Uuid,
    /// False when the client sent no click id and the server made one.
    pub click_id_from_client: bool,
    pub video_id: VideoId,
    /// The video id exactly as the client reported it (a URL, `ID&list=…`, …).
    pub video_id_reported: String,
    pub user_id: Option<UserId>,
    /// CSS pixels from the `<video>` element's top-left corner.
    pub x: f64,
    pub y: f64,
    /// Media time in seconds (`currentTime`).
    pub media_time: f64,
    /// The `<video>` element's size and the played frame's size, when the client sent them.
    pub sizes: Option<ClickSizes>,
    /// The client said an ad was playing in the player at click time.
    pub during_ad: bool,
    /// Sealed under the viewer's subject's key (see [`crate::personal`]): a command
    /// cannot carry personal data in clear.
    pub client_ip: Sealed<IpAddr>,
    /// Checked with [`super::viewer_cookie`] before it was sealed.
    pub viewer_cookie: Option<Sealed<String>>,
    pub received_at: DateTime<Utc>,
}

/// The element and frame sizes at click time: both or neither.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClickSizes {
    pub player: Size,
    pub video: Size,
}
