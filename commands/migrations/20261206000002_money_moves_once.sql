-- Money moves once (issue 12).

-- The order process manager keeps a follow-up that was refused for good, with the reason,
-- for an operator, instead of dropping it; a payment's claim on its order ends for a reason.
ALTER TABLE order_followups
    ADD COLUMN reason         text,
    ADD COLUMN refused_at     timestamptz,
    ADD COLUMN refused_reason text;

-- What a payment captured beyond what paid the order, and what of it was given back.
ALTER TABLE orders_view
    ADD COLUMN surplus_captured_minor bigint NOT NULL DEFAULT 0,
    ADD COLUMN surplus_refunded_minor bigint NOT NULL DEFAULT 0;

-- Process manager `reservation_followups`: stock reservations that say when they expire,
-- until they are released or committed. One past its time whose order was not placed is
-- given back.
CREATE TABLE stock_reservations
(
    order_id       uuid        NOT NULL,
    article        text        NOT NULL,
    expires_at     timestamptz NOT NULL,
    event_id       uuid        NOT NULL,
    correlation_id text        NOT NULL,
    PRIMARY KEY (order_id, article)
);
CREATE INDEX stock_reservations_by_expiry ON stock_reservations (expires_at);
