//! The HTTP API: one router per area, documented with OpenAPI from the code.

pub mod admin;
pub mod audit;
pub mod clicks;
pub mod health;
pub mod links;
pub mod orders;
pub mod payments;
pub mod personal_data;
pub mod products;
pub mod studio;
pub mod users;
pub mod videos;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::error::{self, ApiError};
use crate::state::AppState;

pub use crate::extract::REQUEST_ID;

#[derive(OpenApi)]
#[openapi(
    info(title = "Framecart", description = "Click-to-buy on video: click capture, detection, matching, orders.",),
    components(schemas(error::ErrorBody, error::ErrorDetail))
)]
struct ApiDoc;

/// The whole API, with its middleware.
pub fn router(state: AppState) -> Router {
    let max_body = state.http.max_body_bytes;
    let cors = cors(&state.http.cors_origins);
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(clicks::router())
        .merge(videos::router())
        .merge(products::router())
        .merge(links::router())
        .merge(users::router())
        .merge(personal_data::router())
        .merge(orders::router())
        .merge(payments::router())
        .merge(audit::router())
        .merge(admin::router())
        .split_for_parts();
    let openapi = std::sync::Arc::new(with_error_responses(openapi));
    let request_id = HeaderName::from_static(REQUEST_ID);
    api.route("/metrics", get(crate::metrics::metrics_for_staff))
        .route(
            "/api/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move { axum::Json(openapi.as_ref().clone()) }
            }),
        )
        .merge(studio::router())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(crate::metrics::track_http))
        .layer(cors)
        .layer(axum::middleware::from_fn(error::log_internal_errors))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(move |request: &axum::http::Request<_>| {
            let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Only `/healthz` and `/readyz`: what a process without the `api` role serves.
pub fn health(state: AppState) -> Router {
    let (routes, _) = OpenApiRouter::new().merge(health::router()).split_for_parts();
    routes
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
        .layer(axum::middleware::from_fn(error::log_internal_errors))
        .layer(CatchPanicLayer::custom(panic_response))
}

/// Every operation documents the errors any route can answer, with the JSON error body:
/// a malformed path or query (400), no or a wrong role (401, 403), a missing resource
/// (404), a body too large or not JSON (413, 415), invalid input (422), a rate limit
/// (429) and an outage (503). Handlers document what is specific to them; this adds the
/// rest, so a client (or a fuzzer) never meets an undocumented status.
fn with_error_responses(mut openapi: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    const COMMON: &[(&str, &str)] = &[
        ("400", "The path or the query is malformed."),
        ("401", "Not signed in."),
        ("403", "Signed in without the role this needs."),
        ("404", "No such resource (or not the caller's)."),
        ("422", "The input is invalid."),
        ("429", "Too many requests: see `Retry-After`."),
        ("503", "A service Framecart depends on is unavailable: see `Retry-After`."),
    ];
    const WITH_BODY: &[(&str, &str)] =
        &[("413", "The body is larger than allowed."), ("415", "The body is not of the expected content type.")];
    let error = || ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    for item in openapi.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
        for operation in operations.into_iter().flatten() {
            let extra = if operation.request_body.is_some() { WITH_BODY } else { &[] };
            for (status, description) in COMMON.iter().chain(extra) {
                operation.responses.responses.entry((*status).to_owned()).or_insert_with(|| {
                    ResponseBuilder::new().description(*description).content("application/json", error()).build().into()
                });
            }
        }
    }
    openapi
}

/// CORS for the configured origins only (the browser extension's, a shop's pages).
fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> =
        origins.iter().filter_map(|o| HeaderValue::from_str(o.trim().trim_end_matches('/')).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static(REQUEST_ID),
            HeaderName::from_static("x-correlation-id"),
        ])
        .expose_headers([HeaderName::from_static(REQUEST_ID)])
        .max_age(std::time::Duration::from_secs(3600))
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let mut response = ApiError::internal(anyhow::anyhow!("a handler panicked")).into_response();
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}
