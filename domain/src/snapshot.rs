//! Snapshots: an aggregate's state after its first `n` events, stored so that a command
//! loads the snapshot and the events after it instead of the whole history.
//!
//! A snapshot is a cache. It is the same fold of the same events that a load from zero
//! computes, written once the events are committed: deleting every snapshot changes
//! nothing but the time a load takes. A snapshot of another [`Snapshot::STATE_VERSION`]
//! is not read, and one that does not decode is read as none: the aggregate is then folded
//! from its events, and its next command takes a snapshot of today's version.
//!
//! The state is the aggregate's serde form (cqrs-es requires one). Its shape is pinned by
//! the golden files under `domain/tests/golden/snapshots/`: a change of the state's shape
//! fails there until `STATE_VERSION` goes up with the golden file.

use cqrs_es::Aggregate;

/// An aggregate whose state may be stored as a snapshot.
pub trait Snapshot: Aggregate {
    /// The version of the state's shape and of what `apply` makes of events. Raise it with
    /// any change to the state's fields or to an `apply` rule: older snapshots are then
    /// ignored, never read into the new shape.
    const STATE_VERSION: u32;

    /// A snapshot is taken once a command's events leave at least this many events after
    /// the aggregate's last snapshot (or, without one, its first event), so a load reads
    /// fewer than this many events after its snapshot. Aggregates whose events are large
    /// (a detection run's batches of boxes) take them more often.
    const SNAPSHOT_EVERY: u64 = 100;

    /// Whether an aggregate whose last snapshot is at `last_snapshot` (0: none) and which
    /// has `after` events now is due a snapshot.
    fn snapshot_due(last_snapshot: u64, after: u64) -> bool {
        due(Self::SNAPSHOT_EVERY, last_snapshot, after)
    }
}

/// Whether, taking a snapshot every `every` events (at least 1), an aggregate whose last
/// snapshot is at `last_snapshot` (0: none) and which has `after` events now is due one.
pub fn due(every: u64, last_snapshot: u64, after: u64) -> bool {
    after.saturating_sub(last_snapshot) >= every.max(1)
}

#[cfg(test)]
mod tests {
    use super::Snapshot;
    use crate::product::Product;

    #[test]
    fn a_snapshot_is_due_once_enough_events_follow_the_last_one() {
        let every = <Product as Snapshot>::SNAPSHOT_EVERY;
        assert!(!Product::snapshot_due(0, 1));
        assert!(!Product::snapshot_due(0, every - 1));
        assert!(Product::snapshot_due(0, every));
        assert!(Product::snapshot_due(0, every + 2));
        assert!(!Product::snapshot_due(every, every + 1));
        assert!(Product::snapshot_due(every, 2 * every));
        // A history written before snapshots existed: due at its first command.
        assert!(Product::snapshot_due(0, 1_000_001));
    }
}
