//! Liveness and readiness.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `unavailable`.
    pub status: &'static str,
    /// Each dependency: `ok` or what is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<Checks>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Checks {
    pub postgres: String,
    pub nats: String,
    /// `ok`, or how many events projections set aside (their views went on without
    /// them; `GET /api/v1/admin/quarantine` lists them). Informational: it does not make
    /// the process unready.
    pub quarantine: String,
    /// Events set aside, per projection that has any.
    pub quarantined: std::collections::BTreeMap<String, i64>,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok", checks: None })
}

/// Postgres and NATS (with the installation's stream) are reachable.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health))
)]
async fn readyz(State(app): State<AppState>) -> (StatusCode, Json<Health>) {
    const LIMIT: Duration = Duration::from_secs(2);
    let postgres = match tokio::time::timeout(LIMIT, sqlx::query("SELECT 1").execute(&app.pool)).await {
        Ok(Ok(_)) => "ok".to_owned(),
        Ok(Err(e)) => format!("unreachable: {e}"),
        Err(_) => "no answer within 2 s".to_owned(),
    };
    let stream = app.settings.namespace.stream_name();
    let nats = match tokio::time::timeout(LIMIT, app.jetstream.get_stream(&stream)).await {
        Ok(Ok(_)) => "ok".to_owned(),
        Ok(Err(e)) => format!("stream {stream}: {e}"),
        Err(_) => "no answer within 2 s".to_owned(),
    };
    let (quarantine, quarantined) = if postgres == "ok" {
        match tokio::time::timeout(LIMIT, framecart_projections::quarantine::counts(&app.pool)).await {
            Ok(Ok(counts)) => {
                let total: i64 = counts.iter().map(|(_, n)| n).sum();
                let text = if total == 0 { "ok".to_owned() } else { format!("{total} event(s) set aside") };
                (text, counts.into_iter().collect())
            }
            Ok(Err(e)) => (format!("unreadable: {e}"), Default::default()),
            Err(_) => ("no answer within 2 s".to_owned(), Default::default()),
        }
    } else {
        ("unknown".to_owned(), Default::default())
    };
    let ready = postgres == "ok" && nats == "ok";
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let checks = Checks { postgres, nats, quarantine, quarantined };
    let health = Health { status: if ready { "ready" } else { "unavailable" }, checks: Some(checks) };
    (status, Json(health))
}
