//! Wiring: connects to the store and the log, and runs the API, the relay and the
//! projections of one installation.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use framecart_commands::relay::{Relay, RelayConfig, RelayStats};
use framecart_commands::store::WriteMode;
use framecart_commands::{Commands, db, stream};
use framecart_projections::ProjectionRunner;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::settings::{AuthSettings, HttpSettings, ServeSettings, Settings, VideoSettings};

/// Everything a request handler may use.
pub struct App {
    /// The event store and the views.
    pub pool: PgPool,
    /// The NATS connection, for readiness checks.
    pub nats: async_nats::Client,
    /// JetStream, where the event log lives.
    pub jetstream: jetstream::Context,
    /// Where files go; nothing is written outside it.
    pub settings: Settings,
    /// Proxies, cookies and limits of the HTTP side.
    pub http: HttpSettings,
    /// Uploads and detection defaults.
    pub video: VideoSettings,
    /// The command side: one cqrs-es framework per aggregate.
    pub commands: Arc<Commands>,
    /// The detection model's class names, when its files are here (to check requests).
    pub class_names: Option<Vec<String>>,
    /// Signs and checks bearer tokens.
    pub token_key: crate::auth::TokenKey,
    /// Token lifetime, first admin.
    pub auth: AuthSettings,
    /// Payment providers by name.
    pub gateways: crate::followups::Gateways,
    /// The fake provider (also in `gateways`), for tests that look at the money it moved.
    pub fake_payments: Option<Arc<crate::fake_payments::FakeGateway>>,
    /// The secret the fake provider signs webhooks with.
    pub fake_payments_secret: Vec<u8>,
    /// How long stock is held for an order being placed; given back if it is not placed.
    pub reservation_ttl: Duration,
    /// What this process's relay is doing (restoring, leading, standing by), for
    /// readiness and metrics; every relay the process starts reports here.
    pub relay: Arc<RelayStats>,
    /// Per-address and per-account throttles (clicks, sign-in, registration).
    pub limits: Arc<crate::limits::Limits>,
}

impl App {
    /// An aggregate's current state, for a request (a store failure is `503`).
    pub async fn load<A: framecart_commands::Aggregate>(&self, aggregate_id: &str) -> Result<A, crate::error::ApiError>
    where
        A::Event: framecart_domain::upcast::Upcast,
    {
        self.commands
            .load(aggregate_id)
            .await
            .map_err(|e| crate::error::ApiError::unavailable(anyhow::anyhow!(e.to_string())))
    }
}

/// The router's state: one shared [`App`].
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// The store and the log, connected and ready: migrations applied, stream in place.
#[derive(Clone)]
pub struct Infra {
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub jetstream: jetstream::Context,
}

impl Infra {
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let pool = db::connect(&settings.database_url, settings.db_max_connections).await.with_context(|| {
            format!("connecting to Postgres at {}", crate::settings::redact(&settings.database_url))
        })?;
        db::migrate(&pool).await.context("applying database migrations")?;
        let nats = async_nats::ConnectOptions::new()
            .name("framecart")
            .connect(settings.nats_url.as_str())
            .await
            .with_context(|| format!("connecting to NATS at {}", crate::settings::redact(&settings.nats_url)))?;
        let jetstream =
            jetstream::ContextBuilder::new().max_ack_inflight(4096).backpressure_on_inflight(true).build(nats.clone());
        stream::ensure_stream(&jetstream, &settings.namespace).await?;
        Ok(Self { pool, nats, jetstream })
    }
}

/// Which background parts run beside the API.
#[derive(Debug, Clone, Copy)]
pub struct Components {
    pub relay: bool,
    pub projections: bool,
}

impl Default for Components {
    fn default() -> Self {
        Self { relay: true, projections: true }
    }
}

/// Every projection of the installation, the process managers included (they read like
/// one and send commands after their commits). `gateways` are where the follow-ups
/// refund surpluses.
pub fn projections(
    settings: &Settings,
    commands: Arc<Commands>,
    gateways: crate::followups::Gateways,
) -> Vec<Arc<dyn framecart_projections::Projection>> {
    let mut all = framecart_projections::all(settings.media_dir.clone());
    all.push(Arc::new(crate::matcher::Matcher::new(commands.clone())));
    all.push(Arc::new(crate::followups::Followups::of_payments(commands.clone())));
    all.push(Arc::new(crate::followups::Followups::of_orders(commands.clone(), gateways)));
    all.push(Arc::new(crate::reservations::Reservations::new(commands)));
    all
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

/// A running installation: the API on a socket, and its background parts.
///
/// Each part has a token of its own, because a graceful stop ends them in an order:
/// the HTTP server stops accepting and answers what is in flight while the background
/// parts (projections, process managers, detector workers) stop; then the relay
/// publishes what was committed up to that moment; then the connections close.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
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
    /// Connects, then serves on `http.bind` (port 0 picks a free port).
    pub async fn start(serve: ServeSettings, components: Components) -> anyhow::Result<Self> {
        let ServeSettings { settings, http, video, auth, payments } = serve;
        let infra = Infra::connect(&settings).await?;
        let listener = TcpListener::bind(http.bind).await.with_context(|| format!("binding {}", http.bind))?;
        let addr = listener.local_addr()?;
        let write_mode =
            if settings.write_batching { WriteMode::Batched { writers: 4 } } else { WriteMode::PerCommand };
        let app = App {
            pool: infra.pool.clone(),
            nats: infra.nats.clone(),
            jetstream: infra.jetstream.clone(),
            commands: Arc::new(Commands::new(infra.pool.clone(), write_mode)),
            class_names: class_names(&video),
            token_key: crate::auth::TokenKey::new(auth.token_secret.as_deref()),
            gateways: Default::default(),
            fake_payments: None,
            fake_payments_secret: Vec::new(),
            reservation_ttl: Duration::from_secs(payments.reservation_ttl_secs.max(1)),
            relay: Arc::default(),
            limits: Arc::new(crate::limits::Limits::new(http.rate_clicks, http.rate_signin)),
            settings,
            http,
            video,
            auth,
        };
        let mut app = app;
        if app.auth.token_secret.is_none() {
            tracing::warn!("FRAMECART_TOKEN_SECRET is not set: tokens will stop working when this process restarts");
        }
        let fake_secret =
            payments.fake_secret.clone().map_or_else(|| Uuid::new_v4().as_bytes().to_vec(), String::into_bytes);
        let webhook_url = payments.fake_webhook_url.clone().unwrap_or_else(|| {
            let host = if addr.ip().is_unspecified() { std::net::IpAddr::from([127, 0, 0, 1]) } else { addr.ip() };
            format!(
                "http://{}/api/v1/payments/webhooks/{}",
                SocketAddr::new(host, addr.port()),
                crate::fake_payments::NAME
            )
        });
        let fake =
            Arc::new(crate::fake_payments::FakeGateway::new(fake_secret.clone(), webhook_url, payments.fake_chaos));
        app.gateways.insert(crate::fake_payments::NAME, fake.clone());
        app.fake_payments = Some(fake);
        app.fake_payments_secret = fake_secret;
        crate::routes::users::bootstrap_admin(&app).await?;
        // Idempotency keys are kept at least 24 hours; older ones go.
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < now() - interval '48 hours'")
            .execute(&app.pool)
            .await?;
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
        let router = crate::routes::router(state.clone());
        let server = {
            let token = http.clone();
            tokio::spawn(async move {
                axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
                    .with_graceful_shutdown(async move { token.cancelled().await })
                    .await
            })
        };
        let mut running = Self {
            addr,
            state,
            shutdown: CancellationToken::new(),
            http,
            background: CancellationToken::new(),
            relay_stop: CancellationToken::new(),
            server: Some(server),
            relay: None,
            projections: Vec::new(),
            workers: Vec::new(),
        };
        tokio::spawn(running.state.limits.clone().housekeeping(running.background.child_token()));
        tracing::info!(clicks = %running.state.http.rate_clicks, signin = %running.state.http.rate_signin, "rate limits");
        if components.relay {
            running.start_relay();
        }
        if components.projections {
            running.start_projections();
        }
        for _ in 0..running.state.video.detector_workers {
            running.start_worker();
        }
        tracing::info!(%addr, namespace = %running.state.settings.namespace, "framecart is serving");
        Ok(running)
    }

    /// Starts the relay (it stands by if another process is the active relay).
    pub fn start_relay(&mut self) {
        let relay = Relay::new(
            self.state.pool.clone(),
            self.state.jetstream.clone(),
            self.state.settings.namespace.clone(),
            RelayConfig { committed: Some(self.state.commands.events().committed()), ..RelayConfig::default() },
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

    pub fn start_projections(&mut self) {
        for projection in projections(&self.state.settings, self.state.commands.clone(), self.state.gateways.clone()) {
            let runner = ProjectionRunner::new(
                self.state.pool.clone(),
                self.state.jetstream.clone(),
                self.state.settings.namespace.clone(),
                projection,
            );
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

    /// Starts one more detector worker.
    pub fn start_worker(&mut self) {
        let worker = crate::worker::DetectorWorker::new(self.state.clone(), self.workers.len());
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
        let Some(server) = self.server.as_mut() else { return self.stop().await };
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
