//! `framecart audit verify` and `framecart replay`: the auditor's commands.

use std::io::Write;

use clap::{Args, Subcommand};
use framecart_commands::audit;
use framecart_projections::{ProjectionError, ProjectionRunner};
use indicatif::{MultiProgress, ProgressBar};

use crate::settings::Settings;
use crate::supervisor::Infra;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain over the whole log and check that every stored event has a
    /// log position; print `{"ok": true, "checked": N}`, or the first event that does not
    /// fit, or the events the log misses (and exit with a failure status). Events stored
    /// less than `FRAMECART_RELAY_LAG_BOUND_SECS` ago may still wait for the relay.
    Verify {
        #[command(flatten)]
        settings: Settings,
    },
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Empty the views and rebuild them from the log instead of printing it. With names,
    /// only those projections (see `framecart projections status`).
    #[arg(long)]
    pub rebuild: bool,
    /// The projections to rebuild (all the views when none is named).
    #[arg(requires = "rebuild")]
    pub names: Vec<String>,
    /// Print only the events after this log position.
    #[arg(long, default_value_t = 0)]
    pub after: i64,
    /// Print at most this many events.
    #[arg(long)]
    pub limit: Option<i64>,
    #[command(flatten)]
    pub settings: Settings,
}

pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { settings } => {
            let infra = Infra::connect_reading(&settings, "cli").await?;
            let outcome = audit::verify(&infra.pool, settings.relay_lag_bound()).await?;
            println!("{}", serde_json::to_string(&outcome)?);
            match outcome {
                audit::Verification::Intact { .. } => Ok(()),
                audit::Verification::Broken { first_bad_position, .. } => {
                    anyhow::bail!("the hash chain is broken at log position {first_bad_position}")
                }
                audit::Verification::Incomplete { reason, .. } => anyhow::bail!("the log is incomplete: {reason}"),
            }
        }
    }
}

/// Prints the log as JSON lines (one event per line, in commit order, as
/// `GET /api/v1/audit/events` shows them), or rebuilds views from it.
pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let infra = Infra::connect_reading(&args.settings, "cli").await?;
    if args.rebuild {
        return rebuild(&args, infra).await;
    }
    const PAGE: i64 = 1000;
    let mut after = args.after;
    let mut left = args.limit.unwrap_or(i64::MAX);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    while left > 0 {
        let page = audit::events_after(&infra.pool, after, PAGE.min(left)).await?;
        let Some(last) = page.last() else { break };
        after = last.position.unwrap_or(after);
        left -= page.len() as i64;
        for event in &page {
            serde_json::to_writer(&mut out, event)?;
            out.write_all(b"\n")?;
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    out.flush()?;
    Ok(())
}

async fn rebuild(args: &ReplayArgs, infra: Infra) -> anyhow::Result<()> {
    let views = framecart_projections::all(&args.settings.views()?);
    for name in &args.names {
        if !views.iter().any(|p| p.name() == name) {
            return Err(ProjectionError::Unknown(name.clone()).into());
        }
    }
    let chosen: Vec<_> =
        views.into_iter().filter(|p| args.names.is_empty() || args.names.iter().any(|n| n == p.name())).collect();
    // The views are rebuilt together: each replays the log on its own consumer, and a
    // server that applies them does so in parallel.
    let bars = MultiProgress::new();
    let rebuilds = chosen.into_iter().map(|projection| {
        let name = projection.name();
        let runner = ProjectionRunner::new(
            infra.pool.clone(),
            infra.jetstream.clone(),
            args.settings.namespace.clone(),
            projection,
        );
        let bar = bars.add(ProgressBar::new(0));
        async move { super::projections::rebuild_showing(&runner, name, bar).await }
    });
    for result in futures::future::join_all(rebuilds).await {
        result?;
    }
    Ok(())
}
