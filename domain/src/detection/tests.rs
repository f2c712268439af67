//! Given/when/then tests of the detection-run rules.

use chrono::{TimeZone, Utc};
use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;
use crate::VideoId;
use crate::geometry::BoundingBox;

type RunTest = TestFramework<DetectionRun>;

fn video() -> VideoId {
    VideoId::parse("VESeA6leQuk").expect("id")
}

fn at() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).single().expect("time")
}

const RUN: Uuid = Uuid::from_u128(42);

fn start(worker: &str) -> DetectionCommand {
    DetectionCommand::StartDetection(StartDetection {
        run_id: RUN,
        video_id: video(),
        video_version: 1,
        worker: worker.into(),
        model: "yolov4-tiny".into(),
        frames_total: 30,
        started_at: at(),
    })
}

fn started(attempt: u32, worker: &str, resume: u64) -> DetectionEvent {
    DetectionEvent::DetectionStarted(DetectionStarted {
        run_id: RUN,
        video_id: video(),
        video_version: 1,
        attempt,
        worker: worker.into(),
        model: "yolov4-tiny".into(),
        frames_total: 30,
        resume_from_frame: resume,
        started_at: at(),
    })
}

fn frames(n: usize) -> Vec<FrameDetections> {
    (0..n)
        .map(|i| FrameDetections {
            timestamp: i as f64 * 0.2,
            objects: vec![DetectedObject {
                class_id: 1,
                label: "person".into(),
                confidence: 0.9,
                bbox: BoundingBox { xmin: 1.0, ymin: 2.0, xmax: 30.0, ymax: 40.0 },
            }],
        })
        .collect()
}

fn record(attempt: u32, batch: u32) -> DetectionCommand {
    DetectionCommand::RecordDetections(RecordDetections { video_id: video(), attempt, batch, frames: frames(10) })
}

fn recorded(attempt: u32, batch: u32) -> DetectionEvent {
    DetectionEvent::DetectionsRecorded(DetectionsRecorded {
        run_id: RUN,
        video_id: video(),
        attempt,
        batch,
        frames: frames(10),
        frames_done: u64::from(batch + 1) * 10,
        frames_total: 30,
    })
}

fn complete(attempt: u32) -> DetectionCommand {
    DetectionCommand::CompleteDetection(CompleteDetection {
        video_id: video(),
        attempt,
        elapsed_ms: 500,
        completed_at: at(),
    })
}

#[test]
fn a_run_records_batches_in_order_then_completes() {
    RunTest::with(()).given_no_previous_events().when(start("w1")).then_expect_events(vec![started(1, "w1", 0)]);
    RunTest::with(()).given(vec![started(1, "w1", 0)]).when(record(1, 0)).then_expect_events(vec![recorded(1, 0)]);
    RunTest::with(())
        .given(vec![started(1, "w1", 0), recorded(1, 0), recorded(1, 1)])
        .when(complete(1))
        .then_expect_events(vec![DetectionEvent::DetectionCompleted(DetectionCompleted {
            run_id: RUN,
            video_id: video(),
            video_version: 1,
            frames: 20,
            objects: 20,
            model: "yolov4-tiny".into(),
            elapsed_ms: 500,
            completed_at: at(),
        })]);
}

#[test]
fn a_retried_batch_is_recorded_once_and_a_gap_is_refused() {
    RunTest::with(()).given(vec![started(1, "w1", 0), recorded(1, 0)]).when(record(1, 0)).then_expect_events(vec![]);
    RunTest::with(())
        .given(vec![started(1, "w1", 0)])
        .when(record(1, 2))
        .then_expect_error(DetectionError::OutOfOrder { given: 2, expected: 0 });
}

#[test]
fn a_worker_taking_over_resumes_and_fences_off_the_old_one() {
    let history = vec![started(1, "w1", 0), recorded(1, 0)];
    RunTest::with(()).given(history.clone()).when(start("w2")).then_expect_events(vec![started(2, "w2", 10)]);
    let mut taken = history;
    taken.push(started(2, "w2", 10));
    RunTest::with(())
        .given(taken.clone())
        .when(record(1, 1))
        .then_expect_error(DetectionError::StaleAttempt { given: 1, current: 2 });
    RunTest::with(()).given(taken).when(record(2, 1)).then_expect_events(vec![recorded(2, 1)]);
}

#[test]
fn a_finished_run_is_finished_once() {
    let done = DetectionEvent::DetectionCompleted(DetectionCompleted {
        run_id: RUN,
        video_id: video(),
        video_version: 1,
        frames: 10,
        objects: 10,
        model: "yolov4-tiny".into(),
        elapsed_ms: 1,
        completed_at: at(),
    });
    let history = vec![started(1, "w1", 0), recorded(1, 0), done];
    RunTest::with(()).given(history.clone()).when(complete(1)).then_expect_events(vec![]);
    RunTest::with(()).given(history.clone()).when(start("w2")).then_expect_error(DetectionError::AlreadyFinished);
    RunTest::with(()).given(history).when(record(1, 1)).then_expect_error(DetectionError::AlreadyFinished);
}

#[test]
fn a_run_can_fail_before_it_starts() {
    RunTest::with(())
        .given_no_previous_events()
        .when(DetectionCommand::FailDetection(FailDetection {
            run_id: RUN,
            video_id: video(),
            attempt: None,
            reason: "the model files are missing: run `framecart model fetch`".into(),
            failed_at: at(),
        }))
        .then_expect_events(vec![DetectionEvent::DetectionFailed(DetectionFailed {
            run_id: RUN,
            video_id: video(),
            reason: "the model files are missing: run `framecart model fetch`".into(),
            failed_at: at(),
        })]);
}

#[test]
fn invalid_boxes_are_refused() {
    let mut bad = frames(1);
    bad[0].objects[0].bbox = BoundingBox { xmin: 10.0, ymin: 0.0, xmax: 5.0, ymax: 5.0 };
    RunTest::with(())
        .given(vec![started(1, "w1", 0)])
        .when(DetectionCommand::RecordDetections(RecordDetections {
            video_id: video(),
            attempt: 1,
            batch: 0,
            frames: bad,
        }))
        .then_expect_error(DetectionError::InvalidDetection);
}
