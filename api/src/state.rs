//! What a request handler may use: [`App`], shared as [`AppState`]. The supervisor builds
//! it; nothing here knows the routes.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use framecart_commands::Commands;
use framecart_commands::keys::Keyring;
use framecart_commands::media::MediaStore;
use framecart_commands::payments::Gateways;
use framecart_commands::payments::fake::FakeGateway;
use framecart_commands::relay::RelayStats;
use sqlx::PgPool;

use crate::settings::{AuthSettings, HttpSettings, Roles, Settings, VideoSettings};

/// Everything a request handler may use.
pub struct App {
    /// The event store and the views.
    pub pool: PgPool,
    /// The NATS connection, for readiness checks.
    pub nats: async_nats::Client,
    /// JetStream, where the event log lives.
    pub jetstream: jetstream::Context,
    /// Uploaded videos, reachable from every host.
    pub media: MediaStore,
    /// Where files go; nothing is written outside it.
    pub settings: Settings,
    /// What this process runs.
    pub roles: Roles,
    /// This process's name (`--instance`, or `<host>:<pid>`).
    pub instance: String,
    /// Proxies, cookies and limits of the HTTP side.
    pub http: HttpSettings,
    /// Uploads and detection defaults.
    pub video: VideoSettings,
    /// The command side: one cqrs-es framework per aggregate.
    pub commands: Arc<Commands>,
    /// The detection model's class names, when its files are here (to check requests).
    pub class_names: Option<Vec<String>>,
    /// Signs and checks bearer tokens.
    pub token_key: crate::tokens::TokenKey,
    /// Token lifetime, first admin.
    pub auth: AuthSettings,
    /// Payment providers by name.
    pub gateways: Gateways,
    /// The fake provider (also in `gateways`), for tests that look at the money it moved.
    pub fake_payments: Option<Arc<FakeGateway>>,
    /// The secret the fake provider signs webhooks with.
    pub fake_payments_secret: Vec<u8>,
    /// How long stock is held for an order being placed; given back if it is not placed.
    pub reservation_ttl: Duration,
    /// What this process's relay is doing (restoring, leading, standing by), for
    /// readiness and metrics; every relay the process starts reports here.
    pub relay: Arc<RelayStats>,
    /// The data keys that seal personal data (`FRAMECART_MASTER_KEY` unwraps them).
    pub keys: Arc<Keyring>,
    /// Per-address and per-account throttles (clicks, sign-in, registration).
    pub limits: Arc<crate::limits::Limits>,
}

impl App {
    /// An aggregate's current state, for a request (a store failure is `503`).
    pub async fn load<A: framecart_commands::Snapshot>(&self, aggregate_id: &str) -> Result<A, crate::error::ApiError>
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
