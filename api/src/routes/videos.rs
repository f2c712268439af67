//! Videos: upload, detection requests, and the `videos` and `detections` views.

use std::collections::BTreeMap;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use chrono::Utc;
use framecart_commands::CommandError;
use framecart_commands::execute::execute;
use framecart_domain::VideoId;
use framecart_domain::user::Role;
use framecart_domain::video::{RequestDetection, UploadVideo, Video, VideoCommand, VideoError, VideoFile};
use framecart_projections::detections::{self, DetectionFilter, DetectionView};
use framecart_projections::videos::{self, RunView, VideoView};
use serde::{Deserialize, Serialize};
use tower::ServiceExt as _;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Multipart, Path, Query, RequestMetadata};
use crate::state::AppState;
use crate::upload::{self, Received};

pub fn router() -> OpenApiRouter<AppState> {
    // Uploads stream to disk under their own limit (`FRAMECART_MAX_UPLOAD_BYTES`).
    let uploads = OpenApiRouter::new().routes(routes!(upload_video)).layer(DefaultBodyLimit::disable());
    OpenApiRouter::new()
        .merge(uploads)
        .routes(routes!(list_videos))
        .routes(routes!(get_video))
        .routes(routes!(video_file))
        .routes(routes!(video_scene))
        .routes(routes!(video_frame))
        .routes(routes!(preview_click))
        .routes(routes!(list_runs))
        .routes(routes!(list_detections))
        .routes(routes!(start_processing))
        .routes(routes!(detector_classes))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClassList {
    /// The model's classes in order; empty when this process has not read the model's
    /// names (then any class id is accepted and checked by the detector).
    pub items: Vec<DetectorClass>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DetectorClass {
    /// The key for `object_labels` of a detection request (`1` is the first class).
    pub class_id: u32,
    pub name: String,
}

/// The classes the detector can find (staff), for choosing what a detection run reports.
#[utoipa::path(get, path = "/api/v1/detector/classes", tag = "videos", responses((status = 200, body = ClassList)))]
async fn detector_classes(State(app): State<AppState>, caller: Caller) -> Result<axum::Json<ClassList>, ApiError> {
    caller.require(&[Role::Merchant, Role::Auditor])?;
    let items = app
        .class_names
        .iter()
        .flatten()
        .zip(1..)
        .map(|(name, class_id)| DetectorClass { class_id, name: name.clone() })
        .collect();
    Ok(axum::Json(ClassList { items }))
}

/// A media time a client sent: finite and not negative, else 422 `invalid_time`.
fn media_time(t: f64, message: &'static str) -> Result<f64, ApiError> {
    if t.is_finite() && t >= 0.0 { Ok(t) } else { Err(ApiError::invalid("invalid_time", message)) }
}

pub fn video_id(raw: &str) -> Result<VideoId, ApiError> {
    VideoId::parse(raw).map_err(|e| ApiError::invalid("invalid_video_id", e))
}

/// The multipart form of `POST /api/v1/videos`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// A YouTube id or URL.
    video_id: String,
    /// The video file.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    file: String,
}

/// The stored upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct Uploaded {
    pub video_id: String,
    /// 1 for the first upload; each new upload of the same video is a new version.
    pub version: u32,
    pub file_name: String,
    pub size_bytes: u64,
    pub sha256: String,
    pub duration: f64,
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
    /// `queued` when detection was requested with the upload, else `uploaded`.
    pub status: &'static str,
    /// The detection run requested with the upload.
    pub run_id: Option<Uuid>,
}

/// Uploads a video's file (`multipart/form-data` with `video_id` and `file`). The file is
/// streamed to `media/source_video_files/{video_id}.{ext}`; an upload for a video that has
/// one is a new version. With `FRAMECART_AUTO_DETECT`, detection of every class is
/// requested at once. A video whose frames have more pixels than
/// `FRAMECART_MAX_VIDEO_PIXELS` (default 3840×2160) is refused before anything decodes it.
#[utoipa::path(
    post,
    path = "/api/v1/videos",
    tag = "videos",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, body = Uploaded),
        (status = 400, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "Not a video (`not_a_video`), frames over the pixel budget (`video_too_large`), empty, or a bad id", body = ErrorBody),
    )
)]
async fn upload_video(
    State(app): State<AppState>,
    request: RequestMetadata,
    caller: Caller,
    headers: HeaderMap,
    Multipart(mut form): Multipart,
) -> Result<(StatusCode, axum::Json<Uploaded>), ApiError> {
    caller.require(&[Role::Merchant])?;
    let limit = app.video.max_upload_bytes;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    // The form's own overhead is small; a body far over the limit is refused unread.
    if declared.is_some_and(|n| n > limit.saturating_add(64 * 1024)) {
        return Err(ApiError::PayloadTooLarge);
    }
    let dir = app.settings.media_dir.join(upload::FOLDER);
    let mut id_field: Option<String> = None;
    let mut received: Option<Received> = None;
    while let Some(field) = form.next_field().await.map_err(upload::multipart_error)? {
        match field.name() {
            Some("video_id") => {
                let text = field.text().await.map_err(upload::multipart_error)?;
                id_field = Some(text.chars().take(2048).collect());
            }
            Some("file") if received.is_none() => received = Some(upload::receive(field, &dir, limit).await?),
            Some("file") => return Err(ApiError::invalid("duplicate_file", "send one `file` part")),
            _ => {} // unknown parts are read and ignored
        }
    }
    let video_id = video_id(id_field.as_deref().ok_or_else(|| {
        ApiError::invalid("missing_video_id", "the form needs a `video_id` part (a YouTube id or URL)")
    })?)?;
    let received = received.ok_or_else(|| ApiError::invalid("missing_file", "the form needs a `file` part"))?;
    if received.size_bytes == 0 {
        return Err(ApiError::invalid("empty_file", "the uploaded file is empty"));
    }
    let probe_path = received.temp.to_path_buf();
    let info = tokio::task::spawn_blocking(move || framecart_detector::probe(&probe_path))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| {
            // The details name a path of ours and quote ffprobe: for the log only.
            tracing::info!(error = %e, "an upload is not a video");
            not_a_video()
        })?;
    if !(info.duration.is_finite() && info.duration > 0.0) || info.width == 0 || info.height == 0 {
        return Err(not_a_video());
    }
    check_frame_size(info.width, info.height, app.video.max_video_pixels)?;
    let ext = upload::extension(received.original_name.as_deref(), &info.format, &info.codec);
    let file = VideoFile {
        file_name: format!("{video_id}.{ext}"),
        original_name: received.original_name.clone(),
        size_bytes: received.size_bytes,
        sha256: received.sha256.clone(),
        duration: info.duration,
        width: info.width,
        height: info.height,
        frame_rate: info.fps,
        codec: info.codec.clone(),
        container: info.format.clone(),
    };
    let detect = app.video.auto_detect.then(|| RequestDetection {
        video_id: video_id.clone(),
        run_id: Uuid::now_v7(),
        labels: BTreeMap::new(),
        sample_fps: app.video.sample_fps,
        min_confidence: app.video.min_confidence,
        requested_at: Utc::now(),
    });
    let run_id = detect.as_ref().map(|d| d.run_id);
    let command = VideoCommand::UploadVideo(UploadVideo {
        video_id: video_id.clone(),
        file: file.clone(),
        uploaded_at: Utc::now(),
        detect,
    });
    let metadata = request.by(caller.actor());
    // Recording the version and putting the file in place belong together: run them to
    // the end even if the client goes away, one upload of a video at a time.
    let place = {
        let app = app.clone();
        let video_id = video_id.clone();
        tokio::spawn(async move {
            // In the shared store first, so a detector on any host finds the file once the
            // upload is recorded (named by its hash: a retry or a second upload of the
            // same content stores nothing new).
            app.media.put(&received.sha256, &received.temp).await.map_err(ApiError::unavailable)?;
            let mut lock = app.pool.begin().await.map_err(ApiError::unavailable)?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(format!("framecart:upload:{video_id}"))
                .execute(&mut *lock)
                .await
                .map_err(ApiError::unavailable)?;
            execute(&app.commands.videos, video_id.as_str(), command, metadata).await.map_err(video_error)?;
            let version = app
                .commands
                .load::<Video>(video_id.as_str())
                .await
                .map_err(video_error)?
                .current()
                .map_or(1, |c| c.version);
            let id = video_id.to_string();
            tokio::task::spawn_blocking(move || upload::put_in_place(received.temp, &dir, &id, ext))
                .await
                .map_err(ApiError::internal)?
                .map_err(ApiError::internal)?;
            lock.commit().await.map_err(ApiError::unavailable)?;
            Ok::<u32, ApiError>(version)
        })
    };
    let version = place.await.map_err(ApiError::internal)??;
    Ok((
        StatusCode::CREATED,
        axum::Json(Uploaded {
            video_id: video_id.to_string(),
            version,
            file_name: file.file_name,
            size_bytes: file.size_bytes,
            sha256: file.sha256,
            duration: file.duration,
            width: file.width,
            height: file.height,
            frame_rate: file.frame_rate,
            status: if run_id.is_some() { "queued" } else { "uploaded" },
            run_id,
        }),
    ))
}

fn not_a_video() -> ApiError {
    ApiError::invalid(
        "not_a_video",
        "the file is not a video that can be read: not media at all, a still image, audio only, or without a duration",
    )
}

/// 422 `video_too_large` for frames of more than `max_pixels` (`FRAMECART_MAX_VIDEO_PIXELS`):
/// detection decodes a frame whole, 3 bytes a pixel, so the size of a frame is the
/// memory a video costs, whatever the size of its file.
pub fn check_frame_size(width: u32, height: u32, max_pixels: u64) -> Result<(), ApiError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(ApiError::invalid(
            "video_too_large",
            format!(
                "the video's frames are {width}×{height} ({pixels} pixels); this server takes at most {max_pixels} pixels a frame"
            ),
        ));
    }
    Ok(())
}

pub fn video_error(e: CommandError<VideoError>) -> ApiError {
    match e {
        CommandError::Refused(VideoError::NotUploaded) => {
            ApiError::NotFound("no file has been uploaded for this video".into())
        }
        CommandError::Refused(VideoError::LinkNotFound) => ApiError::NotFound("this video has no such link".into()),
        CommandError::Refused(refused) => {
            let code = match refused {
                VideoError::InvalidSampleRate { .. } => "invalid_sample_fps",
                VideoError::InvalidConfidence => "invalid_min_confidence",
                VideoError::InvalidLabelId(_) => "invalid_label_id",
                VideoError::InvalidLabelName => "invalid_label_name",
                VideoError::InvalidFile(_) => "not_a_video",
                VideoError::InvalidWindow => "invalid_window",
                VideoError::InvalidTarget => "invalid_link_target",
                VideoError::InvalidIdentifier => "invalid_additional_identifier",
                VideoError::NotUploaded | VideoError::LinkNotFound => "not_found",
            };
            ApiError::invalid(code, refused)
        }
        CommandError::Conflict(_) => ApiError::Conflict { code: "concurrent_update", message: e.to_string() },
        CommandError::Store(_) => ApiError::unavailable(anyhow::anyhow!(e.to_string())),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VideoList {
    pub items: Vec<VideoView>,
}

/// Every video, with the status and progress of its newest detection run.
#[utoipa::path(get, path = "/api/v1/videos", tag = "videos", responses((status = 200, body = VideoList)))]
async fn list_videos(State(app): State<AppState>, caller: Caller) -> Result<axum::Json<VideoList>, ApiError> {
    caller.require(&[Role::Merchant, Role::Auditor])?;
    let items = videos::list(&app.pool).await.map_err(ApiError::unavailable)?;
    Ok(axum::Json(VideoList { items }))
}

/// One video (`status`: `uploaded`, `queued`, `processing`, `completed`, `failed`;
/// `progress` 0 to 1, of its newest detection run).
#[utoipa::path(
    get,
    path = "/api/v1/videos/{video_id}",
    tag = "videos",
    params(("video_id" = String, Path, description = "A YouTube id")),
    responses((status = 200, body = VideoView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody))
)]
async fn get_video(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<axum::Json<VideoView>, ApiError> {
    caller.require(&[Role::Merchant, Role::Auditor])?;
    let id = video_id(&raw)?;
    videos::get(&app.pool, id.as_str())
        .await
        .map_err(ApiError::unavailable)?
        .map(axum::Json)
        .ok_or_else(|| ApiError::NotFound(format!("no video {id}")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MediaQuery {
    /// A bearer token, for a client that cannot send the `Authorization` header (a
    /// `<video>` element); the header wins when both are sent.
    pub token: Option<String>,
}

/// The video's current file (staff), with HTTP range requests so a player can seek:
/// `Range: bytes=…` answers 206 with that part, and `If-None-Match`/`If-Modified-Since`
/// 304. A host that did not receive the upload fetches it from the media store first.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{video_id}/file",
    tag = "videos",
    params(("video_id" = String, Path, description = "A YouTube id"), MediaQuery),
    responses(
        (status = 200, description = "The whole file", content_type = "video/*"),
        (status = 206, description = "The range asked for", content_type = "video/*"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 416, description = "A range outside the file"),
    )
)]
async fn video_file(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Query(q): Query<MediaQuery>,
    request: axum::extract::Request,
) -> Result<axum::response::Response, ApiError> {
    let caller = media_caller(&app, caller, q.token.as_deref()).await?;
    caller.require(&[Role::Merchant, Role::Auditor])?;
    let (_, path) = local_source(&app, &video_id(&raw)?).await?;
    let served = tower_http::services::ServeFile::new(&path).oneshot(request).await.map_err(ApiError::internal)?;
    Ok(served.map(axum::body::Body::new))
}

/// The caller of a media route: the `Authorization` header's, else the `token` query
/// parameter's (a `<video>` or `<img>` cannot send headers).
async fn media_caller(app: &crate::state::App, caller: Caller, token: Option<&str>) -> Result<Caller, ApiError> {
    match (caller, token) {
        (Caller::Anonymous, Some(token)) => Caller::of_token(app, token).await,
        (caller, _) => Ok(caller),
    }
}

/// The video and its current file on this host. A host that did not receive the upload
/// fetches it from the media store first.
async fn local_source(app: &crate::state::App, id: &VideoId) -> Result<(VideoView, std::path::PathBuf), ApiError> {
    let video = videos::get(&app.pool, id.as_str())
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::NotFound(format!("no video {id}")))?;
    let path = app.settings.media_dir.join(framecart_commands::media::SOURCE_FOLDER).join(&video.file_name);
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        // Uploaded through another host: the media store has it, under its hash.
        let fetched =
            app.media.fetch(&video.sha256, &path).await.map_err(|e| ApiError::unavailable(anyhow::anyhow!(e)))?;
        if !fetched {
            return Err(ApiError::NotFound(format!(
                "the file of video {id} is in neither the media folder nor the store"
            )));
        }
    }
    Ok((video, path))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FrameQuery {
    /// Media time in seconds (past the end: the last frame).
    pub t: f64,
    /// The picture's width in pixels, 16–1920 (default 640); the height keeps the aspect.
    pub width: Option<u32>,
    /// A bearer token, for an `<img>` that cannot send the `Authorization` header.
    pub token: Option<String>,
}

/// The frame shown at media time `t`, as a JPEG picture (staff): a still for a page, under
/// a heatmap or as a poster.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{video_id}/frame",
    tag = "videos",
    params(("video_id" = String, Path, description = "A YouTube id"), FrameQuery),
    responses(
        (status = 200, description = "The frame", content_type = "image/jpeg"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
async fn video_frame(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Query(q): Query<FrameQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse as _;
    let caller = media_caller(&app, caller, q.token.as_deref()).await?;
    caller.require(&[Role::Merchant, Role::Auditor])?;
    let id = video_id(&raw)?;
    let t = media_time(q.t, "t is a media time in seconds, at least 0")?;
    let width = q.width.unwrap_or(640);
    if !(16..=1920).contains(&width) {
        return Err(ApiError::invalid("invalid_width", "width must be 16 to 1920 pixels"));
    }
    let (video, path) = local_source(&app, &id).await?;
    // Past the end, the last frame: a seek there would find none.
    let last = (video.duration - 1.0 / video.frame_rate.max(1.0)).max(0.0);
    let jpeg = tokio::task::spawn_blocking(move || framecart_detector::still_jpeg(&path, t.min(last), width))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    Ok(([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "private, max-age=3600")], jpeg).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// Media time in seconds.
    pub t: f64,
    /// Where the click landed, in CSS pixels from the player's top left corner.
    pub x: f64,
    pub y: f64,
    /// The player element's size in CSS pixels (the picture is letterboxed in it, as
    /// `object-fit: contain` does).
    pub player_width: f64,
    pub player_height: f64,
}

/// The outcome of a previewed click, as a `ClickMatched` or `ClickUnmatched` event would
/// carry it: `status` (`matched` or `unmatched`); the `best` candidate and the `reason`, or
/// the `reason` (`during_ad`, `black_band`, `no_object_near`, `not_linked`) and an
/// `explanation`; and the ranked `candidates`, each with why it ranks where it does.
#[derive(Debug, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct PreviewOutcome(framecart_domain::matching::Outcome);

/// What a viewer's click at that point of the player, at that moment, would match, and why
/// (staff). The same rules as the matcher's, on the video's newest completed run and its
/// current links: the click is placed in the frame through the letterbox, every object
/// within the near-miss radius is ranked, and the outcome says which one wins, or why
/// none does. Nothing is recorded.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{video_id}/preview",
    tag = "videos",
    params(("video_id" = String, Path, description = "A YouTube id"), PreviewQuery),
    responses(
        (status = 200, body = PreviewOutcome),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
async fn preview_click(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Query(q): Query<PreviewQuery>,
) -> Result<axum::Json<PreviewOutcome>, ApiError> {
    use framecart_domain::geometry::{Size, element_to_frame};
    use framecart_domain::matching::{self, ClickPoint};
    caller.require(&[Role::Merchant, Role::Auditor])?;
    let id = video_id(&raw)?;
    media_time(q.t, "t is a media time in seconds, at least 0")?;
    let finite = [q.x, q.y, q.player_width, q.player_height].iter().all(|v| v.is_finite());
    let player = finite.then(|| Size::new(q.player_width, q.player_height)).and_then(Result::ok).ok_or_else(|| {
        ApiError::invalid("invalid_point", "x and y are finite, player_width and player_height positive")
    })?;
    let scene = current_scene(&app, &id, q.t).await?;
    let frame = Size::new(scene.width, scene.height).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    let point = ClickPoint::from_hit(&element_to_frame(q.x, q.y, player, frame), frame, false);
    Ok(axum::Json(PreviewOutcome(matching::decide(&point, &scene.objects, matching::DEFAULT_RADIUS_CSS))))
}

/// What is on screen at media time `t` in the video's newest completed run; 404 before
/// a run completed.
async fn current_scene(
    app: &crate::state::App,
    id: &VideoId,
    t: f64,
) -> Result<framecart_projections::tracks::Scene, ApiError> {
    framecart_projections::tracks::scene_at(&app.pool, id.as_str(), t)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::NotFound(format!("video {id} has no completed detection run")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SceneQuery {
    /// Media time in seconds.
    pub t: f64,
}

/// What is on screen at one moment, as the matcher sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SceneView {
    /// The completed detection run the objects come from.
    pub run_id: Uuid,
    /// The uploaded file's frame size, in pixels.
    pub width: f64,
    pub height: f64,
    pub objects: Vec<SceneObject>,
}

/// A track on screen: its box interpolated at the moment, normalized by the frame size.
#[derive(Debug, Serialize, ToSchema)]
pub struct SceneObject {
    pub track_id: String,
    pub label: String,
    pub class_id: u32,
    pub confidence: f64,
    /// `xmin`, `ymin`, `xmax`, `ymax`, each 0 to 1 of the frame.
    #[schema(value_type = Object)]
    pub bbox: framecart_domain::geometry::BoundingBox,
    /// The product linked to it at this moment.
    #[schema(value_type = Option<Object>)]
    pub product: Option<framecart_domain::matching::LinkedProduct>,
}

/// The objects on screen at media time `t` (staff): the tracks of the newest completed
/// run, interpolated as the matcher interpolates them, with the products linked to them
/// then. 404 before a run completed.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{video_id}/scene",
    tag = "videos",
    params(("video_id" = String, Path, description = "A YouTube id"), SceneQuery),
    responses((status = 200, body = SceneView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody))
)]
async fn video_scene(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Query(q): Query<SceneQuery>,
) -> Result<axum::Json<SceneView>, ApiError> {
    caller.require(&[Role::Merchant, Role::Auditor])?;
    let id = video_id(&raw)?;
    media_time(q.t, "t is a media time in seconds, at least 0")?;
    let scene = current_scene(&app, &id, q.t).await?;
    let objects = scene
        .objects
        .into_iter()
        .map(|o| SceneObject {
            track_id: o.track_id,
            label: o.label,
            class_id: o.class_id,
            confidence: o.confidence,
            bbox: o.bbox,
            product: o.product,
        })
        .collect();
    Ok(axum::Json(SceneView { run_id: scene.run_id, width: scene.width, height: scene.height, objects }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    pub items: Vec<RunView>,
}

/// The video's detection runs, newest request first.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{video_id}/runs",
    tag = "videos",
    params(("video_id" = String, Path, description = "A YouTube id")),
    responses((status = 200, body = RunList), (status = 422, body = ErrorBody))
)]
async fn list_runs(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<axum::Json<RunList>, ApiError> {
    caller.require(&[Role::Merchant, Role::Auditor])?;
    let id = video_id(&raw)?;
    let items = videos::runs(&app.pool, id.as_str()).await.map_err(ApiError::unavailable)?;
    Ok(axum::Json(RunList { items }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DetectionQuery {
    /// From this media time, in seconds.
    pub from: Option<f64>,
    /// Up to this media time, in seconds.
    pub to: Option<f64>,
    /// Only this label.
    pub label: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DetectionList {
    pub items: Vec<DetectionView>,
}

/// The detections of the video's newest completed run, in time order.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{video_id}/detections",
    tag = "videos",
    params(("video_id" = String, Path, description = "A YouTube id"), DetectionQuery),
    responses((status = 200, body = DetectionList), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody))
)]
async fn list_detections(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Query(q): Query<DetectionQuery>,
) -> Result<axum::Json<DetectionList>, ApiError> {
    caller.require(&[Role::Merchant, Role::Auditor])?;
    let id = video_id(&raw)?;
    for t in [q.from, q.to].into_iter().flatten() {
        media_time(t, "from and to are media times in seconds, at least 0")?;
    }
    let filter = DetectionFilter { from: q.from, to: q.to, label: q.label };
    let items = detections::list(&app.pool, id.as_str(), &filter).await.map_err(ApiError::unavailable)?;
    Ok(axum::Json(DetectionList { items }))
}

/// The original system's detection request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct StartProcessing {
    /// Class ids (the model's class index + 1, so `"1"` is person) → the label to report.
    /// Empty or absent: every class.
    #[serde(default)]
    #[schema(example = json!({"1": "person", "2": "bicycle"}))]
    pub object_labels: BTreeMap<String, String>,
    /// Frames sampled per second (default `FRAMECART_SAMPLE_FPS`).
    pub sample_fps: Option<f64>,
    /// Detections below this confidence are dropped (default `FRAMECART_MIN_CONFIDENCE`).
    pub min_confidence: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessingQueued {
    pub video_id: String,
    pub run_id: Uuid,
    pub status: &'static str,
}

/// Requests detection in the video's current file. Allowed while an earlier run is going
/// or done: the newest completed run is what the views and the file show.
#[utoipa::path(
    post,
    path = "/processing/video/{video_id}/start",
    tag = "videos",
    params(("video_id" = String, Path, description = "A YouTube id")),
    request_body = StartProcessing,
    responses(
        (status = 202, body = ProcessingQueued),
        (status = 404, description = "No file uploaded for this video", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
async fn start_processing(
    State(app): State<AppState>,
    request: RequestMetadata,
    caller: Caller,
    Path(raw): Path<String>,
    Json(body): Json<StartProcessing>,
) -> Result<(StatusCode, axum::Json<ProcessingQueued>), ApiError> {
    caller.require(&[Role::Merchant])?;
    let id = video_id(&raw)?;
    let mut labels = BTreeMap::new();
    for (key, label) in body.object_labels {
        let class_id: u32 = key.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
            ApiError::invalid("invalid_label_id", format!("{key:?} is not a class id (1 is the first class)"))
        })?;
        if let Some(classes) = app.class_names.as_deref()
            && class_id as usize > classes.len()
        {
            return Err(ApiError::invalid(
                "invalid_label_id",
                format!("the model has {} classes; {class_id} is not one of them", classes.len()),
            ));
        }
        labels.insert(class_id, label.trim().to_owned());
    }
    let run_id = Uuid::now_v7();
    let command = VideoCommand::RequestDetection(RequestDetection {
        video_id: id.clone(),
        run_id,
        labels,
        sample_fps: body.sample_fps.unwrap_or(app.video.sample_fps),
        min_confidence: body.min_confidence.unwrap_or(app.video.min_confidence),
        requested_at: Utc::now(),
    });
    let metadata = request.by(caller.actor());
    execute(&app.commands.videos, id.as_str(), command, metadata).await.map_err(video_error)?;
    Ok((StatusCode::ACCEPTED, axum::Json(ProcessingQueued { video_id: id.to_string(), run_id, status: "queued" })))
}
