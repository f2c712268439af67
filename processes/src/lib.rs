//! Framecart's process managers and workers: what reacts to the log by sending commands.
//!
//! - [`matcher`]: clicks and detections → each click's verdict (which object it hit).
//! - [`followups`]: payments → orders, surpluses → refunds, orders → stock.
//! - [`reservations`]: stock held for an order that was never placed is given back.
//! - [`detector_worker`]: detection requests → detections, through the model.
//! - [`retention`]: anonymous personal data past its retention period is erased.
//!
//! The first three read the log like projections ([`framecart_projections::Projection`])
//! and run under the same runner: one process applies each at a time, the others stand by
//! on its advisory lock. Detector workers share one durable consumer instead, as many as
//! there are machines for them.
//!
//! # Architecture invariants
//!
//! - Imports `domain`, `commands`, `projections` and `detector`, never `api`: nothing
//!   here knows HTTP.
//! - Every command sent is idempotent or fenced (a verdict is recorded once, a run's
//!   batch once per attempt, a surplus refunded once), so a redelivery after a crash
//!   changes nothing.
//! - A command owed is recorded in the checkpoint's transaction before it is sent; one
//!   refused for good is kept for an operator, never dropped.

use std::sync::Arc;

use framecart_commands::Commands;
use framecart_commands::payments::Gateways;
use framecart_projections::Projection;

pub mod detector_worker;
pub mod followups;
pub mod matcher;
pub mod reservations;
pub mod retention;

pub use detector_worker::{DetectorWorker, WorkerConfig};

/// Every process manager that reads the log like a projection. `gateways` are where the
/// follow-ups refund surpluses (none: refunds owed wait for a process that has them).
pub fn all(commands: Arc<Commands>, gateways: Gateways) -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(matcher::Matcher::new(commands.clone())),
        Arc::new(followups::Followups::of_payments(commands.clone())),
        Arc::new(followups::Followups::of_orders(commands.clone(), gateways)),
        Arc::new(reservations::Reservations::new(commands)),
    ]
}
