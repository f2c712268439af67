//! Prometheus metrics: what an operator needs to see before users do.
//!
//! Two kinds:
//! - **Counted as it happens** (through the `metrics` facade and one process-wide
//!   Prometheus recorder): acknowledged and refused commands by aggregate and command,
//!   HTTP requests with a latency histogram per route.
//! - **Read at scrape time**, from facts every process can see (Postgres and the stream),
//!   so any process answers for the whole installation: the relay's lag (committed, not
//!   yet in the stream: how many, the oldest's age, and how many recorded events the
//!   stream lost), each projection's lag and quarantined events, the detector's
//!   queue. They carry a `namespace` label: one process may serve several installations
//!   (tests do).
//!
//! - **This process's relay**: `framecart_relay_restoring` is 1 while it republishes
//!   events the stream lost; `framecart_relay_held_back_seconds` is how long committed
//!   events have waited behind a transaction still open in the cluster (the leader's log
//!   names it).
//!
//! Served at `GET /metrics` to staff, and without authentication on
//! `FRAMECART_METRICS_BIND` when set (a separate address, for a scraper on a private
//! network).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::{App, AppState};

/// Latency buckets of HTTP requests, in seconds.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// How often recorded samples are folded into the histograms when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process's recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full("framecart_http_request_duration_seconds".into()), LATENCY_BUCKETS)
            .unwrap_or_else(|_| unreachable!("the buckets are not empty"));
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only when another recorder is installed (then its metrics are its own).
        let _ = metrics::set_global_recorder(recorder);
        let upkeep = handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP_EVERY);
            loop {
                tick.tick().await;
                upkeep.run_upkeep();
            }
        });
        handle
    })
}

/// Counts every request and times it, by route template (never the raw path: ids would
/// make a series per click).
pub async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("framecart_http_requests_total", &labels).increment(1);
    metrics::histogram!("framecart_http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`: Prometheus text, for staff.
pub async fn metrics_for_staff(State(app): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(&[framecart_domain::user::Role::Merchant, framecart_domain::user::Role::Auditor])?;
    Ok(render(&app).await)
}

/// `GET /metrics` on the separate metrics address: no authentication.
pub async fn metrics_open(State(app): State<AppState>) -> Response {
    render(&app).await
}

/// The scrape: facts of the installation first, then everything counted.
async fn render(app: &App) -> Response {
    let ns = app.settings.namespace.to_string();
    // This process's own relay: known without reading anything.
    let restoring = app.relay.state() == framecart_commands::relay::RelayState::Restoring;
    metrics::gauge!("framecart_relay_restoring", "namespace" => ns.clone()).set(if restoring { 1.0 } else { 0.0 });
    let held_back = app.relay.held_back_seconds.load(std::sync::atomic::Ordering::Relaxed);
    metrics::gauge!("framecart_relay_held_back_seconds", "namespace" => ns.clone()).set(held_back as f64);
    if let Err(e) = observe(app, &ns).await {
        // A scrape during an outage still answers with what is counted in-process.
        tracing::debug!(error = %e, "metrics: the installation's state could not be read");
        metrics::gauge!("framecart_state_readable", "namespace" => ns.clone()).set(0.0);
    } else {
        metrics::gauge!("framecart_state_readable", "namespace" => ns.clone()).set(1.0);
    }
    let body = handle().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// Reads the installation's state into gauges.
async fn observe(app: &App, ns: &str) -> anyhow::Result<()> {
    let stream_last = {
        let mut stream = app.jetstream.get_stream(app.settings.namespace.stream_name()).await?;
        stream.info().await?.state.last_sequence
    };
    metrics::gauge!("framecart_stream_last_sequence", "namespace" => ns.to_owned()).set(stream_last as f64);

    // The relay's lag: committed events not in the stream, and how long the oldest waits.
    let lag = framecart_commands::relay::lag::observe(&app.pool, Some(stream_last)).await?;
    let oldest = lag.oldest_age(chrono::Utc::now()).map_or(0.0, |age| age.as_secs_f64());
    metrics::gauge!("framecart_relay_unrelayed_events", "namespace" => ns.to_owned()).set(lag.unrelayed as f64);
    metrics::gauge!("framecart_relay_oldest_unrelayed_seconds", "namespace" => ns.to_owned()).set(oldest);
    metrics::gauge!("framecart_relay_stream_behind_events", "namespace" => ns.to_owned())
        .set(lag.stream_behind() as f64);

    // A projection's lag is what its consumer has not had acknowledged yet: the events its
    // filter lets through, not the whole stream past its checkpoint.
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM projection_checkpoints").fetch_all(&app.pool).await?;
    let stream = app.jetstream.get_stream(app.settings.namespace.stream_name()).await?;
    for name in names {
        let consumer = app.settings.namespace.consumer_name(&format!("proj_{name}"));
        // No consumer: no process runs the projection now (its lag is unknown, not zero).
        let Ok(info) = stream.consumer_info(&consumer).await else { continue };
        let lag = info.num_pending + info.num_ack_pending as u64;
        metrics::gauge!("framecart_projection_lag_events", "namespace" => ns.to_owned(), "projection" => name)
            .set(lag as f64);
    }

    // Every projection that ever ran has a series, at 0 while nothing is set aside.
    let quarantined: Vec<(String, i64)> = sqlx::query_as(
        "SELECT c.name, count(q.log_position) FROM projection_checkpoints c
         LEFT JOIN projection_quarantine q ON q.projection = c.name GROUP BY c.name",
    )
    .fetch_all(&app.pool)
    .await?;
    for (name, count) in quarantined {
        metrics::gauge!("framecart_projection_quarantined_events", "namespace" => ns.to_owned(), "projection" => name)
            .set(count as f64);
    }

    let (queued, running): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status IN ('requested', 'queued')),
                count(*) FILTER (WHERE status = 'processing')
         FROM detection_runs_view WHERE status IN ('requested', 'queued', 'processing')",
    )
    .fetch_one(&app.pool)
    .await?;
    metrics::gauge!("framecart_detector_queue_runs", "namespace" => ns.to_owned(), "state" => "queued")
        .set(queued as f64);
    metrics::gauge!("framecart_detector_queue_runs", "namespace" => ns.to_owned(), "state" => "processing")
        .set(running as f64);
    Ok(())
}
