//! Projection `detections`: every recorded detection, the run each video shows (its
//! newest completed run), and the original system's file
//! `media/detections/{video_id}_detections.json`.

use std::path::PathBuf;

use async_trait::async_trait;
use framecart_domain::detection::{self, DetectionEvent};
use framecart_domain::log::{LoggedEvent, Namespace};
use framecart_domain::video::{self, VideoEvent};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::files::{DirtyFiles, plain_number, write_file};
use crate::runner::{Projection, ProjectionError, decode};

pub const NAME: &str = "detections";
pub const FOLDER: &str = "detections";
const DIRTY: DirtyFiles = DirtyFiles { table: "detection_files_dirty" };
const FILE_SUFFIX: &str = "_detections.json";

pub struct DetectionsProjection {
    dir: PathBuf,
}

impl DetectionsProjection {
    pub fn new(media_dir: PathBuf) -> Self {
        Self { dir: media_dir.join(FOLDER) }
    }
}

pub fn file_name(video_id: &str) -> String {
    format!("{video_id}{FILE_SUFFIX}")
}

#[async_trait]
impl Projection for DetectionsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter_subject(&self, ns: &Namespace) -> String {
        ns.all_events_subject()
    }

    fn tables(&self) -> &'static [&'static str] {
        &["detections_view", "detection_requests", "detection_current", "detection_files_dirty"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &LoggedEvent,
        log_position: i64,
    ) -> Result<(), ProjectionError> {
        match event.aggregate_type.as_str() {
            video::AGGREGATE_TYPE if event.event_type == video::DETECTION_REQUESTED => {
                let VideoEvent::DetectionRequested(e) = decode(event, log_position)? else {
                    return Ok(());
                };
                sqlx::query(
                    "INSERT INTO detection_requests (run_id, video_id, request_position) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                )
                .bind(e.run_id)
                .bind(e.video_id.as_str())
                .bind(log_position)
                .execute(tx)
                .await?;
            }
            detection::AGGREGATE_TYPE => match decode(event, log_position)? {
                DetectionEvent::DetectionsRecorded(e) => {
                    insert_detections(tx, &e, log_position).await?;
                }
                DetectionEvent::DetectionCompleted(e) => {
                    let changed = sqlx::query(
                        "INSERT INTO detection_current (video_id, run_id, request_position)
                         SELECT video_id, run_id, request_position FROM detection_requests WHERE run_id = $1
                         ON CONFLICT (video_id) DO UPDATE
                             SET run_id = EXCLUDED.run_id, request_position = EXCLUDED.request_position
                             WHERE detection_current.request_position < EXCLUDED.request_position",
                    )
                    .bind(e.run_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if changed > 0 {
                        DIRTY.mark(tx, &file_name(e.video_id.as_str())).await?;
                    }
                }
                _ => {}
            },
            _ => {}
        }
        Ok(())
    }

    async fn after_commit(&self, pool: &PgPool) -> Result<(), ProjectionError> {
        for (name, version) in DIRTY.pending(pool).await? {
            let Some(video_id) = name.strip_suffix(FILE_SUFFIX) else {
                DIRTY.written(pool, &name, version).await?;
                continue;
            };
            let entries: Vec<FileEntry> = list(pool, video_id, &DetectionFilter::default())
                .await?
                .into_iter()
                .map(FileEntry::from)
                .collect();
            let json = serde_json::to_vec(&entries)
                .map_err(|e| ProjectionError::Internal(format!("serialising {name}: {e}")))?;
            write_file(self.dir.clone(), name.clone(), json).await?;
            DIRTY.written(pool, &name, version).await?;
        }
        Ok(())
    }
}

async fn insert_detections(
    tx: &mut PgConnection,
    e: &detection::DetectionsRecorded,
    log_position: i64,
) -> Result<(), ProjectionError> {
    let mut ordinal = Vec::new();
    let mut time = Vec::new();
    let mut class = Vec::new();
    let mut label = Vec::new();
    let mut confidence = Vec::new();
    let (mut xmin, mut ymin, mut xmax, mut ymax) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for frame in &e.frames {
        for object in &frame.objects {
            ordinal.push(ordinal.len() as i32);
            time.push(frame.timestamp);
            class.push(i32::try_from(object.class_id).unwrap_or(i32::MAX));
            label.push(object.label.as_str());
            confidence.push(object.confidence);
            xmin.push(object.bbox.xmin);
            ymin.push(object.bbox.ymin);
            xmax.push(object.bbox.xmax);
            ymax.push(object.bbox.ymax);
        }
    }
    if ordinal.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO detections_view (run_id, video_id, log_position, ordinal, media_time, class_id, label,
             confidence, x_min, y_min, x_max, y_max)
         SELECT $1, $2, $3, o, t, c, l, p, x0, y0, x1, y1
         FROM UNNEST($4::int[], $5::float8[], $6::int[], $7::text[], $8::float8[], $9::float8[],
                     $10::float8[], $11::float8[], $12::float8[]) AS u(o, t, c, l, p, x0, y0, x1, y1)
         ON CONFLICT DO NOTHING",
    )
    .bind(e.run_id)
    .bind(e.video_id.as_str())
    .bind(log_position)
    .bind(&ordinal)
    .bind(&time)
    .bind(&class)
    .bind(&label)
    .bind(&confidence)
    .bind(&xmin)
    .bind(&ymin)
    .bind(&xmax)
    .bind(&ymax)
    .execute(tx)
    .await?;
    Ok(())
}

/// One detection of a video's current run.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct DetectionView {
    pub run_id: Uuid,
    /// Media time in seconds.
    pub timestamp: f64,
    /// The model's class index + 1.
    pub class_id: i32,
    pub label: String,
    pub confidence: f64,
    /// `[xmin, ymin, xmax, ymax]` in pixels of the uploaded file.
    pub xmin: f64,
    pub ymin: f64,
    pub xmax: f64,
    pub ymax: f64,
}

#[derive(Debug, Clone, Default)]
pub struct DetectionFilter {
    pub from: Option<f64>,
    pub to: Option<f64>,
    pub label: Option<String>,
}

/// The detections of the video's newest completed run, in time order.
pub async fn list(pool: &PgPool, video_id: &str, filter: &DetectionFilter) -> Result<Vec<DetectionView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.run_id, d.media_time AS timestamp, d.class_id, d.label, d.confidence,
                d.x_min AS xmin, d.y_min AS ymin, d.x_max AS xmax, d.y_max AS ymax
         FROM detection_current c JOIN detections_view d ON d.run_id = c.run_id
         WHERE c.video_id = $1
           AND ($2::float8 IS NULL OR d.media_time >= $2)
           AND ($3::float8 IS NULL OR d.media_time <= $3)
           AND ($4::text IS NULL OR d.label = $4)
         ORDER BY d.media_time, d.log_position, d.ordinal",
    )
    .bind(video_id)
    .bind(filter.from)
    .bind(filter.to)
    .bind(filter.label.as_deref())
    .fetch_all(pool)
    .await
}

/// One entry of the original system's detections file, in its field order:
/// `{"coordinates": [xmin, ymin, xmax, ymax], "confidence", "timestamp", "item_name",
/// "article_fragment", "additional_identifier"}`.
#[derive(Debug, Serialize)]
pub struct FileEntry {
    coordinates: [Coordinate; 4],
    confidence: f64,
    #[serde(serialize_with = "plain_number")]
    timestamp: f64,
    item_name: String,
    article_fragment: String,
    additional_identifier: String,
}

#[derive(Debug, Serialize)]
struct Coordinate(#[serde(serialize_with = "plain_number")] f64);

impl FileEntry {
    /// An entry with no product linked yet.
    pub fn new(timestamp: f64, label: String, confidence: f64, [xmin, ymin, xmax, ymax]: [f64; 4]) -> Self {
        Self {
            coordinates: [Coordinate(xmin), Coordinate(ymin), Coordinate(xmax), Coordinate(ymax)],
            confidence,
            timestamp,
            item_name: label,
            article_fragment: String::new(),
            additional_identifier: String::new(),
        }
    }
}

impl From<DetectionView> for FileEntry {
    fn from(d: DetectionView) -> Self {
        Self::new(d.timestamp, d.label, d.confidence, [d.xmin, d.ymin, d.xmax, d.ymax])
    }
}
