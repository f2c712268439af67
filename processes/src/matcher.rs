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
//! projection has applied the last event the verdict depends on: the video's last
//! completed run or link change before the event that asked for the verdict (the matcher
//! keeps that position per video). The verdict reflects the state as of that event, never
//! a half-applied one, and a click never waits for the projection to pass the click. Verdicts go to the click aggregate
//! as commands after the matcher's own commit; a crash in between leaves them owed, and
//! the aggregate records only verdicts that change something.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use framecart_commands::Commands;
use framecart_commands::execute::execute_all;
use framecart_domain::EventMetadata;
use framecart_domain::click::{self, ClickCommand, ClickEvent, RecordMatch};
use framecart_domain::detection::{self, DetectionEvent};
use framecart_domain::log::{LoggedEvent, Namespace};
use framecart_domain::matching::{self, ClickPoint, DEFAULT_RADIUS_CSS};
use framecart_domain::video::{self, VideoEvent};
use framecart_projections::runner::{Projection, ProjectionError, decode};
use framecart_projections::tracks;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub const NAME: &str = "matcher";
/// The projection whose tables the verdicts are read from.
const SOURCE: &str = framecart_projections::detections::NAME;
/// Verdicts decided (and appended together) per round.
const ROUND: i64 = 512;
/// How long a round waits for the detections projection to apply what the verdicts read.
const BARRIER_WAIT: Duration = Duration::from_secs(2);

pub struct Matcher {
    settler: Arc<Settler>,
    /// The task that settles owed verdicts, while this process applies the matcher.
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Decides and sends owed verdicts, beside the consumer: applying the log never waits on
/// the commands, and the verdicts owed meanwhile are settled together.
///
/// Deciding and sending overlap: while one round's verdicts are being appended, the next
/// round is decided from the debts not in flight. A click is never in two rounds at once,
/// so its verdicts are appended in the order they were decided.
struct Settler {
    commands: Arc<Commands>,
    radius_css: f64,
    /// The tracks of recently matched runs: a completed run's tracks never change.
    runs: std::sync::Mutex<Vec<Arc<tracks::RunTracks>>>,
    /// Each video's current run and links, as of its last source event (see [`Sources`]).
    sources: std::sync::Mutex<HashMap<String, Arc<Sources>>>,
    /// The highest checkpoint of the detections projection seen: barriers below it hold.
    source_applied: AtomicI64,
    /// The clicks whose verdicts are being appended.
    in_flight: std::sync::Mutex<HashSet<Uuid>>,
    /// Rounds being appended at once.
    appending: Arc<tokio::sync::Semaphore>,
    wake: tokio::sync::Notify,
}

/// What a video's verdicts read from the detections projection. It changes only with the
/// video's completed runs and link changes, whose position the matcher keeps per video:
/// read once per position, not once per round.
struct Sources {
    position: i64,
    run_id: Option<Uuid>,
    links: tracks::Links,
}

/// How many runs' tracks stay in memory.
const CACHED_RUNS: usize = 16;
/// How many videos' sources stay in memory (emptied when full).
const CACHED_SOURCES: usize = 4096;
/// Rounds appended at once: one being decided while others are written.
const APPENDING: usize = 2;
/// A settler not woken for this long stops (its process no longer applies the matcher).
const IDLE: Duration = Duration::from_secs(3);

impl Matcher {
    pub fn new(commands: Arc<Commands>) -> Self {
        let settler = Settler {
            commands,
            radius_css: DEFAULT_RADIUS_CSS,
            runs: Default::default(),
            sources: Default::default(),
            source_applied: AtomicI64::new(0),
            in_flight: Default::default(),
            appending: Arc::new(tokio::sync::Semaphore::new(APPENDING)),
            wake: Default::default(),
        };
        Self { settler: Arc::new(settler), task: Default::default() }
    }
}

impl Settler {
    async fn run(self: Arc<Self>, pool: PgPool) {
        loop {
            if tokio::time::timeout(IDLE, self.wake.notified()).await.is_err() {
                return;
            }
            loop {
                match self.clone().round(&pool).await {
                    Ok(true) => continue, // a round went out: more may be owed
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "matcher: settling verdicts failed; trying again");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        break;
                    }
                }
            }
        }
    }

    /// Decides up to one round of owed verdicts and sends them off to be appended; true
    /// when a round went out.
    async fn round(self: Arc<Self>, pool: &PgPool) -> Result<bool, ProjectionError> {
        // A free slot first: the debts are read as late as possible, so a round takes
        // everything owed by then.
        let Ok(slot) = self.appending.clone().acquire_owned().await else { return Ok(false) };
        let in_flight: Vec<Uuid> = self.in_flight.lock().map(|f| f.iter().copied().collect()).unwrap_or_default();
        let owed: Vec<Owed> = sqlx::query_as(
            "SELECT p.click_id, p.due_position, p.barrier_position, p.cause_event_id, p.correlation_id,
                    c.video_id, c.media_time, c.u, c.v, c.css_width, c.css_height, c.x, c.y, c.on_frame,
                    c.during_ad, m.source_position
             FROM (SELECT * FROM matcher_pending WHERE click_id <> ALL($2) ORDER BY due_position LIMIT $1) p
             -- One index lookup per debt (the fence keeps it so): the planner, misled by
             -- the small and ever-changing debts table, would otherwise scan every click.
             CROSS JOIN LATERAL (SELECT * FROM matcher_clicks c WHERE c.click_id = p.click_id OFFSET 0) c
             LEFT JOIN matcher_videos m ON m.video_id = c.video_id
             ORDER BY p.due_position",
        )
        .bind(ROUND)
        .bind(&in_flight)
        .fetch_all(pool)
        .await?;
        // The video's newest source event too: what is read is then kept for that position.
        let barrier = owed.iter().map(|o| o.barrier_position.max(o.source_position.unwrap_or(0))).max();
        let Some(barrier) = barrier else { return Ok(false) };
        let started = Instant::now();
        if !self.source_caught_up(pool, barrier).await? {
            self.wake.notify_one(); // try again
            return Ok(false);
        }
        let waited = started.elapsed();
        let verdicts = self.decide(pool, &owed).await?;
        let n = owed.len();
        let ids: Vec<Uuid> = owed.iter().map(|o| o.click_id).collect();
        let positions: Vec<i64> = owed.iter().map(|o| o.due_position).collect();
        if let Ok(mut f) = self.in_flight.lock() {
            f.extend(ids.iter().copied());
        }
        let settler = self.clone();
        let pool = pool.clone();
        tokio::spawn(async move {
            let result = settler.append(&pool, verdicts, &ids, &positions).await;
            if let Ok(mut f) = settler.in_flight.lock() {
                for id in &ids {
                    f.remove(id);
                }
            }
            drop(slot);
            match result {
                Ok(()) => tracing::debug!(
                    verdicts = n,
                    waited_ms = waited.as_millis() as u64,
                    total_ms = started.elapsed().as_millis() as u64,
                    "matcher round"
                ),
                Err(e) => {
                    // The debts stay: the next round owes them again.
                    tracing::warn!(error = %e, "matcher: appending verdicts failed; trying again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            settler.wake.notify_one();
        });
        Ok(true)
    }

    async fn run_tracks(&self, pool: &PgPool, run_id: Uuid) -> Result<Option<Arc<tracks::RunTracks>>, ProjectionError> {
        let cached = self.runs.lock().ok().and_then(|runs| runs.iter().find(|r| r.run_id == run_id).cloned());
        if let Some(run) = cached {
            return Ok(Some(run));
        }
        let Some(run) = tracks::load_run(pool, run_id).await?.map(Arc::new) else { return Ok(None) };
        if let Ok(mut runs) = self.runs.lock() {
            runs.retain(|r| r.run_id != run_id);
            runs.insert(0, run.clone());
            runs.truncate(CACHED_RUNS);
        }
        Ok(Some(run))
    }

    /// A video's current run and links as of its source position `position` (`None`: the
    /// matcher has seen no completed run of the video, and nothing is kept).
    async fn sources(
        &self,
        pool: &PgPool,
        video_id: &str,
        position: Option<i64>,
    ) -> Result<Arc<Sources>, ProjectionError> {
        if let Some(position) = position {
            let cached = self.sources.lock().ok().and_then(|s| s.get(video_id).cloned());
            if let Some(sources) = cached.filter(|s| s.position == position) {
                return Ok(sources);
            }
        }
        let run_id = tracks::current_run(pool, video_id).await?;
        let links = tracks::links(pool, video_id).await?;
        let sources = Arc::new(Sources { position: position.unwrap_or(-1), run_id, links });
        if position.is_some()
            && let Ok(mut cache) = self.sources.lock()
        {
            if cache.len() >= CACHED_SOURCES {
                cache.clear();
            }
            cache.insert(video_id.to_owned(), sources.clone());
        }
        Ok(sources)
    }

    /// True once the detections projection has applied the log up to `position` (its
    /// consumer reads every video and run event, so its checkpoint reaches each of them).
    async fn source_caught_up(&self, pool: &PgPool, position: i64) -> Result<bool, ProjectionError> {
        if self.source_applied.load(Ordering::Relaxed) >= position {
            return Ok(true);
        }
        let started = Instant::now();
        loop {
            let applied: Option<i64> =
                sqlx::query_scalar("SELECT last_sequence FROM projection_checkpoints WHERE name = $1")
                    .bind(SOURCE)
                    .fetch_optional(pool)
                    .await?;
            let applied = applied.unwrap_or(0);
            self.source_applied.fetch_max(applied, Ordering::Relaxed);
            if applied >= position {
                return Ok(true);
            }
            if started.elapsed() > BARRIER_WAIT {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// A verdict command for one click.
type Verdict = (String, ClickCommand, EventMetadata);

#[derive(sqlx::FromRow)]
struct Owed {
    click_id: Uuid,
    due_position: i64,
    barrier_position: i64,
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
    /// The video's last source event the matcher saw (none: no completed run seen).
    source_position: Option<i64>,
}

#[async_trait]
impl Projection for Matcher {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter_subject(&self, ns: &Namespace) -> String {
        ns.all_events_subject()
    }

    fn filter_subjects(&self, ns: &Namespace) -> Vec<String> {
        vec![
            ns.event_type_subject(click::AGGREGATE_TYPE, click::CLICK_RECORDED),
            ns.event_type_subject(detection::AGGREGATE_TYPE, detection::DETECTION_COMPLETED),
            ns.event_type_subject(video::AGGREGATE_TYPE, video::PRODUCT_LINKED),
            ns.event_type_subject(video::AGGREGATE_TYPE, video::PRODUCT_UNLINKED),
        ]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["matcher_clicks", "matcher_pending", "matcher_videos"]
    }

    /// Recorded clicks, completed runs and link changes; the verdicts it sends itself,
    /// and everything else, are only counted past.
    fn wants(&self, aggregate_type: &str, event_type: &str) -> bool {
        match aggregate_type {
            click::AGGREGATE_TYPE => event_type == click::CLICK_RECORDED,
            detection::AGGREGATE_TYPE => event_type == detection::DETECTION_COMPLETED,
            video::AGGREGATE_TYPE => event_type == video::PRODUCT_LINKED || event_type == video::PRODUCT_UNLINKED,
            _ => false,
        }
    }

    async fn apply(&self, tx: &mut PgConnection, event: &LoggedEvent, position: i64) -> Result<(), ProjectionError> {
        let correlation = event.correlation_id();
        let video_id = match event.aggregate_type.as_str() {
            // Only a recorded click matters here, not the verdicts this matcher sends.
            click::AGGREGATE_TYPE if event.event_type == click::CLICK_RECORDED => {
                if let ClickEvent::ClickRecorded(c) = decode(event, position)? {
                    let mut one = NewClicks::default();
                    one.push(&c, position, event.event_id, correlation);
                    one.flush(tx).await?;
                }
                return Ok(());
            }
            detection::AGGREGATE_TYPE => match decode(event, position)? {
                DetectionEvent::DetectionCompleted(e) => {
                    sqlx::query(
                        "INSERT INTO matcher_videos (video_id, source_position) VALUES ($1, $2)
                         ON CONFLICT (video_id) DO UPDATE SET source_position = EXCLUDED.source_position",
                    )
                    .bind(e.video_id.as_str())
                    .bind(position)
                    .execute(&mut *tx)
                    .await?;
                    e.video_id
                }
                _ => return Ok(()),
            },
            video::AGGREGATE_TYPE => {
                let video_id = match decode(event, position)? {
                    VideoEvent::ProductLinked(e) => e.video_id,
                    VideoEvent::ProductUnlinked(e) => e.video_id,
                    _ => return Ok(()),
                };
                // Later clicks' verdicts read the links as of this change.
                sqlx::query("UPDATE matcher_videos SET source_position = $2 WHERE video_id = $1")
                    .bind(video_id.as_str())
                    .bind(position)
                    .execute(&mut *tx)
                    .await?;
                video_id
            }
            _ => return Ok(()),
        };
        owe(tx, video_id.as_str(), position, event.event_id, &correlation).await
    }

    /// Clicks arrive by the thousand: they are remembered and owed together, in one
    /// statement each; the rare video-wide triggers keep their place in the order.
    async fn apply_all(&self, tx: &mut PgConnection, events: &[(LoggedEvent, i64)]) -> Result<(), ProjectionError> {
        let mut clicks = NewClicks::default();
        for (event, position) in events {
            if event.aggregate_type == click::AGGREGATE_TYPE {
                if event.event_type == click::CLICK_RECORDED
                    && let ClickEvent::ClickRecorded(c) = decode(event, *position)?
                {
                    let correlation = event.correlation_id();
                    clicks.push(&c, *position, event.event_id, correlation);
                }
                continue;
            }
            clicks.flush(tx).await?;
            self.apply(tx, event, *position).await?;
        }
        clicks.flush(tx).await
    }

    async fn after_commit(&self, pool: &PgPool) -> Result<(), ProjectionError> {
        if let Ok(mut task) = self.task.lock()
            && task.as_ref().is_none_or(tokio::task::JoinHandle::is_finished)
        {
            *task = Some(tokio::spawn(self.settler.clone().run(pool.clone())));
        }
        self.settler.wake.notify_one();
        Ok(())
    }
}

/// Recorded clicks waiting to be remembered and owed a verdict, as columns.
#[derive(Default)]
struct NewClicks {
    click_id: Vec<Uuid>,
    video_id: Vec<String>,
    media_time: Vec<f64>,
    u: Vec<Option<f64>>,
    v: Vec<Option<f64>>,
    css_width: Vec<Option<f64>>,
    css_height: Vec<Option<f64>>,
    x: Vec<f64>,
    y: Vec<f64>,
    on_frame: Vec<bool>,
    during_ad: Vec<bool>,
    position: Vec<i64>,
    cause: Vec<Uuid>,
    correlation: Vec<String>,
}

impl NewClicks {
    fn push(&mut self, c: &click::ClickRecorded, position: i64, cause: Uuid, correlation: String) {
        let (u, v, css_width, css_height, on_frame) = match (&c.frame, &c.video) {
            (Some(f), Some(video)) => {
                let p = ClickPoint::from_hit(f, *video, c.during_ad);
                (Some(p.u), Some(p.v), Some(p.css_width), Some(p.css_height), p.on_frame)
            }
            // The original minimal click: its pixels are taken as the uploaded frame's.
            _ => (None, None, None, None, true),
        };
        self.click_id.push(c.click_id);
        self.video_id.push(c.video_id.to_string());
        self.media_time.push(c.timestamp);
        self.u.push(u);
        self.v.push(v);
        self.css_width.push(css_width);
        self.css_height.push(css_height);
        self.x.push(c.x);
        self.y.push(c.y);
        self.on_frame.push(on_frame);
        self.during_ad.push(c.during_ad);
        self.position.push(position);
        self.cause.push(cause);
        self.correlation.push(correlation);
    }

    /// Remembers the clicks and owes a verdict to those on a video with a completed run,
    /// as of the video's last completed run or link change.
    async fn flush(&mut self, tx: &mut PgConnection) -> Result<(), ProjectionError> {
        if self.click_id.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO matcher_clicks (click_id, video_id, media_time, u, v, css_width, css_height, x, y, on_frame, during_ad)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::float8[], $4::float8[], $5::float8[], $6::float8[],
                                  $7::float8[], $8::float8[], $9::float8[], $10::bool[], $11::bool[])
             ON CONFLICT DO NOTHING",
        )
        .bind(&self.click_id)
        .bind(&self.video_id)
        .bind(&self.media_time)
        .bind(&self.u)
        .bind(&self.v)
        .bind(&self.css_width)
        .bind(&self.css_height)
        .bind(&self.x)
        .bind(&self.y)
        .bind(&self.on_frame)
        .bind(&self.during_ad)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO matcher_pending (click_id, due_position, barrier_position, cause_event_id, correlation_id)
             SELECT n.click_id, n.due_position, m.source_position, n.cause, n.correlation
             FROM UNNEST($1::uuid[], $2::bigint[], $3::uuid[], $4::text[], $5::text[])
                  AS n(click_id, due_position, cause, correlation, video_id)
             JOIN matcher_videos m ON m.video_id = n.video_id
             ON CONFLICT (click_id) DO UPDATE SET due_position = EXCLUDED.due_position,
                 barrier_position = EXCLUDED.barrier_position,
                 cause_event_id = EXCLUDED.cause_event_id, correlation_id = EXCLUDED.correlation_id",
        )
        .bind(&self.click_id)
        .bind(&self.position)
        .bind(&self.cause)
        .bind(&self.correlation)
        .bind(&self.video_id)
        .execute(&mut *tx)
        .await?;
        *self = Self::default();
        Ok(())
    }
}

/// Forgets the debts of `clicks` that are still due at the position each was settled for.
/// A debt that the matcher's batch holds is skipped, not waited for: that batch owes the
/// click again (a video's run completed, a link changed), so the debt is due later and
/// stays; should the batch roll back instead, the verdict is decided once more, and the
/// aggregate records only verdicts that change something. Waiting while holding other
/// debts the batch wants next would deadlock with it: both would stall for Postgres's
/// `deadlock_timeout`, holding back the relay, and one would fail.
pub async fn forget_settled(pool: &PgPool, clicks: &[Uuid], due_positions: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM matcher_pending WHERE click_id IN (
             SELECT p.click_id FROM matcher_pending p
             JOIN UNNEST($1::uuid[], $2::bigint[]) AS s (click_id, due_position)
               ON p.click_id = s.click_id AND p.due_position = s.due_position
             FOR UPDATE OF p SKIP LOCKED)",
    )
    .bind(clicks)
    .bind(due_positions)
    .persistent(false)
    .execute(pool)
    .await?;
    Ok(())
}

/// Owes every click of a video a verdict as of `position`.
async fn owe(
    tx: &mut PgConnection,
    video_id: &str,
    position: i64,
    cause: Uuid,
    correlation: &str,
) -> Result<(), ProjectionError> {
    let upsert = "ON CONFLICT (click_id) DO UPDATE SET due_position = EXCLUDED.due_position,
             barrier_position = EXCLUDED.barrier_position,
             cause_event_id = EXCLUDED.cause_event_id, correlation_id = EXCLUDED.correlation_id";
    let sql = format!(
        "INSERT INTO matcher_pending (click_id, due_position, barrier_position, cause_event_id, correlation_id)
         SELECT click_id, $2, $2, $3, $4 FROM matcher_clicks WHERE video_id = $1 {upsert}"
    );
    let query = sqlx::query(&sql).bind(video_id);
    query.bind(position).bind(cause).bind(correlation).execute(tx).await?;
    Ok(())
}

impl Settler {
    /// Decides a round of owed verdicts, reading each video's sources and tracks once.
    async fn decide(&self, pool: &PgPool, owed: &[Owed]) -> Result<Vec<Verdict>, ProjectionError> {
        let mut by_video: std::collections::BTreeMap<&str, Vec<&Owed>> = Default::default();
        for o in owed {
            by_video.entry(o.video_id.as_str()).or_default().push(o);
        }
        let mut verdicts = Vec::with_capacity(owed.len());
        for (video_id, clicks) in by_video {
            let position = clicks.iter().map(|o| o.source_position).max().flatten();
            let sources = self.sources(pool, video_id, position).await?;
            // Without a completed run the clicks stay pending; the completion owes them again.
            let Some(run_id) = sources.run_id else { continue };
            let Some(run) = self.run_tracks(pool, run_id).await? else { continue };
            for o in clicks {
                let scene = run.scene(o.media_time, &sources.links);
                let outcome = matching::decide(&self.point(o, run.width, run.height), &scene.objects, self.radius_css);
                let metadata = EventMetadata::caused_by_event(&o.cause_event_id.to_string(), &o.correlation_id, NAME);
                let verdict = RecordMatch { outcome, run_id, evaluated_at: Utc::now() };
                verdicts.push((o.click_id.to_string(), ClickCommand::RecordMatch(verdict), metadata));
            }
        }
        Ok(verdicts)
    }

    /// Appends a round's verdicts (one load and one append) and forgets the debts they
    /// settle (unless they grew meanwhile).
    async fn append(
        &self,
        pool: &PgPool,
        verdicts: Vec<Verdict>,
        ids: &[Uuid],
        positions: &[i64],
    ) -> Result<(), ProjectionError> {
        for result in execute_all(&self.commands.clicks, self.commands.events(), verdicts).await {
            match result {
                Ok(()) => {}
                // A verdict on a click the store lacks cannot happen; others are failures.
                Err(framecart_commands::CommandError::Refused(e)) => {
                    tracing::warn!(error = %e, "matcher: a verdict was refused");
                }
                Err(e) => return Err(ProjectionError::Internal(format!("recording verdicts: {e}"))),
            }
        }
        forget_settled(pool, ids, positions).await?;
        Ok(())
    }

    /// The click in the terms of the matching rules.
    fn point(&self, o: &Owed, width: f64, height: f64) -> ClickPoint {
        match (o.u, o.v, o.css_width, o.css_height) {
            (Some(u), Some(v), Some(css_width), Some(css_height)) => {
                ClickPoint { u, v, css_width, css_height, on_frame: o.on_frame, during_ad: o.during_ad }
            }
            // The original minimal click: its pixels are the uploaded frame's.
            _ => {
                let (u, v) = (o.x / width, o.y / height);
                ClickPoint {
                    u,
                    v,
                    css_width: width,
                    css_height: height,
                    on_frame: (0.0..1.0).contains(&u) && (0.0..1.0).contains(&v),
                    during_ad: o.during_ad,
                }
            }
        }
    }
}
