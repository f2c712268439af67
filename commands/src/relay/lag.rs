//! How far the stream is behind the store, from facts any process can read: the relay's
//! record, the stream's last sequence and the `events` table. Readiness, metrics and
//! `framecart projections status` use it, whichever process is the active relay.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

/// Committed events that are not (or no longer) in the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RelayLag {
    /// The last log position the relay recorded.
    pub recorded: u64,
    /// The stream's last sequence (`None`: the stream is missing).
    pub in_stream: Option<u64>,
    /// Committed events not in the stream: recorded ones the stream lost, and those
    /// committed after the last recorded one in commit order.
    pub unrelayed: u64,
    /// When the oldest of them was stored.
    pub oldest_unrelayed: Option<DateTime<Utc>>,
}

impl RelayLag {
    /// Recorded events the stream lacks: what a restore republishes.
    pub fn stream_behind(&self) -> u64 {
        self.recorded.saturating_sub(self.in_stream.unwrap_or(0))
    }

    /// How long the oldest unrelayed event has waited.
    pub fn oldest_age(&self, now: DateTime<Utc>) -> Option<Duration> {
        self.oldest_unrelayed.map(|at| (now - at).to_std().unwrap_or_default())
    }

    /// Why the relay is late, when some event has waited longer than `bound`.
    pub fn overdue(&self, bound: Duration, now: DateTime<Utc>) -> Option<String> {
        let age = self.oldest_age(now)?;
        (age > bound).then(|| {
            format!(
                "{} committed events are not in the stream, the oldest for {} s (bound {} s)",
                self.unrelayed,
                age.as_secs(),
                bound.as_secs()
            )
        })
    }
}

/// Reads the lag, given the stream's last sequence (`None` when it is missing).
pub async fn observe(pool: &PgPool, in_stream: Option<u64>) -> Result<RelayLag, sqlx::Error> {
    // The last recorded event's place in commit order: the relay goes on after it.
    let last: Option<(i64, String, i64)> = sqlx::query_as(
        "SELECT l.log_position, e.tx_id::text, e.global_position
         FROM event_log l JOIN events e ON e.global_position = l.global_position
         ORDER BY l.log_position DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    let (recorded, tx, global_position) = last.unwrap_or((0, "0".to_owned(), 0));
    let (after, oldest_after): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT count(*), min(recorded_at) FROM events WHERE (tx_id, global_position) > ($1::text::xid8, $2)",
    )
    .bind(&tx)
    .bind(global_position)
    .fetch_one(pool)
    .await?;
    let recorded = u64::try_from(recorded).unwrap_or(0);
    let mut lag =
        RelayLag { recorded, in_stream, unrelayed: u64::try_from(after).unwrap_or(0), oldest_unrelayed: oldest_after };
    let behind = lag.stream_behind();
    if behind > 0 {
        let first_lost = in_stream.unwrap_or(0) + 1;
        let lost_at: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT e.recorded_at FROM event_log l JOIN events e ON e.global_position = l.global_position
             WHERE l.log_position = $1",
        )
        .bind(i64::try_from(first_lost).unwrap_or(i64::MAX))
        .fetch_optional(pool)
        .await?;
        lag.unrelayed += behind;
        lag.oldest_unrelayed = match (lag.oldest_unrelayed, lost_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(lag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_event_older_than_the_bound_is_overdue() {
        let now = Utc::now();
        let lag = RelayLag {
            recorded: 10,
            in_stream: Some(4),
            unrelayed: 9,
            oldest_unrelayed: Some(now - chrono::Duration::seconds(40)),
        };
        assert_eq!(lag.stream_behind(), 6);
        assert!(lag.overdue(Duration::from_secs(30), now).is_some_and(|r| r.contains("9 committed events")));
        assert_eq!(lag.overdue(Duration::from_secs(60), now), None);
        assert_eq!(RelayLag::default().overdue(Duration::ZERO, now), None);
    }
}
