//! `framecart projections …`

use std::time::Duration;

use clap::Subcommand;
use framecart_commands::relay::lag;
use framecart_projections::{ProjectionError, ProjectionRunner, Retried, quarantine};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::app::Infra;
use crate::settings::Settings;

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

fn all(settings: &Settings, infra: &Infra) -> Vec<std::sync::Arc<dyn framecart_projections::Projection>> {
    // Rebuilding the matcher sends verdicts; unchanged ones record nothing. No payment
    // provider here: a surplus refund owed while this runs is left to the server.
    let commands =
        framecart_commands::Commands::new(infra.pool.clone(), framecart_commands::store::WriteMode::PerCommand);
    crate::app::projections(settings, std::sync::Arc::new(commands), Default::default())
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
}

#[derive(Debug, Serialize)]
pub struct ProjectionStatus {
    pub name: &'static str,
    /// The last log position it applied.
    pub applied: i64,
    /// Events it could not decode or apply and set aside.
    pub set_aside: i64,
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
    let relay = RelayStatus {
        state,
        restored: last.min(lag.recorded),
        target: lag.recorded,
        unrelayed: lag.unrelayed,
        oldest_unrelayed_secs: lag.oldest_age(now).map(|age| age.as_secs_f64()),
        lag_bound_secs: bound.as_secs(),
    };
    let set_aside: std::collections::HashMap<String, i64> =
        quarantine::counts(&infra.pool).await?.into_iter().collect();
    let mut projections = Vec::new();
    for projection in all(settings, infra) {
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT last_sequence FROM projection_checkpoints WHERE name = $1")
                .bind(projection.name())
                .fetch_optional(&infra.pool)
                .await?;
        let name = projection.name();
        let set_aside = set_aside.get(name).copied().unwrap_or(0);
        projections.push(ProjectionStatus { name, applied: applied.unwrap_or(0), set_aside });
    }
    Ok(StatusReport { stream, log: last, relay, projections })
}

pub async fn run(command: ProjectionsCommand) -> anyhow::Result<()> {
    match command {
        ProjectionsCommand::Status { json, settings } => {
            let infra = Infra::connect(&settings).await?;
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
            for projection in &report.projections {
                println!(
                    "{:<18} applied up to {:<10} set aside {}",
                    projection.name, projection.applied, projection.set_aside
                );
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
            let infra = Infra::connect(&settings).await?;
            let projections = all(&settings, &infra);
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
            let infra = Infra::connect(&settings).await?;
            let projection = all(&settings, &infra)
                .into_iter()
                .find(|p| p.name() == name)
                .ok_or(ProjectionError::Unknown(name.clone()))?;
            let runner = ProjectionRunner::new(infra.pool, infra.jetstream, settings.namespace, projection);
            let bar = ProgressBar::new(0).with_style(
                ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} events ({per_sec})")
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
    }
}
