//! Projection `detections`: every recorded detection, the run each video shows (its
//! newest completed run), and the original system's file
//! `media/detections/{video_id}_detections.json`.

use std::path::PathBuf;

use async_trait::async_trait;
use framecart_domain::detection::{self, DetectionEvent};
use framecart_domain::log::{LoggedEvent, Namespace};
use framecart_domain::video::{self, LinkTarget, VideoEvent};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::files::{DirtyFiles, plain_number, write_file};
use crate::runner::{Projection, ProjectionError, decode};
use crate::tracks;

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

    fn filter_subjects(&self, ns: &Namespace) -> Vec<String> {
        vec![ns.aggregate_subject(video::AGGREGATE_TYPE), ns.aggregate_subject(detection::AGGREGATE_TYPE)]
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "detections_view",
            "detection_requests",
            "detection_current",
            "detection_files_dirty",
            "detection_video_sizes",
            "tracks_view",
            "links_view",
        ]
    }

    /// Videos, links and detection runs; every other event (clicks by the thousand) is
    /// only counted past.
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
            detection::AGGREGATE_TYPE => match decode(event, log_position)? {
                DetectionEvent::DetectionsRecorded(e) => insert_detections(tx, &e, log_position).await,
                DetectionEvent::DetectionCompleted(e) => {
                    tracks::record(tx, e.run_id).await?;
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
                    Ok(())
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    async fn after_commit(&self, pool: &PgPool) -> Result<(), ProjectionError> {
        for (name, version) in DIRTY.pending(pool).await? {
            let Some(video_id) = name.strip_suffix(FILE_SUFFIX) else {
                DIRTY.written(pool, &name, version).await?;
                continue;
            };
            let entries: Vec<FileEntry> =
                list(pool, video_id, &DetectionFilter::default()).await?.into_iter().map(FileEntry::from).collect();
            let json = serde_json::to_vec(&entries)
                .map_err(|e| ProjectionError::Internal(format!("serialising {name}: {e}")))?;
            write_file(self.dir.clone(), name.clone(), json).await?;
            DIRTY.written(pool, &name, version).await?;
        }
        Ok(())
    }
}

async fn apply_video(tx: &mut PgConnection, event: VideoEvent, log_position: i64) -> Result<(), ProjectionError> {
    match event {
        VideoEvent::VideoUploaded(e) => {
            sqlx::query(
                "INSERT INTO detection_video_sizes (video_id, version, width, height) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
            )
            .bind(e.video_id.as_str())
            .bind(i32::try_from(e.version).unwrap_or(i32::MAX))
            .bind(i32::try_from(e.file.width).unwrap_or(i32::MAX))
            .bind(i32::try_from(e.file.height).unwrap_or(i32::MAX))
            .execute(tx)
            .await?;
        }
        VideoEvent::DetectionRequested(e) => {
            sqlx::query(
                "INSERT INTO detection_requests (run_id, video_id, request_position, video_version, sample_fps)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(e.run_id)
            .bind(e.video_id.as_str())
            .bind(log_position)
            .bind(i32::try_from(e.video_version).unwrap_or(i32::MAX))
            .bind(e.sample_fps)
            .execute(tx)
            .await?;
        }
        VideoEvent::ProductLinked(e) => {
            let (kind, label, from, to, track_id) = match &e.target {
                LinkTarget::Label { label, from, to } => ("label", Some(label.as_str()), Some(*from), Some(*to), None),
                LinkTarget::Track { track_id } => ("track", None, None, None, Some(track_id.as_str())),
            };
            sqlx::query(
                "INSERT INTO links_view (link_id, video_id, article, kind, label, t_from, t_to, track_id,
                     additional_identifier, position, active, linked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, true, $11) ON CONFLICT DO NOTHING",
            )
            .bind(e.link_id)
            .bind(e.video_id.as_str())
            .bind(e.article.as_str())
            .bind(kind)
            .bind(label)
            .bind(from)
            .bind(to)
            .bind(track_id)
            .bind(&e.additional_identifier)
            .bind(log_position)
            .bind(e.linked_at)
            .execute(&mut *tx)
            .await?;
            DIRTY.mark(tx, &file_name(e.video_id.as_str())).await?;
        }
        VideoEvent::ProductUnlinked(e) => {
            sqlx::query("UPDATE links_view SET active = false, unlinked_at = $2 WHERE link_id = $1")
                .bind(e.link_id)
                .bind(e.unlinked_at)
                .execute(&mut *tx)
                .await?;
            DIRTY.mark(tx, &file_name(e.video_id.as_str())).await?;
        }
    }
    Ok(())
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
    /// The track this detection belongs to: `<run_id>:<number>`.
    pub track_id: Option<String>,
    /// The linked product's article, if a link covers this detection.
    pub article: Option<String>,
    /// The link's extra identifier (a variant, a size).
    pub additional_identifier: Option<String>,
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
        "SELECT d.run_id, d.track_id, l.article, l.additional_identifier,
                d.media_time AS timestamp, d.class_id, d.label, d.confidence,
                d.x_min AS xmin, d.y_min AS ymin, d.x_max AS xmax, d.y_max AS ymax
         FROM detection_current c
         JOIN detections_view d ON d.run_id = c.run_id
         LEFT JOIN LATERAL (
             SELECT article, additional_identifier FROM links_view l
             WHERE l.video_id = c.video_id AND l.active
               AND ((l.kind = 'track' AND l.track_id = d.track_id)
                 OR (l.kind = 'label' AND l.label = d.label AND d.media_time BETWEEN l.t_from AND l.t_to))
             ORDER BY l.kind = 'track' DESC, l.position DESC
             LIMIT 1
         ) l ON true
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
        Self {
            article_fragment: d.article.unwrap_or_default(),
            additional_identifier: d.additional_identifier.unwrap_or_default(),
            ..Self::new(d.timestamp, d.label, d.confidence, [d.xmin, d.ymin, d.xmax, d.ymax])
        }
    }
}
