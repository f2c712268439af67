//! The `framecart` command line.

mod projections;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::app::{Components, Infra, Running};
use crate::settings::{HttpSettings, Settings};

#[derive(Debug, Parser)]
#[command(name = "framecart", version, about = "Click-to-buy on video: an event-sourced backend")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API, the relay and the projections.
    Serve {
        #[command(flatten)]
        settings: Settings,
        #[command(flatten)]
        http: HttpSettings,
    },
    /// Apply database migrations and create the stream, then exit.
    Migrate {
        #[command(flatten)]
        settings: Settings,
    },
    /// Inspect or rebuild projections.
    Projections {
        #[command(subcommand)]
        command: projections::ProjectionsCommand,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { settings, http } => {
            tracing::info!(?settings, "starting");
            let running = Running::start(settings, http, Components::default()).await?;
            let token = running.shutdown_token();
            tokio::spawn(cancel_on_signal(token));
            running.wait().await
        }
        Command::Migrate { settings } => {
            Infra::connect(&settings).await?;
            eprintln!("migrations applied; stream {} ready", settings.namespace.stream_name());
            Ok(())
        }
        Command::Projections { command } => projections::run(command).await,
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
