//! Tracks and links, part of the `detections` projection: a completed run's detections
//! linked into tracks (the pure tracker of `domain`), and what is on screen at a moment,
//! with the product each object is linked to.

use framecart_domain::detection::{DetectedObject, FrameDetections};
use framecart_domain::geometry::BoundingBox;
use framecart_domain::matching::{LinkedProduct, ObjectAt};
use framecart_domain::tracking::{Sample, Track, TrackerConfig, track};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::runner::ProjectionError;

/// A track's id: the run and the track's number in it.
pub fn track_id(run_id: Uuid, number: u32) -> String {
    format!("{run_id}:{number}")
}

type Row = (f64, i32, String, f64, f64, f64, f64, f64);

/// Links the run's detections into tracks and records them.
pub async fn record(tx: &mut PgConnection, run_id: Uuid) -> Result<(), ProjectionError> {
    let Some((video_id, sample_fps)): Option<(String, f64)> =
        sqlx::query_as("SELECT video_id, sample_fps FROM detection_requests WHERE run_id = $1")
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await?
    else {
        return Ok(());
    };
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT media_time, class_id, label, confidence, x_min, y_min, x_max, y_max
         FROM detections_view WHERE run_id = $1 ORDER BY media_time, log_position, ordinal",
    )
    .bind(run_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut frames: Vec<FrameDetections> = Vec::new();
    for (t, class_id, label, confidence, xmin, ymin, xmax, ymax) in rows {
        if frames.last().is_none_or(|f| f.timestamp != t) {
            frames.push(FrameDetections { timestamp: t, objects: Vec::new() });
        }
        if let Some(frame) = frames.last_mut() {
            frame.objects.push(DetectedObject {
                class_id: u32::try_from(class_id).unwrap_or(0),
                label,
                confidence,
                bbox: BoundingBox { xmin, ymin, xmax, ymax },
            });
        }
    }
    let tracks = track(&frames, TrackerConfig::default());
    if tracks.is_empty() {
        return Ok(());
    }
    let interval = 1.0 / sample_fps;
    let ids: Vec<String> = tracks.iter().map(|t| track_id(run_id, t.number)).collect();
    let numbers: Vec<i32> = tracks.iter().map(|t| t.number as i32).collect();
    let classes: Vec<i32> = tracks.iter().map(|t| t.class_id as i32).collect();
    let labels: Vec<&str> = tracks.iter().map(|t| t.label.as_str()).collect();
    let starts: Vec<f64> = tracks.iter().map(Track::start).collect();
    let ends: Vec<f64> = tracks.iter().map(Track::end).collect();
    let samples: Vec<serde_json::Value> = tracks.iter().map(|t| samples_json(&t.samples)).collect();
    sqlx::query(
        "INSERT INTO tracks_view (track_id, run_id, video_id, number, class_id, label, t_start, t_end, span, samples)
         SELECT id, $1, $2, n, c, l, s, e, numrange((s - $3)::numeric, (e + $3)::numeric, '[]'), p
         FROM UNNEST($4::text[], $5::int[], $6::int[], $7::text[], $8::float8[], $9::float8[], $10::jsonb[])
              AS u(id, n, c, l, s, e, p)
         ON CONFLICT DO NOTHING",
    )
    .bind(run_id)
    .bind(&video_id)
    .bind(interval)
    .bind(&ids)
    .bind(&numbers)
    .bind(&classes)
    .bind(&labels)
    .bind(&starts)
    .bind(&ends)
    .bind(&samples)
    .execute(&mut *tx)
    .await?;
    // Each detection learns its track (a sample is an exact copy of its detection).
    let mut d_track = Vec::new();
    let (mut d_t, mut d_x0, mut d_y0, mut d_x1, mut d_y1) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (t, id) in tracks.iter().zip(&ids) {
        for s in &t.samples {
            d_track.push(id.as_str());
            d_t.push(s.t);
            d_x0.push(s.bbox.xmin);
            d_y0.push(s.bbox.ymin);
            d_x1.push(s.bbox.xmax);
            d_y1.push(s.bbox.ymax);
        }
    }
    sqlx::query(
        "UPDATE detections_view d SET track_id = u.id
         FROM UNNEST($2::text[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::float8[])
              AS u(id, t, x0, y0, x1, y1)
         WHERE d.run_id = $1 AND d.media_time = u.t AND d.x_min = u.x0 AND d.y_min = u.y0
           AND d.x_max = u.x1 AND d.y_max = u.y1",
    )
    .bind(run_id)
    .bind(&d_track)
    .bind(&d_t)
    .bind(&d_x0)
    .bind(&d_y0)
    .bind(&d_x1)
    .bind(&d_y1)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

fn samples_json(samples: &[Sample]) -> serde_json::Value {
    serde_json::Value::Array(
        samples
            .iter()
            .map(|s| serde_json::json!([s.t, s.bbox.xmin, s.bbox.ymin, s.bbox.xmax, s.bbox.ymax, s.confidence]))
            .collect(),
    )
}

fn samples_from_json(value: &serde_json::Value) -> Vec<Sample> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let n: Vec<f64> = s.as_array()?.iter().filter_map(serde_json::Value::as_f64).collect();
            let [t, xmin, ymin, xmax, ymax, confidence] = n[..] else { return None };
            Some(Sample { t, bbox: BoundingBox { xmin, ymin, xmax, ymax }, confidence })
        })
        .collect()
}

/// One track of a video's current run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrackView {
    /// `<run_id>:<number>`: link a product to this object with it.
    pub track_id: String,
    pub number: i32,
    pub class_id: i32,
    pub label: String,
    /// First and last sampled media time, in seconds.
    pub start: f64,
    pub end: f64,
    pub samples: usize,
    /// The first sampled box, `[xmin, ymin, xmax, ymax]` in pixels of the upload.
    pub first_box: [f64; 4],
}

/// The tracks of the video's newest completed run.
pub async fn list(pool: &PgPool, video_id: &str) -> Result<Vec<TrackView>, sqlx::Error> {
    let rows: Vec<(String, i32, i32, String, f64, f64, serde_json::Value)> = sqlx::query_as(
        "SELECT t.track_id, t.number, t.class_id, t.label, t.t_start, t.t_end, t.samples
         FROM detection_current c JOIN tracks_view t ON t.run_id = c.run_id
         WHERE c.video_id = $1 ORDER BY t.number",
    )
    .bind(video_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(track_id, number, class_id, label, start, end, samples)| {
            let samples = samples_from_json(&samples);
            let first_box = samples.first().map_or([0.0; 4], |s| [s.bbox.xmin, s.bbox.ymin, s.bbox.xmax, s.bbox.ymax]);
            TrackView { track_id, number, class_id, label, start, end, samples: samples.len(), first_box }
        })
        .collect())
}

/// The track, if it belongs to the video's newest completed run.
pub async fn current_track(pool: &PgPool, video_id: &str, track_id: &str) -> Result<bool, sqlx::Error> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM detection_current c JOIN tracks_view t ON t.run_id = c.run_id
         WHERE c.video_id = $1 AND t.track_id = $2",
    )
    .bind(video_id)
    .bind(track_id)
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}

/// What can be clicked in a video at one moment.
#[derive(Debug, Clone)]
pub struct Scene {
    pub run_id: Uuid,
    /// The uploaded file's frame size, in pixels.
    pub width: f64,
    pub height: f64,
    /// The objects on screen, boxes normalized by the frame size, with their products.
    pub objects: Vec<ObjectAt>,
}

/// Every track of one completed run, ordered by start, to find what is on screen at any
/// moment without reading the store again. Tracks never change once a run is complete,
/// so a reader may keep this as long as it likes.
#[derive(Debug, Clone)]
pub struct RunTracks {
    pub run_id: Uuid,
    /// The uploaded file's frame size, in pixels.
    pub width: f64,
    pub height: f64,
    /// Seconds between samples: how long a track's ends are held.
    interval: f64,
    /// By start time.
    tracks: Vec<(String, Track)>,
    /// The longest track's length, which bounds the search.
    longest: f64,
}

/// The links in force for a video.
#[derive(Debug, Clone, Default)]
pub struct Links(Vec<LinkRow>);

#[derive(Debug, Clone)]
struct LinkRow {
    article: String,
    kind: String,
    label: Option<String>,
    t_from: Option<f64>,
    t_to: Option<f64>,
    track_id: Option<String>,
    additional_identifier: String,
    link_id: Uuid,
}

impl RunTracks {
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// The objects on screen at media time `t`, with their products. A binary search on the
    /// start times bounds the tracks looked at to those that can span `t`.
    pub fn scene(&self, t: f64, links: &Links) -> Scene {
        let first = self.tracks.partition_point(|(_, tr)| tr.start() < t - self.interval - self.longest);
        let last = self.tracks.partition_point(|(_, tr)| tr.start() <= t + self.interval);
        let objects = self.tracks[first..last]
            .iter()
            .filter_map(|(track_id, track)| {
                let at = track.at(t, self.interval)?;
                Some(ObjectAt {
                    track_id: track_id.clone(),
                    class_id: track.class_id,
                    label: track.label.clone(),
                    bbox: at.bbox.normalized(self.width, self.height),
                    confidence: at.confidence,
                    product: link_for(&links.0, track_id, &track.label, t),
                })
            })
            .collect();
        Scene { run_id: self.run_id, width: self.width, height: self.height, objects }
    }
}

/// The video's newest completed run, if any.
pub async fn current_run(pool: &PgPool, video_id: &str) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT run_id FROM detection_current WHERE video_id = $1")
        .bind(video_id)
        .fetch_optional(pool)
        .await
}

/// Every track of a completed run.
pub async fn load_run(pool: &PgPool, run_id: Uuid) -> Result<Option<RunTracks>, sqlx::Error> {
    let Some((sample_fps, width, height)): Option<(f64, i32, i32)> = sqlx::query_as(
        "SELECT r.sample_fps, s.width, s.height
         FROM detection_requests r
         JOIN detection_video_sizes s ON s.video_id = r.video_id AND s.version = r.video_version
         WHERE r.run_id = $1",
    )
    .bind(run_id)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let rows: Vec<(String, i32, String, serde_json::Value)> = sqlx::query_as(
        "SELECT track_id, class_id, label, samples FROM tracks_view WHERE run_id = $1 ORDER BY t_start, number",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await?;
    let tracks: Vec<(String, Track)> = rows
        .into_iter()
        .filter_map(|(track_id, class_id, label, samples)| {
            let track = Track {
                number: 0,
                class_id: u32::try_from(class_id).ok()?,
                label,
                samples: samples_from_json(&samples),
            };
            (!track.samples.is_empty()).then_some((track_id, track))
        })
        .collect();
    let longest = tracks.iter().map(|(_, t)| t.end() - t.start()).fold(0.0, f64::max);
    Ok(Some(RunTracks {
        run_id,
        width: f64::from(width),
        height: f64::from(height),
        interval: 1.0 / sample_fps,
        tracks,
        longest,
    }))
}

/// The links in force for a video, newest first.
pub async fn links(pool: &PgPool, video_id: &str) -> Result<Links, sqlx::Error> {
    let rows =
        sqlx::query_as::<_, (String, String, Option<String>, Option<f64>, Option<f64>, Option<String>, String, Uuid)>(
            "SELECT article, kind, label, t_from, t_to, track_id, additional_identifier, link_id
         FROM links_view WHERE video_id = $1 AND active ORDER BY position DESC",
        )
        .bind(video_id)
        .fetch_all(pool)
        .await?;
    Ok(Links(
        rows.into_iter()
            .map(|(article, kind, label, t_from, t_to, track_id, additional_identifier, link_id)| LinkRow {
                article,
                kind,
                label,
                t_from,
                t_to,
                track_id,
                additional_identifier,
                link_id,
            })
            .collect(),
    ))
}

/// What can be clicked in the video at media time `t`, read straight from the store
/// through the index on track spans (no run loaded whole).
pub async fn scene_at(pool: &PgPool, video_id: &str, t: f64) -> Result<Option<Scene>, sqlx::Error> {
    let Some(run_id) = current_run(pool, video_id).await? else { return Ok(None) };
    let Some((sample_fps, width, height)): Option<(f64, i32, i32)> = sqlx::query_as(
        "SELECT r.sample_fps, s.width, s.height
         FROM detection_requests r
         JOIN detection_video_sizes s ON s.video_id = r.video_id AND s.version = r.video_version
         WHERE r.run_id = $1",
    )
    .bind(run_id)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let rows: Vec<(String, i32, String, serde_json::Value)> = sqlx::query_as(
        "SELECT track_id, class_id, label, samples FROM tracks_view WHERE run_id = $1 AND span @> $2::float8::numeric",
    )
    .bind(run_id)
    .bind(t)
    .fetch_all(pool)
    .await?;
    let tracks: Vec<(String, Track)> = rows
        .into_iter()
        .filter_map(|(track_id, class_id, label, samples)| {
            Some((
                track_id,
                Track {
                    number: 0,
                    class_id: u32::try_from(class_id).ok()?,
                    label,
                    samples: samples_from_json(&samples),
                },
            ))
        })
        .collect();
    let longest = tracks.iter().map(|(_, t)| t.end() - t.start()).fold(0.0, f64::max);
    let mut run = RunTracks {
        run_id,
        width: f64::from(width),
        height: f64::from(height),
        interval: 1.0 / sample_fps,
        tracks,
        longest,
    };
    run.tracks.sort_by(|a, b| a.1.start().total_cmp(&b.1.start()));
    Ok(Some(run.scene(t, &links(pool, video_id).await?)))
}

/// The newest link that covers an object at `t`: one naming the track beats one by label.
fn link_for(links: &[LinkRow], track_id: &str, label: &str, t: f64) -> Option<LinkedProduct> {
    let by_track = links.iter().find(|l| l.kind == "track" && l.track_id.as_deref() == Some(track_id));
    let by_label = || {
        links.iter().find(|l| {
            l.kind == "label"
                && l.label.as_deref() == Some(label)
                && l.t_from.is_some_and(|from| from <= t)
                && l.t_to.is_some_and(|to| t <= to)
        })
    };
    by_track.or_else(by_label).map(|l| LinkedProduct {
        article: l.article.clone(),
        additional_identifier: l.additional_identifier.clone(),
        link_id: l.link_id.to_string(),
    })
}
