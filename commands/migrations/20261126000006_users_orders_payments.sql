-- Projection `users`: accounts, for token checks and listings.
CREATE TABLE users_view
(
    user_id             uuid PRIMARY KEY,
    email               text        NOT NULL UNIQUE,
    roles               text[]      NOT NULL,
    -- Tokens issued before this time are refused (log-out everywhere).
    sessions_valid_after timestamptz,
    registered_at       timestamptz NOT NULL
);

-- Projection `orders`.
CREATE TABLE orders_view
(
    order_id         uuid PRIMARY KEY,
    user_id          uuid        NOT NULL,
    status           text        NOT NULL,
    lines            jsonb       NOT NULL,
    total_minor      bigint      NOT NULL,
    currency         text        NOT NULL,
    click_id         uuid,
    contact          jsonb       NOT NULL,
    shipping_address jsonb       NOT NULL,
    payment_id       uuid,
    refunded_minor   bigint,
    placed_at        timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    log_position     bigint      NOT NULL
);
CREATE INDEX orders_view_by_user ON orders_view (user_id, placed_at);

-- Projection `payments`.
CREATE TABLE payments_view
(
    payment_id     uuid PRIMARY KEY,
    order_id       uuid        NOT NULL,
    user_id        uuid        NOT NULL,
    provider       text        NOT NULL,
    intent_id      text        NOT NULL,
    amount_minor   bigint      NOT NULL,
    currency       text        NOT NULL,
    status         text        NOT NULL,
    failure_code   text,
    failure_message text,
    refunded       boolean     NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX payments_view_by_order ON payments_view (order_id, created_at);
CREATE INDEX payments_view_by_intent ON payments_view (provider, intent_id);

-- Idempotency keys of order requests: the first answer, replayed on a retry. A technical
-- record of requests, not a fact of the shop; kept at least 24 hours.
CREATE TABLE idempotency_keys
(
    user_id      uuid        NOT NULL,
    key          text        NOT NULL,
    request_hash text        NOT NULL,
    status       integer,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

-- The order process manager: commands owed because of payment and order events (mark
-- paid, refund, release or commit stock).
CREATE TABLE order_followups
(
    event_id       uuid PRIMARY KEY,
    position       bigint      NOT NULL,
    kind           text        NOT NULL,
    order_id       uuid        NOT NULL,
    payment_id     uuid,
    amount         jsonb,
    at             timestamptz NOT NULL,
    correlation_id text        NOT NULL
);

-- Projection `analytics`: per video, the funnel click → match → order → paid, revenue per
-- product, and a heatmap of clicks.
CREATE TABLE analytics_clicks
(
    click_id  uuid PRIMARY KEY,
    video_id  text NOT NULL,
    status    text NOT NULL DEFAULT 'pending',
    article   text
);
CREATE INDEX analytics_clicks_by_video ON analytics_clicks (video_id);

CREATE TABLE analytics_heatmap
(
    video_id text    NOT NULL,
    gx       integer NOT NULL,
    gy       integer NOT NULL,
    clicks   bigint  NOT NULL,
    PRIMARY KEY (video_id, gx, gy)
);

CREATE TABLE analytics_orders
(
    order_id  uuid PRIMARY KEY,
    video_id  text,
    click_id  uuid,
    status    text  NOT NULL,
    lines     jsonb NOT NULL,
    currency  text  NOT NULL,
    refunded  bigint NOT NULL DEFAULT 0
);
CREATE INDEX analytics_orders_by_video ON analytics_orders (video_id);
