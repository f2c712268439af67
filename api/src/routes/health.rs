//! Liveness and readiness.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use framecart_commands::relay::{RelayState, lag};

use crate::state::{App, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (liveness), `ready`, `degraded` (reachable, but the log is behind the store:
    /// see `relay.check`) or `unavailable`. Both of the last two answer 503.
    pub status: &'static str,
    /// Each dependency: `ok` or what is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<Checks>,
    /// The relay, and how far the stream is behind the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelayHealth>,
    /// Which process answered, and what it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessInfo {
    /// `--instance` (default `<host>:<pid>`).
    pub instance: String,
    /// `--roles`: `all`, or some of `api`, `relay`, `projections`, `processes`, `detector`.
    pub roles: String,
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

#[derive(Debug, Serialize, ToSchema)]
pub struct RelayHealth {
    /// `ok`, or why the log is behind: a restore under way, recorded events the stream
    /// lost, or a committed event waiting longer than `lag_bound_secs`.
    pub check: String,
    /// This process's relay: `off`, `standby`, `relaying` or `restoring`.
    pub state: &'static str,
    /// Of the current (or last) restore by this process: events republished so far.
    pub restored: u64,
    /// Of the current (or last) restore by this process: events to republish in all.
    pub restore_target: u64,
    /// The last log position the relay recorded (unknown while Postgres or NATS is not).
    pub recorded: Option<u64>,
    /// The stream's last sequence.
    pub in_stream: Option<u64>,
    /// Committed events not in the stream.
    pub unrelayed: Option<u64>,
    /// How long the oldest of them has waited, in seconds.
    pub oldest_unrelayed_secs: Option<f64>,
    /// How long a committed event may wait (`FRAMECART_RELAY_LAG_BOUND_SECS`).
    pub lag_bound_secs: u64,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok", checks: None, relay: None, process: None })
}

const LIMIT: Duration = Duration::from_secs(2);

/// Postgres and NATS (with the installation's stream) are reachable, and the stream is not
/// behind the store: no restore under way, no committed event waiting past the bound.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health))
)]
async fn readyz(State(app): State<AppState>) -> (StatusCode, Json<Health>) {
    let postgres = match tokio::time::timeout(LIMIT, sqlx::query("SELECT 1").execute(&app.pool)).await {
        Ok(Ok(_)) => "ok".to_owned(),
        Ok(Err(e)) => format!("unreachable: {e}"),
        Err(_) => "no answer within 2 s".to_owned(),
    };
    let stream = app.settings.namespace.stream_name();
    let (nats, in_stream) = match tokio::time::timeout(LIMIT, app.jetstream.get_stream(&stream)).await {
        Ok(Ok(s)) => ("ok".to_owned(), Some(s.cached_info().state.last_sequence)),
        Ok(Err(e)) => (format!("stream {stream}: {e}"), None),
        Err(_) => ("no answer within 2 s".to_owned(), None),
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
    let reachable = postgres == "ok" && nats == "ok";
    let relay = relay_health(&app, in_stream.filter(|_| reachable)).await;
    let status = match (reachable, relay.check == "ok") {
        (true, true) => "ready",
        (true, false) => "degraded",
        (false, _) => "unavailable",
    };
    let code = if status == "ready" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (
        code,
        Json(Health {
            status,
            checks: Some(Checks { postgres, nats, quarantine, quarantined }),
            relay: Some(relay),
            process: Some(ProcessInfo { instance: app.instance.clone(), roles: app.roles.to_string() }),
        }),
    )
}

/// The relay's part of readiness: this process's relay, and the lag from the facts any
/// process sees (`in_stream` is `None` when the store or the stream cannot be read).
async fn relay_health(app: &App, in_stream: Option<u64>) -> RelayHealth {
    let stats = &app.relay;
    let state = stats.state();
    let (restored, restore_target) = stats.restore_progress();
    let bound = app.settings.relay_lag_bound();
    let mut health = RelayHealth {
        check: "ok".to_owned(),
        state: state.as_str(),
        restored,
        restore_target,
        recorded: None,
        in_stream,
        unrelayed: None,
        oldest_unrelayed_secs: None,
        lag_bound_secs: bound.as_secs(),
    };
    if state == RelayState::Restoring {
        health.check = format!("restoring the stream: {restored} of {restore_target} events republished");
    }
    let Some(in_stream) = in_stream else {
        if health.check == "ok" {
            health.check = "unknown: the store or the stream cannot be read".to_owned();
        }
        return health;
    };
    let lag = match tokio::time::timeout(LIMIT, lag::observe(&app.pool, Some(in_stream))).await {
        Ok(Ok(lag)) => lag,
        failed => {
            // A restore under way says more than a lag that could not be read.
            if health.check == "ok" {
                health.check = match failed {
                    Ok(Err(e)) => format!("unknown: the relay's lag cannot be read: {e}"),
                    _ => "unknown: the relay's lag was not read within 2 s".to_owned(),
                };
            }
            return health;
        }
    };
    let now = chrono::Utc::now();
    health.recorded = Some(lag.recorded);
    health.unrelayed = Some(lag.unrelayed);
    health.oldest_unrelayed_secs = lag.oldest_age(now).map(|age| age.as_secs_f64());
    if health.check == "ok" {
        if lag.stream_behind() > 0 {
            health.check = format!(
                "the stream holds {in_stream} of {} recorded events: the relay restores the rest",
                lag.recorded
            );
        } else if let Some(reason) = lag.overdue(bound, now) {
            health.check = reason;
        }
    }
    health
}
