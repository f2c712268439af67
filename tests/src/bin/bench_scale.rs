//! `framecart-bench-scale`: what an acknowledged click costs in CPU across every process
//! that handles it (framecart, Postgres, NATS), with one filter per consumer (NATS 2.9)
//! and with filter subjects (NATS 2.10+); and acknowledged clicks per second with one and
//! with two `api` processes beside a `relay,projections,processes` process.
//!
//! Each run is a whole installation of its own: a fresh database on the machine's
//! Postgres, a `nats-server` of its own, and the real `framecart serve` binary
//! (`FRAMECART_BIN`, release build: `scripts/bench-scale.sh` builds it). The load is many
//! viewers clicking on many videos, as fast as `--connections` connections go, for
//! `--duration` seconds; CPU is read from `/proc` from the start of the load until every
//! click is in every view, the client files and the matcher's verdicts. pgbench inserting
//! one row per transaction into the same Postgres is the anchor, run in the same session:
//! the machine is shared and noisy, so the ratios say more than the figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use framecart_tests::anchor::Pgbench;
use framecart_tests::faults;
use framecart_tests::installation::{Installation, nats_version};
use framecart_tests::workload::{Workload, full_speed};

#[derive(Debug, Parser)]
struct Args {
    /// Seconds of load in each run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Concurrent connections posting clicks.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Distinct viewers, each with an address of its own (`X-Forwarded-For` through
    /// 127.0.0.1 as a trusted proxy) and a client file per video.
    #[arg(long, default_value_t = Workload::default().viewers)]
    viewers: u64,
    /// Distinct videos clicked on.
    #[arg(long, default_value_t = Workload::default().videos)]
    videos: u64,
    /// Runs of each configuration (the medians are printed).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Only the filters' runs (no runs with one and two api processes).
    #[arg(long)]
    filters_only: bool,
    /// A NATS 2.9 server: one filter subject per consumer.
    #[arg(long, default_value = "/usr/sbin/nats-server")]
    nats_old: PathBuf,
    /// A NATS 2.10+ server: several filter subjects per consumer (`scripts/nats-server.sh`).
    #[arg(long, env = "FRAMECART_NATS_SERVER")]
    nats_new: PathBuf,
}

fn workload(args: &Args) -> Workload {
    Workload { viewers: args.viewers, videos: args.videos }
}

/// A run's figures.
struct Measured {
    clicks_per_second: f64,
    /// CPU microseconds per acknowledged click, from the load's start until every view
    /// caught up: framecart, Postgres, NATS.
    cpu_us: [f64; 3],
    /// The same over the load's seconds only (views that lag leave work for later).
    window_us: f64,
    /// Messages NATS delivered to the installation's consumers per acknowledged click
    /// (the verdicts the matcher records are events too, and are delivered as well).
    deliveries: f64,
    /// Seconds from the end of the load until every view, client file and verdict caught
    /// up (and stayed so for half a second).
    caught_up_secs: f64,
    answers: BTreeMap<String, u64>,
}

async fn measure(nats: &Path, roles: &[&'static str], args: &Args) -> anyhow::Result<Measured> {
    let installation = Installation::start(nats, roles).await?;
    let urls = installation.api_urls();
    // Warm-up: connections, plans, caches; then everything settles before counting.
    full_speed(&urls, args.connections, workload(args), Duration::from_secs(2)).await;
    faults::settle(&installation.db).await;
    let delivered_before = installation.delivered().await?;
    let before = installation.cpu();
    let started = Instant::now();
    let loaded = full_speed(&urls, args.connections, workload(args), Duration::from_secs(args.duration)).await;
    let (acked, answers) = (loaded.latencies.len(), loaded.answers);
    let loaded = started.elapsed();
    let window = installation.cpu();
    let stopped = Instant::now();
    faults::settle(&installation.db).await;
    let caught_up = stopped.elapsed();
    let after = installation.cpu();
    let delivered = installation.delivered().await?;
    installation.stop().await;
    let per_click = |cpu: [f64; 3], i: usize| (cpu[i] - before[i]) * 1e6 / acked.max(1) as f64;
    Ok(Measured {
        clicks_per_second: acked as f64 / loaded.as_secs_f64(),
        cpu_us: [per_click(after, 0), per_click(after, 1), per_click(after, 2)],
        window_us: (0..3).map(|i| per_click(window, i)).sum(),
        deliveries: delivered.saturating_sub(delivered_before) as f64 / acked.max(1) as f64,
        caught_up_secs: caught_up.as_secs_f64(),
        answers,
    })
}

fn answers(m: &Measured) -> String {
    m.answers.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(" ")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "{} connections, {} viewers, {} videos, {} s of load per run, {} runs of each (alternating; medians); \
         CPU from the load's start until every view caught up",
        args.connections, args.viewers, args.videos, args.duration, args.runs
    );
    let pgbench = Pgbench::default();
    let anchor = pgbench.inserts_per_second(&serde_json::to_string(&Workload::default().click(0).body)?).await?;
    println!(
        "anchor: pgbench -n -c {} -j {} -T {}, one-row inserts of a click: {anchor:.0} transactions/s\n",
        pgbench.clients, pgbench.threads, pgbench.seconds
    );

    let filters = [("one filter each (before)", &args.nats_old), ("filter subjects (after)", &args.nats_new)];
    let mut by_filter: Vec<Vec<Measured>> = vec![Vec::new(), Vec::new()];
    for _ in 0..args.runs {
        for (i, (_, nats)) in filters.iter().enumerate() {
            by_filter[i].push(measure(nats, &["all"], &args).await?);
        }
    }
    println!(
        "| consumers | NATS | clicks/s | ÷ pgbench | deliveries/click | CPU µs/click framecart | Postgres | NATS | \
         total | of it in the load's seconds | caught up (s) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut totals = Vec::new();
    for ((label, nats), runs) in filters.iter().zip(&by_filter) {
        let m = Median::of(runs);
        totals.push(m.total());
        println!(
            "| {label} | {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} |",
            nats_version(nats),
            m.clicks_per_second,
            m.clicks_per_second / anchor,
            m.deliveries,
            m.cpu_us[0],
            m.cpu_us[1],
            m.cpu_us[2],
            m.total(),
            m.window_us,
            m.caught_up_secs,
        );
    }
    if let [before, after] = totals[..] {
        println!("\nCPU per acknowledged click, after ÷ before: {:.2}", after / before);
    }

    if args.filters_only {
        return Ok(());
    }
    let layouts: [(&str, &[&'static str]); 2] = [
        ("relay,projections,processes + 1 api", &["relay,projections,processes", "api"]),
        ("relay,projections,processes + 2 api", &["relay,projections,processes", "api", "api"]),
    ];
    let mut by_layout: Vec<Vec<Measured>> = vec![Vec::new(), Vec::new()];
    for _ in 0..args.runs {
        for (i, (_, roles)) in layouts.iter().enumerate() {
            by_layout[i].push(measure(&args.nats_new, roles, &args).await?);
        }
    }
    println!("\n| processes | clicks/s | ÷ pgbench | CPU µs/click framecart | Postgres | NATS | total |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut rates = Vec::new();
    for ((label, _), runs) in layouts.iter().zip(&by_layout) {
        let m = Median::of(runs);
        rates.push(m.clicks_per_second);
        println!(
            "| {label} | {:.0} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} |",
            m.clicks_per_second,
            m.clicks_per_second / anchor,
            m.cpu_us[0],
            m.cpu_us[1],
            m.cpu_us[2],
            m.total()
        );
    }
    if let [one, two] = rates[..] {
        println!("\nclicks/s with two api processes ÷ with one: {:.2}", two / one);
    }
    let unexpected: Vec<String> = by_filter
        .iter()
        .chain(&by_layout)
        .flatten()
        .filter(|m| m.answers.keys().any(|k| k != "202"))
        .map(answers)
        .collect();
    if !unexpected.is_empty() {
        println!("\nanswers other than 202 in some runs: {}", unexpected.join("; "));
    }
    Ok(())
}

/// The median of each figure over runs.
struct Median {
    clicks_per_second: f64,
    deliveries: f64,
    cpu_us: [f64; 3],
    window_us: f64,
    caught_up_secs: f64,
}

impl Median {
    fn of(runs: &[Measured]) -> Self {
        let median = |f: &dyn Fn(&Measured) -> f64| {
            let mut all: Vec<f64> = runs.iter().map(f).collect();
            all.sort_by(f64::total_cmp);
            all.get(all.len() / 2).copied().unwrap_or_default()
        };
        Self {
            clicks_per_second: median(&|m| m.clicks_per_second),
            deliveries: median(&|m| m.deliveries),
            cpu_us: [median(&|m| m.cpu_us[0]), median(&|m| m.cpu_us[1]), median(&|m| m.cpu_us[2])],
            window_us: median(&|m| m.window_us),
            caught_up_secs: median(&|m| m.caught_up_secs),
        }
    }

    fn total(&self) -> f64 {
        self.cpu_us.iter().sum()
    }
}
