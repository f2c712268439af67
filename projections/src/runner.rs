//! The projection runner: one durable pull consumer per projection, batches applied in
//! one Postgres transaction together with the checkpoint, acks after the commit.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use async_trait::async_trait;
use framecart_domain::log::{LoggedEvent, Namespace};
use futures::StreamExt;
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::quarantine::{self, SetAside};
use crate::{indexes, notices, recorded};

/// One read model fed from the log.
#[async_trait]
pub trait Projection: Send + Sync {
    /// Stable name: the checkpoint row, the consumer name, the CLI argument.
    fn name(&self) -> &'static str;

    /// The one subject filter of its consumer on NATS 2.9, which allows only one per
    /// consumer: it may let through more than the projection applies (see [`Self::wants`]).
    fn filter_subject(&self, ns: &Namespace) -> String;

    /// The subjects of exactly what it applies, for NATS 2.10 and later, which filter a
    /// consumer on several subjects: the server then delivers nothing to skip.
    fn filter_subjects(&self, ns: &Namespace) -> Vec<String> {
        vec![self.filter_subject(ns)]
    }

    /// Its tables, emptied when it is rebuilt.
    fn tables(&self) -> &'static [&'static str];

    /// Secondary indexes of its tables that its applying never reads: a rebuild drops
    /// them and builds them once it has caught up ([`crate::indexes`]).
    fn deferrable_indexes(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether it applies events of this aggregate type and event type (read from the
    /// subject, before the body is decoded). The others its filter lets through are only
    /// counted past: not decoded, and their checkpoint written within
    /// [`SAVE_SKIPPED_AFTER`] rather than in a transaction of their own.
    fn wants(&self, _aggregate_type: &str, _event_type: &str) -> bool {
        true
    }

    /// Applies one event inside the batch's transaction. Events it does not know are
    /// ignored, so new event types never stall an old projection.
    async fn apply(&self, tx: &mut PgConnection, event: &LoggedEvent, log_position: i64)
    -> Result<(), ProjectionError>;

    /// Applies a batch of events, in log order, inside one transaction. The default applies
    /// them one by one; a projection with many small events can write them together.
    async fn apply_all(&self, tx: &mut PgConnection, events: &[(LoggedEvent, i64)]) -> Result<(), ProjectionError> {
        for (event, log_position) in events {
            self.apply(tx, event, *log_position).await?;
        }
        Ok(())
    }

    /// For a projection that writes files after its commits: the log position up to
    /// which every event it applied (up to `applied`, its checkpoint) is in its files.
    /// `None` for a projection that writes no files.
    async fn files_up_to(&self, _pool: &PgPool, _applied: i64) -> Result<Option<i64>, ProjectionError> {
        Ok(None)
    }

    /// Waits until the work of [`Self::after_commit`] is done (a rebuild or a retry from
    /// the command line ends only then). By default that work is done within the call.
    async fn finish(&self, pool: &PgPool) -> Result<(), ProjectionError> {
        self.after_commit(pool).await
    }

    /// Work that follows a committed batch (files). Must be idempotent: it also runs on
    /// start, to finish what a crash interrupted.
    async fn after_commit(&self, _pool: &PgPool) -> Result<(), ProjectionError> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("JetStream: {0}")]
    Nats(String),
    #[error("event at log position {position} cannot be read: {reason}")]
    Decode { position: u64, reason: String },
    #[error(transparent)]
    File(#[from] crate::files::MediaFileError),
    #[error("the projection is being rebuilt")]
    Rebuilt,
    #[error("no projection is called {0:?}")]
    Unknown(String),
    /// An event the projection cannot apply, whatever happens around it (a value its view
    /// refuses, a reference to something that never existed): it is set aside.
    #[error("event at log position {position} cannot be applied: {reason}")]
    Invalid { position: u64, reason: String },
    #[error("{0}")]
    Internal(String),
}

impl ProjectionError {
    /// True when the event itself is at fault, so applying it again cannot succeed until
    /// the code changes: it is set aside and the view goes on. Anything else (an outage,
    /// a conflict, a rebuild) stops the batch, which is tried again.
    pub fn is_poison(&self) -> bool {
        match self {
            Self::Decode { .. } | Self::Invalid { .. } => true,
            // Class 22: data exception (NUL in text, a number out of range, …); class 23:
            // integrity constraint violation. Both are about the values, not the moment.
            Self::Database(sqlx::Error::Database(e)) => {
                e.code().is_some_and(|code| code.starts_with("22") || code.starts_with("23"))
            }
            Self::Database(sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::Encode(_)) => true,
            _ => false,
        }
    }
}

fn nats(e: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Nats(e.to_string())
}

/// Whether a consumer's delete failed because there was no such consumer.
fn consumer_absent(e: &jetstream::stream::ConsumerError) -> bool {
    matches!(e.kind(), jetstream::stream::ConsumerErrorKind::JetStream(js)
        if js.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND)
}

/// Decodes an event's payload; a failure names the log position.
pub fn decode<E: framecart_domain::upcast::Upcast>(
    event: &LoggedEvent,
    log_position: i64,
) -> Result<E, ProjectionError> {
    event.decode().map_err(|e| undecodable(log_position, e))
}

/// What cannot be read at a log position.
pub(crate) fn undecodable(log_position: i64, reason: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Decode { position: u64::try_from(log_position).unwrap_or(0), reason: reason.to_string() }
}

/// SQLSTATE of a lock wait that ran out (`lock_timeout`).
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// How often an idle consumer says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// Most messages applied in one transaction. Live, a batch is what has arrived (the
/// stream's messages are taken as they are ready); catching up, it is this many: a rebuild
/// of `clicks` from 100k events took 8.1 s with 500, 5.3 s with 5,000.
pub const BATCH: usize = 5000;
/// How long a batch waits for more messages before it is applied, while messages come
/// at [`LINGER_FROM`] a second or more. Each batch costs a transaction, a checkpoint
/// update and an ack whatever its size: at 2,000 clicks/s, waiting 50 ms cut the CPU a
/// click costs by 4-11 % (all processes, about 780 µs against 840 µs), where 100 ms cut
/// about 20 µs more at twice the lag.
/// Below that rate (a viewer's click on a quiet server) each batch is applied at once.
const LINGER: Duration = Duration::from_millis(50);
/// The rate of messages, a second, from which batches linger.
const LINGER_FROM: f64 = 1000.0;
/// A batch this large is applied at once, and after one with this many messages still
/// to come (catching up, a rebuild) the next does not linger.
const LINGER_BELOW: usize = 500;

/// When a lingering batch of `messages`, the first read at `since`, is applied.
fn ripe_at(messages: usize, since: tokio::time::Instant) -> tokio::time::Instant {
    if messages >= LINGER_BELOW { tokio::time::Instant::now().min(since + LINGER) } else { since + LINGER }
}

/// Whether the next batch lingers, after one of `messages` that came over `over` with
/// `backlog` messages still to come behind it.
fn lingers(messages: usize, over: Duration, backlog: u64) -> bool {
    backlog < LINGER_BELOW as u64 && messages as f64 >= LINGER_FROM * over.as_secs_f64()
}
/// How often an idle runner checks for a rebuild (and, when rebuilding, for the end), and
/// how often `rebuild` reports progress: a rebuild of 100k events takes about a second,
/// which a half-second poll would dominate.
const CHECK_EVERY: Duration = Duration::from_millis(100);
/// How often `rebuild` looks whether a server has finished it: a handful of lookups, for
/// the few seconds a rebuild lasts; 100 ms added 50 ms on average to a rebuild of 1.7 s.
const DONE_EVERY: Duration = Duration::from_millis(20);
/// How often an idle runner retries the work owed after its commits (files).
const AFTER_COMMIT_EVERY: u32 = 5;
/// How long the position of events a projection only counted past may go unsaved. After
/// a crash they are read (and skipped) again; nothing else depends on it.
pub const SAVE_SKIPPED_AFTER: Duration = Duration::from_millis(200);

pub struct ProjectionRunner {
    pool: PgPool,
    js: jetstream::Context,
    ns: Namespace,
    projection: Arc<dyn Projection>,
    /// The backlog from which it catches up from the store ([`recorded::FROM_STORE_ABOVE`]).
    from_store_above: u64,
    /// The last log position it applied from the store (0: none yet).
    caught_up_from_store: std::sync::atomic::AtomicI64,
    /// Rebuild requests as this process hears them ([`notices`]), beside its own checks.
    notices: Option<notices::RebuildNotices>,
    /// How often it checks for a rebuild while it leads ([`CHECK_EVERY`]).
    check_every: Duration,
}

/// One message of the log as the runner reads it: from a consumer's batch, or fetched
/// again by its position to retry it.
#[derive(Clone, Copy)]
struct Raw<'m> {
    log_position: i64,
    subject: &'m str,
    payload: &'m [u8],
    msg_id: Option<&'m str>,
}

impl<'m> Raw<'m> {
    fn of(message: &'m jetstream::Message, log_position: i64) -> Self {
        Self {
            log_position,
            subject: message.subject.as_str(),
            payload: &message.payload,
            msg_id: message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.as_str()),
        }
    }
}

/// A message of a batch as the applier gets it: read as an event at its log position, or
/// set aside because it could not be read.
pub(crate) type Read = Result<(LoggedEvent, i64), Box<SetAside>>;

/// A batch as the reader hands it to the applier: the messages this projection applies,
/// already read, the position of the batch's last message, and that message, whose ack
/// acknowledges the batch.
struct Fetched {
    events: Vec<Read>,
    last: i64,
    messages: usize,
    ack: jetstream::Message,
    /// When its first message was read.
    since: tokio::time::Instant,
}

impl Fetched {
    fn extend(&mut self, more: Fetched) {
        self.since = self.since.min(more.since);
        self.events.extend(more.events);
        self.last = more.last;
        self.messages += more.messages;
        self.ack = more.ack;
    }
}

/// Where the reader leaves what it read for the applier: one batch that grows while the
/// applier is busy (up to [`BATCH`] messages), so catching up applies large batches and a
/// live projection small ones, at once (while messages come fast, after [`LINGER`]).
/// While the database writes one batch, the next is received and read (the events' JSON
/// parsed) on the reader's task: the two took turns before, and a rebuild left a third of
/// the machine idle.
#[derive(Default)]
struct Slot {
    state: std::sync::Mutex<SlotState>,
    /// The reader put messages in the slot (or ended).
    filled: tokio::sync::Notify,
    /// The applier took the batch.
    taken: tokio::sync::Notify,
}

#[derive(Default)]
struct SlotState {
    batch: Option<Fetched>,
    /// Why the reader stopped, once it has: handed over after the batches before it.
    ended: Option<ProjectionError>,
}

impl Slot {
    fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// When the batch waiting should be taken: at once when it is large or the reader
    /// ended, else once its first message has waited [`LINGER`] (`None`: nothing waits).
    fn ripe_at(&self) -> Option<tokio::time::Instant> {
        let state = self.state();
        if state.ended.is_some() {
            return Some(tokio::time::Instant::now());
        }
        state.batch.as_ref().map(|batch| ripe_at(batch.messages, batch.since))
    }

    /// Whether a batch, or why the reader ended, waits to be taken.
    fn waiting(&self) -> bool {
        let state = self.state();
        state.batch.is_some() || state.ended.is_some()
    }

    /// The batch waiting, else why the reader ended, else nothing yet.
    fn take(&self) -> Option<Result<Fetched, ProjectionError>> {
        let mut state = self.state();
        let taken = match state.batch.take() {
            Some(batch) => Some(Ok(batch)),
            None => state.ended.take().map(Err),
        };
        // Why the reader ended is still to be taken, after this batch.
        let more = state.ended.is_some();
        drop(state);
        self.taken.notify_one();
        if more {
            self.filled.notify_one();
        }
        taken
    }
}

/// What [`ProjectionRunner::retry`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Retried {
    /// Applied now, and no longer set aside.
    pub applied: u64,
    /// Still unreadable or unappliable: left set aside, with the new error.
    pub still_set_aside: u64,
}

/// The text whose `hashtext` is the advisory lock the runner of `projection` holds while
/// it applies it (`pg_locks` shows the holder, and the standbys waiting for it).
pub fn lock_key(projection: &str) -> String {
    format!("framecart:projection:{projection}")
}

/// Why a leading runner stopped without an error.
enum Ended {
    Shutdown,
    /// `until_caught_up` was asked and nothing is pending.
    CaughtUp,
}

impl ProjectionRunner {
    pub fn new(pool: PgPool, js: jetstream::Context, ns: Namespace, projection: Arc<dyn Projection>) -> Self {
        Self {
            pool,
            js,
            ns,
            projection,
            from_store_above: recorded::FROM_STORE_ABOVE,
            caught_up_from_store: std::sync::atomic::AtomicI64::new(0),
            notices: None,
            check_every: CHECK_EVERY,
        }
    }

    /// Hears rebuild requests from `notices` as they are made, beside its own checks.
    #[must_use]
    pub fn hearing_rebuilds(mut self, notices: &notices::RebuildNotices) -> Self {
        self.notices = Some(notices.clone());
        self
    }

    /// Checks for a rebuild (and the rest of its periodic work) every `every` instead
    /// of every [`CHECK_EVERY`].
    #[must_use]
    pub fn checking_every(mut self, every: Duration) -> Self {
        self.check_every = every;
        self
    }

    /// Catches up from the store from a backlog of about `events` it applies (the default
    /// is [`recorded::FROM_STORE_ABOVE`]; `u64::MAX`: never).
    #[must_use]
    pub fn catching_up_from_store_above(mut self, events: u64) -> Self {
        self.from_store_above = events;
        self
    }

    /// The last log position this runner applied from the store (0: none).
    pub fn caught_up_from_store(&self) -> i64 {
        self.caught_up_from_store.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn lock_key(&self) -> String {
        lock_key(self.projection.name())
    }

    fn consumer_name(&self) -> String {
        self.ns.consumer_name(&format!("proj_{}", self.projection.name()))
    }

    /// Runs until `shutdown`: stands by while another process applies this projection,
    /// takes over when it can, and starts over after errors and rebuilds.
    pub async fn run(self, shutdown: CancellationToken) {
        let name = self.projection.name();
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.elect_and_lead(&shutdown, false).await {
                Ok(_) => return,
                Err(ProjectionError::Rebuilt) => {
                    tracing::info!(projection = name, "rebuild requested; replaying from the start");
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    tracing::warn!(projection = name, error = %e, "projection stopped; starting over");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Waits until this process holds the projection, then applies it.
    async fn elect_and_lead(
        &self,
        shutdown: &CancellationToken,
        until_caught_up: bool,
    ) -> Result<Ended, ProjectionError> {
        let mut conn = self.pool.acquire().await?.detach();
        let elected: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
            .bind(self.lock_key())
            .fetch_one(&mut conn)
            .await?;
        if !elected {
            // A standby waits on the lock itself, half a second at a time (to notice a
            // stop, and under sqlx's one-second report of slow statements): `pg_locks`
            // shows it waiting, so `projections status` can list it, and it takes over the
            // moment the holder's session ends.
            sqlx::query("SET lock_timeout = '500ms'").execute(&mut conn).await?;
            loop {
                let waited = tokio::select! {
                    () = shutdown.cancelled() => return Ok(Ended::Shutdown),
                    waited = sqlx::query("SELECT pg_advisory_lock(hashtext($1))").bind(self.lock_key()).execute(&mut conn) => waited,
                };
                match waited {
                    Ok(_) => break,
                    Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(LOCK_NOT_AVAILABLE) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            sqlx::query("SET lock_timeout = 0").execute(&mut conn).await?;
        }
        let result = self.lead(&mut conn, shutdown, until_caught_up).await;
        let _ = conn.close().await; // releases the lock
        result
    }

    async fn lead(
        &self,
        conn: &mut PgConnection,
        shutdown: &CancellationToken,
        until_caught_up: bool,
    ) -> Result<Ended, ProjectionError> {
        let name = self.projection.name();
        // The views are derived from a durable log and committed with their checkpoint, so
        // a crash can lose only whole batches, which are then applied again: commits on
        // this connection need not wait for the disk.
        sqlx::query("SET synchronous_commit = off").execute(&mut *conn).await?;
        // A batch's arrays are joined with views that keep growing; a generic plan cached
        // while a view was small keeps scanning all of it (measured: 3.8 ms instead of
        // 0.3 ms per batch of verdicts at 10k clicks). Each statement is planned for the
        // table as it is, at a few tens of microseconds per batch statement.
        sqlx::query("SET plan_cache_mode = force_custom_plan").execute(&mut *conn).await?;
        sqlx::query("INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(name)
            .execute(&mut *conn)
            .await?;
        let (applied, generation): (i64, i64) =
            sqlx::query_as("SELECT last_sequence, generation FROM projection_checkpoints WHERE name = $1")
                .bind(name)
                .fetch_one(&mut *conn)
                .await?;
        // Indexes a rebuild dropped (this generation's, or one a crash interrupted).
        let mut deferred = indexes::deferred(&mut *conn, name).await? > 0;
        self.projection.after_commit(&self.pool).await?;
        // A long backlog (a rebuild, a long stop) of events this projection applies: from
        // the store, then the stream. Decided from a sample of the store's record, not from
        // a consumer's pending count: creating a consumer at the start of a long stream
        // took NATS 70-80 ms (300-460 ms with a dozen at once) at 100k events, and grows
        // with the stream; at the caught-up position it takes a few.
        let mut from = applied;
        if let Some(filter) = recorded::StoreFilter::of(&self.ns, self.projection.as_ref())
            && recorded::wanted_backlog(&self.pool, self.projection.as_ref(), &filter, applied).await?
                >= self.from_store_above
        {
            self.delete_consumer().await?;
            from = self.catch_up_from_store(conn, shutdown, generation, applied, &filter).await?;
            if shutdown.is_cancelled() {
                return Ok(Ended::Shutdown);
            }
        }
        let consumer = self.recreate_consumer(from).await?;
        // Said only once the consumer of this generation exists: a rebuild that waits for
        // it then reads that consumer, not the one it replaced. (A rebuild requested in
        // between is caught by the generation check of the next batch.)
        sqlx::query("UPDATE projection_checkpoints SET leader_generation = $2 WHERE name = $1")
            .bind(name)
            .bind(generation)
            .execute(&mut *conn)
            .await?;
        tracing::info!(projection = name, applied, generation, "projection running");

        let messages = consumer
            .stream()
            .max_messages_per_batch(BATCH)
            // Two missed heartbeats end the stream and the runner starts over: a consumer
            // lost with its stream (a NATS server that lost its store, restored by the
            // relay) is noticed within seconds, not after a long idle wait.
            .heartbeat(HEARTBEAT)
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(nats)?
            .ready_chunks(BATCH);
        let slot = Arc::new(Slot::default());
        let _reader = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(read_batches(
            messages,
            self.ns.clone(),
            Arc::clone(&self.projection),
            Arc::clone(&slot),
        )));
        let mut tick = tokio::time::interval(self.check_every);
        let mut ticks: u32 = 0;
        let mut heard = self.notices.as_ref().map(notices::RebuildNotices::subscribe);
        // Events only counted past, not yet in the checkpoint, and when to save them.
        let mut skipped: Option<(i64, tokio::time::Instant)> = None;
        // Whether batches wait for more messages ([`LINGER`]), and when the last was taken.
        let (mut lingering, mut last_taken) = (false, tokio::time::Instant::now());
        loop {
            let save_skipped = async {
                match skipped {
                    Some((_, at)) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => {
                    self.save_skipped(conn, generation, skipped.take()).await?;
                    return Ok(Ended::Shutdown);
                }
                () = save_skipped => {
                    self.save_skipped(conn, generation, skipped.take()).await?;
                }
                notice = notices::next(&mut heard) => {
                    // Another projection's rebuild, or (`None`) perhaps this one's.
                    if notice.is_none_or(|projection| projection == name) && rebuilt_since(conn, name, generation).await? {
                        return Err(ProjectionError::Rebuilt);
                    }
                }
                _ = tick.tick() => {
                    if rebuilt_since(conn, name, generation).await? {
                        return Err(ProjectionError::Rebuilt);
                    }
                    // Work owed from earlier batches (files, commands) is retried here too.
                    // A batch left in the slot is taken now, whatever became of its
                    // wake-up (cheap insurance: the reader wakes the applier each time).
                    if slot.waiting() {
                        slot.filled.notify_one();
                    }
                    ticks = ticks.wrapping_add(1);
                    if ticks.is_multiple_of(AFTER_COMMIT_EVERY) {
                        self.projection.after_commit(&self.pool).await?;
                    }
                    if deferred || until_caught_up {
                        // Caught up: nothing left to deliver, and nothing delivered unapplied.
                        let mut consumer = consumer.clone();
                        let info = consumer.info().await.map_err(nats)?;
                        if info.num_pending == 0 && info.num_ack_pending == 0 {
                            if deferred {
                                self.build_deferred(conn, generation).await?;
                                deferred = false;
                            }
                            if until_caught_up {
                                self.save_skipped(conn, generation, skipped.take()).await?;
                                self.projection.finish(&self.pool).await?;
                                return Ok(Ended::CaughtUp);
                            }
                        }
                    }
                }
                () = slot.filled.notified() => {
                    if lingering && let Some(at) = slot.ripe_at() {
                        tokio::time::sleep_until(at).await;
                    }
                    let Some(fetched) = slot.take() else { continue };
                    let fetched = fetched?;
                    // The rate the messages of this batch came at decides whether the next
                    // lingers; catching up (a large backlog behind it), it never does.
                    let pending = fetched.ack.info().ok().map(|info| info.pending);
                    lingering = lingers(fetched.messages, last_taken.elapsed(), pending.unwrap_or(0));
                    last_taken = tokio::time::Instant::now();
                    let started = std::time::Instant::now();
                    let applied = fetched.events.len();
                    if fetched.events.is_empty() {
                        // Nothing to apply: the position is saved a little later, with the
                        // next applied batch or on its own.
                        let at = skipped.map_or_else(|| tokio::time::Instant::now() + SAVE_SKIPPED_AFTER, |(_, at)| at);
                        skipped = Some((fetched.last, at));
                    } else {
                        self.apply_batch(conn, generation, fetched.events, fetched.last).await?;
                        skipped = None;
                    }
                    // Caught up with the log: the rebuild's indexes are built now.
                    if deferred && pending == Some(0) {
                        self.build_deferred(conn, generation).await?;
                        deferred = false;
                    }
                    let applied_ms = started.elapsed().as_millis() as u64;
                    if applied > 0 {
                        self.projection.after_commit(&self.pool).await?;
                    }
                    // One ack for the batch: the consumer acknowledges everything up to it.
                    fetched.ack.ack().await.map_err(nats)?;
                    tracing::debug!(
                        projection = name,
                        messages = fetched.messages,
                        applied,
                        applied_ms,
                        total_ms = started.elapsed().as_millis() as u64,
                        "batch"
                    );
                }
            }
        }
    }

    /// Applies the backlog from the store's record of the log ([`recorded`]) while it is
    /// at least [`Self::catching_up_from_store_above`] positions long; returns the position
    /// applied last, from which the stream delivers the rest. The batches are read on a
    /// task of their own ([`recorded::read_ahead`]), so reading one (Postgres, and the
    /// rows parsed here) takes the other core while this one applies the last.
    async fn catch_up_from_store(
        &self,
        conn: &mut PgConnection,
        shutdown: &CancellationToken,
        generation: i64,
        mut applied: i64,
        filter: &recorded::StoreFilter,
    ) -> Result<i64, ProjectionError> {
        let name = self.projection.name();
        let (from, started) = (applied, std::time::Instant::now());
        let (batches, mut read) = tokio::sync::mpsc::channel(1);
        let _reader = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(recorded::read_ahead(
            recorded::ReadAhead {
                pool: self.pool.clone(),
                ns: self.ns.clone(),
                projection: Arc::clone(&self.projection),
                filter: filter.clone(),
                limit: i64::try_from(BATCH).unwrap_or(i64::MAX),
                while_behind: self.from_store_above,
            },
            applied,
            batches,
        )));
        loop {
            let waiting = std::time::Instant::now();
            let Some(batch) = read.recv().await else { break };
            let batch = batch?;
            if shutdown.is_cancelled() {
                break;
            }
            let (waited, applying) = (waiting.elapsed(), std::time::Instant::now());
            let (positions, events, last) = (batch.positions, batch.events.len(), batch.last);
            self.apply_batch(conn, generation, batch.events, last).await?;
            tracing::debug!(
                projection = name,
                positions,
                applied = events,
                applied_ms = applying.elapsed().as_millis() as u64,
                waited_ms = waited.as_millis() as u64,
                "batch from the store"
            );
            applied = last;
            self.caught_up_from_store.store(last, std::sync::atomic::Ordering::Relaxed);
            self.projection.after_commit(&self.pool).await?;
        }
        tracing::info!(
            projection = name,
            from,
            to = applied,
            ms = started.elapsed().as_millis() as u64,
            "caught up from the store's record of the log; the stream delivers the rest"
        );
        Ok(applied)
    }

    /// Builds the indexes a rebuild deferred, all at once, each in a transaction of its own
    /// on a connection of its own that holds the checkpoint (shared with the others, so a
    /// rebuild requested meanwhile waits, and this applier then starts over).
    async fn build_deferred(&self, conn: &mut PgConnection, generation: i64) -> Result<(), ProjectionError> {
        let name = self.projection.name();
        let started = std::time::Instant::now();
        let waiting = indexes::deferred_names(&mut *conn, name).await?;
        let builds = waiting.iter().map(|index| async move {
            let mut tx = self.pool.begin().await?;
            let current: i64 =
                sqlx::query_scalar("SELECT generation FROM projection_checkpoints WHERE name = $1 FOR SHARE")
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?;
            if current != generation {
                return Err(ProjectionError::Rebuilt);
            }
            let built = indexes::build(&mut tx, name, index).await?;
            tx.commit().await?;
            Ok::<_, ProjectionError>(built)
        });
        let built = futures::future::try_join_all(builds).await?.into_iter().filter(|built| *built).count();
        tracing::info!(projection = name, built, ms = started.elapsed().as_millis() as u64, "deferred indexes built");
        Ok(())
    }

    /// Saves the position of events only counted past.
    async fn save_skipped(
        &self,
        conn: &mut PgConnection,
        generation: i64,
        skipped: Option<(i64, tokio::time::Instant)>,
    ) -> Result<(), ProjectionError> {
        match skipped {
            Some((last, _)) => self.apply_batch(conn, generation, Vec::new(), last).await,
            None => Ok(()),
        }
    }

    /// Deletes the last leader's consumer; returns the stream. Only its absence is fine: a
    /// delete that failed otherwise (timed out while the stream's leader moved) left it
    /// there, and creating over it would fail ("deliver policy can not be updated") or,
    /// worse, read on from where it stood. The runner starts over and deletes again.
    async fn delete_consumer(&self) -> Result<jetstream::stream::Stream, ProjectionError> {
        let stream = self.js.get_stream(self.ns.stream_name()).await.map_err(nats)?;
        let name = self.consumer_name();
        match stream.delete_consumer(&name).await {
            Ok(_) => Ok(stream),
            Err(e) if consumer_absent(&e) => Ok(stream),
            Err(e) => Err(ProjectionError::Nats(format!("deleting the consumer {name}: {e}"))),
        }
    }

    /// The consumer is only a cursor; the checkpoint in Postgres is the truth. Recreating
    /// it at the checkpoint + 1 means nothing applied is lost and nothing is skipped,
    /// whatever acks or asynchronous commits a crash lost.
    async fn recreate_consumer(&self, applied: i64) -> Result<consumer::PullConsumer, ProjectionError> {
        let applied = u64::try_from(applied).unwrap_or(0);
        let stream = self.delete_consumer().await?;
        let name = self.consumer_name();
        let deliver_policy = if applied == 0 {
            consumer::DeliverPolicy::All
        } else {
            consumer::DeliverPolicy::ByStartSequence { start_sequence: applied + 1 }
        };
        let (filter_subject, filter_subjects) = match self.projection.filter_subjects(&self.ns) {
            mut one if one.len() == 1 => (one.remove(0), Vec::new()),
            several if several_filters(&self.js) => (String::new(), several),
            _ => (self.projection.filter_subject(&self.ns), Vec::new()),
        };
        // Created, never taken over: should the old one be there still (a delete that
        // answered before the cluster applied it), this fails and the runner starts over.
        stream
            .create_consumer_strict(consumer::pull::Config {
                durable_name: Some(name),
                description: Some(format!("projection {}", self.projection.name())),
                filter_subject,
                filter_subjects,
                deliver_policy,
                // Acknowledged explicitly, a batch at a time: acking the last message of a batch
                // acknowledges all before it. (Correctness never rests on the consumer's ack
                // state: the checkpoint in Postgres is the truth.)
                ack_policy: consumer::AckPolicy::All,
                ack_wait: Duration::from_secs(60),
                max_ack_pending: 20_000,
                ..Default::default()
            })
            .await
            .map_err(nats)
    }

    /// Applies the wanted messages of a batch and moves the checkpoint to its last
    /// position, in one transaction. Events that cannot be decoded or applied are set
    /// aside in the same transaction.
    async fn apply_batch(
        &self,
        conn: &mut PgConnection,
        generation: i64,
        batch: Vec<Read>,
        last: i64,
    ) -> Result<(), ProjectionError> {
        let name = self.projection.name();
        let mut tx = conn.begin().await?;
        // Locks the checkpoint and moves it in one round trip; what it held before tells
        // what is applied already. Dropping `tx` (a rebuild, a redelivery) rolls it back.
        let (applied, current): (i64, i64) = sqlx::query_as(
            "UPDATE projection_checkpoints p
             SET last_sequence = GREATEST(old.last_sequence, $2), updated_at = clock_timestamp()
             FROM (SELECT last_sequence, generation FROM projection_checkpoints WHERE name = $1 FOR UPDATE) old
             WHERE p.name = $1
             RETURNING old.last_sequence, old.generation",
        )
        .bind(name)
        .bind(last)
        .fetch_one(&mut *tx)
        .await?;
        if current != generation {
            return Err(ProjectionError::Rebuilt);
        }
        if last <= applied {
            return Ok(()); // redelivered: applied already
        }
        let mut events = Vec::with_capacity(batch.len());
        let mut set_aside = Vec::new();
        for read in batch {
            match read {
                Ok((event, log_position)) if log_position > applied => events.push((event, log_position)),
                Err(aside) if aside.log_position > applied => set_aside.push(*aside),
                _ => {} // applied already
            }
        }
        self.apply_or_set_aside(&mut tx, &events, &mut set_aside).await?;
        quarantine::record(&mut tx, name, &set_aside).await?;
        tx.commit().await?;
        for aside in &set_aside {
            tracing::error!(
                projection = name,
                log_position = aside.log_position,
                event_id = ?aside.event_id,
                error = %aside.error,
                "event set aside: the view goes on without it (see `framecart projections status`)"
            );
        }
        Ok(())
    }

    /// Applies `events` as one batch; when one of them is at fault, applies them one by
    /// one, each under a savepoint, and sets aside those that fail. An error that is not
    /// the event's fault stops it all (the batch is tried again).
    async fn apply_or_set_aside(
        &self,
        tx: &mut PgConnection,
        events: &[(LoggedEvent, i64)],
        set_aside: &mut Vec<SetAside>,
    ) -> Result<(), ProjectionError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut whole = tx.begin().await?;
        match self.projection.apply_all(&mut whole, events).await {
            Ok(()) => return Ok(whole.commit().await?),
            Err(e) if e.is_poison() => whole.rollback().await?,
            Err(e) => return Err(e),
        }
        for one in events.chunks(1) {
            let mut savepoint = tx.begin().await?;
            match self.projection.apply_all(&mut savepoint, one).await {
                Ok(()) => savepoint.commit().await?,
                Err(e) if e.is_poison() => {
                    savepoint.rollback().await?;
                    let (event, log_position) = &one[0];
                    set_aside.push(SetAside::event(event, *log_position, &e));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Applies this projection's set-aside events again, oldest first, each in a
    /// transaction of its own that holds the checkpoint (so a running applier waits),
    /// and removes each one that succeeds. Safe while a server runs the projection.
    pub async fn retry(&self) -> Result<Retried, ProjectionError> {
        let name = self.projection.name();
        let positions: Vec<i64> = sqlx::query_scalar(
            "SELECT log_position FROM projection_quarantine WHERE projection = $1 ORDER BY log_position",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        let stream = self.js.get_stream(self.ns.stream_name()).await.map_err(nats)?;
        let mut retried = Retried::default();
        for log_position in positions {
            let sequence = u64::try_from(log_position).unwrap_or(0);
            let message = stream.direct_get(sequence).await.map_err(nats)?;
            let raw = Raw {
                log_position,
                subject: message.subject.as_str(),
                payload: &message.payload,
                msg_id: message.headers.get("Nats-Msg-Id").map(|v| v.as_str()),
            };
            let mut tx = self.pool.begin().await?;
            sqlx::query("SELECT 1 FROM projection_checkpoints WHERE name = $1 FOR UPDATE")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            // A rebuild since the list was read may have emptied it.
            let still: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM projection_quarantine WHERE projection = $1 AND log_position = $2 FOR UPDATE",
            )
            .bind(name)
            .bind(log_position)
            .fetch_optional(&mut *tx)
            .await?;
            if still.is_none() {
                continue;
            }
            let mut set_aside = Vec::new();
            match envelope(&self.ns, &raw) {
                Ok(event) => self.apply_or_set_aside(&mut tx, &[(event, log_position)], &mut set_aside).await?,
                Err(aside) => set_aside.push(*aside),
            }
            if set_aside.is_empty() {
                sqlx::query("DELETE FROM projection_quarantine WHERE projection = $1 AND log_position = $2")
                    .bind(name)
                    .bind(log_position)
                    .execute(&mut *tx)
                    .await?;
                retried.applied += 1;
            } else {
                quarantine::record(&mut tx, name, &set_aside).await?;
                retried.still_set_aside += 1;
            }
            tx.commit().await?;
        }
        if retried.applied > 0 {
            self.projection.finish(&self.pool).await?;
        }
        Ok(retried)
    }

    /// Empties the projection's views and replays it from sequence 1.
    ///
    /// When no process runs the projection, this one applies it until nothing is pending.
    /// When a server runs it, the server notices the new generation and replays; this call
    /// waits until it has caught up. `progress` hears `(applied, stream_last)` now and then.
    pub async fn rebuild(&self, progress: &(dyn Fn(u64, u64) + Sync)) -> Result<(), ProjectionError> {
        // Whether a server applies it is asked before the request: a server's runner hears
        // the request at once and lets go of the lock for a moment while it starts over,
        // and this command would then take it (in two of three bench runs) and replay the
        // projection itself, on its own cores' share, while the server stood by.
        let mut conn = self.pool.acquire().await?.detach();
        let elected: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
            .bind(self.lock_key())
            .fetch_one(&mut conn)
            .await?;
        let generation = match request_rebuild(&self.pool, self.projection.as_ref()).await {
            Ok(generation) => generation,
            Err(e) => {
                let _ = conn.close().await;
                return Err(e);
            }
        };
        if elected {
            let never = CancellationToken::new();
            let result = tokio::select! {
                r = self.lead(&mut conn, &never, true) => r.map(|_| ()),
                () = self.watch_progress(progress) => Ok(()),
            };
            let _ = conn.close().await;
            return result;
        }
        let _ = conn.close().await;
        // A server applies it: wait until it took the new generation and drained.
        let mut consumer_missing_since: Option<std::time::Instant> = None;
        let mut reported: Option<std::time::Instant> = None;
        let stream = self.js.get_stream(self.ns.stream_name()).await.map_err(nats)?;
        loop {
            tokio::time::sleep(DONE_EVERY).await;
            let (leader, applied): (i64, i64) =
                sqlx::query_as("SELECT leader_generation, last_sequence FROM projection_checkpoints WHERE name = $1")
                    .bind(self.projection.name())
                    .fetch_one(&self.pool)
                    .await?;
            if reported.is_none_or(|at| at.elapsed() >= CHECK_EVERY) {
                progress(u64::try_from(applied).unwrap_or(0), self.stream_last().await?);
                reported = Some(std::time::Instant::now());
            }
            if leader != generation {
                continue;
            }
            // Absent for a moment while a runner that starts over recreates it; absent for
            // long, no server applies this projection on this NATS (a wrong `NATS_URL`).
            let info = match stream.consumer_info(self.consumer_name()).await {
                Ok(info) => info,
                Err(e) => {
                    let since = *consumer_missing_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() > Duration::from_secs(30) {
                        return Err(ProjectionError::Nats(format!(
                            "the consumer of {} has been unreadable for 30 s ({e}): does a server apply it \
                             on this NATS?",
                            self.projection.name()
                        )));
                    }
                    continue;
                }
            };
            consumer_missing_since = None;
            // The server writes files after its commits: the rebuild is done when they are.
            if info.num_pending == 0
                && info.num_ack_pending == 0
                && self.projection.files_up_to(&self.pool, applied).await?.is_none_or(|files| files >= applied)
                && indexes::deferred(&self.pool, self.projection.name()).await? == 0
            {
                return Ok(());
            }
        }
    }

    async fn stream_last(&self) -> Result<u64, ProjectionError> {
        let mut stream = self.js.get_stream(self.ns.stream_name()).await.map_err(nats)?;
        Ok(stream.info().await.map_err(nats)?.state.last_sequence)
    }

    /// Reports progress until dropped.
    async fn watch_progress(&self, progress: &(dyn Fn(u64, u64) + Sync)) {
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let applied: Result<i64, _> =
                sqlx::query_scalar("SELECT last_sequence FROM projection_checkpoints WHERE name = $1")
                    .bind(self.projection.name())
                    .fetch_one(&self.pool)
                    .await;
            if let (Ok(applied), Ok(last)) = (applied, self.stream_last().await) {
                progress(u64::try_from(applied).unwrap_or(0), last);
            }
        }
    }
}

/// Reads the consumer's messages ahead of the applier into `slot`: sorts out the messages
/// `projection` applies and reads each as an event. Stops reading while the slot holds a
/// full batch. Ends after an error, or when the stream ends, saying so in the slot.
async fn read_batches<S>(mut messages: S, ns: Namespace, projection: Arc<dyn Projection>, slot: Arc<Slot>)
where
    S: futures::Stream<Item = Vec<Result<jetstream::Message, jetstream::consumer::pull::MessagesError>>> + Unpin,
{
    loop {
        while slot.state().batch.as_ref().is_some_and(|batch| batch.messages >= BATCH) {
            slot.taken.notified().await;
        }
        let read = match messages.next().await {
            Some(chunk) => read_batch(chunk, &ns, projection.as_ref()),
            None => Err(ProjectionError::Nats("the consumer's message stream ended".into())),
        };
        let mut state = slot.state();
        let ended = match read {
            Ok(fetched) => {
                match &mut state.batch {
                    Some(batch) => batch.extend(fetched),
                    None => state.batch = Some(fetched),
                }
                false
            }
            Err(e) => {
                state.ended = Some(e);
                true
            }
        };
        drop(state);
        slot.filled.notify_one();
        if ended {
            return;
        }
    }
}

/// One batch of messages as [`read_batches`] hands it over.
fn read_batch(
    chunk: Vec<Result<jetstream::Message, jetstream::consumer::pull::MessagesError>>,
    ns: &Namespace,
    projection: &dyn Projection,
) -> Result<Fetched, ProjectionError> {
    let messages = chunk.len();
    let mut events = Vec::with_capacity(messages);
    let mut last = None;
    for message in chunk {
        let message = message.map_err(nats)?;
        let position = message.info().map_err(nats)?.stream_sequence;
        let log_position =
            i64::try_from(position).map_err(|e| ProjectionError::Decode { position, reason: e.to_string() })?;
        // A subject of another layout is decoded and left to the projection.
        let wants = ns
            .subject_parts(message.subject.as_str())
            .is_none_or(|(aggregate_type, _, event_type)| projection.wants(aggregate_type, event_type));
        if wants {
            events.push(envelope(ns, &Raw::of(&message, log_position)).map(|event| (event, log_position)));
        }
        last = Some((log_position, message));
    }
    let (last, ack) = last.ok_or_else(|| ProjectionError::Nats("an empty batch of messages".into()))?;
    Ok(Fetched { events, last, messages, ack, since: tokio::time::Instant::now() })
}

/// The event a message carries, or why it is set aside.
fn envelope(ns: &Namespace, raw: &Raw<'_>) -> Result<LoggedEvent, Box<SetAside>> {
    serde_json::from_slice(raw.payload).map_err(|e| {
        let error = undecodable(raw.log_position, e);
        Box::new(SetAside::unreadable(ns, raw.subject, raw.msg_id, raw.log_position, &error))
    })
}

/// Whether a NATS server of this version (`2.9.10`) filters a consumer on several subjects.
pub fn filters_several_subjects(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (2, 10)
}

/// Whether the NATS server filters a consumer on several subjects (2.10 and later). On
/// 2.9 each consumer has one filter and skips what it does not apply; that is said once.
fn several_filters(js: &jetstream::Context) -> bool {
    static SAID: std::sync::Once = std::sync::Once::new();
    let version = js.client().server_info().version;
    let several = filters_several_subjects(&version);
    if !several {
        SAID.call_once(|| {
            tracing::info!(
                nats = %version,
                "NATS before 2.10: one filter subject per consumer; projections skip what they do not apply"
            );
        });
    }
    several
}

/// Whether `projection` has a generation newer than `generation` (a rebuild requested).
async fn rebuilt_since(conn: &mut PgConnection, projection: &str, generation: i64) -> Result<bool, ProjectionError> {
    let now: i64 = sqlx::query_scalar("SELECT generation FROM projection_checkpoints WHERE name = $1")
        .bind(projection)
        .fetch_one(conn)
        .await?;
    Ok(now != generation)
}

/// Starts a new generation: empties the views and resets the checkpoint, atomically with
/// respect to the running applier (it holds the checkpoint row while it applies).
pub async fn request_rebuild(pool: &PgPool, projection: &dyn Projection) -> Result<i64, ProjectionError> {
    let name = projection.name();
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT 1 FROM projection_checkpoints WHERE name = $1 FOR UPDATE").bind(name).execute(&mut *tx).await?;
    for table in projection.tables() {
        // Table names are the projection's own constants, never input.
        sqlx::query(&format!("TRUNCATE {table}")).execute(&mut *tx).await?;
    }
    // Written first, indexed after: the applier builds them once it has caught up.
    indexes::defer(&mut tx, name, projection.deferrable_indexes()).await?;
    // The replay meets the set-aside events again and sets aside those still at fault.
    sqlx::query("DELETE FROM projection_quarantine WHERE projection = $1").bind(name).execute(&mut *tx).await?;
    let generation: i64 = sqlx::query_scalar(
        "UPDATE projection_checkpoints SET last_sequence = 0, generation = generation + 1,
             updated_at = clock_timestamp()
         WHERE name = $1 RETURNING generation",
    )
    .bind(name)
    .fetch_one(&mut *tx)
    .await?;
    // Heard by the runners of every process as this commits ([`notices`]).
    sqlx::query("SELECT pg_notify($1, $2)").bind(notices::CHANNEL).bind(name).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(generation)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{LINGER, LINGER_BELOW, filters_several_subjects, lingers, ripe_at};

    #[test]
    fn batches_linger_only_while_messages_come_fast_and_until_they_are_large() {
        // A viewer's click on a quiet server, a few a second: applied at once.
        assert!(!lingers(1, Duration::from_millis(300), 0));
        assert!(!lingers(3, Duration::from_millis(100), 0));
        // 2,000 a second: the next batch waits for more.
        assert!(lingers(40, Duration::from_millis(20), 0));
        assert!(lingers(100, Duration::from_millis(50), 10));
        // Catching up (a rebuild), with thousands still to come: never.
        assert!(!lingers(128, Duration::from_millis(5), 99_000));

        // (A first message read in the future, so the clock never passes it in this test.)
        let since = tokio::time::Instant::now() + Duration::from_secs(3600);
        assert_eq!(ripe_at(1, since), since + LINGER);
        assert_eq!(ripe_at(LINGER_BELOW - 1, since), since + LINGER);
        assert!(ripe_at(LINGER_BELOW, since) < since + LINGER);
    }

    #[test]
    fn several_filter_subjects_come_with_nats_2_10() {
        assert!(!filters_several_subjects("2.9.10"));
        assert!(filters_several_subjects("2.10.0"));
        assert!(filters_several_subjects("2.15.1"));
        assert!(filters_several_subjects("3.0.0"));
        assert!(!filters_several_subjects("unknown"));
    }
}
