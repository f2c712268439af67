//! The fault suite's frame: a [`Cluster`] under a [`ClickLoad`], a fault the test
//! injects, then recovery and the exactly-once census.
//!
//! After the fault every acknowledged click must be exactly once in `events`, in the
//! stream, in `clicks_view` and in the client files, and `framecart audit verify` must
//! hold. A click that was never acknowledged may be missing, but never twice, and a click
//! that is in `events` must be everywhere else too. Each run adds one row to the fault
//! table: standard error, and `fault-table.md` in the cargo target folder.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use uuid::Uuid;

use crate::cluster::{Cluster, NAMESPACE};
use crate::load::ClickLoad;
use crate::{eventually, eventually_or_say};

/// Load before the fault, so that it hits a busy installation.
const WARM_UP: Duration = Duration::from_secs(4);
/// Load tasks and clicks per second each: about 120 clicks a second in all.
const LOAD_TASKS: usize = 6;
const CLICKS_PER_TASK: u32 = 20;
/// Load that goes on once the server is ready again.
const AFTER_READY: Duration = Duration::from_secs(1);
/// Longest wait for the server to be ready and the views to catch up after a fault.
pub const RECOVERY_LIMIT: Duration = Duration::from_secs(90);

/// One scenario under way.
pub struct FaultRun {
    pub scenario: &'static str,
    pub cluster: Cluster,
    pub load: ClickLoad,
    fault_began: Option<Instant>,
}

/// What a scenario measured: one row of the fault table.
#[derive(Debug)]
pub struct Row {
    pub scenario: &'static str,
    pub acknowledged: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub answers: String,
    /// The slowest answer to a click during the fault.
    pub slowest: Duration,
    pub recovery: Duration,
}

impl FaultRun {
    /// Starts a cluster and the load, and lets it run a little.
    pub async fn start(scenario: &'static str) -> Self {
        let cluster = Cluster::start().await;
        let load = ClickLoad::start(&cluster.base_url(), LOAD_TASKS, CLICKS_PER_TASK);
        tokio::time::sleep(WARM_UP).await;
        Self { scenario, cluster, load, fault_began: None }
    }

    /// The fault begins: answers are counted from now until the server is ready again.
    pub fn fault_begins(&mut self) {
        self.load.open_window();
        self.fault_began = Some(Instant::now());
    }

    /// The fault is over (what was broken is back): waits for recovery, checks that no
    /// acknowledged click was lost or duplicated, and records the row.
    pub async fn fault_ends(&mut self) -> Row {
        let ended = Instant::now();
        assert!(self.fault_began.is_some(), "the fault never began");
        // Recovery: the server is ready, and every click acknowledged until then is in
        // the view.
        eventually("the server to be ready after the fault", RECOVERY_LIMIT, || async {
            self.cluster.ready().await.then_some(())
        })
        .await;
        let ready = Instant::now();
        self.load.close_window();
        let acked_by_then = self.load.acked();
        eventually("the clicks acknowledged until the server was ready to be in clicks_view", RECOVERY_LIMIT, || {
            in_view(&self.cluster.db, &acked_by_then)
        })
        .await;
        let recovery = ended.elapsed();
        tokio::time::sleep(AFTER_READY.saturating_sub(ready.elapsed())).await;
        self.load.stop().await;

        // Everything settles: each acknowledged click in the view, every event logged,
        // every client file written.
        let acked = self.load.acked();
        eventually("every acknowledged click to be in clicks_view", RECOVERY_LIMIT, || {
            in_view(&self.cluster.db, &acked)
        })
        .await;
        settle(&self.cluster.db).await;
        let census =
            Census::take(&self.cluster.db, &self.cluster.nats.url(), &self.cluster.media, NAMESPACE, &self.load.sent())
                .await;
        let (audit_ok, audit) = self.cluster.audit_verify().await;

        let row = census.row(self.scenario, &self.load, recovery);
        record(&row);
        census.assert_exactly_once(self.scenario, &self.load);
        assert!(audit_ok && audit.contains("\"ok\":true"), "{}: audit verify: {audit}", self.scenario);
        assert!(!self.cluster.server_log().contains("panicked at"), "{}: the server panicked", self.scenario);
        row
    }
}

/// Waits until nothing moves any more: the matcher judged every click (its verdicts
/// are events too), the relay logged every event, and the client files are written;
/// and the count of events stays the same for a while.
pub async fn settle(db: &sqlx::PgPool) {
    let mut last_events = -1;
    loop {
        let events = eventually_or_say("the installation to settle", RECOVERY_LIMIT, || async {
            let (events, logged, recorded, judged, owed, file_rows, dirty): (i64, i64, i64, i64, i64, i64, i64) =
                sqlx::query_as(
                    "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM event_log),
                        (SELECT count(*) FROM events
                         WHERE aggregate_type = 'click' AND event_type = 'ClickRecorded'),
                        (SELECT count(*) FROM matcher_clicks), (SELECT count(*) FROM matcher_pending),
                        (SELECT count(*) FROM client_file_clicks), (SELECT count(*) FROM client_files_dirty)",
                )
                .fetch_one(db)
                .await
                .map_err(|e| e.to_string())?;
            let settled = events == logged && judged == recorded && owed == 0 && file_rows == recorded && dirty == 0;
            if settled {
                return Ok(events);
            }
            let unjudged = if judged < recorded { unjudged(db).await } else { String::new() };
            Err(format!(
                "{events} events, {logged} logged, {recorded} clicks recorded, {judged} judged, {owed} verdicts owed, \
                 {file_rows} client-file rows, {dirty} client files waiting{unjudged}"
            ))
        })
        .await;
        if events == last_events {
            return;
        }
        last_events = events;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Which recorded clicks the matcher has not taken in, at which log positions, and where
/// its checkpoint stands: a click below the checkpoint was skipped, one above it waits.
async fn unjudged(db: &sqlx::PgPool) -> String {
    type Unjudged = (String, Option<i64>, Option<i64>);
    let rows: Result<Vec<Unjudged>, _> = sqlx::query_as(
        "SELECT e.aggregate_id, l.log_position,
                (SELECT last_sequence FROM projection_checkpoints WHERE name = 'matcher')
         FROM events e LEFT JOIN event_log l USING (global_position)
         WHERE e.aggregate_type = 'click' AND e.event_type = 'ClickRecorded'
           AND NOT EXISTS (SELECT 1 FROM matcher_clicks m WHERE m.click_id::text = e.aggregate_id)
         ORDER BY e.global_position LIMIT 5",
    )
    .fetch_all(db)
    .await;
    match rows {
        Ok(rows) => {
            let checkpoint = rows.first().and_then(|(_, _, c)| *c);
            let clicks: Vec<String> =
                rows.iter().map(|(id, position, _)| format!("{id} at log position {position:?}")).collect();
            format!("; not judged: {} (the matcher's checkpoint: {checkpoint:?})", clicks.join(", "))
        }
        Err(e) => format!("; the clicks not judged could not be read: {e}"),
    }
}

/// Whether every click of `ids` is in `clicks_view`.
pub async fn in_view(db: &sqlx::PgPool, ids: &[Uuid]) -> Option<()> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM clicks_view WHERE click_id = ANY($1)")
        .bind(ids)
        .fetch_one(db)
        .await
        .ok()?;
    (usize::try_from(n).ok()? == ids.len()).then_some(())
}

/// How many times each click is in each place.
#[derive(Debug, Default)]
pub struct Census {
    events_by_click: HashMap<Uuid, usize>,
    stream_by_click: HashMap<Uuid, usize>,
    view_by_click: HashMap<Uuid, usize>,
    files_by_click: HashMap<Uuid, usize>,
    /// Client file entries whose media time no click of the load had.
    pub unknown: usize,
    /// Events in `events`, and messages in the stream (with distinct message ids).
    pub events: u64,
    pub stream_messages: u64,
}

impl Census {
    /// Counts every click of `sent` in the store, the stream (on `nats_url`, of namespace
    /// `namespace`), the view and the client files under `media`.
    pub async fn take(
        db: &sqlx::PgPool,
        nats_url: &str,
        media: &std::path::Path,
        namespace: &str,
        sent: &HashMap<Uuid, u64>,
    ) -> Self {
        let mut census = Self::default();
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT aggregate_id, count(*) FROM events
             WHERE aggregate_type = 'click' AND event_type = 'ClickRecorded' GROUP BY aggregate_id",
        )
        .fetch_all(db)
        .await
        .expect("the click events");
        for (id, n) in rows {
            let id = Uuid::parse_str(&id).expect("a click id");
            census.events_by_click.insert(id, usize::try_from(n).expect("a count"));
        }
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(db).await.expect("count");
        census.events = u64::try_from(events).expect("a count");
        let view: Vec<Uuid> =
            sqlx::query_scalar("SELECT click_id FROM clicks_view").fetch_all(db).await.expect("the view");
        for id in view {
            *census.view_by_click.entry(id).or_default() += 1;
        }
        let logged: Vec<(i64, Uuid)> = sqlx::query_as("SELECT log_position, event_id FROM event_log")
            .fetch_all(db)
            .await
            .expect("the relay's record");
        let logged: HashMap<u64, String> =
            logged.into_iter().map(|(p, id)| (u64::try_from(p).expect("a position"), id.to_string())).collect();
        census.read_stream(nats_url, namespace, &logged).await;
        census.read_files(media, sent);
        census
    }

    /// The fault table's row of a scenario.
    pub fn row(&self, scenario: &'static str, load: &ClickLoad, recovery: Duration) -> Row {
        let sent = load.sent();
        let acked: HashSet<Uuid> = load.acked().into_iter().collect();
        Row {
            scenario,
            acknowledged: acked.len(),
            lost: sent.keys().filter(|id| self.lost(id, acked.contains(id))).count(),
            duplicated: sent.keys().filter(|id| self.duplicated(id)).count(),
            answers: load.answers(),
            slowest: load.slowest(),
            recovery,
        }
    }

    /// Every acknowledged click exactly once everywhere, nothing unknown in the files,
    /// every event once in the stream, and no answer that no fault explains.
    pub fn assert_exactly_once(&self, scenario: &str, load: &ClickLoad) {
        let sent = load.sent();
        let acked: HashSet<Uuid> = load.acked().into_iter().collect();
        let lost: Vec<Uuid> = sent.keys().filter(|id| self.lost(id, acked.contains(id))).copied().collect();
        let duplicated: Vec<Uuid> = sent.keys().filter(|id| self.duplicated(id)).copied().collect();
        let show = |ids: &[Uuid]| -> Vec<String> { ids.iter().take(5).map(|id| self.describe(id)).collect() };
        assert!(lost.is_empty(), "{scenario}: clicks lost: {:?}", show(&lost));
        assert!(duplicated.is_empty(), "{scenario}: clicks duplicated: {:?}", show(&duplicated));
        assert_eq!(self.unknown, 0, "{scenario}: entries in the client files that no click of the load made");
        assert_eq!(self.stream_messages, self.events, "{scenario}: the stream holds every event once");
        let unexpected = load.unexpected_answers();
        assert!(unexpected.is_empty(), "{scenario}: unexpected answers to clicks: {unexpected}");
    }

    /// Reads the whole stream, headers only, in order, and checks that each message is
    /// the event recorded at its sequence (`logged`: log position → event id).
    async fn read_stream(&mut self, nats_url: &str, namespace: &str, logged: &HashMap<u64, String>) {
        let client = async_nats::connect(nats_url).await.expect("NATS");
        let js = jetstream::new(client);
        let namespace = framecart_api::domain::log::Namespace::parse(namespace).expect("a namespace");
        let mut stream = js.get_stream(namespace.stream_name()).await.expect("the stream");
        let last = stream.info().await.expect("stream info").state.last_sequence;
        if last == 0 {
            return;
        }
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig { headers_only: true, ..Default::default() })
            .await
            .expect("an ordered consumer");
        let mut messages = consumer.messages().await.expect("the messages");
        let mut ids = HashSet::new();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
                .await
                .expect("the next message within 10 s")
                .expect("more messages")
                .expect("a message");
            let sequence = message.info().expect("message info").stream_sequence;
            self.stream_messages += 1;
            let id = message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.as_str().to_owned());
            assert_eq!(id.as_ref(), logged.get(&sequence), "stream sequence {sequence} holds the recorded event");
            ids.extend(id);
            if let Some(("click", id, "ClickRecorded")) = namespace.subject_parts(&message.subject) {
                let id = Uuid::parse_str(id).expect("a click id");
                *self.stream_by_click.entry(id).or_default() += 1;
            }
            if sequence >= last {
                break;
            }
        }
        assert_eq!(ids.len() as u64, self.stream_messages, "every message of the stream has its own id");
    }

    /// Reads every client file; entries are recognised by their (unique) media time.
    fn read_files(&mut self, media: &std::path::Path, sent: &HashMap<Uuid, u64>) {
        let by_time: HashMap<u64, Uuid> = sent.iter().map(|(id, t)| (*t, *id)).collect();
        let dir = media.join("client_files");
        let Ok(files) = std::fs::read_dir(&dir) else { return };
        for file in files {
            let path: PathBuf = file.expect("a client file").path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let bytes = std::fs::read(&path).expect("a client file");
            let entries: Vec<serde_json::Value> = serde_json::from_slice(&bytes).expect("a JSON list");
            for entry in entries {
                let t = entry["timestamp"].as_f64().expect("a timestamp");
                match by_time.get(&(t as u64)).filter(|_| t.fract() == 0.0) {
                    Some(id) => *self.files_by_click.entry(*id).or_default() += 1,
                    None => self.unknown += 1,
                }
            }
        }
    }

    fn places(&self, id: &Uuid) -> [usize; 4] {
        let n = |m: &HashMap<Uuid, usize>| m.get(id).copied().unwrap_or(0);
        [n(&self.events_by_click), n(&self.stream_by_click), n(&self.view_by_click), n(&self.files_by_click)]
    }

    /// Lost: acknowledged and missing somewhere, or stored and missing downstream.
    pub fn lost(&self, id: &Uuid, acknowledged: bool) -> bool {
        let places = self.places(id);
        let stored = places[0] > 0;
        (acknowledged || stored) && places.contains(&0)
    }

    pub fn duplicated(&self, id: &Uuid) -> bool {
        self.places(id).iter().any(|n| *n > 1)
    }

    /// `<id>: events 1, stream 0, view 1, files 1`.
    fn describe(&self, id: &Uuid) -> String {
        let [e, s, v, f] = self.places(id);
        format!("{id}: events {e}, stream {s}, view {v}, files {f}")
    }
}

/// The fault table's header, in Markdown.
pub const TABLE_HEADER: &str = "| scenario | acknowledged | lost | duplicated | answers during the fault | slowest answer (s) | recovery (s) |\n\
                                |---|---:|---:|---:|---|---:|---:|";

/// Prints the row and appends it to `fault-table.md` in the cargo target folder.
pub fn record(row: &Row) {
    let line = format!(
        "| {} | {} | {} | {} | {} | {:.1} | {:.1} |",
        row.scenario,
        row.acknowledged,
        row.lost,
        row.duplicated,
        row.answers,
        row.slowest.as_secs_f64(),
        row.recovery.as_secs_f64()
    );
    eprintln!("{TABLE_HEADER}\n{line}");
    let Some(path) = table_path() else { return };
    let new = !path.exists();
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(&path) {
        let text = if new { format!("{TABLE_HEADER}\n{line}\n") } else { format!("{line}\n") };
        let _ = file.write_all(text.as_bytes());
    }
}

/// `$CARGO_TARGET_DIR/fault-table.md`, or beside `target/<profile>/` of this test binary.
fn table_path() -> Option<PathBuf> {
    let dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::current_exe().ok()?.parent()?.parent()?.parent()?.to_path_buf(),
    };
    Some(dir.join("fault-table.md"))
}
