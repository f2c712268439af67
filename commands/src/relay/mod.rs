//! The relay: makes the JetStream log a complete, ordered copy of the `events` table.
//!
//! What it promises:
//!
//! - **One active relay.** Instances elect a leader with `pg_try_advisory_lock` on a
//!   dedicated connection; the others stand by. The leader tails on that connection, so
//!   losing it (and the lock) stops the leader at its next poll.
//! - **Commit order, nothing skipped.** It reads by `(tx_id, global_position)` below the
//!   oldest running transaction ([`tail::committed_after`]).
//! - **Nothing published twice.** Each message carries `Nats-Msg-Id = event_id` and
//!   `Nats-Expected-Last-Sequence`, so the stream refuses a duplicate and a message that
//!   would land out of order. On start it resumes from the last message actually in the
//!   stream, not from its own checkpoint, so a crash between the ack and the checkpoint
//!   (or a downtime longer than the duplicate window) republishes nothing.
//! - **Checkpoint after ack.** Each published event's log position (the stream
//!   sequence: dense, in commit order) and its hash-chain link go into the append-only
//!   `event_log` table only after JetStream acknowledged the batch.
//! - **The stream is a replica of the store, restored when lost.** `events` plus
//!   `event_log` are enough to rebuild the stream. When the stream is missing, empty or
//!   behind the record (a wiped NATS store, a new server, an old backup), the leader
//!   first checks that what the stream still holds is what it recorded (same event id
//!   and hash at each sequence; otherwise it refuses), then republishes the recorded
//!   rest in log order, each at its recorded sequence ([`restore`]), with the same
//!   headers and body (the envelope is written in one key order, so byte for byte).
//!   Only then does it relay new events. An idle leader checks every second that the
//!   stream still ends where it left it, so a NATS server that lost its store while
//!   nothing was committed is restored too.
//!
//! It polls: a `pg_notify` trigger would serialise commits (measured about 10× slower).

pub mod hash;
pub mod lag;
mod restore;
pub mod tail;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, message::PublishMessage as Publish};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use framecart_domain::log::{self as layout, LoggedEvent, Namespace, is_subject_token, metadata_map};
use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use self::hash::{GENESIS, HashedFields, chain_hash};
use self::tail::{CommitCursor, LogEntry, StoredEvent};

/// Advisory lock key of the relay election (per database, so per installation).
pub const RELAY_LOCK: i64 = 0x4672_616d_6552_6c79; // "FrameRly"

/// SQLSTATE of a lock wait that ran out (`lock_timeout`).
const LOCK_NOT_AVAILABLE: &str = "55P03";

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Most events read and published per round.
    pub batch_size: i64,
    /// Pause between polls when nothing new was committed.
    pub idle_poll: Duration,
    /// How often an idle leader checks that the stream still ends where it left it (a
    /// NATS server that lost its store while nothing was committed is noticed then).
    pub stream_check: Duration,
    /// How long a standby relay waits on the election lock at a time (it is woken at
    /// once when the lock is freed; this bounds how long a stop waits).
    pub standby_poll: Duration,
    /// Woken when this process commits events, to publish them before the next poll.
    pub committed: Option<Arc<tokio::sync::Notify>>,
    /// Replicas of the stream when the relay has to create it again.
    pub replicas: usize,
    /// How long committed events may wait behind a transaction still open somewhere in the
    /// cluster before the leader warns, naming it (and again as often while they wait):
    /// the relay reads only below the oldest open transaction, so one left open holds
    /// back the stream and every view, with nothing failing.
    pub held_back_warning: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            idle_poll: Duration::from_millis(5),
            stream_check: Duration::from_secs(1),
            // Under sqlx's one-second report of slow statements.
            standby_poll: Duration::from_millis(500),
            committed: None,
            replicas: 1,
            held_back_warning: Duration::from_secs(10),
        }
    }
}

/// What the relay has done and is doing, for readiness, metrics and benchmarks. Shared
/// by every relay a process starts (a restarted relay goes on with the same counters).
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Events this process published (restored ones included).
    pub published: AtomicU64,
    /// The log position of the last event this process knows to be in the stream.
    pub log_position: AtomicU64,
    /// 1 while this process is the active relay.
    pub leading: AtomicU64,
    /// 1 while a relay of this process runs (leading or standing by).
    pub running: AtomicU64,
    /// 1 while the leader republishes recorded events that the stream lost.
    pub restoring: AtomicU64,
    /// Events republished by the current (or last) restore.
    pub restored: AtomicU64,
    /// How many events the current (or last) restore republishes in all.
    pub restore_target: AtomicU64,
    /// Restores this process finished.
    pub restores: AtomicU64,
    /// Attempts to lead that failed since the last one that worked (0 while it works).
    pub failures: AtomicU64,
    /// Seconds the leader's committed events have waited behind a transaction still open
    /// (0 while none waits), as of its last check.
    pub held_back_seconds: AtomicU64,
}

/// Committed events that an idle leader cannot read yet: a transaction that began before
/// they committed is still open somewhere in the cluster.
#[derive(Default)]
struct HeldBack {
    /// When the leader first found them waiting.
    since: Option<tokio::time::Instant>,
    /// When it last warned.
    warned: Option<tokio::time::Instant>,
}

impl HeldBack {
    /// Looks again (an idle leader, every `stream_check`): warns, naming the oldest open
    /// transaction, once events have waited `warning`, and every `warning` after that.
    async fn check(
        &mut self,
        conn: &mut PgConnection,
        cursor: tail::CommitCursor,
        warning: Duration,
        stats: &RelayStats,
    ) -> Result<(), RelayError> {
        if !tail::any_after(conn, cursor).await? {
            self.over(stats);
            return Ok(());
        }
        let waited = self.since.get_or_insert_with(tokio::time::Instant::now).elapsed();
        stats.held_back_seconds.store(waited.as_secs(), Ordering::Relaxed);
        if waited >= warning && self.warned.is_none_or(|warned| warned.elapsed() >= warning) {
            let holder = match tail::open_transactions(conn, 1).await?.first() {
                Some(open) => open.to_string(),
                None => "no transaction is open any more".to_owned(),
            };
            tracing::warn!(
                seconds = waited.as_secs(),
                %holder,
                "relay held back: committed events wait behind a transaction still open, and so does every view"
            );
            self.warned = Some(tokio::time::Instant::now());
        }
        Ok(())
    }

    /// The events are readable again.
    fn over(&mut self, stats: &RelayStats) {
        if self.since.take().is_some() {
            self.warned = None;
            stats.held_back_seconds.store(0, Ordering::Relaxed);
        }
    }
}

/// What a process's relay is doing, as `/readyz` and `framecart projections status` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayState {
    /// No relay runs in this process.
    Off,
    /// Another process is the active relay.
    Standby,
    /// Publishing committed events.
    Relaying,
    /// Republishing recorded events the stream lost.
    Restoring,
}

impl RelayState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Standby => "standby",
            Self::Relaying => "relaying",
            Self::Restoring => "restoring",
        }
    }
}

impl RelayStats {
    pub fn state(&self) -> RelayState {
        if self.running.load(Ordering::Relaxed) == 0 {
            RelayState::Off
        } else if self.restoring.load(Ordering::Relaxed) == 1 {
            RelayState::Restoring
        } else if self.leading.load(Ordering::Relaxed) == 1 {
            RelayState::Relaying
        } else {
            RelayState::Standby
        }
    }

    /// `(restored, target)` of the current or last restore.
    pub fn restore_progress(&self) -> (u64, u64) {
        (self.restored.load(Ordering::Relaxed), self.restore_target.load(Ordering::Relaxed))
    }

    /// Clears what a relay that ended, or was killed where it stood, left set.
    pub fn stopped(&self) {
        self.running.store(0, Ordering::Relaxed);
        self.leading.store(0, Ordering::Relaxed);
        self.restoring.store(0, Ordering::Relaxed);
        self.held_back_seconds.store(0, Ordering::Relaxed);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("JetStream: {0}")]
    Nats(String),
    #[error("the log is inconsistent: {0}")]
    Inconsistent(String),
}

impl RelayError {
    /// An error that a retry cannot cure: the stream and the record disagree.
    pub fn is_inconsistency(&self) -> bool {
        matches!(self, Self::Inconsistent(_))
    }
}

fn nats(e: impl std::fmt::Display) -> RelayError {
    RelayError::Nats(e.to_string())
}

pub struct Relay {
    pool: PgPool,
    js: jetstream::Context,
    ns: Namespace,
    config: RelayConfig,
    stats: Arc<RelayStats>,
}

/// The leader's position: the next message goes after `log_position` in the stream and
/// after `cursor` in commit order, chained to `hash`.
struct Position {
    log_position: u64,
    cursor: CommitCursor,
    hash: String,
}

/// A batch published and not yet acknowledged: its acks, and its records for `event_log`.
struct InFlight {
    acks: Vec<jetstream::context::PublishAckFuture>,
    entries: Vec<LogEntry>,
}

impl Relay {
    pub fn new(pool: PgPool, js: jetstream::Context, ns: Namespace, config: RelayConfig) -> Self {
        Self { pool, js, ns, config, stats: Arc::default() }
    }

    /// Reports into `stats` (shared with the process's readiness and metrics) instead of
    /// counters of its own.
    pub fn with_stats(mut self, stats: Arc<RelayStats>) -> Self {
        self.stats = stats;
        self
    }

    pub fn stats(&self) -> Arc<RelayStats> {
        self.stats.clone()
    }

    /// Runs until `shutdown`: stands by, leads when elected, and starts over after errors.
    /// When `shutdown` comes, a leader first publishes what is committed (the caller
    /// bounds how long it may take).
    pub async fn run(self, shutdown: CancellationToken) {
        self.stats.stopped();
        self.stats.running.store(1, Ordering::Relaxed);
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.elect_and_lead(&shutdown).await {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    self.stats.failures.store(0, Ordering::Relaxed);
                }
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    if e.is_inconsistency() {
                        tracing::error!(error = %e, "relay refuses to go on until the log is repaired; retrying");
                    } else {
                        tracing::warn!(error = %e, "relay stopped; starting over");
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.stats.stopped();
    }

    async fn elect_and_lead(&self, shutdown: &CancellationToken) -> Result<(), RelayError> {
        // A connection of its own: the session lock lives exactly as long as it does.
        let mut conn = self.pool.acquire().await?.detach();
        // A free lock is taken at once, a stop already asked for included: a relay asked to
        // stop as it starts still publishes what is committed.
        let elected: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(RELAY_LOCK).fetch_one(&mut conn).await?;
        if !elected {
            // A standby waits on the lock itself, in slices of `standby_poll` (to notice a
            // stop): `pg_locks` shows it waiting, so `projections status` can list it, and
            // it takes over the moment the leader's session ends.
            let timeout = format!("SET lock_timeout = {}", self.config.standby_poll.as_millis().max(1));
            sqlx::query(&timeout).execute(&mut conn).await?;
            loop {
                let waited = tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    waited = sqlx::query("SELECT pg_advisory_lock($1)").bind(RELAY_LOCK).execute(&mut conn) => waited,
                };
                match waited {
                    Ok(_) => break,
                    Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(LOCK_NOT_AVAILABLE) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            sqlx::query("SET lock_timeout = 0").execute(&mut conn).await?;
        }
        tracing::info!(namespace = %self.ns, "relay elected");
        self.stats.leading.store(1, Ordering::Relaxed);
        let result = self.lead(&mut conn, shutdown).await;
        self.stats.leading.store(0, Ordering::Relaxed);
        self.stats.restoring.store(0, Ordering::Relaxed);
        self.stats.held_back_seconds.store(0, Ordering::Relaxed);
        let _ = conn.close().await; // releases the lock
        result
    }

    async fn lead(&self, conn: &mut PgConnection, shutdown: &CancellationToken) -> Result<(), RelayError> {
        // What this connection writes (the relay's own table) is rebuilt from the stream by
        // `resume` if a crash loses it: its commits need not wait for the disk.
        sqlx::query("SET synchronous_commit = off").execute(&mut *conn).await?;
        let mut at = self.resume(conn).await?;
        self.stats.failures.store(0, Ordering::Relaxed);
        let mut checked = tokio::time::Instant::now();
        let mut held_back = HeldBack::default();
        // Reading, publishing and recording overlap: while JetStream stores one batch, the
        // next is read from the store and published behind it (each message still names
        // the sequence it must land at), then the first batch's acks are awaited and it is
        // recorded. A batch that fails fails the ones behind it: the relay starts over and
        // `resume` goes on from what the stream holds.
        let mut in_flight: Option<InFlight> = None;
        loop {
            // Once asked to stop, the leader publishes what is committed, then stops: a
            // graceful stop leaves nothing committed behind in the store alone.
            let draining = shutdown.is_cancelled();
            let events = tail::committed_after(conn, at.cursor, self.config.batch_size).await?;
            if events.is_empty() {
                if let Some(batch) = in_flight.take() {
                    self.record_when_acked(conn, batch).await?;
                    continue;
                }
                if draining {
                    // What an older transaction still open anywhere in the cluster holds
                    // back is committed too: wait for it (the caller bounds how long).
                    if !tail::any_after(conn, at.cursor).await? {
                        return Ok(());
                    }
                    tokio::time::sleep(self.config.idle_poll).await;
                    continue;
                }
                if checked.elapsed() >= self.config.stream_check {
                    self.check_stream(at.log_position).await?;
                    held_back.check(conn, at.cursor, self.config.held_back_warning, &self.stats).await?;
                    checked = tokio::time::Instant::now();
                }
                let committed = async {
                    match &self.config.committed {
                        Some(committed) => committed.notified().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(self.config.idle_poll) => {}
                    () = committed => {}
                }
                continue;
            }
            held_back.over(&self.stats);
            let sent = self.send(&mut at, &events).await?;
            if let Some(batch) = in_flight.replace(sent) {
                self.record_when_acked(conn, batch).await?;
            }
        }
    }

    /// Fails when the stream no longer ends where this leader left it (lost, replaced by
    /// an old backup, or written by someone else): the relay starts over, and `resume`
    /// restores or records what differs.
    async fn check_stream(&self, log_position: u64) -> Result<(), RelayError> {
        let stream = self.js.get_stream(self.ns.stream_name()).await.map_err(nats)?;
        let last = stream.cached_info().state.last_sequence;
        if last != log_position {
            return Err(RelayError::Nats(format!(
                "the stream ends at sequence {last}, not at {log_position} where the relay left it"
            )));
        }
        Ok(())
    }

    /// Brings the stream and the relay's table up to each other, then says where to go
    /// on from.
    ///
    /// - The stream is missing: it is created (empty), then restored.
    /// - The stream is behind the record (empty, or an old backup): what it holds is
    ///   checked against the record, then the rest is republished.
    /// - The stream is ahead of the record (a crash between an ack and its record): the
    ///   record is completed from the stream.
    async fn resume(&self, conn: &mut PgConnection) -> Result<Position, RelayError> {
        let stream = crate::stream::ensure_stream(&self.js, &self.ns, self.config.replicas).await.map_err(nats)?;
        let state = &stream.cached_info().state;
        let in_stream = state.last_sequence;
        if in_stream > 0 && (state.first_sequence != 1 || state.messages != in_stream) {
            return Err(RelayError::Inconsistent(format!(
                "the stream holds {} messages from sequence {} to {in_stream}: the log has gaps",
                state.messages, state.first_sequence
            )));
        }
        let recorded = tail::last_logged(conn).await?;
        if in_stream < recorded {
            restore::check_prefix(&stream, conn, in_stream).await?;
            self.restore(conn, in_stream, recorded).await?;
        } else if in_stream > recorded {
            restore::check_prefix_end(&stream, conn, recorded).await?;
            self.record_from_stream(conn, &stream, recorded, in_stream).await?;
        } else {
            restore::check_prefix_end(&stream, conn, in_stream).await?;
        }
        let last = in_stream.max(recorded);
        let position = match tail::cursor_at(conn, last).await? {
            Some((cursor, hash)) => Position { log_position: last, cursor, hash },
            None if last == 0 => {
                Position { log_position: 0, cursor: CommitCursor::default(), hash: GENESIS.to_owned() }
            }
            None => {
                return Err(RelayError::Inconsistent(format!("log position {last} names no stored event")));
            }
        };
        self.stats.log_position.store(position.log_position, Ordering::Relaxed);
        Ok(position)
    }

    /// Records events that are in the stream but not in the relay's table: published and
    /// acknowledged, then a crash before the record.
    async fn record_from_stream(
        &self,
        conn: &mut PgConnection,
        stream: &jetstream::stream::Stream,
        recorded: u64,
        in_stream: u64,
    ) -> Result<(), RelayError> {
        tracing::info!(from = recorded + 1, to = in_stream, "recording events already in the stream");
        let mut entries = Vec::new();
        for seq in recorded + 1..=in_stream {
            let message = stream.direct_get(seq).await.map_err(nats)?;
            let event: LoggedEvent = serde_json::from_slice(&message.payload)
                .map_err(|e| RelayError::Inconsistent(format!("message {seq} is not an event: {e}")))?;
            entries.push(LogEntry {
                log_position: seq,
                global_position: event.global_position,
                event_id: event.event_id,
                hash: event.hash,
            });
            if entries.len() == 1000 {
                tail::record(conn, &entries).await?;
                entries.clear();
            }
        }
        tail::record(conn, &entries).await?;
        Ok(())
    }

    /// Publishes one batch in order, each message at the stream sequence it must land at,
    /// and moves `at` past it; [`Self::record_when_acked`] awaits the acks and records it.
    async fn send(&self, at: &mut Position, events: &[StoredEvent]) -> Result<InFlight, RelayError> {
        let first = at.log_position;
        let mut acks = Vec::with_capacity(events.len());
        let mut entries = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let expected_last = first + i as u64;
            let hash = chain_hash(&at.hash, &hashed_fields(event));
            let (subject, message) = self.message(event, &hash)?;
            let publish = message.expected_last_sequence(expected_last);
            acks.push(self.js.send_publish(subject, publish).await.map_err(nats)?);
            entries.push(LogEntry {
                log_position: expected_last + 1,
                global_position: event.global_position,
                event_id: event.event_id,
                hash: hash.clone(),
            });
            at.hash = hash;
        }
        let last = events.last().expect("a non-empty batch");
        tracing::debug!(
            from = first + 1,
            to = first + events.len() as u64,
            oldest_ms = (chrono::Utc::now() - events[0].recorded_at).num_milliseconds(),
            first_tx = %events[0].tx_id_text,
            first_gp = events[0].global_position,
            last_tx = %last.tx_id_text,
            last_gp = last.global_position,
            ids = ?events.iter().map(|e| e.event_id).collect::<Vec<_>>(),
            "published"
        );
        at.cursor = last.cursor()?;
        at.log_position = first + events.len() as u64;
        Ok(InFlight { acks, entries })
    }

    /// Waits for every ack of a published batch, then records it.
    async fn record_when_acked(&self, conn: &mut PgConnection, batch: InFlight) -> Result<(), RelayError> {
        for (ack, entry) in batch.acks.into_iter().zip(&batch.entries) {
            let ack = ack.await.map_err(nats)?;
            if ack.sequence != entry.log_position || ack.duplicate {
                return Err(RelayError::Inconsistent(format!(
                    "event {} landed at stream sequence {} (duplicate: {}), expected {}",
                    entry.event_id, ack.sequence, ack.duplicate, entry.log_position
                )));
            }
        }
        tail::record(conn, &batch.entries).await?;
        let last = batch.entries.last().map_or(0, |e| e.log_position);
        self.stats.published.fetch_add(batch.entries.len() as u64, Ordering::Relaxed);
        self.stats.log_position.store(last, Ordering::Relaxed);
        Ok(())
    }

    fn message(&self, event: &StoredEvent, hash: &str) -> Result<(String, Publish), RelayError> {
        let body = Envelope::of(event, hash)?;
        let payload = serde_json::to_vec(&body)
            .map_err(|e| RelayError::Inconsistent(format!("event {} cannot be written: {e}", event.event_id)))?;
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", event.event_id.to_string().as_str());
        headers.insert(layout::HEADER_GLOBAL_POSITION, event.global_position.to_string().as_str());
        headers.insert(layout::HEADER_SEQUENCE, event.sequence.to_string().as_str());
        headers.insert(layout::HEADER_EVENT_TYPE, header_value(&event.event_type).as_ref());
        headers.insert(layout::HEADER_EVENT_VERSION, header_value(&event.event_version).as_ref());
        headers.insert(layout::HEADER_RECORDED_AT, event.recorded_at.to_rfc3339().as_str());
        headers.insert(layout::HEADER_HASH, hash);
        let metadata = &body.metadata;
        for (key, header) in [
            (framecart_domain::metadata::CORRELATION_ID, layout::HEADER_CORRELATION_ID),
            (framecart_domain::metadata::CAUSATION_ID, layout::HEADER_CAUSATION_ID),
        ] {
            if let Some(value) = metadata.get(key).filter(|v| !v.is_empty()) {
                headers.insert(header, header_value(value).as_ref());
            }
        }
        let subject = self.ns.event_subject(
            &subject_token(&event.aggregate_type),
            &subject_token(&event.aggregate_id),
            &subject_token(&event.event_type),
        );
        Ok((subject, Publish::build().payload(Bytes::from(payload)).headers(headers)))
    }
}

/// A message body: a [`LoggedEvent`] (same fields, same order), its metadata written in
/// key order, so that one stored event and hash always make the same bytes. A restored
/// message is then byte for byte the one first published.
#[derive(Serialize)]
struct Envelope<'a> {
    event_id: uuid::Uuid,
    global_position: i64,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    sequence: i64,
    event_type: &'a str,
    event_version: &'a str,
    /// The stored text, byte for byte.
    payload: &'a RawValue,
    metadata: BTreeMap<String, String>,
    recorded_at: DateTime<Utc>,
    hash: &'a str,
}

impl<'a> Envelope<'a> {
    fn of(event: &'a StoredEvent, hash: &'a str) -> Result<Self, RelayError> {
        let bad = |what: &str, e: serde_json::Error| {
            RelayError::Inconsistent(format!("event {} has invalid {what} JSON: {e}", event.event_id))
        };
        Ok(Self {
            event_id: event.event_id,
            global_position: event.global_position,
            aggregate_type: &event.aggregate_type,
            aggregate_id: &event.aggregate_id,
            sequence: event.sequence,
            event_type: &event.event_type,
            event_version: &event.event_version,
            payload: serde_json::from_str(&event.payload).map_err(|e| bad("payload", e))?,
            metadata: metadata_map(&event.metadata),
            recorded_at: event.recorded_at,
            hash,
        })
    }
}

fn hashed_fields(event: &StoredEvent) -> HashedFields<'_> {
    HashedFields {
        event_id: event.event_id,
        aggregate_type: &event.aggregate_type,
        aggregate_id: &event.aggregate_id,
        sequence: event.sequence,
        event_type: &event.event_type,
        event_version: &event.event_version,
        payload: &event.payload,
        metadata: &event.metadata,
        recorded_at: event.recorded_at,
    }
}

/// A header value for a stored text: as it is, or, if it holds a control character (a
/// line break would end the header), its JSON string form, which has none.
fn header_value(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(char::is_control) {
        std::borrow::Cow::Owned(serde_json::Value::from(s).to_string())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// A subject token for a stored name. Our aggregate ids are UUIDs and canonical ids, so
/// this is the identity; anything else is hex-encoded rather than left to block the log.
fn subject_token(s: &str) -> String {
    if is_subject_token(s) { s.to_owned() } else { format!("x{}", hex::encode(s)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(metadata: &str) -> StoredEvent {
        StoredEvent {
            tx_id_text: "7".into(),
            global_position: 3,
            event_id: uuid::Uuid::from_u128(9),
            aggregate_type: "click".into(),
            aggregate_id: "a".into(),
            sequence: 1,
            event_type: "ClickRecorded".into(),
            event_version: "1.0".into(),
            payload: r#"{"ClickRecorded": {"z": 1, "a": [1.50, 2]}}"#.into(),
            metadata: metadata.into(),
            recorded_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("time"),
        }
    }

    #[test]
    fn a_body_is_a_logged_event_written_the_same_every_time() {
        let event = stored(r#"{"request_id": "r", "correlation_id": "c", "actor": "x", "causation_id": "k"}"#);
        let bytes = serde_json::to_vec(&Envelope::of(&event, "h").expect("an envelope")).expect("bytes");
        for _ in 0..20 {
            let again = stored(r#"{"causation_id": "k", "actor": "x", "request_id": "r", "correlation_id": "c"}"#);
            assert_eq!(serde_json::to_vec(&Envelope::of(&again, "h").expect("an envelope")).expect("bytes"), bytes);
        }
        let text = String::from_utf8(bytes.clone()).expect("UTF-8");
        assert!(text.contains(r#""payload":{"ClickRecorded": {"z": 1, "a": [1.50, 2]}}"#), "stored text kept: {text}");
        assert!(text.contains(r#""metadata":{"actor":"x","causation_id":"k","correlation_id":"c","request_id":"r"}"#));
        let logged: LoggedEvent = serde_json::from_slice(&bytes).expect("a logged event");
        assert_eq!((logged.event_id, logged.global_position, logged.hash.as_str()), (event.event_id, 3, "h"));
        assert_eq!(logged.recorded_at, event.recorded_at);
        assert_eq!(logged.metadata.len(), 4);
    }

    #[test]
    fn any_stored_text_makes_a_header_value() {
        assert_eq!(header_value("ProductCreated"), "ProductCreated");
        assert_eq!(header_value("a\r\nb"), "\"a\\r\\nb\"");
    }

    #[test]
    fn stored_names_always_make_valid_subject_tokens() {
        assert_eq!(subject_token("VESeA6leQuk"), "VESeA6leQuk");
        assert_eq!(subject_token("1.2.3.4"), "x312e322e332e34");
        assert_eq!(subject_token(""), "x");
    }
}
