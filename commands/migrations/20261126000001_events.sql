-- The event store: postgres-es's `events` table, plus the columns that give every event
-- a global commit order and an identity of its own. postgres-es names its seven columns
-- in its INSERT, so the added columns (all with defaults) are filled by Postgres.
CREATE TABLE events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    metadata       json                         NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

ALTER TABLE events
    -- Taken at insert time, not commit time, with gaps after rollbacks: never tail by it alone.
    ADD COLUMN global_position bigint GENERATED ALWAYS AS IDENTITY,
    -- The inserting transaction: commit order is (tx_id, global_position) below the snapshot xmin.
    ADD COLUMN tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    ADD COLUMN event_id uuid NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN recorded_at timestamptz NOT NULL DEFAULT clock_timestamp();

CREATE UNIQUE INDEX events_global_position ON events (global_position);
CREATE UNIQUE INDEX events_event_id ON events (event_id);
CREATE INDEX events_commit_order ON events (tx_id, global_position);

-- Append-only: history is never rewritten.
CREATE FUNCTION framecart_reject_change() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    RAISE EXCEPTION 'table % is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION framecart_reject_change();
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION framecart_reject_change();
