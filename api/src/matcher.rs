//! The matcher: a process manager that decides which product each click hit.
//!
//! It consumes every event like a projection (durable consumer, checkpoint in the same
//! transaction as its state) and keeps two tables of its own: the clicks it knows, and the
//! verdicts it owes. A click is owed a verdict when it is recorded, and again whenever its
//! video's detections complete or its links change, so a click that arrived before the
//! video was processed, or before a product was linked, is matched when that happens.
//!
//! Verdicts are decided by the pure rules of `domain::matching` against the `detections`
//! projection's tracks and links. Before it reads them, the matcher waits until that
//! projection has applied the log up to the event that asked for the verdict (it reads
//! every event, so its checkpoint passes every position): the verdict reflects the
//! state as of that event, never a half-applied one. Verdicts go to the click aggregate
//! as commands after the matcher's own commit; a crash in between leaves them owed, and
//! the aggregate records only verdicts that change something.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use framecart_commands::Commands;
use framecart_commands::execute::execute;
use framecart_domain::EventMetadata;
use framecart_domain::click::{self, ClickCommand, ClickEvent, RecordMatch};
use framecart_domain::detection::{self, DetectionEvent};
use framecart_domain::log::{LoggedEvent, Namespace};
use framecart_domain::matching::{self, ClickPoint, DEFAULT_RADIUS_CSS};
use framecart_domain::video::{self, VideoEvent};
use framecart_projections::runner::{Projection, ProjectionError, decode};
use framecart_projections::tracks;
use futures::StreamExt;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub const NAME: &str = "matcher";
/// The projection whose tables the verdicts are read from.
const SOURCE: &str = framecart_projections::detections::NAME;
/// Verdicts decided per round, and how many are sent at once.
const ROUND: i64 = 512;
const CONCURRENCY: usize = 32;
/// How long a round waits for the detections projection to catch up.
const BARRIER_WAIT: Duration = Duration::from_secs(2);

pub struct Matcher {
    commands: Arc<Commands>,
    radius_css: f64,
}

impl Matcher {
    pub fn new(commands: Arc<Commands>) -> Self {
        Self { commands, radius_css: DEFAULT_RADIUS_CSS }
    }
}

#[derive(sqlx::FromRow)]
struct Owed {
    click_id: Uuid,
    due_position: i64,
    cause_event_id: Uuid,
    correlation_id: String,
    video_id: String,
    media_time: f64,
    u: Option<f64>,
    v: Option<f64>,
    css_width: Option<f64>,
    css_height: Option<f64>,
    x: f64,
    y: f64,
    on_frame: bool,
    during_ad: bool,
}

#[async_trait]
impl Projection for Matcher {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter_subject(&self, ns: &Namespace) -> String {
        ns.all_events_subject()
    }

    fn tables(&self) -> &'static [&'static str] {
        &["matcher_clicks", "matcher_pending"]
    }

    async fn apply(&self, tx: &mut PgConnection, event: &LoggedEvent, position: i64) -> Result<(), ProjectionError> {
        let correlation = event.metadata.get("correlation_id").cloned().unwrap_or_default();
        let video_id = match event.aggregate_type.as_str() {
            click::AGGREGATE_TYPE => {
                if let ClickEvent::ClickRecorded(c) = decode(event, position)? {
                    remember_click(tx, &c).await?;
                    owe(tx, Owing::Click(c.click_id), position, event.event_id, &correlation).await?;
                }
                return Ok(());
            }
            detection::AGGREGATE_TYPE => match decode(event, position)? {
                DetectionEvent::DetectionCompleted(e) => e.video_id,
                _ => return Ok(()),
            },
            video::AGGREGATE_TYPE => match decode(event, position)? {
                VideoEvent::ProductLinked(e) => e.video_id,
                VideoEvent::ProductUnlinked(e) => e.video_id,
                _ => return Ok(()),
            },
            _ => return Ok(()),
        };
        owe(tx, Owing::Video(video_id.as_str()), position, event.event_id, &correlation).await
    }

    async fn after_commit(&self, pool: &PgPool) -> Result<(), ProjectionError> {
        loop {
            let owed: Vec<Owed> = sqlx::query_as(
                "SELECT p.click_id, p.due_position, p.cause_event_id, p.correlation_id, c.video_id, c.media_time,
                        c.u, c.v, c.css_width, c.css_height, c.x, c.y, c.on_frame, c.during_ad
                 FROM matcher_pending p JOIN matcher_clicks c USING (click_id)
                 ORDER BY p.due_position LIMIT $1",
            )
            .bind(ROUND)
            .fetch_all(pool)
            .await?;
            let Some(due) = owed.iter().map(|o| o.due_position).max() else { return Ok(()) };
            if !source_caught_up(pool, due).await? {
                return Ok(()); // the next tick or batch tries again
            }
            let mut settling = Vec::with_capacity(owed.len());
            for o in &owed {
                settling.push(self.settle(pool, o));
            }
            let results: Vec<Result<(), ProjectionError>> =
                futures::stream::iter(settling).buffer_unordered(CONCURRENCY).collect().await;
            let full = owed.len() as i64 == ROUND;
            results.into_iter().collect::<Result<Vec<()>, _>>()?;
            if !full {
                return Ok(());
            }
        }
    }
}

/// Keeps what matching needs of a click.
async fn remember_click(tx: &mut PgConnection, c: &click::ClickRecorded) -> Result<(), ProjectionError> {
    let (u, v, css_width, css_height, on_frame) = match (&c.frame, &c.video) {
        (Some(f), Some(video)) => (Some(f.u), Some(f.v), Some(video.width() * f.scale), Some(video.height() * f.scale), f.on_frame),
        // The original minimal click: its pixels are taken as the uploaded frame's.
        _ => (None, None, None, None, true),
    };
    sqlx::query(
        "INSERT INTO matcher_clicks (click_id, video_id, media_time, u, v, css_width, css_height, x, y, on_frame, during_ad)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
    )
    .bind(c.click_id)
    .bind(c.video_id.as_str())
    .bind(c.timestamp)
    .bind(u)
    .bind(v)
    .bind(css_width)
    .bind(css_height)
    .bind(c.x)
    .bind(c.y)
    .bind(on_frame)
    .bind(c.during_ad)
    .execute(tx)
    .await?;
    Ok(())
}

/// Marks clicks as owed a verdict as of `position`: one click, or every click of a video.
async fn owe(tx: &mut PgConnection, who: Owing<'_>, position: i64, cause: Uuid, correlation: &str) -> Result<(), ProjectionError> {
    let upsert = "ON CONFLICT (click_id) DO UPDATE SET due_position = EXCLUDED.due_position,
             cause_event_id = EXCLUDED.cause_event_id, correlation_id = EXCLUDED.correlation_id";
    let sql = match who {
        Owing::Click(_) => format!(
            "INSERT INTO matcher_pending (click_id, due_position, cause_event_id, correlation_id)
             VALUES ($1, $2, $3, $4) {upsert}"
        ),
        Owing::Video(_) => format!(
            "INSERT INTO matcher_pending (click_id, due_position, cause_event_id, correlation_id)
             SELECT click_id, $2, $3, $4 FROM matcher_clicks WHERE video_id = $1 {upsert}"
        ),
    };
    let query = match who {
        Owing::Click(click_id) => sqlx::query(&sql).bind(click_id),
        Owing::Video(video_id) => sqlx::query(&sql).bind(video_id),
    };
    query.bind(position).bind(cause).bind(correlation).execute(tx).await?;
    Ok(())
}

enum Owing<'a> {
    Click(Uuid),
    Video(&'a str),
}

/// True once the detections projection has applied the log up to `position`.
async fn source_caught_up(pool: &PgPool, position: i64) -> Result<bool, ProjectionError> {
    let started = Instant::now();
    loop {
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT last_sequence FROM projection_checkpoints WHERE name = $1")
                .bind(SOURCE)
                .fetch_optional(pool)
                .await?;
        if applied.unwrap_or(0) >= position {
            return Ok(true);
        }
        if started.elapsed() > BARRIER_WAIT {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

impl Matcher {
    /// Decides one owed verdict, sends it, and forgets the debt (unless it grew meanwhile).
    async fn settle(&self, pool: &PgPool, o: &Owed) -> Result<(), ProjectionError> {
        if let Some(scene) = tracks::scene_at(pool, &o.video_id, o.media_time).await? {
            let point = match (o.u, o.v, o.css_width, o.css_height) {
                (Some(u), Some(v), Some(css_width), Some(css_height)) => {
                    ClickPoint { u, v, css_width, css_height, on_frame: o.on_frame, during_ad: o.during_ad }
                }
                _ => {
                    let (u, v) = (o.x / scene.width, o.y / scene.height);
                    ClickPoint {
                        u,
                        v,
                        css_width: scene.width,
                        css_height: scene.height,
                        on_frame: (0.0..1.0).contains(&u) && (0.0..1.0).contains(&v),
                        during_ad: o.during_ad,
                    }
                }
            };
            let outcome = matching::decide(&point, &scene.objects, self.radius_css);
            let command = ClickCommand::RecordMatch(RecordMatch { outcome, run_id: scene.run_id, evaluated_at: Utc::now() });
            let metadata = EventMetadata::caused_by_event(&o.cause_event_id.to_string(), &o.correlation_id, NAME);
            execute(&self.commands.clicks, &o.click_id.to_string(), command, metadata)
                .await
                .map_err(|e| ProjectionError::Internal(format!("recording the verdict on click {}: {e}", o.click_id)))?;
        }
        // Without a completed run the click stays pending; the run's completion owes it again.
        sqlx::query("DELETE FROM matcher_pending WHERE click_id = $1 AND due_position = $2")
            .bind(o.click_id)
            .bind(o.due_position)
            .execute(pool)
            .await?;
        Ok(())
    }
}
