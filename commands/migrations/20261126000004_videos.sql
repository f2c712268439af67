-- Projection `videos`: each video with its current file version and the state of its
-- newest detection run; and every detection run.
CREATE TABLE videos_view
(
    video_id          text PRIMARY KEY,
    version           integer          NOT NULL,
    file_name         text             NOT NULL,
    original_name     text,
    size_bytes        bigint           NOT NULL,
    sha256            text             NOT NULL,
    duration          double precision NOT NULL,
    width             integer          NOT NULL,
    height            integer          NOT NULL,
    frame_rate        double precision NOT NULL,
    codec             text             NOT NULL,
    container         text             NOT NULL,
    first_uploaded_at timestamptz      NOT NULL,
    uploaded_at       timestamptz      NOT NULL,
    -- The newest requested run decides status and progress.
    latest_run_id     uuid,
    status            text             NOT NULL,
    progress          double precision NOT NULL DEFAULT 0,
    failure_reason    text,
    -- The newest completed run: what the detections show.
    completed_run_id  uuid,
    updated_at        timestamptz      NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE detection_runs_view
(
    run_id           uuid PRIMARY KEY,
    video_id         text             NOT NULL,
    video_version    integer          NOT NULL,
    -- Log position of the request: "newest" means requested last.
    request_position bigint           NOT NULL,
    labels           jsonb            NOT NULL,
    sample_fps       double precision NOT NULL,
    min_confidence   double precision NOT NULL,
    status           text             NOT NULL,
    attempt          integer          NOT NULL DEFAULT 0,
    worker           text,
    model            text,
    frames_done      bigint           NOT NULL DEFAULT 0,
    frames_total     bigint           NOT NULL DEFAULT 0,
    objects          bigint           NOT NULL DEFAULT 0,
    elapsed_ms       bigint,
    failure_reason   text,
    requested_at     timestamptz      NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz
);
CREATE INDEX detection_runs_view_by_video ON detection_runs_view (video_id, request_position);

-- Projection `detections`: every recorded detection, and which run each video shows.
CREATE TABLE detections_view
(
    run_id       uuid             NOT NULL,
    video_id     text             NOT NULL,
    log_position bigint           NOT NULL,
    ordinal      integer          NOT NULL,
    media_time   double precision NOT NULL,
    class_id     integer          NOT NULL,
    label        text             NOT NULL,
    confidence   double precision NOT NULL,
    -- Box in pixels of the uploaded file (`xmin` would clash with a system column).
    x_min        double precision NOT NULL,
    y_min        double precision NOT NULL,
    x_max        double precision NOT NULL,
    y_max        double precision NOT NULL,
    PRIMARY KEY (run_id, log_position, ordinal)
);
CREATE INDEX detections_view_by_time ON detections_view (run_id, media_time);

CREATE TABLE detection_requests
(
    run_id           uuid PRIMARY KEY,
    video_id         text   NOT NULL,
    request_position bigint NOT NULL
);

CREATE TABLE detection_current
(
    video_id         text PRIMARY KEY,
    run_id           uuid   NOT NULL,
    request_position bigint NOT NULL
);

-- Detection files not yet rewritten (survives a crash).
CREATE TABLE detection_files_dirty
(
    file_name text PRIMARY KEY,
    version   bigint NOT NULL DEFAULT 1
);
