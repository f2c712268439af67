//! Reading committed events in commit order, and the relay's own table.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// A position in commit order: the inserting transaction, then the identity value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct CommitCursor {
    pub tx_id: u64,
    pub global_position: i64,
}

/// One committed event as stored, payload and metadata as their stored JSON text.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    /// The xid8 as text (sqlx has no xid8 type).
    pub tx_id_text: String,
    pub global_position: i64,
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: String,
    pub metadata: String,
    pub recorded_at: DateTime<Utc>,
}

impl StoredEvent {
    pub fn cursor(&self) -> Result<CommitCursor, sqlx::Error> {
        let tx_id = self.tx_id_text.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        Ok(CommitCursor { tx_id, global_position: self.global_position })
    }
}

/// Events committed after `after`, in commit order.
///
/// Only transactions below the snapshot's xmin are read: every one of those has ended,
/// so a transaction that commits late (it took its id, and its identity values, before
/// others that committed first) is read in its place, never skipped. The identity alone
/// would skip it: it is taken at insert time.
pub async fn committed_after(
    conn: &mut PgConnection,
    after: CommitCursor,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    sqlx::query_as(
        // The text form of tx_id gets its own name: `ORDER BY tx_id` would otherwise sort
        // by the output column, as text ("1000" < "999"), not by the xid8.
        "SELECT e.tx_id::text AS tx_id_text, e.global_position, e.event_id, e.aggregate_type,
                e.aggregate_id, e.sequence, e.event_type, e.event_version,
                e.payload::text AS payload, e.metadata::text AS metadata, e.recorded_at
         FROM events e
         WHERE (e.tx_id, e.global_position) > ($1::text::xid8, $2)
           AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY e.tx_id, e.global_position
         LIMIT $3",
    )
    .bind(after.tx_id.to_string())
    .bind(after.global_position)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Whether any committed event lies after `after`, even one that [`committed_after`] does
/// not read yet (an older transaction still runs somewhere in the cluster).
pub async fn any_after(conn: &mut PgConnection, after: CommitCursor) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE (tx_id, global_position) > ($1::text::xid8, $2))")
        .bind(after.tx_id.to_string())
        .bind(after.global_position)
        .fetch_one(conn)
        .await
}

/// The transactions that hold the relay back, oldest first, at most `limit`: those with a
/// transaction id, in any database of the cluster (`pg_snapshot_xmin` is cluster-wide),
/// prepared ones included. The first is the one the relay waits for.
pub async fn open_transactions(conn: &mut PgConnection, limit: i64) -> Result<Vec<OpenTransaction>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM (
             SELECT backend_xid::text AS xid, pid, datname::text AS database,
                    application_name, state, query,
                    extract(epoch FROM clock_timestamp() - xact_start)::float8 AS seconds
             FROM pg_stat_activity WHERE backend_xid IS NOT NULL
             UNION ALL
             SELECT transaction::text, NULL, database::text, 'prepared transaction ' || gid, 'prepared', NULL,
                    extract(epoch FROM clock_timestamp() - prepared)::float8
             FROM pg_prepared_xacts
         ) open
         ORDER BY age(xid::xid) DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A transaction still open, as Postgres reports it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OpenTransaction {
    pub xid: String,
    /// The session's process (`None`: a prepared transaction, which has none).
    pub pid: Option<i32>,
    pub database: Option<String>,
    pub application_name: Option<String>,
    /// `active`, `idle in transaction`, `prepared`, …
    pub state: Option<String>,
    /// Its last statement (only shown to a role allowed to see it).
    pub query: Option<String>,
    /// Since it began.
    pub seconds: Option<f64>,
}

impl std::fmt::Display for OpenTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or = |value: &Option<String>| value.clone().unwrap_or_else(|| "?".to_owned());
        write!(f, "transaction {} ", self.xid)?;
        if let Some(pid) = self.pid {
            write!(f, "of process {pid} ")?;
        }
        write!(
            f,
            "({:?}, database {}, {}) open for {:.0} s",
            or(&self.application_name),
            or(&self.database),
            or(&self.state),
            self.seconds.unwrap_or_default()
        )?;
        if let Some(query) = &self.query {
            let query: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
            write!(f, ", last statement: {}", query.chars().take(200).collect::<String>())?;
        }
        Ok(())
    }
}

/// The last log position the relay recorded.
pub async fn last_logged(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let last: i64 = sqlx::query_scalar("SELECT coalesce(max(log_position), 0) FROM event_log").fetch_one(conn).await?;
    Ok(u64::try_from(last).unwrap_or(0))
}

/// Where the relay resumes: the commit cursor and hash of the event at `log_position`.
pub async fn cursor_at(
    conn: &mut PgConnection,
    log_position: u64,
) -> Result<Option<(CommitCursor, String)>, sqlx::Error> {
    let row: Option<(String, i64, String)> = sqlx::query_as(
        "SELECT e.tx_id::text, e.global_position, l.hash
         FROM event_log l JOIN events e ON e.global_position = l.global_position
         WHERE l.log_position = $1",
    )
    .bind(i64::try_from(log_position).unwrap_or(i64::MAX))
    .fetch_optional(conn)
    .await?;
    row.map(|(tx, global_position, hash)| {
        let tx_id = tx.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        Ok((CommitCursor { tx_id, global_position }, hash))
    })
    .transpose()
}

/// One row of the relay's table.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub log_position: u64,
    pub global_position: i64,
    pub event_id: Uuid,
    pub hash: String,
}

pub async fn record(conn: &mut PgConnection, entries: &[LogEntry]) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    let positions: Vec<i64> = entries.iter().map(|e| i64::try_from(e.log_position).unwrap_or(i64::MAX)).collect();
    let globals: Vec<i64> = entries.iter().map(|e| e.global_position).collect();
    let ids: Vec<Uuid> = entries.iter().map(|e| e.event_id).collect();
    let hashes: Vec<&str> = entries.iter().map(|e| e.hash.as_str()).collect();
    sqlx::query(
        "INSERT INTO event_log (log_position, global_position, event_id, hash)
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::uuid[], $4::text[])",
    )
    .bind(&positions)
    .bind(&globals)
    .bind(&ids)
    .bind(&hashes)
    .execute(conn)
    .await?;
    Ok(())
}

/// The relay's records after log position `after`, in log order.
pub async fn logged_after(conn: &mut PgConnection, after: u64, limit: i64) -> Result<Vec<LogEntry>, sqlx::Error> {
    let rows: Vec<(i64, i64, Uuid, String)> = sqlx::query_as(
        "SELECT log_position, global_position, event_id, hash FROM event_log
         WHERE log_position > $1 ORDER BY log_position LIMIT $2",
    )
    .bind(i64::try_from(after).unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(log_position, global_position, event_id, hash)| LogEntry {
            log_position: u64::try_from(log_position).unwrap_or(0),
            global_position,
            event_id,
            hash,
        })
        .collect())
}

/// A recorded event with the record: what a restore republishes.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecordedEvent {
    pub log_position: i64,
    /// The event id the relay recorded (the stored event's, unless the store was changed).
    pub logged_id: Uuid,
    pub hash: String,
    #[sqlx(flatten)]
    pub event: StoredEvent,
}

/// Recorded events after log position `after`, up to `upto`, in log order. A recorded
/// position whose event is not in the store is left out (the caller sees the gap).
pub async fn recorded_between(
    conn: &mut PgConnection,
    after: u64,
    upto: u64,
    limit: i64,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT l.log_position, l.event_id AS logged_id, l.hash,
                e.tx_id::text AS tx_id_text, e.global_position, e.event_id, e.aggregate_type,
                e.aggregate_id, e.sequence, e.event_type, e.event_version,
                e.payload::text AS payload, e.metadata::text AS metadata, e.recorded_at
         FROM event_log l JOIN events e ON e.global_position = l.global_position
         WHERE l.log_position > $1 AND l.log_position <= $2
         ORDER BY l.log_position
         LIMIT $3",
    )
    .bind(i64::try_from(after).unwrap_or(i64::MAX))
    .bind(i64::try_from(upto).unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(conn)
    .await
}
