//! Events a projection set aside: what could not be decoded or applied, so that one bad
//! event (written by an older version, by hand, or by a bug) never stops a view.
//!
//! An entry is written in the same transaction as the checkpoint that moves past it, so
//! every event is either applied or set aside, once. [`crate::ProjectionRunner::retry`]
//! applies the entries again once they can be read (for example after an upcaster was
//! added) and removes each one that succeeds.

use chrono::{DateTime, Utc};
use framecart_domain::log::{LoggedEvent, Namespace};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

/// Longest error text kept per entry.
const MAX_ERROR: usize = 2000;

/// One set-aside event, as operators and auditors see it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Quarantined {
    pub projection: String,
    /// Where the event is in the log (the stream sequence).
    pub log_position: i64,
    /// The event's id (its row in `events`); from the message's `Nats-Msg-Id` when the
    /// body itself is unreadable.
    pub event_id: Option<Uuid>,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub event_type: Option<String>,
    pub event_version: Option<String>,
    /// Why it could not be applied, at the last attempt.
    pub error: String,
    /// How many times it was tried: the first time, then each retry.
    pub attempts: i32,
    pub quarantined_at: DateTime<Utc>,
    pub last_tried_at: DateTime<Utc>,
}

/// An event about to be set aside.
#[derive(Debug, Clone)]
pub(crate) struct SetAside {
    pub log_position: i64,
    pub event_id: Option<Uuid>,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub event_type: Option<String>,
    pub event_version: Option<String>,
    pub error: String,
}

impl SetAside {
    /// An event whose body decoded but which the projection could not apply.
    pub fn event(event: &LoggedEvent, log_position: i64, error: &dyn std::fmt::Display) -> Self {
        Self {
            log_position,
            event_id: Some(event.event_id),
            aggregate_type: Some(event.aggregate_type.clone()),
            aggregate_id: Some(event.aggregate_id.clone()),
            event_type: Some(event.event_type.clone()),
            event_version: Some(event.event_version.clone()),
            error: bounded(error),
        }
    }

    /// A message whose body is not an event: what the subject and the message id say.
    pub fn unreadable(
        ns: &Namespace,
        subject: &str,
        msg_id: Option<&str>,
        log_position: i64,
        error: &dyn std::fmt::Display,
    ) -> Self {
        let parts = ns.subject_parts(subject);
        Self {
            log_position,
            event_id: msg_id.and_then(|id| Uuid::parse_str(id).ok()),
            aggregate_type: parts.map(|(t, _, _)| t.to_owned()),
            aggregate_id: parts.map(|(_, id, _)| id.to_owned()),
            event_type: parts.map(|(_, _, e)| e.to_owned()),
            event_version: None,
            error: bounded(error),
        }
    }
}

fn bounded(error: &dyn std::fmt::Display) -> String {
    let text = error.to_string().replace('\0', "\u{FFFD}");
    match text.char_indices().nth(MAX_ERROR) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// Records set-aside events in the caller's transaction. Setting one aside again (a
/// redelivery after a crash cannot, but a replay of a rebuilt projection can) counts an
/// attempt and keeps the latest error.
pub(crate) async fn record(tx: &mut PgConnection, projection: &str, entries: &[SetAside]) -> Result<(), sqlx::Error> {
    for e in entries {
        sqlx::query(
            "INSERT INTO projection_quarantine
                 (projection, log_position, event_id, aggregate_type, aggregate_id, event_type, event_version, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (projection, log_position) DO UPDATE
             SET error = EXCLUDED.error, attempts = projection_quarantine.attempts + 1,
                 last_tried_at = clock_timestamp()",
        )
        .bind(projection)
        .bind(e.log_position)
        .bind(e.event_id)
        .bind(&e.aggregate_type)
        .bind(&e.aggregate_id)
        .bind(&e.event_type)
        .bind(&e.event_version)
        .bind(&e.error)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// The set-aside events, oldest first, after `after` (a projection and log position).
pub async fn list(
    pool: &PgPool,
    projection: Option<&str>,
    after: Option<(&str, i64)>,
    limit: i64,
) -> Result<Vec<Quarantined>, sqlx::Error> {
    sqlx::query_as(
        "SELECT projection, log_position, event_id, aggregate_type, aggregate_id, event_type, event_version,
                error, attempts, quarantined_at, last_tried_at
         FROM projection_quarantine
         WHERE ($1::text IS NULL OR projection = $1)
           AND ($2::text IS NULL OR (projection, log_position) > ($2, $3))
         ORDER BY projection, log_position
         LIMIT $4",
    )
    .bind(projection)
    .bind(after.map(|(p, _)| p))
    .bind(after.map_or(0, |(_, position)| position))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// How many events each projection has set aside (projections with none are absent).
pub async fn counts(pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT projection, count(*) FROM projection_quarantine GROUP BY projection ORDER BY projection")
        .fetch_all(pool)
        .await
}
