//! Given/when/then tests of the video rules.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;
use crate::VideoId;

type VideoTest = TestFramework<Video>;

fn id() -> VideoId {
    VideoId::parse("VESeA6leQuk").expect("id")
}

fn file(sha: char) -> VideoFile {
    VideoFile {
        file_name: "VESeA6leQuk.mp4".into(),
        original_name: Some("pan.mp4".into()),
        size_bytes: 1000,
        sha256: sha.to_string().repeat(64),
        duration: 3.0,
        width: 320,
        height: 320,
        frame_rate: 10.0,
        codec: "h264".into(),
        container: "mov,mp4,m4a,3gp,3g2,mj2".into(),
    }
}

fn at() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).single().expect("time")
}

fn request(run: u128) -> RequestDetection {
    RequestDetection {
        video_id: id(),
        run_id: Uuid::from_u128(run),
        labels: BTreeMap::from([(1, "person".to_owned())]),
        sample_fps: 5.0,
        min_confidence: 0.25,
        requested_at: at(),
    }
}

fn uploaded(version: u32, sha: char) -> VideoEvent {
    VideoEvent::VideoUploaded(VideoUploaded { video_id: id(), version, file: file(sha), uploaded_at: at() })
}

fn upload(sha: char, detect: Option<RequestDetection>) -> VideoCommand {
    VideoCommand::UploadVideo(UploadVideo { video_id: id(), file: file(sha), uploaded_at: at(), detect })
}

#[test]
fn a_first_upload_is_version_one() {
    VideoTest::with(()).given_no_previous_events().when(upload('a', None)).then_expect_events(vec![uploaded(1, 'a')]);
}

#[test]
fn uploading_again_adds_a_version_and_keeps_the_history() {
    VideoTest::with(())
        .given(vec![uploaded(1, 'a')])
        .when(upload('b', None))
        .then_expect_events(vec![uploaded(2, 'b')]);
}

#[test]
fn an_upload_can_request_detection_of_itself() {
    let requested = VideoEvent::DetectionRequested(DetectionRequested {
        video_id: id(),
        run_id: Uuid::from_u128(9),
        video_version: 2,
        labels: BTreeMap::from([(1, "person".to_owned())]),
        sample_fps: 5.0,
        min_confidence: 0.25,
        requested_at: at(),
    });
    VideoTest::with(())
        .given(vec![uploaded(1, 'a')])
        .when(upload('b', Some(request(9))))
        .then_expect_events(vec![uploaded(2, 'b'), requested]);
}

#[test]
fn detection_needs_an_uploaded_file() {
    VideoTest::with(())
        .given_no_previous_events()
        .when(VideoCommand::RequestDetection(request(1)))
        .then_expect_error(VideoError::NotUploaded);
}

#[test]
fn detection_runs_on_the_current_version_and_may_be_asked_again() {
    let expect = |run| {
        VideoEvent::DetectionRequested(DetectionRequested {
            video_id: id(),
            run_id: Uuid::from_u128(run),
            video_version: 2,
            labels: BTreeMap::from([(1, "person".to_owned())]),
            sample_fps: 5.0,
            min_confidence: 0.25,
            requested_at: at(),
        })
    };
    VideoTest::with(())
        .given(vec![uploaded(1, 'a'), uploaded(2, 'b'), expect(1)])
        .when(VideoCommand::RequestDetection(request(2)))
        .then_expect_events(vec![expect(2)]);
}

#[test]
fn bad_detection_parameters_are_refused() {
    let cases: Vec<(RequestDetection, VideoError)> = vec![
        (RequestDetection { sample_fps: 0.0, ..request(1) }, VideoError::InvalidSampleRate { max: MAX_SAMPLE_FPS }),
        (RequestDetection { sample_fps: 60.0, ..request(1) }, VideoError::InvalidSampleRate { max: MAX_SAMPLE_FPS }),
        (RequestDetection { min_confidence: 0.0, ..request(1) }, VideoError::InvalidConfidence),
        (RequestDetection { min_confidence: f64::NAN, ..request(1) }, VideoError::InvalidConfidence),
        (RequestDetection { labels: BTreeMap::from([(0, "x".into())]), ..request(1) }, VideoError::InvalidLabelId(0)),
        (RequestDetection { labels: BTreeMap::from([(1, " ".into())]), ..request(1) }, VideoError::InvalidLabelName),
    ];
    for (request, error) in cases {
        VideoTest::with(())
            .given(vec![uploaded(1, 'a')])
            .when(VideoCommand::RequestDetection(request))
            .then_expect_error(error);
    }
}

#[test]
fn an_empty_or_unmeasured_file_is_refused() {
    let empty = VideoFile { size_bytes: 0, ..file('a') };
    VideoTest::with(())
        .given_no_previous_events()
        .when(VideoCommand::UploadVideo(UploadVideo { video_id: id(), file: empty, uploaded_at: at(), detect: None }))
        .then_expect_error(VideoError::InvalidFile("the file is empty"));
}

fn link(id: u128, target: LinkTarget) -> VideoCommand {
    VideoCommand::LinkProduct(LinkProduct {
        video_id: id_(),
        link_id: Uuid::from_u128(id),
        article: crate::product::Article::parse("SKU-1").expect("article"),
        target,
        additional_identifier: "size M".into(),
        linked_at: at(),
    })
}

fn id_() -> VideoId {
    id()
}

fn linked(id: u128, target: LinkTarget) -> VideoEvent {
    VideoEvent::ProductLinked(ProductLinked {
        video_id: id_(),
        link_id: Uuid::from_u128(id),
        article: crate::product::Article::parse("SKU-1").expect("article"),
        target,
        additional_identifier: "size M".into(),
        linked_at: at(),
    })
}

fn person(from: f64, to: f64) -> LinkTarget {
    LinkTarget::Label { label: "person".into(), from, to }
}

#[test]
fn products_are_linked_and_unlinked_by_events() {
    VideoTest::with(())
        .given(vec![uploaded(1, 'a')])
        .when(link(1, person(10.0, 25.0)))
        .then_expect_events(vec![linked(1, person(10.0, 25.0))]);
    let unlink =
        VideoCommand::UnlinkProduct(UnlinkProduct { video_id: id(), link_id: Uuid::from_u128(1), unlinked_at: at() });
    VideoTest::with(())
        .given(vec![uploaded(1, 'a'), linked(1, person(10.0, 25.0))])
        .when(unlink.clone())
        .then_expect_events(vec![VideoEvent::ProductUnlinked(ProductUnlinked {
            video_id: id(),
            link_id: Uuid::from_u128(1),
            unlinked_at: at(),
        })]);
    VideoTest::with(()).given(vec![uploaded(1, 'a')]).when(unlink).then_expect_error(VideoError::LinkNotFound);
}

#[test]
fn links_need_a_video_and_a_sane_target() {
    VideoTest::with(())
        .given_no_previous_events()
        .when(link(1, person(0.0, 1.0)))
        .then_expect_error(VideoError::NotUploaded);
    VideoTest::with(())
        .given(vec![uploaded(1, 'a')])
        .when(link(1, person(5.0, 1.0)))
        .then_expect_error(VideoError::InvalidWindow);
    VideoTest::with(())
        .given(vec![uploaded(1, 'a')])
        .when(link(1, person(-1.0, 1.0)))
        .then_expect_error(VideoError::InvalidWindow);
    VideoTest::with(())
        .given(vec![uploaded(1, 'a')])
        .when(link(1, LinkTarget::Label { label: " ".into(), from: 0.0, to: 1.0 }))
        .then_expect_error(VideoError::InvalidTarget);
}
