//! Framecart's HTTP API and the wiring of one installation.
//!
//! `fn router(state) -> Router` is separate from serving, so tests can drive it; each
//! area has its own router. [`app::Running`] connects to Postgres and NATS, applies
//! migrations, creates the stream, and runs the API, the relay and the projections.
//!
//! # Architecture invariants
//!
//! - The only crate that imports every other one; it holds no domain rules.
//! - Every client-visible error is an [`error::ApiError`]: JSON with a stable code; 5xx
//!   causes are logged once and never sent.
//! - Nothing from a request reaches a file path before it is parsed into a value type.

pub mod app;
pub mod auth;
pub mod cli;
pub mod error;
pub mod extract;
pub mod fake_payments;
pub mod followups;
pub mod limits;
pub mod matcher;
pub mod metrics;
pub mod reservations;
pub mod routes;
pub mod settings;
pub mod upload;
pub mod worker;

pub use app::{App, AppState, Components, Infra, Running};
pub use settings::{AuthSettings, HttpSettings, PaymentSettings, ServeSettings, Settings, VideoSettings};

/// The lower crates, for black-box tests and tools that need their types.
pub use framecart_commands as commands;
pub use framecart_domain as domain;
pub use framecart_projections as projections;
