-- Events a projection could not decode or apply, set aside so that its view goes on past
-- them. Written in the same transaction as the projection's checkpoint, so an event is
-- either applied or set aside, once. `framecart projections retry` applies them again
-- (for example after an upcaster was added) and removes each one that succeeds; a
-- rebuild starts the projection's list afresh.
CREATE TABLE projection_quarantine
(
    projection     text        NOT NULL,
    log_position   bigint      NOT NULL,
    -- From the message: its `Nats-Msg-Id` and subject when the body itself is unreadable.
    event_id       uuid,
    aggregate_type text,
    aggregate_id   text,
    event_type     text,
    event_version  text,
    error          text        NOT NULL,
    attempts       integer     NOT NULL DEFAULT 1,
    quarantined_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_tried_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (projection, log_position)
);
CREATE INDEX projection_quarantine_by_time ON projection_quarantine (quarantined_at, projection, log_position);
