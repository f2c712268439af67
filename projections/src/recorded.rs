//! The log as the store recorded it: a projection far behind the stream (a rebuild, a
//! long stop) catches up from Postgres, then follows the stream.
//!
//! The relay records each event's log position (its stream sequence) and hash in
//! `event_log` once the stream has acknowledged it, so `event_log` joined with `events`
//! holds what the stream holds, at the same positions: the stream is a replica of the
//! store (ARCHITECTURE.md), and the relay restores it from exactly these rows. Reading a
//! backlog from there costs no NATS delivery and no message parsing: a rebuild of
//! `clicks` from 100k events spent 0.7 s of NATS CPU and as much again in the client
//! reading its messages, on a machine with two cores.
//!
//! The checkpoint means the same either way (the last log position applied), so a runner
//! hands over to its consumer at the checkpoint + 1 and nothing is applied twice or
//! skipped. Only what is recorded is read: a position not recorded yet, or whose recorded
//! event is not the stored one (a store changed by hand), ends the catch-up there, and the
//! stream delivers the rest.

use std::sync::Arc;

use framecart_domain::log::{LoggedEvent, Namespace, metadata_map};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::quarantine::SetAside;
use crate::runner::{Projection, Read, undecodable};

/// The backlog, in events the projection applies (about: [`wanted_backlog`]), from which
/// a runner catches up from the store, and, in log positions, while it goes on doing so.
/// A projection that applies a few events among many (`users` among clicks) gets them
/// from its filtered consumer at no cost for the rest, where the store would read past
/// every one.
pub const FROM_STORE_ABOVE: u64 = 10_000;

/// What a projection applies, from its consumer's subject filters
/// (`<ns>.events.<aggregate_type>.<id>.<EventType>`, with `*` and `>` wildcards), as a
/// test on stored events that lets through at least what the subjects do: every event of
/// `aggregate_types`, every event whose type is in `event_types` (whatever its aggregate
/// type), or everything. The projection's [`Projection::wants`] then decides, as it does
/// for the stream's messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreFilter {
    aggregate_types: Vec<String>,
    event_types: Vec<String>,
    everything: bool,
}

impl StoreFilter {
    /// The filter of `projection`'s subjects. A subject outside the namespace lets
    /// everything through. `None` when a subject names one aggregate (its id), which
    /// [`Projection::wants`] cannot tell from the others: such a projection reads the
    /// stream only.
    pub fn of(ns: &Namespace, projection: &dyn Projection) -> Option<Self> {
        let mut filter = Self::default();
        let prefix = format!("{}.events.", ns.as_str());
        for subject in projection.filter_subjects(ns) {
            let tokens: Vec<&str> =
                subject.strip_prefix(&prefix).map(|rest| rest.split('.').collect()).unwrap_or_default();
            let exact = |i: usize| tokens.get(i).filter(|t| !matches!(**t, "*" | ">") && !tokens[..i].contains(&">"));
            if exact(1).is_some() {
                return None;
            }
            match (exact(0), exact(2)) {
                (_, Some(event_type)) => filter.event_types.push((*event_type).to_owned()),
                (Some(aggregate_type), None) => filter.aggregate_types.push((*aggregate_type).to_owned()),
                (None, None) => filter.everything = true,
            }
        }
        Some(filter)
    }

    /// Whether an event of this aggregate and event type passes.
    fn lets_through(&self, aggregate_type: &str, event_type: &str) -> bool {
        self.everything
            || self.aggregate_types.iter().any(|t| t == aggregate_type)
            || self.event_types.iter().any(|t| t == event_type)
    }
}

/// How many positions of the store's record [`wanted_backlog`] looks at, at most: each
/// one looked up by its index (1,000 took 10-12 ms at 100k events).
const SAMPLE: i64 = 250;

/// About how many of the events recorded after `after` `projection` applies: the
/// recorded backlog times the share it applies among up to [`SAMPLE`] positions spread
/// evenly over it (a few milliseconds, whatever the backlog).
pub(crate) async fn wanted_backlog(
    pool: &PgPool,
    projection: &dyn Projection,
    filter: &StoreFilter,
    after: i64,
) -> Result<u64, sqlx::Error> {
    let end = recorded_end(pool).await?;
    let backlog = end - after;
    if backlog <= 0 {
        return Ok(0);
    }
    let sampled: Vec<(String, String)> = sqlx::query_as(
        "SELECT e.aggregate_type, e.event_type
         FROM generate_series($1::bigint + 1, $2::bigint, $3::bigint) AS p(log_position)
         CROSS JOIN LATERAL (
             SELECT e.aggregate_type, e.event_type
             FROM event_log l JOIN events e ON e.global_position = l.global_position
             WHERE l.log_position = p.log_position
             OFFSET 0
         ) e",
    )
    .bind(after)
    .bind(end)
    .bind((backlog / SAMPLE).max(1))
    .fetch_all(pool)
    .await?;
    let wanted = sampled.iter().filter(|(a, t)| filter.lets_through(a, t) && projection.wants(a, t)).count();
    let (backlog, wanted, sampled) = (backlog as u64, wanted as u64, sampled.len().max(1) as u64);
    Ok(backlog * wanted / sampled)
}

/// One batch read from the store: the events in log order (those the projection applies,
/// read, or set aside when unreadable), how many positions it covers, and the last.
pub(crate) struct RecordedBatch {
    pub events: Vec<Read>,
    pub positions: usize,
    pub last: i64,
    /// The store holds no more recorded events right after `last` (not recorded yet,
    /// or not the stored one): the stream delivers from there.
    pub ends: bool,
}

/// What [`read_ahead`] reads: `projection`'s events through `filter`, `limit` positions a
/// batch, while the store's record is at least `while_behind` positions ahead.
pub(crate) struct ReadAhead {
    pub pool: PgPool,
    pub ns: Namespace,
    pub projection: Arc<dyn Projection>,
    pub filter: StoreFilter,
    pub limit: i64,
    pub while_behind: u64,
}

/// Reads the batches after `after` and sends each to `batches` (which holds one while
/// the next is read). Ends after a batch that [`RecordedBatch::ends`], when the store's
/// record is less than `while_behind` positions ahead of the last batch (the stream then
/// delivers the rest), when `batches` is dropped, or after sending an error.
pub(crate) async fn read_ahead(
    reading: ReadAhead,
    after: i64,
    batches: tokio::sync::mpsc::Sender<Result<RecordedBatch, sqlx::Error>>,
) {
    if let Err(e) = send_batches(reading, after, &batches).await {
        let _ = batches.send(Err(e)).await;
    }
}

async fn send_batches(
    reading: ReadAhead,
    mut after: i64,
    batches: &tokio::sync::mpsc::Sender<Result<RecordedBatch, sqlx::Error>>,
) -> Result<(), sqlx::Error> {
    let ReadAhead { pool, ns, projection, filter, limit, while_behind } = reading;
    let mut conn = pool.acquire().await?;
    let mut end = recorded_end(&pool).await?;
    loop {
        let batch = read(&mut conn, &ns, projection.as_ref(), &filter, after, limit).await?;
        let (last, ends) = (batch.last, batch.ends);
        if batch.positions == 0 || batches.send(Ok(batch)).await.is_err() || ends {
            return Ok(());
        }
        after = last;
        if last >= end {
            // Events recorded meanwhile: on while the backlog is long.
            end = recorded_end(&pool).await?;
            if u64::try_from(end - last).unwrap_or(0) < while_behind {
                return Ok(());
            }
        }
    }
}

/// The last log position the relay recorded (0: none).
pub async fn recorded_end(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT coalesce(max(log_position), 0) FROM event_log").fetch_one(pool).await
}

#[derive(sqlx::FromRow)]
struct Row {
    log_position: i64,
    logged_id: Uuid,
    hash: String,
    event_id: Uuid,
    global_position: i64,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    recorded_at: chrono::DateTime<chrono::Utc>,
    /// Only for the events the filter lets through (taken when read).
    payload: Option<String>,
    metadata: Option<String>,
}

/// The statement that reads a batch: `$1` the position after which it starts, `$2` how
/// many positions, `$3` the aggregate types and `$4` the event types whose bodies it
/// returns, `$5` whether it returns every body.
///
/// Each recorded position looks its event up by its own index (the `LATERAL … OFFSET 0`
/// keeps Postgres from flattening it into a join), and the rows come in no particular
/// order: [`read`] sorts them. As a plain join ordered by position, once `events` had
/// statistics, Postgres hashed the batch's positions and scanned the whole of `events`
/// for every batch (89 ms a batch of 5,000 at 100k events, growing with the store,
/// against 15 ms); before it had any, it sorted the wide rows in a file on disk; and
/// with the narrow positions sorted first, it sometimes started a parallel worker to
/// sort them.
pub const READ: &str = "SELECT l.log_position, l.event_id AS logged_id, l.hash, e.*
         FROM event_log l
         CROSS JOIN LATERAL (
             SELECT e.event_id, e.global_position, e.aggregate_type, e.aggregate_id, e.sequence, e.event_type,
                    e.event_version, e.recorded_at,
                    CASE WHEN f.wanted THEN e.payload::text END AS payload,
                    CASE WHEN f.wanted THEN e.metadata::text END AS metadata
             FROM events e
             CROSS JOIN LATERAL (
                 SELECT $5 OR e.aggregate_type = ANY($3::text[]) OR e.event_type = ANY($4::text[]) AS wanted
             ) f
             WHERE e.global_position = l.global_position
             OFFSET 0
         ) e
         WHERE l.log_position > $1 AND l.log_position <= $1 + $2";

/// The recorded events after `after`, up to `after + limit`, in log order, with the
/// bodies of those `filter` lets through and `projection` applies. Stops short at the
/// first position not recorded (or whose event is not in the store), or recorded for
/// another event than the stored one.
pub(crate) async fn read(
    conn: &mut PgConnection,
    ns: &Namespace,
    projection: &dyn Projection,
    filter: &StoreFilter,
    after: i64,
    limit: i64,
) -> Result<RecordedBatch, sqlx::Error> {
    let mut rows: Vec<Row> = sqlx::query_as(READ)
        .bind(after)
        .bind(limit)
        .bind(&filter.aggregate_types)
        .bind(&filter.event_types)
        .bind(filter.everything)
        .fetch_all(conn)
        .await?;
    rows.sort_unstable_by_key(|row| row.log_position);
    let mut batch = RecordedBatch { events: Vec::with_capacity(rows.len()), positions: 0, last: after, ends: false };
    for mut row in rows {
        // A position missing (no record, or no stored event) or a record of another event.
        if row.log_position != batch.last + 1 || row.event_id != row.logged_id {
            batch.ends = true;
            break;
        }
        batch.last = row.log_position;
        batch.positions += 1;
        if let (Some(payload), Some(metadata)) = (row.payload.take(), row.metadata.take())
            && projection.wants(&row.aggregate_type, &row.event_type)
        {
            batch.events.push(row.logged(ns, payload, &metadata));
        }
    }
    if i64::try_from(batch.positions).unwrap_or(i64::MAX) < limit {
        batch.ends = true;
    }
    Ok(batch)
}

impl Row {
    /// The event as the stream carries it ([`LoggedEvent`]), or set aside as the stream's
    /// message would be when its body cannot be read.
    fn logged(self, ns: &Namespace, payload: String, metadata: &str) -> Read {
        let log_position = self.log_position;
        match serde_json::value::RawValue::from_string(payload) {
            Ok(payload) => Ok((
                LoggedEvent {
                    event_id: self.event_id,
                    global_position: self.global_position,
                    aggregate_type: self.aggregate_type,
                    aggregate_id: self.aggregate_id,
                    sequence: self.sequence,
                    event_type: self.event_type,
                    event_version: self.event_version,
                    payload,
                    metadata: metadata_map(metadata).into_iter().collect(),
                    recorded_at: self.recorded_at,
                    hash: self.hash,
                },
                log_position,
            )),
            Err(e) => {
                let subject = ns.event_subject(&self.aggregate_type, &self.aggregate_id, &self.event_type);
                let error = undecodable(log_position, e);
                let event_id = self.event_id.to_string();
                Err(Box::new(SetAside::unreadable(ns, &subject, Some(&event_id), log_position, &error)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProjectionError;
    use async_trait::async_trait;

    struct Subjects(Vec<String>);

    #[async_trait]
    impl Projection for Subjects {
        fn name(&self) -> &'static str {
            "subjects"
        }
        fn filter_subject(&self, ns: &Namespace) -> String {
            ns.all_events_subject()
        }
        fn filter_subjects(&self, _ns: &Namespace) -> Vec<String> {
            self.0.clone()
        }
        fn tables(&self) -> &'static [&'static str] {
            &[]
        }
        async fn apply(&self, _: &mut PgConnection, _: &LoggedEvent, _: i64) -> Result<(), ProjectionError> {
            Ok(())
        }
    }

    #[test]
    fn subject_filters_become_tests_on_stored_types() {
        let ns = Namespace::parse("shop").expect("a namespace");
        let projection = Subjects(vec![
            ns.aggregate_subject("click"),
            ns.event_type_subject("data_subject", "PersonalDataErased"),
            ns.all_events_subject(),
            "elsewhere.>".to_owned(),
            "shop.events.*.*.VideoUploaded".to_owned(),
        ]);
        let filter = StoreFilter::of(&ns, &projection).expect("no subject of one aggregate");
        assert_eq!(filter.aggregate_types, vec!["click".to_owned()]);
        assert_eq!(filter.event_types, vec!["PersonalDataErased".to_owned(), "VideoUploaded".to_owned()]);
        assert!(filter.everything, "`shop.events.>` and a subject of another namespace let everything through");
        let narrow = StoreFilter::of(&ns, &Subjects(vec![ns.aggregate_subject("user")]));
        assert_eq!(narrow, Some(StoreFilter { aggregate_types: vec!["user".to_owned()], ..StoreFilter::default() }));
        let one = Subjects(vec![ns.aggregate_subject("user"), ns.event_subject("click", "c1", "ClickRecorded")]);
        assert_eq!(StoreFilter::of(&ns, &one), None, "one aggregate's events: the stream only");
    }
}
