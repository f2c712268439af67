//! How far each view is behind the log, watched from outside: the benches sample every
//! projection's checkpoint (and how far the client files are written) a hundred times a
//! second, with the database's clock, and compare it with when each event was committed.
//!
//! An event's lag in a view is the time from its commit (`events.recorded_at`, taken in
//! the inserting transaction) to the first sample in which the view has applied it. A
//! view whose consumer is filtered never sees the events it skips: they count as applied
//! when a later event is, so its figures are an upper bound (the events of a click load
//! are dense, so the bound is close).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use framecart_api::projections::client_files;
use sqlx::PgPool;
use tokio::task::JoinHandle;

/// What the client files hold, under the name the benches print.
pub const CLIENT_FILES: &str = "client files";
/// What the relay published (the stream), under the name the benches print.
pub const RELAY: &str = "(relay)";

/// Every view's progress at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: DateTime<Utc>,
    /// View name → the log position up to which it applied every event.
    pub applied: BTreeMap<String, i64>,
}

/// Samples every view's progress until dropped or stopped.
pub struct Progress {
    samples: Arc<Mutex<Vec<Sample>>>,
    task: JoinHandle<()>,
}

/// One view's figures over a stretch of the log.
#[derive(Debug, Clone)]
pub struct ViewLag {
    pub view: String,
    /// Events of the stretch it applied.
    pub events: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// One view after a load: how far behind it was when the load stopped, and how long it
/// took to apply the rest.
#[derive(Debug, Clone)]
pub struct CatchUp {
    pub view: String,
    pub behind_at_end: i64,
    pub seconds: f64,
}

impl Progress {
    /// Starts sampling every `every`.
    pub fn start(db: PgPool, every: Duration) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let kept = samples.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Ok(sample) = sample(&db).await {
                    kept.lock().expect("samples").push(sample);
                }
            }
        });
        Self { samples, task }
    }

    /// The samples so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().expect("samples").clone()
    }

    /// Waits until the installation has settled ([`crate::faults::settle`]: every click
    /// relayed, applied, judged and in its file), then until a sample taken after that
    /// is in, so the last sample holds every view's final position.
    pub async fn settle(&self, db: &PgPool) -> anyhow::Result<()> {
        crate::faults::settle(db).await;
        let settled = db_now(db).await?;
        crate::eventually("a sample after the installation settled", Duration::from_secs(10), || async {
            self.samples.lock().expect("samples").last().filter(|s| s.at > settled).map(|_| ())
        })
        .await;
        Ok(())
    }

    /// Each view's lag over the events at log positions above `after` (up to what the
    /// view reached), for the views that applied any of them.
    pub async fn lags(&self, db: &PgPool, after: i64) -> anyhow::Result<Vec<ViewLag>> {
        let events = committed_after(db, after).await?;
        let samples = self.samples();
        let Some(last) = samples.last() else { return Ok(Vec::new()) };
        let mut lags = Vec::new();
        for (view, reached) in &last.applied {
            let mut ms: Vec<f64> = Vec::new();
            let mut at = 0;
            for (position, committed) in events.iter().filter(|(p, _)| p <= reached) {
                while at < samples.len() && samples[at].applied.get(view).is_none_or(|a| a < position) {
                    at += 1;
                }
                let Some(sample) = samples.get(at) else { break };
                ms.push(((sample.at - *committed).num_microseconds().unwrap_or(0) as f64 / 1000.0).max(0.0));
            }
            if ms.is_empty() {
                continue;
            }
            ms.sort_by(f64::total_cmp);
            lags.push(ViewLag {
                view: view.clone(),
                events: ms.len(),
                p50_ms: quantile(&ms, 0.5),
                p99_ms: quantile(&ms, 0.99),
                max_ms: *ms.last().expect("some"),
            });
        }
        Ok(lags)
    }

    /// For each view that moved after `ended` (the database's clock when a load stopped):
    /// how far behind its final position it was then, and how long it took to get there.
    pub fn catch_up(&self, ended: DateTime<Utc>) -> Vec<CatchUp> {
        let samples = self.samples();
        let Some(last) = samples.last() else { return Vec::new() };
        let at_end = samples.iter().rev().find(|s| s.at <= ended);
        last.applied
            .iter()
            .filter_map(|(view, final_position)| {
                let then = at_end.and_then(|s| s.applied.get(view)).copied().unwrap_or(0);
                let reached = samples.iter().find(|s| s.applied.get(view).is_some_and(|a| a >= final_position))?;
                let seconds = ((reached.at - ended).num_milliseconds() as f64 / 1000.0).max(0.0);
                Some(CatchUp { view: view.clone(), behind_at_end: final_position - then, seconds })
            })
            .filter(|c| c.behind_at_end > 0 || c.seconds > 0.0)
            .collect()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The database's clock now.
pub async fn db_now(db: &PgPool) -> anyhow::Result<DateTime<Utc>> {
    Ok(sqlx::query_scalar("SELECT clock_timestamp()").fetch_one(db).await?)
}

/// The log position of the last event in the relay's record.
pub async fn log_end(db: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT coalesce(max(log_position), 0) FROM event_log").fetch_one(db).await?)
}

async fn sample(db: &PgPool) -> Result<Sample, sqlx::Error> {
    let (at, names, applied, relayed): (DateTime<Utc>, Vec<String>, Vec<i64>, i64) = sqlx::query_as(
        "SELECT clock_timestamp(),
                coalesce(array_agg(name ORDER BY name), '{}'),
                coalesce(array_agg(last_sequence ORDER BY name), '{}'),
                (SELECT coalesce(max(log_position), 0) FROM event_log)
         FROM projection_checkpoints",
    )
    .fetch_one(db)
    .await?;
    let mut applied: BTreeMap<String, i64> = names.into_iter().zip(applied).collect();
    applied.insert(RELAY.to_owned(), relayed);
    if let Some(&rows) = applied.get(client_files::NAME) {
        // Read after the checkpoint: a click marked since then only makes the figure lower.
        applied.insert(CLIENT_FILES.to_owned(), client_files::DIRTY.written_up_to(db, rows).await?);
    }
    Ok(Sample { at, applied })
}

/// Each event's log position and commit time, above `after`, in log order.
async fn committed_after(db: &PgPool, after: i64) -> anyhow::Result<Vec<(i64, DateTime<Utc>)>> {
    Ok(sqlx::query_as(
        "SELECT l.log_position, e.recorded_at FROM event_log l JOIN events e USING (global_position)
         WHERE l.log_position > $1 ORDER BY l.log_position",
    )
    .bind(after)
    .fetch_all(db)
    .await?)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Prints a table of lags.
pub fn print_lags(lags: &[ViewLag]) {
    println!("{:<14} {:>8} {:>12} {:>12} {:>12}", "view", "events", "p50 ms", "p99 ms", "max ms");
    for l in lags {
        println!("{:<14} {:>8} {:>12.1} {:>12.1} {:>12.1}", l.view, l.events, l.p50_ms, l.p99_ms, l.max_ms);
    }
}
