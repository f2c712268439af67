//! Linking products to what the detector found, and what can be bought in a video:
//! `/api/v1/videos/{video_id}/links`, `/tracks`, `/products`.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use framecart_commands::execute::execute;
use framecart_domain::user::Role;
use framecart_domain::video::{LinkProduct, LinkTarget, UnlinkProduct, VideoCommand};
use framecart_projections::products::{self, LinkView, VideoProduct};
use framecart_projections::tracks::{self, TrackView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path, Query, RequestMetadata};
use crate::routes::products::article;
use crate::routes::videos::{video_error, video_id};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_link, list_links))
        .routes(routes!(delete_link))
        .routes(routes!(list_tracks))
        .routes(routes!(video_products))
}

/// A link: a product to every object with a label within a time window, or to one track.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewLink {
    #[schema(example = "SKU-1")]
    pub article: String,
    /// The label as the detections report it, e.g. `person`.
    pub label: Option<String>,
    /// Window start in media seconds (default 0).
    pub from: Option<f64>,
    /// Window end in media seconds (default: the end of the video).
    pub to: Option<f64>,
    /// Instead of a label: one tracked object (`GET …/tracks`).
    pub track_id: Option<String>,
    /// A variant, a size: written into the detections file.
    #[serde(default)]
    pub additional_identifier: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkCreated {
    pub link_id: Uuid,
    pub video_id: String,
    pub article: String,
}

/// Links a product to objects of a video. The product must exist; a track must belong to
/// the video's newest completed detection run.
#[utoipa::path(
    post,
    path = "/api/v1/videos/{video_id}/links",
    tag = "links",
    params(("video_id" = String, Path, description = "A YouTube id")),
    request_body = NewLink,
    responses(
        (status = 201, body = LinkCreated),
        (status = 404, description = "No such video, product or track", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
async fn create_link(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    request: RequestMetadata,
    Json(body): Json<NewLink>,
) -> Result<(StatusCode, axum::Json<LinkCreated>), ApiError> {
    caller.require(&[Role::Merchant])?;
    let id = video_id(&raw)?;
    let article = article(&body.article)?;
    // Outside facts are looked up before the command: the product and the track.
    let product: framecart_domain::product::Product = app.load(article.as_str()).await?;
    if !product.exists() {
        return Err(ApiError::NotFound(format!("no product {article}")));
    }
    let target = match (body.label, body.track_id) {
        (Some(label), None) => {
            let duration: Option<f64> = sqlx::query_scalar("SELECT duration FROM videos_view WHERE video_id = $1")
                .bind(id.as_str())
                .fetch_optional(&app.pool)
                .await
                .map_err(ApiError::unavailable)?;
            let to = body.to.or(duration).unwrap_or(f64::MAX / 2.0);
            LinkTarget::Label { label: label.trim().to_owned(), from: body.from.unwrap_or(0.0), to }
        }
        (None, Some(track_id)) => {
            if body.from.is_some() || body.to.is_some() {
                return Err(ApiError::invalid("invalid_link_target", "a track link has no window: the track's own"));
            }
            if !tracks::current_track(&app.pool, id.as_str(), &track_id).await.map_err(ApiError::unavailable)? {
                return Err(ApiError::NotFound(format!("the video's current detections have no track {track_id:?}")));
            }
            LinkTarget::Track { track_id }
        }
        _ => {
            return Err(ApiError::invalid(
                "invalid_link_target",
                "send either `label` (with `from`, `to`) or `track_id`",
            ));
        }
    };
    let link_id = Uuid::now_v7();
    let command = VideoCommand::LinkProduct(LinkProduct {
        video_id: id.clone(),
        link_id,
        article: article.clone(),
        target,
        additional_identifier: body.additional_identifier.trim().to_owned(),
        linked_at: Utc::now(),
    });
    let metadata = request.by(caller.actor());
    execute(&app.commands.videos, id.as_str(), command, metadata).await.map_err(video_error)?;
    Ok((
        StatusCode::CREATED,
        axum::Json(LinkCreated { link_id, video_id: id.to_string(), article: article.to_string() }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// Include removed links.
    #[serde(default)]
    pub removed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkList {
    pub items: Vec<LinkView>,
}

/// The video's links, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{video_id}/links",
    tag = "links",
    params(("video_id" = String, Path, description = "A YouTube id"), LinkQuery),
    responses((status = 200, body = LinkList), (status = 422, body = ErrorBody))
)]
async fn list_links(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Query(q): Query<LinkQuery>,
) -> Result<axum::Json<LinkList>, ApiError> {
    caller.require(&[Role::Merchant, Role::Auditor])?;
    let id = video_id(&raw)?;
    let items = products::links(&app.pool, id.as_str(), q.removed).await.map_err(ApiError::unavailable)?;
    Ok(axum::Json(LinkList { items }))
}

/// Removes a link (an event: the history keeps it).
#[utoipa::path(
    delete,
    path = "/api/v1/videos/{video_id}/links/{link_id}",
    tag = "links",
    params(("video_id" = String, Path, description = "A YouTube id"), ("link_id" = Uuid, Path, description = "The link")),
    responses((status = 204), (status = 404, body = ErrorBody))
)]
async fn delete_link(
    State(app): State<AppState>,
    caller: Caller,
    Path((raw, link_id)): Path<(String, String)>,
    request: RequestMetadata,
) -> Result<StatusCode, ApiError> {
    // The role first: a caller without it learns nothing from how the path is read.
    caller.require(&[Role::Merchant])?;
    let link_id = Uuid::parse_str(&link_id)
        .map_err(|_| ApiError::bad_request("invalid_path", format!("{link_id:?} is not a link id (a UUID)")))?;
    let id = video_id(&raw)?;
    let command = VideoCommand::UnlinkProduct(UnlinkProduct { video_id: id.clone(), link_id, unlinked_at: Utc::now() });
    let metadata = request.by(caller.actor());
    execute(&app.commands.videos, id.as_str(), command, metadata).await.map_err(video_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrackList {
    pub items: Vec<TrackView>,
}

/// The tracked objects of the video's newest completed detection run.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{video_id}/tracks",
    tag = "links",
    params(("video_id" = String, Path, description = "A YouTube id")),
    responses((status = 200, body = TrackList), (status = 422, body = ErrorBody))
)]
async fn list_tracks(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<axum::Json<TrackList>, ApiError> {
    caller.require(&[Role::Merchant, Role::Auditor])?;
    let id = video_id(&raw)?;
    let items = tracks::list(&app.pool, id.as_str()).await.map_err(ApiError::unavailable)?;
    Ok(axum::Json(TrackList { items }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VideoProducts {
    pub items: Vec<VideoProduct>,
}

/// What can be bought in this video, with the time windows.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{video_id}/products",
    tag = "links",
    params(("video_id" = String, Path, description = "A YouTube id")),
    responses((status = 200, body = VideoProducts), (status = 422, body = ErrorBody))
)]
async fn video_products(
    State(app): State<AppState>,
    Path(raw): Path<String>,
) -> Result<axum::Json<VideoProducts>, ApiError> {
    let id = video_id(&raw)?;
    let items = products::in_video(&app.pool, id.as_str()).await.map_err(ApiError::unavailable)?;
    Ok(axum::Json(VideoProducts { items }))
}
