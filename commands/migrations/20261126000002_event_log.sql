-- The relay's own record of what it published: each event's log position (the dense
-- JetStream stream sequence, in commit order) and its link in the hash chain.
CREATE TABLE event_log
(
    log_position    bigint PRIMARY KEY CHECK (log_position > 0),
    global_position bigint      NOT NULL UNIQUE,
    event_id        uuid        NOT NULL UNIQUE,
    -- Hex sha256 of the event chained to the previous log position's hash.
    hash            text        NOT NULL,
    relayed_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TRIGGER event_log_append_only
    BEFORE UPDATE OR DELETE ON event_log
    FOR EACH ROW EXECUTE FUNCTION framecart_reject_change();
CREATE TRIGGER event_log_no_truncate
    BEFORE TRUNCATE ON event_log
    FOR EACH STATEMENT EXECUTE FUNCTION framecart_reject_change();
