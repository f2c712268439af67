//! The auditor's view of history: every event in commit order with its log position and
//! its link in the hash chain, one aggregate's history, and a verification of the chain
//! and of the log's completeness (every stored event has a log position).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::relay::hash::{GENESIS, HashedFields, chain_hash};

/// One event as an auditor reads it.
#[derive(Debug, Clone, Serialize)]
pub struct AuditedEvent {
    /// The log position (dense, commit order); absent while the relay has not logged it.
    pub position: Option<i64>,
    pub event_id: Uuid,
    pub global_position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    /// Secrets (password hashes) are shown as `"[redacted]"`; the hash covers the stored text.
    pub payload: serde_json::Value,
    pub metadata: serde_json::Value,
    pub recorded_at: DateTime<Utc>,
    pub hash: Option<String>,
}

/// Field names whose values an auditor never needs to see.
const SECRET_FIELDS: &[&str] = &["password_hash"];

fn redact(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if SECRET_FIELDS.contains(&key.as_str()) {
                    *v = serde_json::Value::String("[redacted]".into());
                } else {
                    redact(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

type Row = (
    Option<i64>,
    Uuid,
    i64,
    String,
    String,
    i64,
    String,
    String,
    serde_json::Value,
    serde_json::Value,
    DateTime<Utc>,
    Option<String>,
);

fn audited(row: Row) -> AuditedEvent {
    let (
        position,
        event_id,
        global_position,
        aggregate_type,
        aggregate_id,
        sequence,
        event_type,
        event_version,
        mut payload,
        metadata,
        recorded_at,
        hash,
    ) = row;
    redact(&mut payload);
    AuditedEvent {
        position,
        event_id,
        global_position,
        aggregate_type,
        aggregate_id,
        sequence,
        event_type,
        event_version,
        payload,
        metadata,
        recorded_at,
        hash,
    }
}

const COLUMNS: &str = "l.log_position, e.event_id, e.global_position, e.aggregate_type, e.aggregate_id, e.sequence,
    e.event_type, e.event_version, e.payload::jsonb, e.metadata::jsonb, e.recorded_at, l.hash";

/// Logged events after `after`, in log order.
pub async fn events_after(pool: &PgPool, after: i64, limit: i64) -> Result<Vec<AuditedEvent>, sqlx::Error> {
    events_matching(pool, &EventFilter::default(), after, limit).await
}

/// Which events a page of the log shows: each part, when given, must equal.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub event_type: Option<String>,
}

/// The events after log position `after` that pass `filter`, in log order.
pub async fn events_matching(
    pool: &PgPool,
    filter: &EventFilter,
    after: i64,
    limit: i64,
) -> Result<Vec<AuditedEvent>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM event_log l JOIN events e ON e.global_position = l.global_position
         WHERE l.log_position > $1
           AND ($3::text IS NULL OR e.aggregate_type = $3)
           AND ($4::text IS NULL OR e.aggregate_id = $4)
           AND ($5::text IS NULL OR e.event_type = $5)
         ORDER BY l.log_position LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .bind(filter.aggregate_type.as_deref())
    .bind(filter.aggregate_id.as_deref())
    .bind(filter.event_type.as_deref())
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(audited).collect())
}

/// One aggregate's history, in its own order.
pub async fn stream(pool: &PgPool, aggregate_type: &str, aggregate_id: &str) -> Result<Vec<AuditedEvent>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM events e LEFT JOIN event_log l ON l.global_position = e.global_position
         WHERE e.aggregate_type = $1 AND e.aggregate_id = $2 ORDER BY e.sequence"
    ))
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(audited).collect())
}

/// The outcome of checking the chain and the log's completeness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Verification {
    Intact {
        ok: bool,
        checked: i64,
    },
    Broken {
        ok: bool,
        first_bad_position: i64,
        reason: String,
    },
    /// The chain holds, but stored events older than the relay's bound have no log
    /// position: the log misses them.
    Incomplete {
        ok: bool,
        checked: i64,
        reason: String,
        /// How many stored events have no log position.
        unlogged_count: i64,
        /// The first of them (at most [`UNLOGGED_SHOWN`]), in store order.
        unlogged: Vec<Unlogged>,
    },
}

/// A stored event the relay has not given a log position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unlogged {
    pub event_id: Uuid,
    pub global_position: i64,
    pub recorded_at: DateTime<Utc>,
}

/// Most unlogged events a verification names.
pub const UNLOGGED_SHOWN: i64 = 100;

/// Stored events without a log position that were stored more than `older_than` ago:
/// how many, and the first [`UNLOGGED_SHOWN`] of them.
pub async fn unlogged(pool: &PgPool, older_than: Duration) -> Result<(i64, Vec<Unlogged>), sqlx::Error> {
    let rows: Vec<(Uuid, i64, DateTime<Utc>, i64)> = sqlx::query_as(
        "SELECT e.event_id, e.global_position, e.recorded_at, count(*) OVER ()
         FROM events e
         WHERE NOT EXISTS (SELECT 1 FROM event_log l WHERE l.global_position = e.global_position)
           AND e.recorded_at < clock_timestamp() - make_interval(secs => $1)
         ORDER BY e.global_position
         LIMIT $2",
    )
    .bind(older_than.as_secs_f64())
    .bind(UNLOGGED_SHOWN)
    .fetch_all(pool)
    .await?;
    let count = rows.first().map_or(0, |row| row.3);
    let shown = rows
        .into_iter()
        .map(|(event_id, global_position, recorded_at, _)| Unlogged { event_id, global_position, recorded_at })
        .collect();
    Ok((count, shown))
}

impl Verification {
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Intact { .. })
    }
}

type ChainRow = (
    i64,
    Uuid,
    String,
    Option<Uuid>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
);

/// Recomputes the chain over the whole log, in log order, from the stored events: the
/// first event whose content, place or hash does not fit is named. Then checks that every
/// stored event has a log position, except those stored less than `relay_bound` ago (the
/// relay may not have reached them yet).
pub async fn verify(pool: &PgPool, relay_bound: Duration) -> Result<Verification, sqlx::Error> {
    let chain = verify_chain(pool).await?;
    let Verification::Intact { checked, .. } = chain else { return Ok(chain) };
    let (unlogged_count, unlogged) = unlogged(pool, relay_bound).await?;
    let Some(first) = unlogged.first() else { return Ok(chain) };
    Ok(Verification::Incomplete {
        ok: false,
        checked,
        reason: format!(
            "{unlogged_count} stored events have no log position after {} s, the first {} at global position {}: \
             the log misses them",
            relay_bound.as_secs(),
            first.event_id,
            first.global_position
        ),
        unlogged_count,
        unlogged,
    })
}

async fn verify_chain(pool: &PgPool) -> Result<Verification, sqlx::Error> {
    const CHUNK: i64 = 5000;
    let mut previous = GENESIS.to_owned();
    let mut expected_position = 1;
    loop {
        let rows: Vec<ChainRow> = sqlx::query_as(
            "SELECT l.log_position, l.event_id, l.hash, e.event_id, e.aggregate_type, e.aggregate_id, e.sequence,
                    e.event_type, e.event_version, e.payload::text, e.metadata::text, e.recorded_at
             FROM event_log l LEFT JOIN events e ON e.global_position = l.global_position
             WHERE l.log_position >= $1 ORDER BY l.log_position LIMIT $2",
        )
        .bind(expected_position)
        .bind(CHUNK)
        .fetch_all(pool)
        .await?;
        let count = rows.len() as i64;
        for row in rows {
            let (
                position,
                logged_id,
                hash,
                event_id,
                aggregate_type,
                aggregate_id,
                sequence,
                event_type,
                event_version,
                payload,
                metadata,
                recorded_at,
            ) = row;
            let broken = |reason: String| Ok(Verification::Broken { ok: false, first_bad_position: position, reason });
            if position != expected_position {
                return Ok(Verification::Broken {
                    ok: false,
                    first_bad_position: expected_position,
                    reason: format!("log position {expected_position} is missing"),
                });
            }
            let (
                Some(event_id),
                Some(aggregate_type),
                Some(aggregate_id),
                Some(sequence),
                Some(event_type),
                Some(event_version),
                Some(payload),
                Some(metadata),
                Some(recorded_at),
            ) = (
                event_id,
                aggregate_type,
                aggregate_id,
                sequence,
                event_type,
                event_version,
                payload,
                metadata,
                recorded_at,
            )
            else {
                return broken("the logged event is not in the event store".into());
            };
            if event_id != logged_id {
                return broken(format!("the event store holds {event_id} where the log has {logged_id}"));
            }
            let fields = HashedFields {
                event_id,
                aggregate_type: &aggregate_type,
                aggregate_id: &aggregate_id,
                sequence,
                event_type: &event_type,
                event_version: &event_version,
                payload: &payload,
                metadata: &metadata,
                recorded_at,
            };
            let computed = chain_hash(&previous, &fields);
            if computed != hash {
                return broken(format!(
                    "{event_type} {event_id} of {aggregate_type} {aggregate_id} does not match its hash: \
                     the event or the chain before it was changed"
                ));
            }
            previous = hash;
            expected_position += 1;
        }
        if count < CHUNK {
            return Ok(Verification::Intact { ok: true, checked: expected_position - 1 });
        }
    }
}
