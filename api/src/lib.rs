//! Framecart's HTTP API, and the `framecart` binary that runs any of its roles.
//!
//! `fn router(state) -> Router` is separate from serving, so tests can drive it; each
//! area has its own router. [`supervisor::Running`] connects to Postgres and NATS,
//! applies migrations, ensures the stream and the media store, and runs the roles a
//! process is given: the API, the relay, the projections, the process managers
//! (`framecart-processes`) and detector workers.
//!
//! # Architecture invariants
//!
//! - HTTP only: no domain rules, no process manager, no worker. The one crate that
//!   imports every other one, to wire them in [`supervisor`].
//! - [`state`] imports nothing of the routes, and no module imports [`supervisor`] but
//!   the command line: the modules form no cycle.
//! - Every client-visible error is an [`error::ApiError`]: JSON with a stable code; 5xx
//!   causes are logged once and never sent.
//! - Nothing from a request reaches a file path before it is parsed into a value type.
//! - An `api` process keeps no state of its own that another `api` process needs: any
//!   number of them serve one installation (a token secret is shared by configuration).

pub mod auth;
pub mod cli;
pub mod error;
pub mod extract;
pub mod limits;
pub mod metrics;
pub mod routes;
pub mod settings;
pub mod state;
pub mod supervisor;
pub mod tokens;
pub mod upload;

pub use settings::{AuthSettings, HttpSettings, PaymentSettings, Role, Roles, ServeSettings, Settings, VideoSettings};
pub use state::{App, AppState};
pub use supervisor::{Infra, Running};

/// The lower crates, for black-box tests and tools that need their types.
pub use framecart_commands as commands;
pub use framecart_domain as domain;
pub use framecart_processes as processes;
pub use framecart_projections as projections;
