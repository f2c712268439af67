//! The top of a `framecart serve` process: connects to the store and the log, then runs
//! the roles it was given (`--roles`) and stops them in order.
//!
//! | role | runs | how many |
//! |---|---|---|
//! | `api` | the HTTP API | any number: stateless |
//! | `relay` | store → stream | one active, the others stand by |
//! | `projections` | the views and media files (`--projections` picks some) | one active per view |
//! | `processes` | the matcher, order and payment follow-ups, reservations | one active per process manager |
//! | `detector` | `FRAMECART_DETECTOR_WORKERS` detector workers | as many as there are machines |
//!
//! Every role applies the migrations and ensures the stream and the media store at start,
//! so any process may be the first on a fresh database. A process without `api` serves
//! only `/healthz` and `/readyz`, where `--bind` says.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use framecart_commands::keys::Keyring;
use framecart_commands::media::MediaStore;
use framecart_commands::payments::Gateways;
use framecart_commands::payments::fake::{self, FakeGateway};
use framecart_commands::relay::{Relay, RelayConfig, RelayStats};
use framecart_commands::store::WriteMode;
use framecart_commands::{Commands, db, stream};
use framecart_processes::{DetectorWorker, WorkerConfig};
use framecart_projections::notices::RebuildNotices;
use framecart_projections::{Projection, ProjectionRunner};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::settings::{DEFAULT_BIND, ServeSettings, Settings, VideoSettings};
use crate::state::{App, AppState};

/// The store and the log, connected and ready: migrations applied, stream and media store
/// in place.
#[derive(Clone)]
pub struct Infra {
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub media: MediaStore,
}

/// Postgres's limit on `application_name`, in bytes.
const APPLICATION_NAME_MAX: usize = 63;

/// How this process names itself to Postgres: `framecart <instance> <what>`, which
/// `projections status` shows beside each lock it holds or waits for.
pub fn application_name(settings: &Settings, what: &str) -> String {
    let mut name = format!("framecart {} {what}", settings.instance());
    if name.len() > APPLICATION_NAME_MAX {
        let mut end = APPLICATION_NAME_MAX;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    name
}

impl Infra {
    /// Connects as `what` (the roles, or the command), applies migrations, and ensures
    /// the stream and the media store with `--stream-replicas` copies.
    pub async fn connect(settings: &Settings, what: &str) -> anyhow::Result<Self> {
        let pool = db::connect(&settings.database_url, settings.db_max_connections, &application_name(settings, what))
            .await
            .with_context(|| {
                format!("connecting to Postgres at {}", crate::settings::redact(&settings.database_url))
            })?;
        db::migrate(&pool).await.context("applying database migrations")?;
        let servers = nats_servers(&settings.nats_url)?;
        let nats = async_nats::ConnectOptions::new()
            .name(format!("framecart {} {what}", settings.instance()))
            .connect(servers.as_slice())
            .await
            .with_context(|| format!("connecting to NATS at {}", crate::settings::redact_all(&settings.nats_url)))?;
        let jetstream =
            jetstream::ContextBuilder::new().max_ack_inflight(4096).backpressure_on_inflight(true).build(nats.clone());
        let replicas = usize::from(settings.stream_replicas);
        // A JetStream cluster that starts with this process has no leader for a few
        // seconds: its answers until then are retried, as Postgres's are.
        let deadline = tokio::time::Instant::now() + db::STARTUP_WAIT;
        let media = loop {
            let ensured = match stream::ensure_stream(&jetstream, &settings.namespace, replicas).await {
                Ok(_) => MediaStore::open(&jetstream, &settings.namespace, replicas).await.map_err(anyhow::Error::from),
                Err(e @ stream::StreamSetupError::Create { .. }) => Err(e.into()),
                Err(e) => return Err(e.into()),
            };
            match ensured {
                Ok(media) => break media,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(error = %e, "JetStream is not ready yet; waiting for it");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        };
        Ok(Self { pool, nats, jetstream, media })
    }

    /// [`Infra::connect`] for a command that reads events: `FRAMECART_MASTER_KEY` must be
    /// set and open this installation's data keys, or it fails here, at start.
    pub async fn connect_reading(settings: &Settings, application: &str) -> anyhow::Result<Self> {
        let infra = Self::connect(settings, application).await?;
        Keyring::open(infra.pool.clone(), settings.master_key()?).await?;
        Ok(infra)
    }
}

/// `NATS_URL`: one server, or several separated by commas (the client learns the rest
/// of a cluster from whichever answers).
fn nats_servers(urls: &str) -> anyhow::Result<Vec<async_nats::ServerAddr>> {
    urls.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| u.parse().with_context(|| format!("NATS_URL: {} is not a server address", crate::settings::redact(u))))
        .collect::<anyhow::Result<Vec<_>>>()
        .and_then(|servers| if servers.is_empty() { anyhow::bail!("NATS_URL names no server") } else { Ok(servers) })
}

/// The views of the installation (`only`: those named; all when empty). Unknown names
/// are refused with the list of known ones.
pub fn views(settings: &Settings, only: &[String]) -> anyhow::Result<Vec<Arc<dyn Projection>>> {
    let all = framecart_projections::all(&settings.views()?);
    if only.is_empty() {
        return Ok(all);
    }
    let known: Vec<&str> = all.iter().map(|p| p.name()).collect();
    if let Some(unknown) = only.iter().find(|name| !known.contains(&name.as_str())) {
        anyhow::bail!("--projections: there is no view {unknown:?}; the views are {}", known.join(", "));
    }
    Ok(all.into_iter().filter(|p| only.iter().any(|name| name == p.name())).collect())
}

/// Every consumer that keeps a checkpoint: the views and the process managers.
pub fn consumers(
    settings: &Settings,
    commands: Arc<Commands>,
    gateways: Gateways,
) -> anyhow::Result<Vec<Arc<dyn Projection>>> {
    let mut all = framecart_projections::all(&settings.views()?);
    all.extend(framecart_processes::all(commands, gateways));
    Ok(all)
}

/// The model's class names, if the model is where the settings say.
fn class_names(video: &VideoSettings) -> Option<Vec<String>> {
    let files = framecart_detector::locate_model(&video.model_dir()).ok()?;
    let text = std::fs::read_to_string(files.names).ok()?;
    Some(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect())
}

/// How long a graceful stop may take in all, from the signal to the exit.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// Of [`STOP_GRACE`], what is kept back for closing connections after the relay drained.
const STOP_MARGIN: Duration = Duration::from_millis(500);

/// A running process: its roles, and the HTTP server where it has one.
///
/// Each part has a token of its own, because a graceful stop ends them in an order:
/// the HTTP server stops accepting and answers what is in flight while the background
/// parts (projections, process managers, detector workers) stop; then the relay
/// publishes what was committed up to that moment; then the connections close.
pub struct Running {
    /// Where HTTP is served (the API, or only health where the process has no `api`
    /// role); `None` when nothing is.
    pub addr: Option<SocketAddr>,
    pub state: AppState,
    /// The views this process applies (with the `projections` role).
    views: Vec<Arc<dyn Projection>>,
    /// Cancelled to ask for a stop ([`Self::wait`] then stops in order).
    shutdown: CancellationToken,
    /// Stops the HTTP server (graceful: in-flight requests are answered).
    http: CancellationToken,
    /// Stops projections, process managers and detector workers.
    background: CancellationToken,
    /// Stops the relay once it has published what is committed.
    relay_stop: CancellationToken,
    /// Taken by [`Self::stop`].
    server: Option<JoinHandle<std::io::Result<()>>>,
    relay: Option<(JoinHandle<()>, Arc<RelayStats>)>,
    projections: Vec<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Connects, then starts the roles of `serve` (an API on port 0 gets a free port).
    pub async fn start(serve: ServeSettings) -> anyhow::Result<Self> {
        let roles = serve.roles();
        anyhow::ensure!(!roles.is_empty(), "--roles names nothing to run");
        let ServeSettings { settings, http, video, auth, payments, projections: only, .. } = serve;
        let master_key = settings.master_key()?;
        let views = if roles.projections { views(&settings, &only)? } else { Vec::new() };
        let infra = Infra::connect(&settings, &roles.to_string()).await?;
        let bind = if roles.api { Some(http.bind.unwrap_or(DEFAULT_BIND)) } else { http.bind };
        let listener = match bind {
            Some(bind) => Some(TcpListener::bind(bind).await.with_context(|| format!("binding {bind}"))?),
            None => None,
        };
        let addr = listener.as_ref().map(TcpListener::local_addr).transpose()?;
        let write_mode = if settings.write_batching {
            WriteMode::Batched { writers: usize::from(settings.store_writers) }
        } else {
            WriteMode::PerCommand
        };
        let fake_secret =
            payments.fake_secret.clone().map_or_else(|| Uuid::new_v4().as_bytes().to_vec(), String::into_bytes);
        let webhook_url = payments.fake_webhook_url.clone().unwrap_or_else(|| {
            let at = addr.unwrap_or(DEFAULT_BIND);
            let host = if at.ip().is_unspecified() { std::net::IpAddr::from([127, 0, 0, 1]) } else { at.ip() };
            format!("http://{}/api/v1/payments/webhooks/{}", SocketAddr::new(host, at.port()), fake::NAME)
        });
        let fake_gateway =
            Arc::new(FakeGateway::new(fake_secret.clone(), webhook_url, payments.fake_chaos, infra.pool.clone()));
        let mut gateways = Gateways::new();
        gateways.insert(fake::NAME, fake_gateway.clone());
        let keys = Keyring::open(infra.pool.clone(), master_key).await?;
        let app = App {
            keys: Arc::new(keys),
            pool: infra.pool.clone(),
            nats: infra.nats.clone(),
            jetstream: infra.jetstream.clone(),
            media: infra.media.clone(),
            commands: Arc::new(Commands::with_snapshots(infra.pool.clone(), write_mode, settings.snapshot_every)),
            class_names: class_names(&video),
            token_key: crate::tokens::TokenKey::new(auth.token_secret.as_deref()),
            gateways,
            fake_payments: Some(fake_gateway),
            fake_payments_secret: fake_secret,
            reservation_ttl: Duration::from_secs(payments.reservation_ttl_secs.max(1)),
            relay: Arc::default(),
            limits: Arc::new(crate::limits::Limits::new(http.rate_clicks, http.rate_signin)),
            instance: settings.instance(),
            roles,
            settings,
            http,
            video,
            auth,
        };
        if roles.api {
            if app.auth.token_secret.is_none() {
                tracing::warn!(
                    "FRAMECART_TOKEN_SECRET is not set: tokens will stop working when this process restarts, \
                     and are refused by every other api process"
                );
            }
            crate::routes::users::bootstrap_admin(&app).await?;
            // Idempotency keys are kept at least 24 hours; older ones go.
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < now() - interval '48 hours'")
                .execute(&app.pool)
                .await?;
        }
        let metrics_listener = match app.http.metrics_bind {
            Some(bind) => Some(TcpListener::bind(bind).await.with_context(|| format!("binding {bind} for metrics"))?),
            None => None,
        };
        crate::metrics::handle();
        let state = AppState(Arc::new(app));
        let http = CancellationToken::new();
        if let Some(listener) = metrics_listener {
            let router = axum::Router::new()
                .route("/metrics", axum::routing::get(crate::metrics::metrics_open))
                .with_state(state.clone());
            let token = http.clone();
            tokio::spawn(async move {
                let served = axum::serve(listener, router).with_graceful_shutdown(token.cancelled_owned()).await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "the metrics address stopped serving");
                }
            });
        }
        let server = listener.map(|listener| {
            let router =
                if roles.api { crate::routes::router(state.clone()) } else { crate::routes::health(state.clone()) };
            let token = http.clone();
            tokio::spawn(async move {
                axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
                    .with_graceful_shutdown(async move { token.cancelled().await })
                    .await
            })
        });
        let mut running = Self {
            addr,
            state,
            views,
            shutdown: CancellationToken::new(),
            http,
            background: CancellationToken::new(),
            relay_stop: CancellationToken::new(),
            server,
            relay: None,
            projections: Vec::new(),
            workers: Vec::new(),
        };
        if roles.api {
            tokio::spawn(running.state.limits.clone().housekeeping(running.background.child_token()));
            tracing::info!(clicks = %running.state.http.rate_clicks, signin = %running.state.http.rate_signin, "rate limits");
        }
        if roles.relay {
            running.start_relay();
        }
        if roles.projections || roles.processes {
            running.start_projections();
        }
        if roles.detector {
            for _ in 0..running.state.video.detector_workers {
                running.start_worker();
            }
        }
        tracing::info!(
            addr = ?running.addr,
            %roles,
            instance = %running.state.instance,
            namespace = %running.state.settings.namespace,
            "framecart is running"
        );
        Ok(running)
    }

    /// The HTTP address; panics where the process serves none (tests start an API).
    pub fn http_addr(&self) -> SocketAddr {
        self.addr.unwrap_or_else(|| panic!("this process serves no HTTP (roles {})", self.state.roles))
    }

    /// Starts the relay (it stands by if another process is the active relay).
    pub fn start_relay(&mut self) {
        let relay = Relay::new(
            self.state.pool.clone(),
            self.state.jetstream.clone(),
            self.state.settings.namespace.clone(),
            RelayConfig {
                committed: Some(self.state.commands.events().committed()),
                replicas: usize::from(self.state.settings.stream_replicas),
                ..RelayConfig::default()
            },
        )
        .with_stats(self.state.relay.clone());
        let stats = relay.stats();
        let handle = tokio::spawn(relay.run(self.relay_stop.child_token()));
        self.relay = Some((handle, stats));
    }

    /// Kills the relay where it stands, as a crash would: no clean-up runs.
    pub async fn kill_relay(&mut self) {
        if let Some((handle, stats)) = self.relay.take() {
            handle.abort();
            let _ = handle.await;
            stats.stopped();
        }
    }

    /// Aborts the relay from anywhere, as a crash would; [`Self::kill_relay`] then reaps it.
    pub fn relay_abort_handle(&self) -> Option<tokio::task::AbortHandle> {
        self.relay.as_ref().map(|(handle, _)| handle.abort_handle())
    }

    pub fn relay_stats(&self) -> Option<Arc<RelayStats>> {
        self.relay.as_ref().map(|(_, stats)| stats.clone())
    }

    /// Starts the runners of this process's views and process managers (each stands by
    /// while another process applies it).
    pub fn start_projections(&mut self) {
        let roles = self.state.roles;
        let mut consumers: Vec<Arc<dyn Projection>> = Vec::new();
        if roles.projections {
            consumers.extend(self.views.iter().cloned());
        }
        if roles.processes {
            consumers.extend(framecart_processes::all(self.state.commands.clone(), self.state.gateways.clone()));
            let (commands, days) = (self.state.commands.clone(), self.state.settings.anonymous_retention_days);
            self.projections.push(tokio::spawn(framecart_processes::retention::run(
                commands,
                days,
                self.background.child_token(),
            )));
        }
        if consumers.is_empty() {
            return;
        }
        let (notices, listening) = RebuildNotices::listen(self.state.pool.clone(), self.background.child_token());
        self.projections.push(tokio::spawn(listening));
        for projection in consumers {
            let runner = ProjectionRunner::new(
                self.state.pool.clone(),
                self.state.jetstream.clone(),
                self.state.settings.namespace.clone(),
                projection,
            )
            .hearing_rebuilds(&notices);
            self.projections.push(tokio::spawn(runner.run(self.background.child_token())));
        }
    }

    /// Kills the projection runners where they stand.
    pub async fn kill_projections(&mut self) {
        for handle in self.projections.drain(..) {
            handle.abort();
            let _ = handle.await;
        }
    }

    /// What a detector worker of this process is given.
    fn worker_config(&self) -> WorkerConfig {
        let app = &self.state;
        WorkerConfig {
            commands: app.commands.clone(),
            jetstream: app.jetstream.clone(),
            namespace: app.settings.namespace.clone(),
            media_dir: app.settings.media_dir.clone(),
            media: app.media.clone(),
            model_dir: app.video.model_dir(),
            backend: app.video.detector_backend,
            max_video_pixels: app.video.max_video_pixels,
            ack_wait: Duration::from_secs(app.video.detector_ack_wait_secs),
        }
    }

    /// Starts one more detector worker.
    pub fn start_worker(&mut self) {
        let worker = DetectorWorker::new(self.worker_config(), self.workers.len());
        self.workers.push(tokio::spawn(worker.run(self.background.child_token())));
    }

    /// Kills the detector workers where they stand, as a crash would.
    pub async fn kill_workers(&mut self) {
        for handle in self.workers.drain(..) {
            handle.abort();
            let _ = handle.await;
        }
    }

    /// A token that asks for a stop when cancelled: [`Self::wait`] then stops in order.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops every part at once, without the order of [`Self::stop`] (for tests and for
    /// a process that is going away anyway).
    pub fn cancel_all(&self) {
        self.shutdown.cancel();
        self.http.cancel();
        self.background.cancel();
        self.relay_stop.cancel();
    }

    /// Stops gracefully within [`STOP_GRACE`]: stops accepting requests and answers the
    /// ones in flight while the background parts stop; then lets the relay publish what
    /// is committed; then closes the connections. A part that overruns the time left is
    /// aborted (what it had not finished is redone at the next start: every part resumes
    /// from durable state).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let started = tokio::time::Instant::now();
        let deadline = started + STOP_GRACE - STOP_MARGIN;
        self.shutdown.cancel();
        self.http.cancel();
        self.background.cancel();
        let server = match self.server.take() {
            Some(server) => finish(server, deadline, "the HTTP server").await,
            None => None,
        };
        for handle in self.projections.drain(..).chain(self.workers.drain(..)) {
            finish(handle, deadline, "a background task").await;
        }
        // Nothing of this process commits any more: what the relay publishes now is all.
        self.relay_stop.cancel();
        if let Some((handle, stats)) = self.relay.take() {
            finish(handle, deadline, "the relay").await;
            tracing::info!(
                log_position = stats.log_position.load(std::sync::atomic::Ordering::Relaxed),
                "relay stopped"
            );
        }
        let _ = tokio::time::timeout(STOP_MARGIN, self.state.pool.close()).await;
        tracing::info!(took_ms = started.elapsed().as_millis() as u64, "stopped");
        match server {
            Some(Ok(Ok(()))) | None => Ok(()),
            Some(Ok(Err(e))) => Err(e.into()),
            Some(Err(e)) => Err(e.into()),
        }
    }

    /// Runs until `shutdown` is cancelled (or the server fails), then stops.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let token = self.shutdown.clone();
        let Some(server) = self.server.as_mut() else {
            token.cancelled().await;
            return self.stop().await;
        };
        tokio::select! {
            () = token.cancelled() => {}
            result = server => {
                self.cancel_all();
                result??;
                anyhow::bail!("the HTTP server stopped unexpectedly");
            }
        }
        self.stop().await
    }
}

/// Waits for a part to end until `deadline`, then aborts it. `None` when it was aborted.
async fn finish<T>(
    mut handle: JoinHandle<T>,
    deadline: tokio::time::Instant,
    what: &str,
) -> Option<Result<T, tokio::task::JoinError>> {
    match tokio::time::timeout_at(deadline, &mut handle).await {
        Ok(result) => Some(result),
        Err(_) => {
            tracing::warn!(part = what, "did not stop in time; aborting it");
            handle.abort();
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_application_name_fits_postgres() {
        let mut settings = test_settings();
        settings.instance = Some("h".repeat(80));
        let name = application_name(&settings, "api");
        assert_eq!(name.len(), APPLICATION_NAME_MAX);
        settings.instance = Some("é".repeat(40));
        assert!(application_name(&settings, "api").len() <= APPLICATION_NAME_MAX);
        settings.instance = Some("web-1".into());
        assert_eq!(application_name(&settings, "relay,projections"), "framecart web-1 relay,projections");
    }

    #[test]
    fn unknown_views_are_refused_with_the_known_ones() {
        let settings = test_settings();
        let error = views(&settings, &["clicks".into(), "click".into()]).err().expect("refused").to_string();
        assert!(error.contains("\"click\"") && error.contains("client_files"), "{error}");
        let picked = views(&settings, &["clicks".into()]).expect("known");
        assert_eq!(picked.iter().map(|p| p.name()).collect::<Vec<_>>(), ["clicks"]);
        assert!(views(&settings, &[]).expect("all").len() > 5);
    }

    fn test_settings() -> Settings {
        use clap::Parser;
        #[derive(Debug, clap::Parser)]
        struct Flags {
            #[command(flatten)]
            settings: Settings,
        }
        Flags::try_parse_from(["framecart", "--master-key", &"ab".repeat(32)]).expect("defaults").settings
    }
}
