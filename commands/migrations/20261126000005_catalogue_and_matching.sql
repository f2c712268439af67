-- Projection `products`: the catalogue.
CREATE TABLE products_view
(
    article     text PRIMARY KEY,
    name        text        NOT NULL,
    description text        NOT NULL,
    price_minor bigint      NOT NULL,
    currency    text        NOT NULL,
    -- Units on hand (restocks) and units held by open orders.
    stock       bigint      NOT NULL,
    reserved    bigint      NOT NULL DEFAULT 0,
    image_url   text,
    active      boolean     NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    -- The product aggregate's sequence last applied: lets a writer wait for its write.
    version     bigint      NOT NULL
);
CREATE INDEX products_view_article_fragment ON products_view (lower(article) text_pattern_ops);

-- Projection `detections`, continued: each uploaded version's size, the tracks of every
-- completed run, and the product links.
CREATE TABLE detection_video_sizes
(
    video_id text    NOT NULL,
    version  integer NOT NULL,
    width    integer NOT NULL,
    height   integer NOT NULL,
    PRIMARY KEY (video_id, version)
);

ALTER TABLE detection_requests
    ADD COLUMN video_version integer NOT NULL DEFAULT 1,
    ADD COLUMN sample_fps    double precision NOT NULL DEFAULT 5;
ALTER TABLE detections_view
    ADD COLUMN track_id text;

CREATE TABLE tracks_view
(
    track_id   text PRIMARY KEY,
    run_id     uuid             NOT NULL,
    video_id   text             NOT NULL,
    number     integer          NOT NULL,
    class_id   integer          NOT NULL,
    label      text             NOT NULL,
    t_start    double precision NOT NULL,
    t_end      double precision NOT NULL,
    -- [t_start - interval, t_end + interval]: when the track can be clicked.
    span       numrange         NOT NULL,
    -- [[t, xmin, ymin, xmax, ymax, confidence], …] in pixels of the uploaded file.
    samples    jsonb            NOT NULL
);
CREATE INDEX tracks_view_by_run ON tracks_view (run_id, number);
CREATE INDEX tracks_view_span ON tracks_view USING gist (span);

CREATE TABLE links_view
(
    link_id               uuid PRIMARY KEY,
    video_id              text             NOT NULL,
    article               text             NOT NULL,
    kind                  text             NOT NULL,
    label                 text,
    t_from                double precision,
    t_to                  double precision,
    track_id              text,
    additional_identifier text             NOT NULL,
    -- Log position of the link: the newest link wins where several apply.
    position              bigint           NOT NULL,
    active                boolean          NOT NULL,
    linked_at             timestamptz      NOT NULL,
    unlinked_at           timestamptz
);
CREATE INDEX links_view_by_video ON links_view (video_id) WHERE active;

-- Projection `clicks`, continued: the matcher's verdict on each click.
ALTER TABLE clicks_view
    ADD COLUMN match_status      text NOT NULL DEFAULT 'pending',
    ADD COLUMN match_reason      text,
    ADD COLUMN match_article     text,
    ADD COLUMN match_identifier  text,
    ADD COLUMN match_label       text,
    ADD COLUMN match_track_id    text,
    ADD COLUMN match_box         jsonb,
    ADD COLUMN match_score       double precision,
    ADD COLUMN match_explanation text,
    ADD COLUMN match_candidates  jsonb,
    ADD COLUMN match_run_id      uuid,
    ADD COLUMN matched_at        timestamptz,
    ADD COLUMN match_projected_at timestamptz;

-- The matcher (a process manager): the clicks it knows, and the verdicts it owes.
CREATE TABLE matcher_clicks
(
    click_id   uuid PRIMARY KEY,
    video_id   text             NOT NULL,
    media_time double precision NOT NULL,
    -- Normalized frame point; null without player and frame sizes.
    u          double precision,
    v          double precision,
    -- The picture's size on screen in CSS pixels (null: the click's own pixels are frame pixels).
    css_width  double precision,
    css_height double precision,
    x          double precision NOT NULL,
    y          double precision NOT NULL,
    on_frame   boolean          NOT NULL,
    during_ad  boolean          NOT NULL
);
CREATE INDEX matcher_clicks_by_video ON matcher_clicks (video_id);

CREATE TABLE matcher_pending
(
    click_id       uuid PRIMARY KEY,
    -- The log position whose state the verdict must reflect.
    due_position   bigint NOT NULL,
    -- The event that asked for the verdict, and its correlation id.
    cause_event_id uuid   NOT NULL,
    correlation_id text   NOT NULL
);
