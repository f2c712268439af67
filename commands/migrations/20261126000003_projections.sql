-- Read models. Each projection owns its tables; all of them can be dropped and rebuilt
-- from the log. `last_sequence` is the JetStream stream sequence applied last, updated
-- in the same transaction as the view; `generation` changes when a rebuild starts.
CREATE TABLE projection_checkpoints
(
    name              text PRIMARY KEY,
    last_sequence     bigint      NOT NULL DEFAULT 0,
    generation        bigint      NOT NULL DEFAULT 0,
    -- The generation the active runner has started applying (a rebuild waits for it).
    leader_generation bigint      NOT NULL DEFAULT -1,
    updated_at        timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Projection `clicks`: one row per click.
CREATE TABLE clicks_view
(
    click_id          uuid PRIMARY KEY,
    log_position      bigint           NOT NULL UNIQUE,
    event_id          uuid             NOT NULL,
    video_id          text             NOT NULL,
    video_id_reported text             NOT NULL,
    user_id           text,
    -- The viewer: the configured cookie's value when sent, else the client address.
    viewer            text             NOT NULL,
    client_ip         text             NOT NULL,
    viewer_cookie     text,
    x                 double precision NOT NULL,
    y                 double precision NOT NULL,
    media_time        double precision NOT NULL,
    player_width      double precision,
    player_height     double precision,
    video_width       double precision,
    video_height      double precision,
    frame_x           double precision,
    frame_y           double precision,
    frame_u           double precision,
    frame_v           double precision,
    on_black_band     boolean          NOT NULL,
    during_ad         boolean          NOT NULL,
    received_at       timestamptz      NOT NULL,
    -- When the event was stored, and when this row was written: their gap is the lag.
    recorded_at       timestamptz      NOT NULL,
    projected_at      timestamptz      NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX clicks_view_by_video ON clicks_view (video_id, log_position);
CREATE INDEX clicks_view_by_user ON clicks_view (user_id, log_position) WHERE user_id IS NOT NULL;
CREATE INDEX clicks_view_by_viewer ON clicks_view (viewer, log_position);

-- Projection `client_files`: the rows behind media/client_files/*.json.
CREATE TABLE client_file_clicks
(
    file_name    text             NOT NULL,
    log_position bigint           NOT NULL,
    x            double precision NOT NULL,
    y            double precision NOT NULL,
    media_time   double precision NOT NULL,
    video_id     text             NOT NULL,
    PRIMARY KEY (file_name, log_position)
);
-- Files whose rows changed and whose file is not yet rewritten (survives a crash).
CREATE TABLE client_files_dirty
(
    file_name text PRIMARY KEY,
    version   bigint NOT NULL DEFAULT 1
);
