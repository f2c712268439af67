//! Sending commands: one cqrs-es framework per aggregate over the shared event store,
//! with the retry the framework leaves to us.

use std::time::Duration;

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateError, CqrsFramework, EventStore};
use framecart_domain::EventMetadata;
use framecart_domain::click::Click;
use framecart_domain::detection::DetectionRun;
use framecart_domain::product::Product;
use framecart_domain::video::Video;
use sqlx::PgPool;

use crate::store::{EventRepository, WriteMode};

/// The cqrs-es framework of one aggregate over Framecart's event store.
pub type Cqrs<A> = CqrsFramework<A, PersistedEventStore<EventRepository, A>>;

/// How many times a command that lost an optimistic-lock race is tried in all.
const ATTEMPTS: u32 = 4;

/// A command that was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The aggregate refused the command: the caller's mistake or a broken rule.
    #[error(transparent)]
    Refused(E),
    /// Other commands kept changing the same aggregate; nothing was stored.
    #[error("the {0} was changed concurrently; try again")]
    Conflict(&'static str),
    /// The event store failed; nothing is known to be stored.
    #[error("the event store failed: {0}")]
    Store(String),
}

/// Every aggregate's command entry point.
pub struct Commands {
    pub clicks: Cqrs<Click>,
    pub videos: Cqrs<Video>,
    pub detection_runs: Cqrs<DetectionRun>,
    pub products: Cqrs<Product>,
    repo: EventRepository,
}

impl Commands {
    /// Must be called inside a Tokio runtime (batched writes spawn their writers).
    pub fn new(pool: PgPool, mode: WriteMode) -> Self {
        let repo = EventRepository::new(pool, mode);
        Self {
            clicks: framework(repo.clone()),
            videos: framework(repo.clone()),
            detection_runs: framework(repo.clone()),
            products: framework(repo.clone()),
            repo,
        }
    }

    /// An aggregate's current state, for a worker that must decide what to do next
    /// (where to resume). Commands never need this: they decide on loaded state.
    pub async fn load<A: Aggregate>(&self, aggregate_id: &str) -> Result<A, CommandError<A::Error>> {
        let store: PersistedEventStore<EventRepository, A> = PersistedEventStore::new_event_store(self.repo.clone());
        let context = store
            .load_aggregate(aggregate_id)
            .await
            .map_err(|e: AggregateError<A::Error>| CommandError::Store(e.to_string()))?;
        Ok(context.aggregate)
    }
}

fn framework<A: Aggregate<Services = ()>>(repo: EventRepository) -> Cqrs<A> {
    CqrsFramework::new(PersistedEventStore::new_event_store(repo), vec![], ())
}

/// Executes a command, retrying optimistic-lock conflicts: the command is decided again
/// on the newer state, which is safe because deciding is pure.
#[tracing::instrument(skip_all, fields(aggregate_type = A::TYPE, aggregate_id = %aggregate_id), err(level = "debug"))]
pub async fn execute<A>(
    cqrs: &Cqrs<A>,
    aggregate_id: &str,
    command: A::Command,
    metadata: EventMetadata,
) -> Result<(), CommandError<A::Error>>
where
    A: Aggregate,
    A::Command: Clone,
{
    let metadata = metadata.into_map();
    let mut attempt = 1;
    loop {
        match cqrs
            .execute_with_metadata(aggregate_id, command.clone(), metadata.clone())
            .await
        {
            Ok(()) => return Ok(()),
            Err(AggregateError::UserError(e)) => return Err(CommandError::Refused(e)),
            Err(AggregateError::AggregateConflict) if attempt < ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 5)).await;
                attempt += 1;
            }
            Err(AggregateError::AggregateConflict) => return Err(CommandError::Conflict(A::TYPE)),
            Err(e) => return Err(CommandError::Store(e.to_string())),
        }
    }
}
