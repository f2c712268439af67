//! Click capture: `POST /api/v1/clicks`, and reading the `clicks` view.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use framecart_commands::CommandError;
use framecart_commands::execute::execute_new;
use framecart_domain::click::{self, ClickCommand, ClickError, ClickSizes, RecordClick};
use framecart_domain::geometry::Size;
use framecart_domain::personal::Subject;
use framecart_domain::{UserId, VideoId};
use framecart_projections::clicks::{self, ClickFilter, ClickView, MatchView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody, key_error};
use crate::extract::{ClientAddr, Json, Path, Query, RequestMetadata, cookie_value};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(record_click, list_clicks))
        .routes(routes!(get_click))
        .routes(routes!(get_match))
        .routes(routes!(list_matches))
}

/// A click as the browser extension (or the original client) sends it. Field names are
/// the original system's; the snake_case spellings are accepted too.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ClickRequest {
    /// A UUID made by the client, so a retried click is recorded once. The server makes
    /// one when it is missing.
    #[serde(rename = "clickId", alias = "click_id", default)]
    pub click_id: Option<Uuid>,
    /// A YouTube id, a YouTube URL in any form, or `ID&list=…&index=…`.
    #[serde(rename = "videoId", alias = "video_id")]
    #[schema(example = "VESeA6leQuk")]
    pub video_id: String,
    /// CSS pixels from the left edge of the `<video>` element.
    pub x: f64,
    /// CSS pixels from the top edge of the `<video>` element.
    pub y: f64,
    /// Media time in seconds (`currentTime`).
    pub timestamp: f64,
    /// The `<video>` element's size in CSS pixels.
    #[serde(default)]
    pub player: Option<SizeBody>,
    /// The played frame size (`videoWidth`, `videoHeight`).
    #[serde(default)]
    pub video: Option<SizeBody>,
    /// The viewer's user id: 1–64 of `[A-Za-z0-9_-]`.
    #[serde(rename = "userId", alias = "user_id", default)]
    pub user_id: Option<String>,
    /// True when the player was showing an ad at click time.
    #[serde(rename = "adShowing", alias = "ad_showing", default)]
    pub ad_showing: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
pub struct SizeBody {
    pub width: f64,
    pub height: f64,
}

/// The click is stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClickAccepted {
    pub click_id: Uuid,
    /// The canonical YouTube id the click was recorded under.
    pub video_id: String,
}

/// Records a click. Answers only after the click is committed to the event store; the
/// same `clickId` sent again is recorded once and answered the same way. Anonymous clicks
/// are limited per client address (`FRAMECART_RATE_CLICKS`): over it, 429 with
/// `Retry-After`.
#[utoipa::path(
    post,
    path = "/api/v1/clicks",
    tag = "clicks",
    request_body = ClickRequest,
    responses(
        (status = 202, description = "Recorded", body = ClickAccepted),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "The click id was used for another click", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A value is not acceptable", body = ErrorBody),
        (status = 429, description = "Too many anonymous clicks from this address; see Retry-After", body = ErrorBody),
        (status = 503, description = "The event store is unavailable", body = ErrorBody),
    )
)]
async fn record_click(
    State(app): State<AppState>,
    request: RequestMetadata,
    ClientAddr(client_ip): ClientAddr,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<ClickRequest>, ApiError>,
) -> Result<(StatusCode, axum::Json<ClickAccepted>), ApiError> {
    // Anonymous clicks are throttled per address, before the body counts for anything.
    if caller.user_id().is_none() {
        app.limits.click(client_ip)?;
    }
    let Json(body) = body?;
    let video_id = VideoId::parse(&body.video_id).map_err(|e| ApiError::invalid("invalid_video_id", e))?;
    let reported =
        body.user_id.as_deref().map(UserId::parse).transpose().map_err(|e| ApiError::invalid("invalid_user_id", e))?;
    // A signed-in viewer's click is theirs, whatever the body says; without a token the
    // reported user id is kept, as the original system did.
    let user_id = match caller.user_id() {
        Some(id) => Some(UserId::parse(&id.to_string()).map_err(ApiError::internal)?),
        None => reported,
    };
    let sizes = match (body.player, body.video) {
        (Some(player), Some(video)) => {
            Some(ClickSizes { player: size("player", player)?, video: size("video", video)? })
        }
        (None, None) => None,
        _ => return Err(ApiError::invalid("incomplete_sizes", "`player` and `video` sizes must be sent together")),
    };
    let click_id_from_client = body.click_id.is_some();
    let click_id = body.click_id.unwrap_or_else(Uuid::now_v7);
    let received_at = Utc::now();
    // Personal data is sealed under the viewer's key: their account's, else the day's.
    let subject = match caller.user_id() {
        Some(id) => Subject::user(id),
        None => Subject::anonymous(received_at.date_naive()),
    };
    let cookie = app.http.viewer_cookie.as_deref().and_then(|name| cookie_value(&headers, name));
    let cookie =
        cookie.as_deref().map(click::viewer_cookie).transpose().map_err(|e| click_error(CommandError::Refused(e)))?;
    let viewer_cookie = match cookie {
        Some(cookie) => Some(app.keys.seal(&subject, &cookie.to_owned()).await.map_err(key_error)?),
        None => None,
    };
    let command = RecordClick {
        click_id,
        click_id_from_client,
        video_id_reported: body.video_id.trim().to_owned(),
        video_id: video_id.clone(),
        user_id,
        x: body.x,
        y: body.y,
        media_time: body.timestamp,
        sizes,
        during_ad: body.ad_showing,
        client_ip: app.keys.seal(&subject, &client_ip).await.map_err(key_error)?,
        viewer_cookie,
        received_at,
    };
    let metadata = request.by(caller.actor());
    // A click is a new aggregate, but for a retry of the same click: not loaded first.
    let command = ClickCommand::RecordClick(command);
    execute_new(&app.commands.clicks, app.commands.events(), &click_id.to_string(), command, metadata)
        .await
        .map_err(click_error)?;
    Ok((StatusCode::ACCEPTED, axum::Json(ClickAccepted { click_id, video_id: video_id.to_string() })))
}

fn size(what: &str, body: SizeBody) -> Result<Size, ApiError> {
    Size::new(body.width, body.height).map_err(|e| ApiError::invalid("invalid_size", format!("{what}: {e}")))
}

fn click_error(e: CommandError<ClickError>) -> ApiError {
    match e {
        CommandError::Refused(refused) => {
            let code = match refused {
                ClickError::InvalidMediaTime { .. } => "invalid_timestamp",
                ClickError::InvalidPosition | ClickError::OutsidePlayer { .. } => "invalid_position",
                ClickError::IncompleteSizes => "incomplete_sizes",
                ClickError::Text(_) => "invalid_text",
                ClickError::NotRecorded => return ApiError::NotFound(refused.to_string()),
                ClickError::ClickIdReused => {
                    return ApiError::Conflict { code: "click_id_reused", message: refused.to_string() };
                }
            };
            ApiError::invalid(code, refused)
        }
        CommandError::Conflict(_) => ApiError::Conflict { code: "concurrent_update", message: e.to_string() },
        CommandError::Store(_) => ApiError::unavailable(anyhow::anyhow!(e.to_string())),
    }
}

/// Filters of `GET /api/v1/clicks`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClickQuery {
    /// A YouTube id or URL: only clicks on this video.
    pub video_id: Option<String>,
    /// Only clicks of this user.
    pub user_id: Option<String>,
    /// Only clicks of this viewer (`cookie:<value>` or `ip:<address>`).
    pub viewer: Option<String>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<i64>,
    /// Only clicks after this log position (the previous page's `next_after`).
    pub after: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClickPage {
    pub items: Vec<ClickView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// Lists clicks from the `clicks` view, oldest first: every click for staff, a viewer's
/// own otherwise.
#[utoipa::path(
    get,
    path = "/api/v1/clicks",
    tag = "clicks",
    params(ClickQuery),
    responses(
        (status = 200, body = ClickPage),
        (status = 400, body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
async fn list_clicks(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<ClickQuery>,
) -> Result<axum::Json<ClickPage>, ApiError> {
    let filter = click_filter(q, &caller)?;
    let items = clicks::list(&app.pool, &filter).await.map_err(ApiError::unavailable)?;
    let next_after = (items.len() as i64 == filter.limit).then(|| items.last().map(|c| c.log_position)).flatten();
    Ok(axum::Json(ClickPage { items, next_after }))
}

/// Checks a click query's values. Staff see every click; a viewer only their own.
fn click_filter(q: ClickQuery, caller: &Caller) -> Result<ClickFilter, ApiError> {
    let me = caller.user()?;
    let staff = caller.is_staff();
    let q = if staff { q } else { ClickQuery { user_id: Some(me.to_string()), ..q } };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("invalid_limit", "limit must be between 1 and 1000"));
    }
    if q.after.is_some_and(|a| a < 0) {
        return Err(ApiError::invalid("invalid_after", "after must not be negative"));
    }
    let video_id =
        q.video_id.as_deref().map(VideoId::parse).transpose().map_err(|e| ApiError::invalid("invalid_video_id", e))?;
    let user_id =
        q.user_id.as_deref().map(UserId::parse).transpose().map_err(|e| ApiError::invalid("invalid_user_id", e))?;
    Ok(ClickFilter {
        video_id: video_id.map(String::from),
        user_id: user_id.map(String::from),
        viewer: q.viewer,
        signed_in_only: !staff,
        after: q.after,
        limit,
    })
}

/// One click from the `clicks` view, with its personal fields (the client's address and
/// cookie): its owner's (a click sent with their token) and staff's only. 404 until the
/// view has it, and for a click the caller may not see.
#[utoipa::path(
    get,
    path = "/api/v1/clicks/{click_id}",
    tag = "clicks",
    params(("click_id" = Uuid, Path, description = "The click's id")),
    responses(
        (status = 200, body = ClickView),
        (status = 400, body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
async fn get_click(
    State(app): State<AppState>,
    caller: Caller,
    Path(click_id): Path<Uuid>,
) -> Result<axum::Json<ClickView>, ApiError> {
    caller.user()?;
    clicks::get(&app.pool, click_id)
        .await
        .map_err(ApiError::unavailable)?
        .filter(|click| caller.is_staff() || owns(&caller, click.signed_in, click.user_id.as_deref()))
        .map(axum::Json)
        .ok_or_else(|| ApiError::NotFound(format!("no click {click_id}")))
}

/// True when the caller is the account that sent the click with its token.
fn owns(caller: &Caller, signed_in: bool, user_id: Option<&str>) -> bool {
    signed_in && caller.user_id().is_some_and(|me| user_id == Some(me.to_string().as_str()))
}

/// What the matcher made of a click, with the explanation (`pending` until the video has
/// a completed detection run).
///
/// A click sent with an account's token is its owner's and staff's to read. An anonymous
/// click's verdict is answered to whoever holds its id (a random UUID only its sender
/// knows: the browser extension asks with it), without the reported user id.
#[utoipa::path(
    get,
    path = "/api/v1/clicks/{click_id}/match",
    tag = "matches",
    params(("click_id" = Uuid, Path, description = "The click's id")),
    responses((status = 200, body = MatchView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody))
)]
async fn get_match(
    State(app): State<AppState>,
    caller: Caller,
    Path(click_id): Path<Uuid>,
) -> Result<axum::Json<MatchView>, ApiError> {
    let found = clicks::match_of(&app.pool, click_id).await.map_err(ApiError::unavailable)?;
    let visible = found.and_then(|mut verdict| {
        if caller.is_staff() || owns(&caller, verdict.signed_in, verdict.user_id.as_deref()) {
            Some(verdict)
        } else if verdict.signed_in {
            None
        } else {
            verdict.user_id = None;
            Some(verdict)
        }
    });
    visible.map(axum::Json).ok_or_else(|| ApiError::NotFound(format!("no click {click_id}")))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MatchPage {
    pub items: Vec<MatchView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// Verdicts on clicks, oldest first, filtered like `GET /api/v1/clicks`.
#[utoipa::path(
    get,
    path = "/api/v1/matches",
    tag = "matches",
    params(ClickQuery),
    responses((status = 200, body = MatchPage), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody))
)]
async fn list_matches(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<ClickQuery>,
) -> Result<axum::Json<MatchPage>, ApiError> {
    let filter = click_filter(q, &caller)?;
    let items = clicks::matches(&app.pool, &filter).await.map_err(ApiError::unavailable)?;
    let next_after = (items.len() as i64 == filter.limit).then(|| items.last().map(|c| c.log_position)).flatten();
    Ok(axum::Json(MatchPage { items, next_after }))
}
