//! `framecart projections …`

use std::time::Duration;

use clap::Subcommand;
use framecart_commands::relay::lag;
use framecart_projections::{ProjectionError, ProjectionRunner, Retried, quarantine};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::settings::Settings;
use crate::supervisor::Infra;

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// List the projections and how far each has applied the log, and say whether the
    /// relay is restoring the stream or lagging behind the store.
    Status {
        /// Print one JSON object instead of lines.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        settings: Settings,
    },
    /// Apply the events a projection set aside again (after an upcaster or a fix was
    /// deployed); each one that succeeds leaves the quarantine. Safe while a server runs.
    Retry {
        /// Only this projection (default: every projection with set-aside events).
        #[arg(long)]
        projection: Option<String>,
        #[command(flatten)]
        settings: Settings,
    },
    /// Empty a projection's views and replay it from the start of the log. Safe while a
    /// server runs: the server replays it and this waits until it has caught up.
    Rebuild {
        /// The projection's name (see `status`).
        name: String,
        #[command(flatten)]
        settings: Settings,
    },
}

fn all(
    settings: &Settings,
    infra: &Infra,
) -> anyhow::Result<Vec<std::sync::Arc<dyn framecart_projections::Projection>>> {
    // Rebuilding the matcher sends verdicts; unchanged ones record nothing. No payment
    // provider here: a surplus refund owed while this runs is left to the server.
    let commands = framecart_commands::Commands::with_snapshots(
        infra.pool.clone(),
        framecart_commands::store::WriteMode::PerCommand,
        settings.snapshot_every,
    );
    crate::supervisor::consumers(settings, std::sync::Arc::new(commands), Default::default())
}

/// What `framecart projections status` reports.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    /// The stream's name.
    pub stream: String,
    /// The stream's last sequence.
    pub log: u64,
    pub relay: RelayStatus,
    pub projections: Vec<ProjectionStatus>,
    /// `None` until a detector worker has started on this log.
    pub detector: Option<DetectorStatus>,
}

/// The relay, as the store and the stream show it (whichever process is the relay).
#[derive(Debug, Serialize)]
pub struct RelayStatus {
    /// `restoring` (the stream lacks recorded events; the relay republishes them),
    /// `lagging` (a committed event has waited longer than the bound) or `ok`.
    pub state: &'static str,
    /// Recorded events in the stream (of `target`).
    pub restored: u64,
    /// Events the relay recorded.
    pub target: u64,
    /// Committed events not in the stream.
    pub unrelayed: u64,
    /// How long the oldest of them has waited, in seconds.
    pub oldest_unrelayed_secs: Option<f64>,
    pub lag_bound_secs: u64,
    /// The process that relays now (its Postgres `application_name`:
    /// `framecart <instance> <roles>`), and those standing by to take over.
    #[serde(flatten)]
    pub held: Held,
}

#[derive(Debug, Serialize)]
pub struct ProjectionStatus {
    pub name: &'static str,
    /// The last log position it applied.
    pub applied: i64,
    /// Events it could not decode or apply and set aside.
    pub set_aside: i64,
    /// For a projection that writes files (`client_files`): the log position up to which
    /// every applied event is in its files; `None` for the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_up_to: Option<i64>,
    /// Indexes a rebuild dropped that are not built again yet (it builds them once it has
    /// caught up with the log).
    #[serde(skip_serializing_if = "is_zero")]
    pub indexes_to_build: i64,
    /// The process that applies it now, and those standing by.
    #[serde(flatten)]
    pub held: Held,
}

/// Who holds one of the installation's advisory locks (the relay's, a projection's), as
/// Postgres sees it: the active process, and the processes waiting to take over.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Held {
    /// `None`: no process runs it now.
    pub active: Option<Process>,
    pub standby: Vec<Process>,
}

/// A process, as Postgres knows its session.
#[derive(Debug, Clone, Serialize)]
pub struct Process {
    /// `framecart <instance> <roles>`.
    pub name: String,
    /// The address it connects from (none over a Unix socket).
    pub address: Option<String>,
}

impl std::fmt::Display for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.name.strip_prefix("framecart ").unwrap_or(&self.name);
        match &self.address {
            Some(address) => write!(f, "{name} ({address})"),
            None => f.write_str(name),
        }
    }
}

/// The detector workers' shared queue.
#[derive(Debug, Serialize)]
pub struct DetectorStatus {
    /// Video events not yet looked at by any worker.
    pub pending: u64,
    /// Jobs a worker has taken and not finished.
    pub in_progress: u64,
    /// Workers waiting for a job now.
    pub idle_workers: usize,
}

/// Every advisory lock of this database and its holder and waiters, by 64-bit key.
async fn locks(pool: &sqlx::PgPool) -> anyhow::Result<std::collections::HashMap<i64, Held>> {
    let rows: Vec<(i64, i64, bool, String, Option<String>)> = sqlx::query_as(
        "SELECT l.classid::bigint, l.objid::bigint, l.granted, a.application_name, host(a.client_addr)
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.objsubid = 1
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         ORDER BY a.backend_start",
    )
    .fetch_all(pool)
    .await?;
    let mut held: std::collections::HashMap<i64, Held> = Default::default();
    for (high, low, granted, name, address) in rows {
        let key = ((high as u64) << 32 | (low as u64 & 0xffff_ffff)) as i64;
        let process = Process { name, address };
        let entry = held.entry(key).or_default();
        if granted {
            entry.active = Some(process);
        } else {
            entry.standby.push(process);
        }
    }
    Ok(held)
}

async fn detector_status(infra: &Infra, settings: &Settings) -> Option<DetectorStatus> {
    let ns = &settings.namespace;
    let stream = infra.jetstream.get_stream(ns.stream_name()).await.ok()?;
    let info = stream.consumer_info(ns.consumer_name("detector")).await.ok()?;
    Some(DetectorStatus {
        pending: info.num_pending,
        in_progress: u64::try_from(info.num_ack_pending).unwrap_or(0),
        idle_workers: info.num_waiting,
    })
}

/// Reads the log's, the relay's and each projection's state.
pub async fn status(settings: &Settings, infra: &Infra) -> anyhow::Result<StatusReport> {
    let stream = settings.namespace.stream_name();
    let last = infra.jetstream.get_stream(&stream).await?.cached_info().state.last_sequence;
    let lag = lag::observe(&infra.pool, Some(last)).await?;
    let now = chrono::Utc::now();
    let bound = settings.relay_lag_bound();
    let state = if lag.stream_behind() > 0 {
        "restoring"
    } else if lag.overdue(bound, now).is_some() {
        "lagging"
    } else {
        "ok"
    };
    let mut relay = RelayStatus {
        state,
        restored: last.min(lag.recorded),
        target: lag.recorded,
        unrelayed: lag.unrelayed,
        oldest_unrelayed_secs: lag.oldest_age(now).map(|age| age.as_secs_f64()),
        lag_bound_secs: bound.as_secs(),
        held: Held::default(),
    };
    let mut held = locks(&infra.pool).await?;
    relay.held = held.remove(&framecart_commands::relay::RELAY_LOCK).unwrap_or_default();
    let set_aside: std::collections::HashMap<String, i64> =
        quarantine::counts(&infra.pool).await?.into_iter().collect();
    let mut projections = Vec::new();
    for projection in all(settings, infra)? {
        let name = projection.name();
        // Its checkpoint, and the key of the advisory lock its runner holds.
        let (applied, key): (Option<i64>, i32) =
            sqlx::query_as("SELECT (SELECT last_sequence FROM projection_checkpoints WHERE name = $1), hashtext($2)")
                .bind(name)
                .bind(framecart_projections::runner::lock_key(name))
                .fetch_one(&infra.pool)
                .await?;
        let set_aside = set_aside.get(name).copied().unwrap_or(0);
        let held = held.remove(&i64::from(key)).unwrap_or_default();
        let applied = applied.unwrap_or(0);
        let files_up_to = projection.files_up_to(&infra.pool, applied).await?;
        let indexes_to_build = framecart_projections::indexes::deferred(&infra.pool, name).await?;
        projections.push(ProjectionStatus { name, applied, set_aside, files_up_to, indexes_to_build, held });
    }
    let detector = detector_status(infra, settings).await;
    Ok(StatusReport { stream, log: last, relay, projections, detector })
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// `active: <process>, standby: <process>, …` (or that nothing runs it).
fn holders(held: &Held) -> String {
    let active = held.active.as_ref().map_or_else(|| "no process runs it".to_owned(), |p| format!("active: {p}"));
    if held.standby.is_empty() {
        return active;
    }
    let standby: Vec<String> = held.standby.iter().map(ToString::to_string).collect();
    format!("{active}; standby: {}", standby.join(", "))
}

pub async fn run(command: ProjectionsCommand) -> anyhow::Result<()> {
    match command {
        ProjectionsCommand::Status { json, settings } => {
            let infra = Infra::connect_reading(&settings, "cli").await?;
            let report = status(&settings, &infra).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
                return Ok(());
            }
            println!("log: {} events in {}", report.log, report.stream);
            let relay = &report.relay;
            match relay.state {
                "restoring" => println!(
                    "relay: restoring: {} of {} recorded events are back in the stream",
                    relay.restored, relay.target
                ),
                "lagging" => println!(
                    "relay: lagging: {} committed events are not in the stream, the oldest for {:.0} s (bound {} s)",
                    relay.unrelayed,
                    relay.oldest_unrelayed_secs.unwrap_or_default(),
                    relay.lag_bound_secs
                ),
                _ => println!("relay: ok: {} committed events on their way to the stream", relay.unrelayed),
            }
            println!("relay: {}", holders(&relay.held));
            for projection in &report.projections {
                println!(
                    "{:<21} applied up to {:<10} set aside {:<4} {}",
                    projection.name,
                    projection.applied,
                    projection.set_aside,
                    holders(&projection.held)
                );
                if let Some(up_to) = projection.files_up_to {
                    println!("{:<21} files hold every event up to {up_to}", "");
                }
                if projection.indexes_to_build > 0 {
                    println!(
                        "{:<21} rebuilding: {} index(es) built once it has caught up",
                        "", projection.indexes_to_build
                    );
                }
            }
            match &report.detector {
                Some(d) => println!(
                    "detector: {} request event(s) pending, {} job(s) in progress, {} worker(s) idle",
                    d.pending, d.in_progress, d.idle_workers
                ),
                None => println!("detector: no worker has started on this log"),
            }
            let total: i64 = report.projections.iter().map(|p| p.set_aside).sum();
            if total > 0 {
                println!(
                    "{total} event(s) set aside: GET /api/v1/admin/quarantine lists them; \
                     `framecart projections retry` applies them again"
                );
            }
            Ok(())
        }
        ProjectionsCommand::Retry { projection, settings } => {
            let infra = Infra::connect_reading(&settings, "cli").await?;
            let projections = all(&settings, &infra)?;
            if let Some(name) = &projection
                && !projections.iter().any(|p| p.name() == name)
            {
                return Err(ProjectionError::Unknown(name.clone()).into());
            }
            let mut still = 0;
            for p in projections.into_iter().filter(|p| projection.as_deref().is_none_or(|name| p.name() == name)) {
                let name = p.name();
                let runner =
                    ProjectionRunner::new(infra.pool.clone(), infra.jetstream.clone(), settings.namespace.clone(), p);
                let retried = runner.retry().await?;
                if retried != Retried::default() {
                    println!("{name:<18} applied {}, still set aside {}", retried.applied, retried.still_set_aside);
                }
                still += retried.still_set_aside;
            }
            if still > 0 {
                anyhow::bail!("{still} event(s) still cannot be applied (see `framecart projections status`)");
            }
            Ok(())
        }
        ProjectionsCommand::Rebuild { name, settings } => {
            let infra = Infra::connect_reading(&settings, "cli").await?;
            let projection = all(&settings, &infra)?
                .into_iter()
                .find(|p| p.name() == name)
                .ok_or(ProjectionError::Unknown(name.clone()))?;
            let runner = ProjectionRunner::new(infra.pool, infra.jetstream, settings.namespace, projection);
            rebuild_showing(&runner, &name, ProgressBar::new(0)).await
        }
    }
}

/// Rebuilds one projection, its progress on `bar` (`rebuilding clicks [===>  ] 5000/100000
/// events`).
pub(crate) async fn rebuild_showing(runner: &ProjectionRunner, name: &str, bar: ProgressBar) -> anyhow::Result<()> {
    bar.set_style(
        ProgressStyle::with_template("{msg:<24} [{bar:40}] {pos}/{len} events ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("rebuilding {name}"));
    bar.enable_steady_tick(Duration::from_millis(200));
    runner
        .rebuild(&|applied, last| {
            bar.set_length(last);
            bar.set_position(applied);
        })
        .await?;
    bar.finish_with_message(format!("rebuilt {name}"));
    Ok(())
}
