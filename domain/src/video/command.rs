//! Commands to the video aggregate.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::event::{LinkTarget, VideoFile};
use crate::VideoId;
use crate::product::Article;

#[derive(Debug, Clone, PartialEq)]
pub enum VideoCommand {
    /// A merchant uploaded the video's file (a first version or a replacement).
    UploadVideo(UploadVideo),
    /// Detect objects in the current version of the file.
    RequestDetection(RequestDetection),
    /// Link a product to what the detector found.
    LinkProduct(LinkProduct),
    UnlinkProduct(UnlinkProduct),
}

#[derive(Debug, Clone, PartialEq)]
pub struct LinkProduct {
    pub video_id: VideoId,
    pub link_id: Uuid,
    /// Checked to exist before the command is sent.
    pub article: Article,
    pub target: LinkTarget,
    /// A variant, a size: travels into the detections file.
    pub additional_identifier: String,
    pub linked_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UnlinkProduct {
    pub video_id: VideoId,
    pub link_id: Uuid,
    pub unlinked_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UploadVideo {
    pub video_id: VideoId,
    pub file: VideoFile,
    pub uploaded_at: DateTime<Utc>,
    /// Request detection of this upload at once (automatic detection).
    pub detect: Option<RequestDetection>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestDetection {
    pub video_id: VideoId,
    pub run_id: Uuid,
    /// The original system's ids: the model's class index + 1 → the label to report.
    /// Empty means every class the model knows, under the model's own names.
    pub labels: BTreeMap<u32, String>,
    pub sample_fps: f64,
    pub min_confidence: f64,
    pub requested_at: DateTime<Utc>,
}
