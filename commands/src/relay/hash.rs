//! The tamper-evident hash chain over the log.
//!
//! Each event's hash is sha256 over the previous event's hash (in commit order) and the
//! event's stored content, every field length-prefixed so that no two different events
//! encode to the same bytes. The payload and metadata are hashed as the exact JSON text
//! stored in `events` (a `json` column keeps its text), so anyone can recompute the chain
//! with SQL and any sha256.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The hash before the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The stored content of one event, as the chain covers it.
#[derive(Debug, Clone)]
pub struct HashedFields<'a> {
    pub event_id: Uuid,
    pub aggregate_type: &'a str,
    pub aggregate_id: &'a str,
    pub sequence: i64,
    pub event_type: &'a str,
    pub event_version: &'a str,
    pub payload: &'a str,
    pub metadata: &'a str,
    pub recorded_at: DateTime<Utc>,
}

pub fn chain_hash(previous: &str, event: &HashedFields<'_>) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(previous.as_bytes());
    field(event.event_id.as_bytes());
    field(event.aggregate_type.as_bytes());
    field(event.aggregate_id.as_bytes());
    field(&event.sequence.to_be_bytes());
    field(event.event_type.as_bytes());
    field(event.event_version.as_bytes());
    field(event.payload.as_bytes());
    field(event.metadata.as_bytes());
    field(&event.recorded_at.timestamp_micros().to_be_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(payload: &str) -> HashedFields<'_> {
        HashedFields {
            event_id: Uuid::from_u128(1),
            aggregate_type: "click",
            aggregate_id: "a",
            sequence: 1,
            event_type: "ClickRecorded",
            event_version: "1.0",
            payload,
            metadata: "{}",
            recorded_at: DateTime::from_timestamp_micros(1_700_000_000_000_000).expect("time"),
        }
    }

    #[test]
    fn the_hash_depends_on_content_and_on_the_previous_hash() {
        let a = chain_hash(GENESIS, &fields("{\"x\":1}"));
        assert_eq!(a, chain_hash(GENESIS, &fields("{\"x\":1}")));
        assert_ne!(a, chain_hash(GENESIS, &fields("{\"x\":2}")));
        assert_ne!(a, chain_hash(&a, &fields("{\"x\":1}")));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn moving_bytes_between_fields_changes_the_hash() {
        let mut one = fields("{}");
        one.aggregate_type = "clic";
        one.aggregate_id = "ka";
        assert_ne!(chain_hash(GENESIS, &one), chain_hash(GENESIS, &fields("{}")));
    }
}
