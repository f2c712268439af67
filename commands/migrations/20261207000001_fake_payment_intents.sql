-- The fake payment provider's own state (issue 13): its payment intents, shared by every
-- process of the installation, as a real provider's are, so that a payment started
-- through one `api` process is confirmed through another, and a surplus is refunded by
-- whichever process runs the follow-ups. Not an event store table: it plays the part of a
-- service outside Framecart.
CREATE TABLE fake_payment_intents
(
    intent_id    text PRIMARY KEY,
    payment_id   uuid        NOT NULL,
    amount_minor bigint      NOT NULL,
    currency     text        NOT NULL,
    status       text        NOT NULL,
    card         text,
    -- Minor units given back so far, and the idempotency keys of the refunds.
    refunded     bigint      NOT NULL DEFAULT 0,
    refund_keys  text[]      NOT NULL DEFAULT '{}',
    -- The time of the last change: each change is later than the one before.
    last_change  timestamptz NOT NULL
);
