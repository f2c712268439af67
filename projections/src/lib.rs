//! Framecart's read side: projections of the JetStream log into Postgres views and into
//! the JSON files of the original system under `media/`.
//!
//! # Architecture invariants
//!
//! - Imports `domain` and no other workspace crate; reads events only from the log: the
//!   stream, or, for a backlog of 10k events or more that it applies (a rebuild, a long
//!   stop; estimated from a sample of the store's record), the
//!   store's record of it (`event_log` joined with `events`: the rows the relay restores
//!   the stream from, at the same positions), as far as that holds what was recorded, then
//!   the stream ([`recorded`]).
//! - Exactly-once in effect: a projection stores the stream sequence it applied last in
//!   the same transaction as its view, and skips anything at or below it. The durable
//!   consumer is only a cursor: every time a runner takes over it recreates it at the
//!   stored sequence + 1, so a lost ack or a lost asynchronous commit re-delivers rather
//!   than skips. It deletes the last leader's consumer first and creates its own strictly:
//!   a delete that fails (other than "no such consumer") or a consumer still there makes
//!   it start over, never read on from where the old one stood.
//! - One applier per projection: a session advisory lock elects it. Standbys (other
//!   processes with the projection) wait on the lock itself, so `pg_locks` shows who
//!   holds and who waits, and the first waiter takes over when the holder's session ends.
//! - A file under `media/` is rewritten whole from its view after the view's transaction
//!   commits (temporary file, then rename); the view remembers which files are not yet
//!   rewritten, so a crash in between is repaired on the next start.
//! - Every projection can be rebuilt from sequence 1 while the API keeps serving.
//! - Personal data is opened with the subject's key, read from `data_keys` in the
//!   applying transaction ([`personal`]); a view keeps each value's subject beside it and
//!   forgets the value when it applies the subject's `PersonalDataErased`. A value whose
//!   key is destroyed reads as erased, so a rebuild brings nothing erased back.

pub mod analytics;
pub mod clicks;
pub mod client_files;
pub mod copy;
pub mod detections;
pub mod files;
pub mod indexes;
pub mod notices;
pub mod orders;
pub mod personal;
pub mod products;
pub mod quarantine;
pub mod recorded;
pub mod runner;
pub mod tracks;
pub mod users;
pub mod videos;

pub use runner::{Projection, ProjectionError, ProjectionRunner, Retried};

use std::path::PathBuf;
use std::sync::Arc;

use framecart_domain::personal::MasterKey;

/// What the views need from the settings.
#[derive(Debug, Clone)]
pub struct ViewSettings {
    /// Where the original system's files go (`client_files/`, `detections/`).
    pub media_dir: PathBuf,
    /// Unwraps the data keys that open personal data.
    pub master_key: MasterKey,
    /// How much of a viewer's address names their client files.
    pub file_ip: client_files::FileIp,
}

impl ViewSettings {
    /// Files named by the whole address, as the original system named them.
    pub fn new(media_dir: PathBuf, master_key: MasterKey) -> Self {
        Self { media_dir, master_key, file_ip: client_files::FileIp::Full }
    }
}

/// Every projection of this installation, by name. Those that hold personal data open it
/// with the data keys that the master key unwraps.
pub fn all(settings: &ViewSettings) -> Vec<Arc<dyn Projection>> {
    let media_dir = settings.media_dir.clone();
    let keys = Arc::new(personal::KeyReader::new(settings.master_key.clone()));
    vec![
        Arc::new(clicks::ClicksProjection::new(keys.clone())),
        Arc::new(client_files::ClientFilesProjection::new(media_dir.clone(), keys.clone(), settings.file_ip)),
        Arc::new(videos::VideosProjection),
        Arc::new(products::ProductsProjection),
        Arc::new(users::UsersProjection::new(keys.clone())),
        Arc::new(orders::OrdersProjection::new(keys.clone())),
        Arc::new(orders::PaymentsProjection),
        Arc::new(analytics::AnalyticsProjection),
        Arc::new(detections::DetectionsProjection::new(media_dir)),
    ]
}
