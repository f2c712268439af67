//! Framecart's pure core.
//!
//! Everything here is a plain function of its inputs: aggregates decide on commands and
//! apply events, value types parse untrusted strings into types that cannot hold a bad
//! value, and the geometry maps a click on a `<video>` element into the frame.
//!
//! # Architecture invariants
//!
//! - No I/O, no async runtime, no database, no HTTP. The only async code is the thin
//!   `cqrs_es::Aggregate::handle` adapter, which calls a pure `decide` function.
//! - Outside data is looked up before a command is built and travels in the command:
//!   an aggregate never fetches (the server's clock and the client's IP included).
//! - Event type names and versions are stable strings written here by hand, never
//!   derived from Rust type names: renaming a type must not break stored events.
//! - A value that names a file or a NATS subject token (a YouTube id, a user id) is a
//!   parsed value type with a private field.
//! - Personal data is never a plain field of an event: events hold it as
//!   [`personal::Personal`], and commands can only carry it [`personal::Sealed`] (checked
//!   before it was sealed). Sealing and opening are pure functions here; keys and nonces
//!   come from the caller.

pub mod click;
pub mod data_subject;
pub mod detection;
pub mod geometry;
pub mod log;
pub mod matching;
pub mod metadata;
pub mod money;
pub mod order;
pub mod payment;
pub mod personal;
pub mod product;
pub mod snapshot;
pub mod text;
pub mod tracking;
pub mod upcast;
pub mod user;
pub mod user_id;
pub mod video;
pub mod video_id;

pub use metadata::EventMetadata;
pub use user_id::UserId;
pub use video_id::VideoId;
