//! The `framecart` command line.

mod audit;
mod detect;
pub mod projections;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use framecart_commands::keys::Keyring;
use framecart_domain::personal::MasterKey;

use crate::settings::{ServeSettings, Settings, parse_master_key};
use crate::supervisor::{Infra, Running};

#[derive(Debug, Parser)]
#[command(name = "framecart", version, about = "Click-to-buy on video: an event-sourced backend")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once at start")]
pub enum Command {
    /// Run Framecart: the API, the relay, the projections, the process managers and the
    /// detector workers, or those `--roles` names.
    Serve {
        #[command(flatten)]
        serve: ServeSettings,
    },
    /// Apply database migrations and create the stream, then exit.
    Migrate {
        #[command(flatten)]
        settings: Settings,
    },
    /// Run the detector on an image or a video and print what it finds.
    Detect(detect::DetectArgs),
    /// Manage the detection model.
    Model {
        #[command(subcommand)]
        command: detect::ModelCommand,
    },
    /// Check the log's hash chain.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Print the whole history from the log (JSON lines), or rebuild the views from it.
    Replay(audit::ReplayArgs),
    /// Take a snapshot of every aggregate with at least `--min-events` events after its
    /// latest snapshot: after upgrading from a version without snapshots, before traffic
    /// resumes, so that the first command on a long-lived aggregate does not fold its whole
    /// history while requests wait. Commands take the rest as they go.
    Snapshots {
        #[command(flatten)]
        settings: Settings,
        /// Aggregates with fewer events than this after their latest snapshot are left.
        #[arg(long, default_value_t = 100)]
        min_events: u64,
    },
    /// Rewraps every data key of personal data under a new master key, in one
    /// transaction. Stop every process first (each holds the old key), run this, then start
    /// them all with the new key: nothing else changes, no event is touched.
    RotateMasterKey {
        #[command(flatten)]
        settings: Settings,
        /// The new master key (64 hex digits or standard base64).
        #[arg(long, env = "FRAMECART_NEW_MASTER_KEY", hide_env_values = true, value_parser = parse_master_key)]
        new_master_key: MasterKey,
    },
    /// Inspect or rebuild projections.
    Projections {
        #[command(subcommand)]
        command: projections::ProjectionsCommand,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { serve } => {
            tracing::info!(settings = ?serve.settings, "starting");
            let running = Running::start(serve).await?;
            let token = running.shutdown_token();
            tokio::spawn(cancel_on_signal(token));
            running.wait().await
        }
        Command::Migrate { settings } => {
            Infra::connect(&settings, "migrate").await?;
            eprintln!("migrations applied; stream {} ready", settings.namespace.stream_name());
            Ok(())
        }
        Command::Snapshots { settings, min_events } => {
            let infra = Infra::connect(&settings, "snapshots").await?;
            let commands = framecart_commands::Commands::with_snapshots(
                infra.pool.clone(),
                framecart_commands::store::WriteMode::PerCommand,
                settings.snapshot_every,
            );
            let started = std::time::Instant::now();
            let taken = commands.take_snapshots(min_events).await?;
            let total: u64 = taken.values().sum();
            eprintln!("{total} snapshots taken in {:.1} s: {taken:?}", started.elapsed().as_secs_f64());
            Ok(())
        }
        Command::RotateMasterKey { settings, new_master_key } => {
            let infra = Infra::connect(&settings, "rotate-master-key").await?;
            let keys = Keyring::open(infra.pool.clone(), settings.master_key()?).await?;
            let rewrapped = keys.rotate(&new_master_key).await?;
            Keyring::open(infra.pool.clone(), new_master_key).await?;
            eprintln!("{rewrapped} data keys rewrapped: start every process with the new FRAMECART_MASTER_KEY");
            Ok(())
        }
        Command::Projections { command } => projections::run(command).await,
        Command::Audit { command } => audit::run(command).await,
        Command::Replay(args) => audit::replay(args).await,
        Command::Detect(args) => tokio::task::spawn_blocking(move || detect::detect(args)).await?,
        Command::Model { command } => tokio::task::spawn_blocking(move || detect::model(command)).await?,
    }
}

async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
    token.cancel();
}
