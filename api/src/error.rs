//! The one error type of the HTTP API.
//!
//! Every error a client sees is JSON, `{"error": {"code", "message"}}`, with a stable
//! machine code. A refused command (the client's doing) is 4xx; a failure of ours is an
//! opaque 500 or 503 whose cause is logged once, by [`log_internal_errors`], and never
//! sent to the client.

use axum::Json;
use axum::extract::Request;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use framecart_commands::CommandError;
use framecart_commands::keys::KeyError;
use framecart_domain::order::OrderError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request could not be read (malformed JSON, bad query string).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401: no valid bearer token where one is needed.
    #[error("sign in: send `Authorization: Bearer <token>` with a valid token")]
    Unauthenticated,
    /// 401: the email or the password is wrong (which one is not said).
    #[error("wrong email or password")]
    InvalidCredentials,
    /// 403: signed in, but without the role this needs.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such resource, or no such route.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the request conflicts with what is stored (a reused id).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 413: the body is larger than the configured limit.
    #[error("the request body is larger than this server accepts")]
    PayloadTooLarge,
    /// 415: the body is not of a type this route takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: the request was read but a value in it is not acceptable.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// 429: too many requests from this address or for this account; `Retry-After` says
    /// in how many seconds one more is allowed.
    #[error("{message}")]
    RateLimited { message: String, retry_after: std::time::Duration },
    /// 503: a service we depend on (Postgres, NATS) is not available; try again later.
    #[error("a service Framecart depends on is unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// 500: a bug or an unexpected failure.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl ToString) -> Self {
        Self::Invalid { code, message: message.to_string() }
    }

    pub fn bad_request(code: &'static str, message: impl ToString) -> Self {
        Self::BadRequest { code, message: message.to_string() }
    }

    pub fn unavailable(error: impl Into<anyhow::Error>) -> Self {
        Self::Unavailable(error.into())
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }

    /// The body this error answers with.
    pub fn body(&self) -> ErrorBody {
        ErrorBody { error: ErrorDetail { code: self.status_and_code().1.to_owned(), message: self.to_string() } }
    }

    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Self::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::Invalid { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_video_id`.
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
}

/// Seconds a client should wait before retrying a 503.
pub const RETRY_UNAVAILABLE_AFTER_SECS: &str = "2";

/// Whole seconds for `Retry-After`, rounded up and at least 1: a client that waits that
/// long is allowed.
pub fn retry_after_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs().saturating_add(u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The cause of a 5xx, carried to [`log_internal_errors`] in the response's extensions.
#[derive(Clone)]
struct InternalCause(std::sync::Arc<anyhow::Error>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.status_and_code();
        let body = self.body();
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // A dependency is down: tell clients (and the extension's outbox) when to try
            // again rather than letting them hammer a recovering service.
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(RETRY_UNAVAILABLE_AFTER_SECS),
            );
        }
        if let Self::RateLimited { retry_after, .. } = &self {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, retry_after_secs(*retry_after).into());
        }
        if let Self::Unavailable(cause) | Self::Internal(cause) = self {
            response.extensions_mut().insert(InternalCause(std::sync::Arc::new(cause)));
        }
        response
    }
}

/// Logs the cause of every 5xx once, inside the request's span (which names its id).
pub async fn log_internal_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    if let Some(InternalCause(cause)) = response.extensions().get::<InternalCause>() {
        // The error chain in one line ("context: cause: root cause"), never the Debug form:
        // with RUST_BACKTRACE set, that would log a backtrace per failed request.
        tracing::error!(%method, %path, status = response.status().as_u16(), error = %format_args!("{cause:#}"), "request failed");
    }
    response
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonSyntaxError(e) => Self::bad_request("malformed_json", e.body_text()),
            JsonRejection::JsonDataError(e) => Self::invalid("invalid_body", e.body_text()),
            JsonRejection::MissingJsonContentType(_) => {
                Self::UnsupportedMediaType("send the body as JSON with `Content-Type: application/json`".into())
            }
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            other => Self::bad_request("unreadable_body", other.body_text()),
        }
    }
}

impl From<MultipartRejection> for ApiError {
    fn from(_: MultipartRejection) -> Self {
        Self::UnsupportedMediaType("send `multipart/form-data` with a `video_id` and a `file` part".into())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request("invalid_query", rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request("invalid_path", rejection.body_text())
    }
}

/// Answers routes that do not exist.
pub async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!("no route for {} {}", request.method(), request.uri().path()))
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// A refused or failed order command, as the client sees it.
pub fn order_error(e: CommandError<OrderError>) -> ApiError {
    match e {
        CommandError::Refused(OrderError::NotFound) => ApiError::NotFound("no such order".into()),
        CommandError::Refused(
            e @ (OrderError::WrongStatus(_) | OrderError::PaidOrdersAreRefunded | OrderError::AlreadyPlaced),
        ) => ApiError::Conflict { code: "order_state", message: e.to_string() },
        CommandError::Refused(e @ OrderError::PaymentInProgress(_)) => {
            ApiError::Conflict { code: "payment_in_progress", message: e.to_string() }
        }
        CommandError::Refused(e @ OrderError::Voided) => {
            ApiError::Conflict { code: "order_expired", message: e.to_string() }
        }
        CommandError::Refused(e) => {
            let code = match e {
                OrderError::InvalidContact => "invalid_contact",
                OrderError::InvalidAddress => "invalid_address",
                OrderError::MixedCurrencies => "mixed_currencies",
                _ => "invalid_order",
            };
            ApiError::invalid(code, e)
        }
        CommandError::Conflict(_) => ApiError::Conflict { code: "concurrent_update", message: e.to_string() },
        CommandError::Store(_) => ApiError::unavailable(anyhow::anyhow!(e.to_string())),
    }
}

/// A key that cannot be had: the store is down (503), or the signed-in viewer's data is
/// erased (their account is gone: 403).
pub fn key_error(e: KeyError) -> ApiError {
    match e {
        KeyError::Erased(_) => ApiError::Forbidden(e.to_string()),
        other => ApiError::unavailable(anyhow::anyhow!(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(20)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn a_429_is_the_json_error_with_retry_after() {
        let response = ApiError::RateLimited { message: "slow down".into(), retry_after: Duration::from_millis(1500) }
            .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "2");
    }
}
