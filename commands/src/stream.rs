//! The installation's JetStream stream: created on start with the layout of
//! ARCHITECTURE.md (file storage, limits retention without max age, no deletes or purges,
//! a two-minute duplicate window, direct get).

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use framecart_domain::log::Namespace;

pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// The log's configuration, with `replicas` copies on a cluster (1 on a single server).
pub fn stream_config(ns: &Namespace, replicas: usize) -> stream::Config {
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
        num_replicas: replicas.max(1),
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
    #[error(
        "cannot change the stream {name} from {from} to {to} replicas (a cluster needs at least {to} JetStream servers): {message}"
    )]
    Replicas { name: String, from: usize, to: usize, message: String },
}

/// Creates the stream, or checks that the existing one is the log we expect. An existing
/// stream with another replica count is scaled to `replicas` (JetStream copies it).
pub async fn ensure_stream(
    js: &jetstream::Context,
    ns: &Namespace,
    replicas: usize,
) -> Result<stream::Stream, StreamSetupError> {
    let wanted = stream_config(ns, replicas);
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
    if have.num_replicas.max(1) != wanted.num_replicas {
        let from = have.num_replicas.max(1);
        let mut config = have.clone();
        config.num_replicas = wanted.num_replicas;
        tracing::info!(stream = %name, from, to = wanted.num_replicas, "changing the stream's replica count");
        js.update_stream(config).await.map_err(|e| StreamSetupError::Replicas {
            name: name.clone(),
            from,
            to: wanted.num_replicas,
            message: e.to_string(),
        })?;
    }
    let _ = stream.info().await;
    Ok(stream)
}
