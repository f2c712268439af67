//! Projection `videos`: each video with its current file and the status and progress of
//! its newest detection run, and every detection run.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use framecart_domain::detection::{self, DetectionEvent};
use framecart_domain::log::{LoggedEvent, Namespace};
use framecart_domain::video::{self, VideoEvent};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::runner::{Projection, ProjectionError, decode};

pub const NAME: &str = "videos";

pub struct VideosProjection;

#[async_trait]
impl Projection for VideosProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Videos and detection runs: two aggregate types, and NATS 2.9 allows one filter per
    /// consumer, so it reads every event and ignores the others.
    fn filter_subject(&self, ns: &Namespace) -> String {
        ns.all_events_subject()
    }

    fn filter_subjects(&self, ns: &Namespace) -> Vec<String> {
        vec![ns.aggregate_subject(video::AGGREGATE_TYPE), ns.aggregate_subject(detection::AGGREGATE_TYPE)]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["videos_view", "detection_runs_view"]
    }

    fn wants(&self, aggregate_type: &str, _event_type: &str) -> bool {
        aggregate_type == video::AGGREGATE_TYPE || aggregate_type == detection::AGGREGATE_TYPE
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &LoggedEvent,
        log_position: i64,
    ) -> Result<(), ProjectionError> {
        match event.aggregate_type.as_str() {
            video::AGGREGATE_TYPE => apply_video(tx, decode(event, log_position)?, log_position).await,
            detection::AGGREGATE_TYPE => apply_run(tx, decode(event, log_position)?).await,
            _ => Ok(()),
        }
    }
}

async fn apply_video(tx: &mut PgConnection, event: VideoEvent, log_position: i64) -> Result<(), ProjectionError> {
    match event {
        VideoEvent::VideoUploaded(e) => {
            let f = &e.file;
            sqlx::query(
                "INSERT INTO videos_view (video_id, version, file_name, original_name, size_bytes, sha256,
                     duration, width, height, frame_rate, codec, container, first_uploaded_at, uploaded_at, status)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, 'uploaded')
                 ON CONFLICT (video_id) DO UPDATE SET
                     version = EXCLUDED.version, file_name = EXCLUDED.file_name,
                     original_name = EXCLUDED.original_name, size_bytes = EXCLUDED.size_bytes,
                     sha256 = EXCLUDED.sha256, duration = EXCLUDED.duration, width = EXCLUDED.width,
                     height = EXCLUDED.height, frame_rate = EXCLUDED.frame_rate, codec = EXCLUDED.codec,
                     container = EXCLUDED.container, uploaded_at = EXCLUDED.uploaded_at,
                     latest_run_id = NULL, status = 'uploaded', progress = 0, failure_reason = NULL,
                     updated_at = clock_timestamp()",
            )
            .bind(e.video_id.as_str())
            .bind(i32::try_from(e.version).unwrap_or(i32::MAX))
            .bind(&f.file_name)
            .bind(&f.original_name)
            .bind(i64::try_from(f.size_bytes).unwrap_or(i64::MAX))
            .bind(&f.sha256)
            .bind(f.duration)
            .bind(i32::try_from(f.width).unwrap_or(i32::MAX))
            .bind(i32::try_from(f.height).unwrap_or(i32::MAX))
            .bind(f.frame_rate)
            .bind(&f.codec)
            .bind(&f.container)
            .bind(e.uploaded_at)
            .execute(tx)
            .await?;
        }
        VideoEvent::DetectionRequested(e) => {
            sqlx::query(
                "INSERT INTO detection_runs_view (run_id, video_id, video_version, request_position, labels,
                     sample_fps, min_confidence, status, requested_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8)
                 ON CONFLICT (run_id) DO NOTHING",
            )
            .bind(e.run_id)
            .bind(e.video_id.as_str())
            .bind(i32::try_from(e.video_version).unwrap_or(i32::MAX))
            .bind(log_position)
            .bind(sqlx::types::Json(&e.labels))
            .bind(e.sample_fps)
            .bind(e.min_confidence)
            .bind(e.requested_at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE videos_view SET latest_run_id = $2, status = 'queued', progress = 0,
                     failure_reason = NULL, updated_at = clock_timestamp()
                 WHERE video_id = $1",
            )
            .bind(e.video_id.as_str())
            .bind(e.run_id)
            .execute(tx)
            .await?;
        }
        VideoEvent::ProductLinked(_) | VideoEvent::ProductUnlinked(_) => {}
    }
    Ok(())
}

async fn apply_run(tx: &mut PgConnection, event: DetectionEvent) -> Result<(), ProjectionError> {
    let run_id = match &event {
        DetectionEvent::DetectionStarted(e) => {
            sqlx::query(
                "UPDATE detection_runs_view SET status = 'processing', attempt = $2, worker = $3, model = $4,
                     frames_total = $5, started_at = coalesce(started_at, $6)
                 WHERE run_id = $1",
            )
            .bind(e.run_id)
            .bind(i32::try_from(e.attempt).unwrap_or(i32::MAX))
            .bind(&e.worker)
            .bind(&e.model)
            .bind(i64::try_from(e.frames_total).unwrap_or(i64::MAX))
            .bind(e.started_at)
            .execute(&mut *tx)
            .await?;
            e.run_id
        }
        DetectionEvent::DetectionsRecorded(e) => {
            let objects: usize = e.frames.iter().map(|f| f.objects.len()).sum();
            sqlx::query(
                "UPDATE detection_runs_view SET frames_done = $2, frames_total = $3, objects = objects + $4
                 WHERE run_id = $1",
            )
            .bind(e.run_id)
            .bind(i64::try_from(e.frames_done).unwrap_or(i64::MAX))
            .bind(i64::try_from(e.frames_total).unwrap_or(i64::MAX))
            .bind(objects as i64)
            .execute(&mut *tx)
            .await?;
            e.run_id
        }
        DetectionEvent::DetectionCompleted(e) => {
            sqlx::query(
                "UPDATE detection_runs_view SET status = 'completed', frames_done = $2, frames_total = $2,
                     objects = $3, elapsed_ms = $4, finished_at = $5, model = $6
                 WHERE run_id = $1",
            )
            .bind(e.run_id)
            .bind(i64::try_from(e.frames).unwrap_or(i64::MAX))
            .bind(i64::try_from(e.objects).unwrap_or(i64::MAX))
            .bind(i64::try_from(e.elapsed_ms).unwrap_or(i64::MAX))
            .bind(e.completed_at)
            .bind(&e.model)
            .execute(&mut *tx)
            .await?;
            // The newest completed run is the one requested last among the completed.
            sqlx::query(
                "UPDATE videos_view v SET completed_run_id = $2, updated_at = clock_timestamp()
                 WHERE v.video_id = $1 AND (
                     v.completed_run_id IS NULL
                     OR (SELECT request_position FROM detection_runs_view WHERE run_id = v.completed_run_id)
                        < (SELECT request_position FROM detection_runs_view WHERE run_id = $2))",
            )
            .bind(e.video_id.as_str())
            .bind(e.run_id)
            .execute(&mut *tx)
            .await?;
            e.run_id
        }
        DetectionEvent::DetectionFailed(e) => {
            sqlx::query(
                "UPDATE detection_runs_view SET status = 'failed', failure_reason = $2, finished_at = $3
                 WHERE run_id = $1",
            )
            .bind(e.run_id)
            .bind(&e.reason)
            .bind(e.failed_at)
            .execute(&mut *tx)
            .await?;
            e.run_id
        }
    };
    // The video shows its newest run's state.
    sqlx::query(
        "UPDATE videos_view v SET status = r.status, failure_reason = r.failure_reason,
             progress = CASE WHEN r.status = 'completed' THEN 1.0
                             WHEN r.frames_total > 0 THEN least(1.0, r.frames_done::float8 / r.frames_total)
                             ELSE 0 END,
             updated_at = clock_timestamp()
         FROM detection_runs_view r
         WHERE r.run_id = $1 AND v.latest_run_id = r.run_id",
    )
    .bind(run_id)
    .execute(tx)
    .await?;
    Ok(())
}

/// One video as the `videos` view holds it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct VideoView {
    /// Canonical YouTube id.
    pub video_id: String,
    /// Version of the current file (1 for the first upload).
    pub version: i32,
    pub file_name: String,
    pub original_name: Option<String>,
    pub size_bytes: i64,
    pub sha256: String,
    /// Seconds.
    pub duration: f64,
    pub width: i32,
    pub height: i32,
    pub frame_rate: f64,
    pub codec: String,
    pub container: String,
    pub first_uploaded_at: DateTime<Utc>,
    pub uploaded_at: DateTime<Utc>,
    /// `uploaded`, `queued`, `processing`, `completed` or `failed`: the newest run's.
    pub status: String,
    /// 0 to 1: the newest run's progress.
    pub progress: f64,
    pub failure_reason: Option<String>,
    /// The newest requested detection run.
    pub latest_run_id: Option<Uuid>,
    /// The newest completed detection run: what the detections show.
    pub completed_run_id: Option<Uuid>,
}

const VIDEO_COLUMNS: &str = "video_id, version, file_name, original_name, size_bytes, sha256, duration,
    width, height, frame_rate, codec, container, first_uploaded_at, uploaded_at, status, progress,
    failure_reason, latest_run_id, completed_run_id";

pub async fn list(pool: &PgPool) -> Result<Vec<VideoView>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {VIDEO_COLUMNS} FROM videos_view ORDER BY first_uploaded_at, video_id"))
        .fetch_all(pool)
        .await
}

pub async fn get(pool: &PgPool, video_id: &str) -> Result<Option<VideoView>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {VIDEO_COLUMNS} FROM videos_view WHERE video_id = $1"))
        .bind(video_id)
        .fetch_optional(pool)
        .await
}

/// One detection run.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct RunView {
    pub run_id: Uuid,
    pub video_id: String,
    pub video_version: i32,
    /// `queued`, `processing`, `completed` or `failed`.
    pub status: String,
    #[schema(value_type = Object)]
    pub labels: sqlx::types::Json<serde_json::Value>,
    pub sample_fps: f64,
    pub min_confidence: f64,
    pub attempt: i32,
    pub model: Option<String>,
    pub frames_done: i64,
    pub frames_total: i64,
    pub objects: i64,
    pub elapsed_ms: Option<i64>,
    pub failure_reason: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

pub async fn runs(pool: &PgPool, video_id: &str) -> Result<Vec<RunView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT run_id, video_id, video_version, status, labels, sample_fps, min_confidence, attempt, model,
                frames_done, frames_total, objects, elapsed_ms, failure_reason, requested_at, started_at, finished_at
         FROM detection_runs_view WHERE video_id = $1 ORDER BY request_position DESC",
    )
    .bind(video_id)
    .fetch_all(pool)
    .await
}
