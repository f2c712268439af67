//! The video aggregate: a YouTube video a merchant uploaded, identified by its canonical
//! id. It keeps the versions of its file and the detection runs asked for; the runs'
//! progress lives in their own aggregate ([`crate::detection`]).

mod command;
mod error;
mod event;

pub use command::{LinkProduct, RequestDetection, UnlinkProduct, UploadVideo, VideoCommand};
pub use error::VideoError;
pub use event::{
    DETECTION_REQUESTED, DetectionRequested, LinkTarget, PRODUCT_LINKED, PRODUCT_UNLINKED, ProductLinked,
    ProductUnlinked, VIDEO_UPLOADED, VideoEvent, VideoFile, VideoUploaded,
};

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

pub const AGGREGATE_TYPE: &str = "video";

/// Highest sample rate a detection may ask for.
pub const MAX_SAMPLE_FPS: f64 = 30.0;

/// Lowest minimum confidence a detection may ask for (detectors run at this floor and
/// each run keeps what is above its own minimum).
pub const MIN_CONFIDENCE: f64 = 0.05;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Video {
    current: Option<VideoUploaded>,
    /// Links in force.
    links: std::collections::BTreeSet<uuid::Uuid>,
}

impl Video {
    pub fn current(&self) -> Option<&VideoUploaded> {
        self.current.as_ref()
    }

    /// The version a new upload gets.
    pub fn next_version(&self) -> u32 {
        self.current.as_ref().map_or(1, |c| c.version + 1)
    }

    pub fn decide(&self, command: VideoCommand) -> Result<Vec<VideoEvent>, VideoError> {
        match command {
            VideoCommand::UploadVideo(upload) => {
                check_file(&upload.file)?;
                let uploaded = VideoUploaded {
                    video_id: upload.video_id,
                    version: self.next_version(),
                    file: upload.file,
                    uploaded_at: upload.uploaded_at,
                };
                let mut events = Vec::with_capacity(2);
                if let Some(request) = upload.detect {
                    check_request(&request)?;
                    events.push(VideoEvent::VideoUploaded(uploaded.clone()));
                    events.push(VideoEvent::DetectionRequested(requested(uploaded.version, request)));
                } else {
                    events.push(VideoEvent::VideoUploaded(uploaded));
                }
                Ok(events)
            }
            VideoCommand::RequestDetection(request) => {
                let current = self.current.as_ref().ok_or(VideoError::NotUploaded)?;
                check_request(&request)?;
                Ok(vec![VideoEvent::DetectionRequested(requested(current.version, request))])
            }
            VideoCommand::LinkProduct(link) => {
                self.current.as_ref().ok_or(VideoError::NotUploaded)?;
                check_target(&link.target)?;
                let identifier = &link.additional_identifier;
                if identifier.chars().count() > 200 || identifier.chars().any(char::is_control) {
                    return Err(VideoError::InvalidIdentifier);
                }
                if self.links.contains(&link.link_id) {
                    return Ok(vec![]);
                }
                Ok(vec![VideoEvent::ProductLinked(ProductLinked {
                    video_id: link.video_id,
                    link_id: link.link_id,
                    article: link.article,
                    target: link.target,
                    additional_identifier: link.additional_identifier,
                    linked_at: link.linked_at,
                })])
            }
            VideoCommand::UnlinkProduct(unlink) => {
                if !self.links.contains(&unlink.link_id) {
                    return Err(VideoError::LinkNotFound);
                }
                Ok(vec![VideoEvent::ProductUnlinked(ProductUnlinked {
                    video_id: unlink.video_id,
                    link_id: unlink.link_id,
                    unlinked_at: unlink.unlinked_at,
                })])
            }
        }
    }
}

fn check_target(target: &LinkTarget) -> Result<(), VideoError> {
    match target {
        LinkTarget::Label { label, from, to } => {
            if label.trim().is_empty() || label.chars().count() > 64 || label.chars().any(char::is_control) {
                return Err(VideoError::InvalidTarget);
            }
            if !(from.is_finite() && to.is_finite() && *from >= 0.0 && from <= to) {
                return Err(VideoError::InvalidWindow);
            }
        }
        LinkTarget::Track { track_id } => {
            if track_id.is_empty() || track_id.len() > 80 || track_id.chars().any(char::is_control) {
                return Err(VideoError::InvalidTarget);
            }
        }
    }
    Ok(())
}

fn requested(version: u32, r: RequestDetection) -> DetectionRequested {
    DetectionRequested {
        video_id: r.video_id,
        run_id: r.run_id,
        video_version: version,
        labels: r.labels,
        sample_fps: r.sample_fps,
        min_confidence: r.min_confidence,
        requested_at: r.requested_at,
    }
}

fn check_file(file: &VideoFile) -> Result<(), VideoError> {
    if file.size_bytes == 0 {
        return Err(VideoError::InvalidFile("the file is empty"));
    }
    if file.width == 0 || file.height == 0 {
        return Err(VideoError::InvalidFile("the frame size is unknown"));
    }
    if !(file.duration.is_finite() && file.duration > 0.0) {
        return Err(VideoError::InvalidFile("the duration is unknown"));
    }
    if file.sha256.len() != 64 || !file.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(VideoError::InvalidFile("the sha256 is not a hex digest"));
    }
    Ok(())
}

fn check_request(r: &RequestDetection) -> Result<(), VideoError> {
    if !(r.sample_fps.is_finite() && r.sample_fps > 0.0 && r.sample_fps <= MAX_SAMPLE_FPS) {
        return Err(VideoError::InvalidSampleRate { max: MAX_SAMPLE_FPS });
    }
    if !(r.min_confidence.is_finite() && (MIN_CONFIDENCE..=1.0).contains(&r.min_confidence)) {
        return Err(VideoError::InvalidConfidence);
    }
    for (id, name) in &r.labels {
        if *id == 0 {
            return Err(VideoError::InvalidLabelId(*id));
        }
        let printable = name.chars().all(|c| !c.is_control());
        if name.trim().is_empty() || name.chars().count() > 64 || !printable {
            return Err(VideoError::InvalidLabelName);
        }
    }
    Ok(())
}

impl crate::snapshot::Snapshot for Video {
    const STATE_VERSION: u32 = 1;
}

impl Aggregate for Video {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = VideoCommand;
    type Event = VideoEvent;
    type Error = VideoError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            VideoEvent::VideoUploaded(e) => self.current = Some(e),
            VideoEvent::DetectionRequested(_) => {}
            VideoEvent::ProductLinked(e) => {
                self.links.insert(e.link_id);
            }
            VideoEvent::ProductUnlinked(e) => {
                self.links.remove(&e.link_id);
            }
        }
    }
}

#[cfg(test)]
mod tests;
