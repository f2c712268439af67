//! Sending commands: each aggregate type's handle over the shared event store, with the
//! retry the framework leaves to us and snapshots of our own ([`crate::snapshots`]).
//!
//! A command is decided as cqrs-es decides it (the aggregate's `handle`, whose event sink
//! applies each event once), on the state [`EventRepository::load_state`] folds from the
//! latest snapshot and the events after it. cqrs-es's own `CqrsFramework::execute` would
//! load every event: it is not used.

use std::marker::PhantomData;
use std::time::Duration;

use cqrs_es::Aggregate;
use cqrs_es::persist::{PersistedEventRepository, PersistenceError, SerializedEvent};
use framecart_domain::EventMetadata;
use framecart_domain::click::Click;
use framecart_domain::data_subject::DataSubject;
use framecart_domain::detection::DetectionRun;
use framecart_domain::order::Order;
use framecart_domain::payment::Payment;
use framecart_domain::product::Product;
use framecart_domain::snapshot::Snapshot;
use framecart_domain::upcast::Upcast;
use framecart_domain::user::User;
use framecart_domain::video::Video;
use sqlx::PgPool;

use crate::snapshots::SnapshotPolicy;
use crate::store::{EventRepository, WriteMode};

/// One aggregate type's commands, over Framecart's event store.
pub struct Aggregates<A> {
    repo: EventRepository,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A> Aggregates<A> {
    fn new(repo: EventRepository) -> Self {
        Self { repo, _aggregate: PhantomData }
    }
}

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
    /// The event store, for the batch command path.
    pub pool: PgPool,
    pub clicks: Aggregates<Click>,
    pub videos: Aggregates<Video>,
    pub detection_runs: Aggregates<DetectionRun>,
    pub products: Aggregates<Product>,
    pub users: Aggregates<User>,
    pub orders: Aggregates<Order>,
    pub payments: Aggregates<Payment>,
    pub data_subjects: Aggregates<DataSubject>,
    repo: EventRepository,
}

impl Commands {
    /// Must be called inside a Tokio runtime (batched writes spawn their writers).
    pub fn new(pool: PgPool, mode: WriteMode) -> Self {
        Self::with_snapshots(pool, mode, SnapshotPolicy::default())
    }

    /// [`Commands::new`], with snapshots read and taken as `snapshots` says.
    pub fn with_snapshots(pool: PgPool, mode: WriteMode, snapshots: SnapshotPolicy) -> Self {
        let repo = EventRepository::new(pool.clone(), mode).with_snapshots(snapshots);
        Self {
            pool: pool.clone(),
            clicks: Aggregates::new(repo.clone()),
            videos: Aggregates::new(repo.clone()),
            detection_runs: Aggregates::new(repo.clone()),
            products: Aggregates::new(repo.clone()),
            users: Aggregates::new(repo.clone()),
            orders: Aggregates::new(repo.clone()),
            payments: Aggregates::new(repo.clone()),
            data_subjects: Aggregates::new(repo.clone()),
            repo,
        }
    }

    /// The event store every command appends to.
    pub fn events(&self) -> &EventRepository {
        &self.repo
    }

    /// An aggregate's current state, for a worker that must decide what to do next
    /// (where to resume). Commands never need this: they decide on loaded state.
    pub async fn load<A>(&self, aggregate_id: &str) -> Result<A, CommandError<A::Error>>
    where
        A: Snapshot,
        A::Event: Upcast,
    {
        let loaded = self.repo.load_state::<A>(aggregate_id).await.map_err(|e| CommandError::Store(e.to_string()))?;
        Ok(loaded.aggregate)
    }

    /// Takes a snapshot of every aggregate with `min_events` or more events after its
    /// latest readable snapshot (all its events when it has none): after an upgrade from a
    /// version without snapshots, so that the first command on a long-lived aggregate does
    /// not fold its whole history while requests wait (`framecart snapshots`). How
    /// many were taken, by aggregate type.
    pub async fn take_snapshots(
        &self,
        min_events: u64,
    ) -> Result<std::collections::BTreeMap<String, u64>, PersistenceError> {
        let mut taken = std::collections::BTreeMap::new();
        if self.repo.snapshot_policy() == SnapshotPolicy::Off {
            return Ok(taken);
        }
        let long: Vec<(String, String)> = sqlx::query_as(
            "SELECT aggregate_type, aggregate_id FROM events
             GROUP BY aggregate_type, aggregate_id HAVING max(sequence) >= $1
             ORDER BY aggregate_type, aggregate_id",
        )
        .bind(i64::try_from(min_events.max(1)).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| PersistenceError::ConnectionError(Box::new(e)))?;
        for (aggregate_type, id) in long {
            let took = match aggregate_type.as_str() {
                Click::TYPE => self.take_snapshot::<Click>(&id, min_events).await?,
                Video::TYPE => self.take_snapshot::<Video>(&id, min_events).await?,
                DetectionRun::TYPE => self.take_snapshot::<DetectionRun>(&id, min_events).await?,
                Product::TYPE => self.take_snapshot::<Product>(&id, min_events).await?,
                User::TYPE => self.take_snapshot::<User>(&id, min_events).await?,
                Order::TYPE => self.take_snapshot::<Order>(&id, min_events).await?,
                Payment::TYPE => self.take_snapshot::<Payment>(&id, min_events).await?,
                _ => false,
            };
            *taken.entry(aggregate_type).or_default() += u64::from(took);
        }
        Ok(taken)
    }

    async fn take_snapshot<A>(&self, aggregate_id: &str, min_events: u64) -> Result<bool, PersistenceError>
    where
        A: Snapshot,
        A::Event: Upcast,
    {
        let loaded = self.repo.load_state::<A>(aggregate_id).await?;
        let last_snapshot = loaded.from_snapshot.unwrap_or(0) as u64;
        if !framecart_domain::snapshot::due(min_events, last_snapshot, loaded.sequence as u64) {
            return Ok(false);
        }
        self.repo.save_snapshot(aggregate_id, loaded.sequence, &loaded.aggregate).await;
        Ok(true)
    }
}

/// Executes a command, retrying optimistic-lock conflicts: the command is decided again
/// on the newer state, which is safe because deciding is pure.
#[tracing::instrument(skip_all, fields(aggregate_type = A::TYPE, aggregate_id = %aggregate_id), err(level = "debug"))]
pub async fn execute<A>(
    aggregates: &Aggregates<A>,
    aggregate_id: &str,
    command: A::Command,
    metadata: EventMetadata,
) -> Result<(), CommandError<A::Error>>
where
    A: Snapshot<Services = ()>,
    A::Command: Clone + std::fmt::Debug,
    A::Event: Upcast,
{
    let repo = &aggregates.repo;
    let name = command_name(&command);
    let mut attempt = 1;
    let outcome = loop {
        let loaded = match repo.load_state::<A>(aggregate_id).await {
            Ok(loaded) => loaded,
            Err(e) => break Err(CommandError::Store(e.to_string())),
        };
        let decided = match decide(loaded.aggregate, aggregate_id, loaded.sequence, command.clone(), &metadata).await {
            Ok(decided) => decided,
            Err(Decided::Refused(e)) => break Err(CommandError::Refused(e)),
            Err(Decided::Unserialisable(e)) => break Err(CommandError::Store(e.to_string())),
        };
        if decided.events.is_empty() {
            break Ok(());
        }
        match repo.persist::<A>(&decided.events, None).await {
            Ok(()) => {
                snapshot_if_due(repo, aggregate_id, (loaded.sequence, loaded.from_snapshot), &decided).await;
                break Ok(());
            }
            Err(PersistenceError::OptimisticLockError) if attempt < ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 5)).await;
                attempt += 1;
            }
            Err(PersistenceError::OptimisticLockError) => break Err(CommandError::Conflict(A::TYPE)),
            Err(e) => break Err(CommandError::Store(e.to_string())),
        }
    };
    count::<A>(&name, &outcome);
    outcome
}

/// Stores the state after a committed command as the aggregate's snapshot, when enough
/// events follow the snapshot its load started from.
async fn snapshot_if_due<A: Snapshot>(
    repo: &EventRepository,
    aggregate_id: &str,
    loaded: (usize, Option<usize>),
    decided: &Decision<A>,
) {
    let (before, last_snapshot) = loaded;
    let after = before + decided.appended;
    if repo.snapshot_due::<A>(last_snapshot.unwrap_or(0), after) {
        repo.save_snapshot(aggregate_id, after, &decided.after).await;
    }
}

/// A command's variant name (`PlaceOrder`), from its `Debug` form, which starts with it.
/// Formatting stops at the first character after the name, so this costs no more than
/// the name.
fn command_name(command: &impl std::fmt::Debug) -> String {
    struct Name(String);
    impl std::fmt::Write for Name {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            for c in s.chars() {
                if !(c.is_alphanumeric() || c == '_') {
                    return Err(std::fmt::Error);
                }
                self.0.push(c);
            }
            Ok(())
        }
    }
    let mut name = Name(String::new());
    let _ = std::fmt::write(&mut name, format_args!("{command:?}")); // stops after the name
    name.0
}

/// Counts a command's outcome for the metrics (`framecart_commands_total`, by aggregate,
/// command and outcome).
fn count<A: Aggregate>(command: &str, outcome: &Result<(), CommandError<A::Error>>) {
    let outcome = match outcome {
        Ok(()) => "acknowledged",
        Err(CommandError::Refused(_)) => "refused",
        Err(CommandError::Conflict(_)) => "conflict",
        Err(CommandError::Store(_)) => "failed",
    };
    metrics::counter!(
        "framecart_commands_total",
        "aggregate" => A::TYPE,
        "command" => command.to_owned(),
        "outcome" => outcome
    )
    .increment(1);
}

/// Executes commands addressed to many aggregates of one type together: one query loads
/// them all, each is decided as `execute` would, and every resulting event is appended in
/// one transaction. Made for process managers that send commands by the thousand (the
/// matcher's verdicts); a lone command is better sent with [`execute`].
///
/// The outcome of each command is what `execute` would give: a refusal changes nothing
/// and is reported in its place. If the append meets an optimistic-lock conflict (another
/// writer got to one of the aggregates first), every command is sent again on its own
/// through [`execute`], which retries.
pub async fn execute_all<A>(
    aggregates: &Aggregates<A>,
    events: &EventRepository,
    commands: Vec<(String, A::Command, EventMetadata)>,
) -> Vec<Result<(), CommandError<A::Error>>>
where
    A: Snapshot<Services = ()>,
    A::Command: Clone + std::fmt::Debug,
    A::Event: Upcast,
{
    use std::collections::HashSet;

    let ids: Vec<&str> = commands.iter().map(|(id, _, _)| id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    let store_error = |e: &dyn std::fmt::Display| CommandError::Store(e.to_string());
    // Two commands for one aggregate in a batch would decide on the same state: send such
    // batches one by one.
    if unique.len() != ids.len() {
        return one_by_one(aggregates, commands).await;
    }
    let mut states = match events.load_states::<A>(&ids).await {
        Ok(states) => states,
        Err(e) => return commands.iter().map(|_| Err(store_error(&e))).collect(),
    };
    let mut results = Vec::with_capacity(commands.len());
    let mut appended = Vec::new();
    let mut decisions = Vec::new();
    for (id, command, metadata) in &commands {
        let loaded = states.remove(id).unwrap_or_default();
        match decide(loaded.aggregate, id, loaded.sequence, command.clone(), metadata).await {
            Err(Decided::Refused(refused)) => results.push(Err(CommandError::Refused(refused))),
            Err(Decided::Unserialisable(e)) => return commands.iter().map(|_| Err(store_error(&e))).collect(),
            Ok(mut decided) => {
                appended.append(&mut decided.events);
                decisions.push((id, (loaded.sequence, loaded.from_snapshot), decided));
                results.push(Ok(()));
            }
        }
    }
    if appended.is_empty() {
        commands.iter().zip(&results).for_each(|((_, command, _), r)| count::<A>(&command_name(command), r));
        return results;
    }
    match events.append_serialized(A::TYPE, appended).await {
        Ok(()) => {
            for (id, loaded, decided) in &decisions {
                snapshot_if_due(events, id, *loaded, decided).await;
            }
            commands.iter().zip(&results).for_each(|((_, command, _), r)| count::<A>(&command_name(command), r));
            results
        }
        Err(PersistenceError::OptimisticLockError) => one_by_one(aggregates, commands).await,
        Err(e) => commands.iter().map(|_| Err(store_error(&e))).collect(),
    }
}

/// Why [`decide`] gave no events.
enum Decided<E> {
    Refused(E),
    Unserialisable(serde_json::Error),
}

/// What a command decided: its events, serialised as the store appends them, and the
/// aggregate's state after them.
struct Decision<A> {
    events: Vec<SerializedEvent>,
    /// How many events the command gave (`events` may be taken for a batch append).
    appended: usize,
    /// The state after the events: `handle`'s event sink applied each of them once.
    after: A,
}

/// Decides `command` on `aggregate` (at `sequence`), and serialises the events it gives
/// as the store appends them.
async fn decide<A: Aggregate<Services = ()>>(
    mut aggregate: A,
    id: &str,
    sequence: usize,
    command: A::Command,
    metadata: &EventMetadata,
) -> Result<Decision<A>, Decided<A::Error>> {
    use cqrs_es::DomainEvent;
    use cqrs_es::event_sink::EventSink;

    let sink = EventSink::default();
    aggregate.handle(command, &(), &sink).await.map_err(Decided::Refused)?;
    let metadata = serde_json::to_value(metadata.clone().into_map()).map_err(Decided::Unserialisable)?;
    let mut events = Vec::new();
    for (i, event) in sink.collect().await.into_iter().enumerate() {
        events.push(SerializedEvent::new(
            id.to_owned(),
            sequence + 1 + i,
            A::TYPE.to_owned(),
            event.event_type(),
            event.event_version(),
            serde_json::to_value(&event).map_err(Decided::Unserialisable)?,
            metadata.clone(),
        ));
    }
    Ok(Decision { appended: events.len(), events, after: aggregate })
}

/// Executes a command addressed to an aggregate that is almost always new (a click under
/// an id of its own), without loading it first: the command is decided on the empty
/// aggregate and its events appended at sequence 1 on. If the aggregate exists after all
/// (a viewer's retry of the same click), that append conflicts with its first event and
/// nothing is stored; the command is then sent as [`execute`] sends it, which loads the
/// aggregate and decides again. So the outcome is [`execute`]'s, always: the load is left
/// out only where it would have found nothing. A refusal on the empty aggregate is also
/// decided again on the loaded one.
pub async fn execute_new<A>(
    aggregates: &Aggregates<A>,
    events: &EventRepository,
    aggregate_id: &str,
    command: A::Command,
    metadata: EventMetadata,
) -> Result<(), CommandError<A::Error>>
where
    A: Snapshot<Services = ()>,
    A::Command: Clone + std::fmt::Debug,
    A::Event: Upcast,
{
    let decided = match decide(A::default(), aggregate_id, 0, command.clone(), &metadata).await {
        Ok(decided) if !decided.events.is_empty() => decided,
        // Refused, or nothing to append: decided again on the loaded aggregate.
        _ => return execute(aggregates, aggregate_id, command, metadata).await,
    };
    let outcome = match events.persist::<A>(&decided.events, None).await {
        Ok(()) => {
            snapshot_if_due(events, aggregate_id, (0, None), &decided).await;
            Ok(())
        }
        Err(PersistenceError::OptimisticLockError) => {
            return execute(aggregates, aggregate_id, command, metadata).await;
        }
        Err(e) => Err(CommandError::Store(e.to_string())),
    };
    count::<A>(&command_name(&command), &outcome);
    outcome
}

async fn one_by_one<A>(
    aggregates: &Aggregates<A>,
    commands: Vec<(String, A::Command, EventMetadata)>,
) -> Vec<Result<(), CommandError<A::Error>>>
where
    A: Snapshot<Services = ()>,
    A::Command: Clone + std::fmt::Debug,
    A::Event: Upcast,
{
    let mut results = Vec::with_capacity(commands.len());
    for (id, command, metadata) in commands {
        results.push(execute(aggregates, &id, command, metadata).await);
    }
    results
}

#[cfg(test)]
mod tests {
    use super::command_name;

    #[derive(Debug)]
    #[allow(dead_code, reason = "only their Debug form is read")]
    enum Command {
        PlaceOrder { lines: Vec<u32> },
        Cancel(String),
        Ship,
    }

    #[test]
    fn a_command_is_counted_by_its_variant_name() {
        assert_eq!(command_name(&Command::PlaceOrder { lines: vec![1, 2] }), "PlaceOrder");
        assert_eq!(command_name(&Command::Cancel("changed my mind".into())), "Cancel");
        assert_eq!(command_name(&Command::Ship), "Ship");
    }
}
