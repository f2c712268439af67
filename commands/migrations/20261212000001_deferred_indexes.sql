-- Issue 14: a rebuild writes a view first and indexes it after. A rebuild drops the
-- secondary indexes its projection lets it defer, in the transaction that empties the
-- views, and records each one's definition here; the applier builds them again, and
-- deletes their rows, in one transaction once it has caught up with the log. A crash in
-- between leaves the rows, so the next applier still builds them.
CREATE TABLE projection_deferred_indexes
(
    projection text NOT NULL,
    index_name text NOT NULL,
    definition text NOT NULL,
    PRIMARY KEY (projection, index_name)
);
