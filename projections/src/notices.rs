//! Rebuild requests heard at once. [`crate::runner::request_rebuild`] notifies
//! [`CHANNEL`] with the projection's name in its transaction (Postgres delivers it at the
//! commit), and one listener per process passes the name on to that process's runners,
//! which otherwise find the new generation at their next check, up to 100 ms later: half
//! of what a rebuild of a small projection took from the command's start to its end.
//!
//! A notice can be missed (the listener reconnecting, a runner between two leaderships):
//! the runners' own checks stay, and find the rebuild a little later.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// The channel rebuild requests are notified on, with the projection's name.
pub const CHANNEL: &str = "framecart_rebuild";

/// The names of the projections whose rebuild was requested, as this process hears them.
#[derive(Clone)]
pub struct RebuildNotices {
    heard: broadcast::Sender<String>,
}

impl RebuildNotices {
    /// The notices, and the listener to run (until `shutdown`) on `pool`'s database:
    /// one connection, opened again a second after it fails.
    pub fn listen(pool: PgPool, shutdown: CancellationToken) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (heard, _) = broadcast::channel(64);
        let notices = Self { heard: heard.clone() };
        let listening = async move {
            loop {
                let listened = async {
                    let mut listener = PgListener::connect_with(&pool).await?;
                    listener.listen(CHANNEL).await?;
                    loop {
                        let notice = listener.recv().await?;
                        // No runner listening (none leads here): nothing to tell.
                        let _ = heard.send(notice.payload().to_owned());
                    }
                };
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    Err::<(), sqlx::Error>(e) = listened => {
                        tracing::warn!(error = %e, "not hearing rebuild requests; runners find them on their own checks");
                    }
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        };
        (notices, listening)
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<String> {
        self.heard.subscribe()
    }
}

/// The next notice `heard` gets, or never when there is none to hear (`None`, or closed:
/// then `None` from there on). A notice that could not be kept (`Lagged`) is `None`: it
/// may have been for this projection.
pub(crate) async fn next(heard: &mut Option<broadcast::Receiver<String>>) -> Option<String> {
    let Some(receiver) = heard.as_mut() else { return std::future::pending().await };
    match receiver.recv().await {
        Ok(name) => Some(name),
        Err(broadcast::error::RecvError::Lagged(_)) => None,
        Err(broadcast::error::RecvError::Closed) => {
            *heard = None;
            std::future::pending().await
        }
    }
}
