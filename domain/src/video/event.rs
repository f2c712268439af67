//! Events of the video aggregate. Type names and versions are stable strings.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::VideoId;
use crate::product::Article;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum VideoEvent {
    VideoUploaded(VideoUploaded),
    DetectionRequested(DetectionRequested),
    ProductLinked(ProductLinked),
    ProductUnlinked(ProductUnlinked),
}

/// What a link points at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LinkTarget {
    /// Every object with this label between `from` and `to` seconds (media time).
    Label { label: String, from: f64, to: f64 },
    /// One tracked object: `<run_id>:<track number>`.
    Track { track_id: String },
}

/// A product was linked to objects of the video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductLinked {
    pub video_id: VideoId,
    pub link_id: Uuid,
    pub article: Article,
    pub target: LinkTarget,
    pub additional_identifier: String,
    pub linked_at: DateTime<Utc>,
}

/// A link was removed (the history keeps it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductUnlinked {
    pub video_id: VideoId,
    pub link_id: Uuid,
    pub unlinked_at: DateTime<Utc>,
}

/// What was measured of an uploaded file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoFile {
    /// Name under `media/source_video_files/`: `{video_id}.{extension}`.
    pub file_name: String,
    /// The name the merchant's file had, as sent (for people; never used as a path).
    pub original_name: Option<String>,
    pub size_bytes: u64,
    /// Hex sha256 of the file's bytes.
    pub sha256: String,
    /// Seconds.
    pub duration: f64,
    pub width: u32,
    pub height: u32,
    /// Frames per second.
    pub frame_rate: f64,
    pub codec: String,
    pub container: String,
}

/// A version of the video's file was stored. Versions count from 1; a new upload for the
/// same video is a new version, the old one stays in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoUploaded {
    pub video_id: VideoId,
    pub version: u32,
    pub file: VideoFile,
    pub uploaded_at: DateTime<Utc>,
}

/// Detection of objects in one version of the file was asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionRequested {
    pub video_id: VideoId,
    pub run_id: Uuid,
    pub video_version: u32,
    pub labels: BTreeMap<u32, String>,
    pub sample_fps: f64,
    pub min_confidence: f64,
    pub requested_at: DateTime<Utc>,
}

pub const VIDEO_UPLOADED: &str = "VideoUploaded";
pub const DETECTION_REQUESTED: &str = "DetectionRequested";
pub const PRODUCT_LINKED: &str = "ProductLinked";
pub const PRODUCT_UNLINKED: &str = "ProductUnlinked";

/// No stored shape has changed yet: see [`crate::upcast`] for how one would.
impl crate::upcast::Upcast for VideoEvent {}

impl DomainEvent for VideoEvent {
    fn event_type(&self) -> String {
        match self {
            Self::VideoUploaded(_) => VIDEO_UPLOADED,
            Self::DetectionRequested(_) => DETECTION_REQUESTED,
            Self::ProductLinked(_) => PRODUCT_LINKED,
            Self::ProductUnlinked(_) => PRODUCT_UNLINKED,
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
