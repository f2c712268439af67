//! Framecart's write side.
//!
//! Commands go through cqrs-es over the postgres-es event store; a command is
//! acknowledged only after its events are committed to `events`. The relay then carries
//! every committed event, in commit order, into the installation's JetStream stream.
//!
//! # Architecture invariants
//!
//! - Imports `domain` and no other workspace crate.
//! - The `events` table is append-only (triggers); nothing here updates or deletes a row.
//! - The plain event store only: cqrs-es 0.5 snapshot and aggregate stores apply events
//!   twice. Commands run through our own path ([`execute`]) over that store, with
//!   snapshots of our own ([`snapshots`]): a cache, never read by the log or the views.
//!   No cqrs-es `Query` is registered: durable projections read the JetStream log,
//!   because in-process dispatch is lost on a crash.
//! - Exactly one relay publishes at a time (a Postgres advisory lock; standbys wait on
//!   it, visibly in `pg_locks`), and it never reads past the oldest running transaction,
//!   so the log is complete and in commit order (see [`relay`]).
//! - The stream is a replica of `events` plus the relay's `event_log`: a stream that is
//!   missing or behind the record is restored at the same sequences before anything new
//!   is relayed, and a stream that disagrees with the record is refused, never
//!   overwritten.
//! - An uploaded file is in the media store ([`media`], a JetStream object store named
//!   by content) before its upload is recorded, so any host can read what an event names.
//! - Personal data reaches an event only sealed ([`keys`]). A data key is made once per
//!   subject and, once destroyed, stays destroyed (a trigger); `PersonalDataErased`
//!   destroys its subject's key in the transaction that appends it (a trigger on
//!   `events`). Password hashes and the email lookup live in `accounts`, never in events.
//! - Ports of what lies outside (the payment provider, [`payments`]) live here, with the
//!   fake provider we own beside the port; nothing here knows HTTP routes.

pub mod accounts;
pub mod audit;
pub mod db;
pub mod execute;
pub mod keys;
pub mod media;
pub mod payments;
pub mod relay;
pub mod snapshots;
pub mod store;
pub mod stream;

pub use cqrs_es::Aggregate;
pub use execute::{CommandError, Commands};
pub use framecart_domain::snapshot::Snapshot;
