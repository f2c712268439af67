//! The HTTP API: one router per area, documented with OpenAPI from the code.

pub mod clicks;
pub mod health;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::error::{self, ApiError};

pub const REQUEST_ID: &str = "x-request-id";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Framecart",
        description = "Click-to-buy on video: click capture, detection, matching, orders.",
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail))
)]
struct ApiDoc;

/// The whole API, with its middleware.
pub fn router(state: AppState) -> Router {
    let max_body = state.http.max_body_bytes;
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(clicks::router())
        .split_for_parts();
    let openapi = std::sync::Arc::new(openapi);
    let request_id = HeaderName::from_static(REQUEST_ID);
    api.route(
        "/api/openapi.json",
        get(move || {
            let openapi = openapi.clone();
            async move { axum::Json(openapi.as_ref().clone()) }
        }),
    )
    .fallback(error::not_found)
    .method_not_allowed_fallback(error::method_not_allowed)
    .with_state(state)
    .layer(DefaultBodyLimit::max(max_body))
    .layer(axum::middleware::from_fn(error::log_internal_errors))
    .layer(CatchPanicLayer::custom(panic_response))
    .layer(PropagateRequestIdLayer::new(request_id.clone()))
    .layer(TraceLayer::new_for_http().make_span_with(move |request: &axum::http::Request<_>| {
        let id = request
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
    }))
    .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let mut response = ApiError::internal(anyhow::anyhow!("a handler panicked")).into_response();
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}
