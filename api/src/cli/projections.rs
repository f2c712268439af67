//! `framecart projections …`

use std::time::Duration;

use clap::Subcommand;
use framecart_projections::{ProjectionError, ProjectionRunner, Retried, quarantine};
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::Infra;
use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// List the projections and how far each has applied the log.
    Status {
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

pub async fn run(command: ProjectionsCommand) -> anyhow::Result<()> {
    match command {
        ProjectionsCommand::Status { settings } => {
            let infra = Infra::connect(&settings).await?;
            let mut stream = infra.jetstream.get_stream(settings.namespace.stream_name()).await?;
            let last = stream.info().await?.state.last_sequence;
            println!("log: {last} events in {}", settings.namespace.stream_name());
            let set_aside: std::collections::HashMap<String, i64> =
                quarantine::counts(&infra.pool).await?.into_iter().collect();
            for projection in all(&settings, &infra) {
                let name = projection.name();
                let applied: Option<i64> =
                    sqlx::query_scalar("SELECT last_sequence FROM projection_checkpoints WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&infra.pool)
                        .await?;
                let aside = set_aside.get(name).copied().unwrap_or(0);
                println!("{name:<18} applied up to {:<10} set aside {aside}", applied.unwrap_or(0));
            }
            let total: i64 = set_aside.values().sum();
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
