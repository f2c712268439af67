//! The installation's JetStream stream: created on start with the layout of
//! ARCHITECTURE.md (file storage, limits retention without max age, no deletes or purges,
//! a two-minute duplicate window, direct get).

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use framecart_domain::log::Namespace;

pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

pub fn stream_config(ns: &Namespace) -> stream::Config {
    stream::Config {
        name: ns.stream_name(),
        description: Some(format!("Framecart event log of namespace {ns}")),
        subjects: vec![ns.all_events_subject()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        max_age: Duration::ZERO,
        deny_delete: true,
        deny_purge: true,
        duplicate_window: DUPLICATE_WINDOW,
        allow_direct: true,
        ..Default::default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StreamSetupError {
    #[error("cannot create or read the JetStream stream {name}: {source}")]
    Create {
        name: String,
        #[source]
        source: async_nats::jetstream::context::CreateStreamError,
    },
    #[error("the existing stream {name} is not configured as Framecart's log ({what}); fix or remove it")]
    Mismatch { name: String, what: &'static str },
}

/// Creates the stream, or checks that the existing one is the log we expect.
pub async fn ensure_stream(js: &jetstream::Context, ns: &Namespace) -> Result<stream::Stream, StreamSetupError> {
    let wanted = stream_config(ns);
    let name = wanted.name.clone();
    let mut stream = js
        .get_or_create_stream(wanted.clone())
        .await
        .map_err(|source| StreamSetupError::Create { name: name.clone(), source })?;
    let have = &stream.cached_info().config;
    let mismatch = if have.subjects != wanted.subjects {
        Some("subjects")
    } else if !have.deny_delete || !have.deny_purge {
        Some("deletes or purges allowed")
    } else if !have.allow_direct {
        Some("direct get not allowed")
    } else if have.retention != stream::RetentionPolicy::Limits || have.max_age != Duration::ZERO {
        Some("retention")
    } else {
        None
    };
    if let Some(what) = mismatch {
        return Err(StreamSetupError::Mismatch { name, what });
    }
    let _ = stream.info().await;
    Ok(stream)
}
