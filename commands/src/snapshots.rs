//! Snapshots: a command loads its aggregate's latest snapshot and the events after it,
//! so its cost does not grow with the aggregate's history.
//!
//! # Why snapshots, and why ours
//!
//! Two aggregates grow without bound: a product (every order reserves, then commits or
//! releases stock) and a detection run (every batch of frames is an event with its boxes).
//! The other answer, bounded streams (stock periods closed and carried forward, a run
//! split into segments), would change the events and the aggregates' boundaries, so the
//! log, the projections and the detections file would change meaning, and history already
//! stored would need a migration of its own. Snapshots change none of that: the events
//! stay what they are, and the snapshot is only a cache of their fold.
//!
//! cqrs-es 0.5's snapshot store saves wrong state (its `EventSink::write` applies each
//! event, then its commit applies them again), so the command path here is our own, over
//! the same repository:
//!
//! - a command loads the snapshot of today's [`Snapshot::STATE_VERSION`] and the events
//!   after it, in one statement ([`crate::store`]), folds the events onto it, and decides;
//! - its events are appended as before (group commit, optimistic lock on the sequence);
//! - once they are committed, if they leave [`Snapshot::SNAPSHOT_EVERY`] events or more
//!   after the snapshot the load started from (or after the first event, when it had
//!   none: a history written before snapshots existed gets one at its first command),
//!   the state after them (the state `handle` left, each event applied exactly once) is
//!   stored as the snapshot at the new sequence. It is the fold of exactly the events up
//!   to that sequence, because the append at those sequences succeeded on top of the
//!   loaded state.
//!
//! Snapshots are a cache: deleting some or all of them changes nothing but speed, a
//! snapshot that does not decode is read as none (the load folds every event and says
//! so), and a write that fails is only logged. A snapshot never replaces an event: the
//! log, the audit chain, the projections and replays read events only.

use std::collections::HashMap;

use cqrs_es::persist::PersistenceError;
use framecart_domain::snapshot::{self, Snapshot};
use framecart_domain::upcast::{self, Upcast};

use crate::store::{EventRepository, StateRow};

/// Which snapshots commands read and take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SnapshotPolicy {
    /// Each aggregate type every [`Snapshot::SNAPSHOT_EVERY`] events.
    #[default]
    PerAggregate,
    /// Every aggregate type every this many events (at least 1; `FRAMECART_SNAPSHOT_EVERY`).
    Every(u64),
    /// None read, none taken: every load folds the whole history.
    Off,
}

/// An aggregate as loaded: its state, its last sequence, and the sequence of the snapshot
/// it was folded from (if any).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    pub aggregate: A,
    pub sequence: usize,
    pub from_snapshot: Option<usize>,
}

impl<A: Default> Default for Loaded<A> {
    fn default() -> Self {
        Self { aggregate: A::default(), sequence: 0, from_snapshot: None }
    }
}

/// Why rows could not be folded.
enum Unfolded {
    /// A snapshot did not decode: load again without snapshots.
    Snapshot(String),
    /// An event did not decode (or a sequence is impossible): the load fails.
    Event(String),
}

/// Folds the rows of [`crate::store::select_states`] (by aggregate id, each aggregate's
/// snapshot first, then its events in sequence order) into each aggregate's state.
fn fold<A>(rows: Vec<StateRow>) -> Result<HashMap<String, Loaded<A>>, Unfolded>
where
    A: Snapshot,
    A::Event: Upcast,
{
    let mut states: HashMap<String, Loaded<A>> = HashMap::new();
    for row in rows {
        let sequence = usize::try_from(row.sequence)
            .map_err(|e| Unfolded::Event(format!("{} has sequence {}: {e}", row.aggregate_id, row.sequence)))?;
        match (row.event_type, row.event_version) {
            (Some(event_type), Some(event_version)) => {
                let event: A::Event = upcast::decode_value(&event_type, &event_version, row.payload).map_err(|e| {
                    Unfolded::Event(format!("{event_type} {event_version} of {} #{sequence}: {e}", row.aggregate_id))
                })?;
                let state = states.entry(row.aggregate_id).or_default();
                state.aggregate.apply(event);
                state.sequence = sequence;
            }
            _ => {
                let aggregate: A = serde_json::from_value(row.payload)
                    .map_err(|e| Unfolded::Snapshot(format!("{} at #{sequence}: {e}", row.aggregate_id)))?;
                states.insert(row.aggregate_id, Loaded { aggregate, sequence, from_snapshot: Some(sequence) });
            }
        }
    }
    Ok(states)
}

impl EventRepository {
    /// An aggregate's state: its snapshot and the events after it (all its events when it
    /// has no readable snapshot).
    pub async fn load_state<A>(&self, aggregate_id: &str) -> Result<Loaded<A>, PersistenceError>
    where
        A: Snapshot,
        A::Event: Upcast,
    {
        let mut states = self.folded(|version| self.load_rows(A::TYPE, aggregate_id, version)).await?;
        Ok(states.remove(aggregate_id).unwrap_or_default())
    }

    /// The states of several aggregates of one type, with one query.
    pub async fn load_states<A>(&self, ids: &[&str]) -> Result<HashMap<String, Loaded<A>>, PersistenceError>
    where
        A: Snapshot,
        A::Event: Upcast,
    {
        self.folded(|version| async move {
            crate::store::select_states(self.pool(), A::TYPE, ids, version)
                .await
                .map_err(|e| PersistenceError::ConnectionError(Box::new(e)))
        })
        .await
    }

    /// The states `rows` reads (given the state version of the snapshots to read), folded;
    /// when a snapshot does not decode, read again without snapshots.
    async fn folded<A, F, R>(&self, rows: F) -> Result<HashMap<String, Loaded<A>>, PersistenceError>
    where
        A: Snapshot,
        A::Event: Upcast,
        F: Fn(Option<u32>) -> R,
        R: std::future::Future<Output = Result<Vec<StateRow>, PersistenceError>>,
    {
        let mut version = (self.snapshot_policy() != SnapshotPolicy::Off).then_some(A::STATE_VERSION);
        loop {
            match fold::<A>(rows(version).await?) {
                Ok(states) => return Ok(states),
                Err(Unfolded::Snapshot(e)) if version.is_some() => {
                    tracing::warn!(aggregate_type = A::TYPE, error = %e, "a snapshot does not decode; folding every event");
                    version = None;
                }
                Err(Unfolded::Snapshot(e) | Unfolded::Event(e)) => return Err(undecodable(e)),
            }
        }
    }

    /// Whether an aggregate whose last snapshot is at `last_snapshot` (0: none) is due a
    /// new one now that it has `after` events.
    pub(crate) fn snapshot_due<A: Snapshot>(&self, last_snapshot: usize, after: usize) -> bool {
        let every = match self.snapshot_policy() {
            SnapshotPolicy::Off => return false,
            SnapshotPolicy::PerAggregate => A::SNAPSHOT_EVERY,
            SnapshotPolicy::Every(every) => every,
        };
        snapshot::due(every, last_snapshot as u64, after as u64)
    }

    /// Stores `state`, the fold of the aggregate's events up to `sequence` (committed), as
    /// its snapshot, unless a later one is stored already. A failure is logged, not
    /// returned: the snapshot is a cache, and the command it follows is committed.
    pub(crate) async fn save_snapshot<A: Snapshot>(&self, aggregate_id: &str, sequence: usize, state: &A) {
        let saved = async {
            let state = serde_json::to_value(state).map_err(|e| e.to_string())?;
            let sequence = i64::try_from(sequence).map_err(|e| e.to_string())?;
            sqlx::query(
                "INSERT INTO aggregate_snapshots (aggregate_type, aggregate_id, last_sequence, state_version, state)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
                 SET last_sequence = EXCLUDED.last_sequence, state_version = EXCLUDED.state_version,
                     state = EXCLUDED.state, taken_at = EXCLUDED.taken_at
                 WHERE aggregate_snapshots.last_sequence < EXCLUDED.last_sequence
                    OR aggregate_snapshots.state_version <> EXCLUDED.state_version",
            )
            .bind(A::TYPE)
            .bind(aggregate_id)
            .bind(sequence)
            .bind(i32::try_from(A::STATE_VERSION).map_err(|e| e.to_string())?)
            .bind(state)
            .execute(self.pool())
            .await
            .map_err(|e| e.to_string())?;
            Ok::<(), String>(())
        };
        if let Err(e) = saved.await {
            tracing::warn!(aggregate_type = A::TYPE, aggregate_id, sequence, error = %e, "snapshot not stored");
        }
    }
}

fn undecodable(message: String) -> PersistenceError {
    PersistenceError::DeserializationError(message.into())
}
