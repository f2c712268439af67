-- Snapshots of aggregates: the state after an aggregate's first `last_sequence` events,
-- so that a command loads the snapshot and the events after it, not the whole history
-- (framecart_commands::snapshots). A cache of a fold of `events`: deleting rows changes
-- nothing but the time a load takes. A row of another state version is not read.
CREATE TABLE aggregate_snapshots
(
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    last_sequence  bigint      NOT NULL CHECK (last_sequence > 0),
    state_version  integer     NOT NULL,
    state          json        NOT NULL,
    taken_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (aggregate_type, aggregate_id)
);
