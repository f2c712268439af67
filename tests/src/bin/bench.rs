//! `framecart-bench`: click capture under load, on loopback, against a whole installation
//! of its own (fresh database, fresh NATS namespace), with real Postgres and NATS.
//!
//! It prints:
//! 1. acknowledged clicks per second and the latency of `POST /api/v1/clicks` from many
//!    concurrent connections, then checks that every acknowledged click is stored, logged
//!    and projected (zero loss);
//! 2. the lag from an event's commit to its row in the `clicks` view at a fixed rate;
//! 3. how fast the relay publishes a backlog, and how fast the `clicks` view catches up;
//! 4. how fast the relay restores a lost stream (every event so far) from the store.
//!
//! Run: `cargo run --release -p framecart-tests --bin framecart-bench -- --help`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use framecart_api::limits::{ClickRate, SigninRate};
use framecart_tests::workload::Workload;
use framecart_tests::{TestApp, eventually};
use hdrhistogram::Histogram;
use tokio::sync::Semaphore;

/// The allocator of the `framecart` binary, so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
struct Args {
    /// Concurrent connections posting clicks in the throughput phase.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds of the throughput phase.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Clicks per second of the lag phase.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Seconds of the lag phase.
    #[arg(long, default_value_t = 10)]
    lag_duration: u64,
    /// Clicks in the backlog the relay publishes in the last phase.
    #[arg(long, default_value_t = 20_000)]
    backlog: usize,
    /// Group commit of concurrent commands (false: one transaction per command).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    write_batching: bool,
    /// Postgres connections of the server.
    #[arg(long, default_value_t = 32)]
    db_connections: u32,
    /// Only the relay's phases: the backlog, then the restore of the lost stream.
    #[arg(long)]
    relay_only: bool,
    /// Distinct viewers of the clicks, each with an address of its own (`X-Forwarded-For`
    /// through 127.0.0.1 as a trusted proxy) and a client file per video.
    #[arg(long, default_value_t = Workload::default().viewers)]
    viewers: u64,
    /// Distinct videos the clicks are on.
    #[arg(long, default_value_t = Workload::default().videos)]
    videos: u64,
}

impl Args {
    fn workload(&self) -> Workload {
        Workload { viewers: self.viewers, videos: self.videos }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let app = TestApp::spawn_with(|serve| {
        serve.settings.db_max_connections = args.db_connections;
        serve.settings.write_batching = args.write_batching;
        // No first admin: the log holds the bench's clicks only (the loss check counts them).
        serve.auth.admin_email = None;
        // One address sends every click: the per-address limits would measure themselves.
        serve.http.rate_clicks = ClickRate::Off;
        serve.http.rate_signin = SigninRate::Off;
        // Each viewer's address comes through the load's proxy, as behind a balancer.
        serve.http.trusted_proxies = vec!["127.0.0.1/32".parse().expect("a network")];
    })
    .await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(usize::MAX).build()?;
    println!(
        "framecart-bench: {} connections, write batching {}, {} db connections, {} viewers on {} videos",
        args.connections, args.write_batching, args.db_connections, args.viewers, args.videos
    );
    println!(
        "framecart-bench: rate limits off (FRAMECART_RATE_CLICKS={}, FRAMECART_RATE_SIGNIN={})",
        app.running.state.http.rate_clicks, app.running.state.http.rate_signin
    );

    if !args.relay_only {
        throughput(&app, &client, &args).await?;
        lag(&app, &client, &args).await?;
    }
    let mut app = relay_backlog(app, &client, &args).await?;
    restore(&mut app).await?;
    Ok(())
}

/// One click posted; its latency in microseconds, or `None` if it was not accepted.
async fn post_click(app: &TestApp, client: &reqwest::Client, workload: Workload, i: u64) -> Option<u64> {
    let click = workload.click(i);
    let start = Instant::now();
    let request = client.post(app.url("/api/v1/clicks")).header("x-forwarded-for", &click.address).json(&click.body);
    let response = request.send().await.ok()?;
    let ok = response.status().as_u16() == 202;
    let _ = response.bytes().await;
    ok.then(|| start.elapsed().as_micros() as u64)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

async fn throughput(app: &TestApp, client: &reqwest::Client, args: &Args) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers = (0..args.connections).map(|_| {
        let counter = counter.clone();
        async move {
            let mut hist = histogram();
            let mut failed = 0u64;
            while Instant::now() < deadline {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                match post_click(app, client, args.workload(), i).await {
                    Some(us) => hist.record(us).expect("record"),
                    None => failed += 1,
                }
            }
            (hist, failed)
        }
    });
    let results = futures::future::join_all(workers).await;
    let elapsed = start.elapsed().as_secs_f64();
    let mut hist = histogram();
    let mut failed = 0;
    for (h, f) in results {
        hist.add(h).expect("merge");
        failed += f;
    }
    let acked = hist.len();
    println!("\n== throughput: {} connections for {:.1} s", args.connections, elapsed);
    println!("acknowledged clicks: {acked} ({:.0}/s), failed: {failed}", acked as f64 / elapsed);
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        ms(hist.value_at_quantile(0.5)),
        ms(hist.value_at_quantile(0.9)),
        ms(hist.value_at_quantile(0.99)),
        ms(hist.value_at_quantile(0.999)),
        ms(hist.max())
    );
    let stored = app.count("SELECT count(*) FROM events").await as u64;
    let waited = Instant::now();
    app.wait_for_clicks_view().await;
    let projected = app.count("SELECT count(*) FROM clicks_view").await as u64;
    let logged = app.count("SELECT count(*) FROM event_log").await as u64;
    println!(
        "zero loss: stored {stored}, logged {logged}, projected {projected} of {acked} acknowledged \
         (view caught up {:.2} s after the load) -> {}",
        waited.elapsed().as_secs_f64(),
        if stored == acked && projected == acked && logged == acked { "OK" } else { "LOSS" }
    );
    Ok(())
}

async fn lag(app: &TestApp, client: &reqwest::Client, args: &Args) -> anyhow::Result<()> {
    let before: i64 = app.count("SELECT coalesce(max(log_position), 0) FROM clicks_view").await;
    let total = args.rate * args.lag_duration;
    let limit = Arc::new(Semaphore::new(512));
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    let failed = Arc::new(AtomicU64::new(0));
    let mut hist_parts = Vec::new();
    for i in 0..total {
        tokio::time::sleep_until(start + interval * i as u32).await;
        let permit = limit.clone().acquire_owned().await?;
        let failed = failed.clone();
        let app_url = app.url("/api/v1/clicks");
        let client = client.clone();
        let click = args.workload().click(i);
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let request = client.post(app_url).header("x-forwarded-for", &click.address).json(&click.body);
            let ok = match request.send().await {
                Ok(r) => r.status().as_u16() == 202,
                Err(_) => false,
            };
            drop(permit);
            if !ok {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            sent.elapsed().as_micros() as u64
        }));
    }
    for task in tasks {
        hist_parts.push(task.await?);
    }
    let offered = start.elapsed().as_secs_f64();
    app.wait_for_clicks_view().await;
    let (p50, p90, p99, max, n): (f64, f64, f64, f64, i64) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),
                percentile_cont(0.9) WITHIN GROUP (ORDER BY lag),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY lag),
                max(lag), count(*)
         FROM (SELECT extract(epoch FROM projected_at - recorded_at)::float8 * 1000 AS lag
               FROM clicks_view WHERE log_position > $1) l",
    )
    .bind(before)
    .fetch_one(&app.db)
    .await?;
    let mut hist = histogram();
    for us in hist_parts {
        hist.record(us.max(1)).expect("record");
    }
    println!("\n== lag: {} clicks at {}/s (offered over {:.1} s)", total, args.rate, offered);
    println!(
        "POST latency ms: p50 {:.2}  p99 {:.2}; failed {}",
        ms(hist.value_at_quantile(0.5)),
        ms(hist.value_at_quantile(0.99)),
        failed.load(Ordering::Relaxed)
    );
    println!("commit -> clicks view lag ms over {n} clicks: p50 {p50:.1}  p90 {p90:.1}  p99 {p99:.1}  max {max:.1}");
    Ok(())
}

async fn relay_backlog(mut app: TestApp, client: &reqwest::Client, args: &Args) -> anyhow::Result<TestApp> {
    app.running.kill_relay().await;
    let base = app.count("SELECT count(*) FROM events").await as u64;
    let posted = Arc::new(AtomicU64::new(0));
    let workers = (0..args.connections).map(|_| {
        let posted = posted.clone();
        let app = &app;
        async move {
            loop {
                let i = posted.fetch_add(1, Ordering::Relaxed);
                if i >= args.backlog as u64 {
                    return;
                }
                post_click(app, client, args.workload(), i).await;
            }
        }
    });
    futures::future::join_all(workers).await;
    let target = app.count("SELECT count(*) FROM events").await as u64;
    let backlog = target - base;
    let start = Instant::now();
    app.running.start_relay();
    let stats = app.running.relay_stats().expect("relay stats");
    eventually("the relay to publish the backlog", Duration::from_secs(300), || async {
        (stats.log_position.load(Ordering::Relaxed) >= target).then_some(())
    })
    .await;
    let relay_secs = start.elapsed().as_secs_f64();
    app.wait_for_clicks_view().await;
    let view_secs = start.elapsed().as_secs_f64();
    println!("\n== relay: backlog of {backlog} events");
    println!(
        "relay published {:.0} events/s ({backlog} in {relay_secs:.2} s); clicks view caught up after {view_secs:.2} s ({:.0} events/s)",
        backlog as f64 / relay_secs,
        backlog as f64 / view_secs
    );
    Ok(app)
}

/// The NATS store is lost: the relay republishes every recorded event from Postgres.
async fn restore(app: &mut TestApp) -> anyhow::Result<()> {
    app.running.kill_relay().await;
    let target = app.count("SELECT count(*) FROM event_log").await as u64;
    app.jetstream.delete_stream(app.namespace.namespace.stream_name()).await?;
    let stats = app.running.state.relay.clone();
    let start = Instant::now();
    app.running.start_relay();
    eventually("the relay to restore the stream", Duration::from_secs(300), || async {
        (stats.restores.load(Ordering::Relaxed) >= 1).then_some(())
    })
    .await;
    let secs = start.elapsed().as_secs_f64();
    let (restored, _) = stats.restore_progress();
    anyhow::ensure!(restored == target, "restored {restored} of {target} events");
    anyhow::ensure!(app.stream_len().await == target, "the stream holds every recorded event");
    println!("\n== restore: the stream lost, {target} recorded events");
    println!(
        "relay restored {:.0} events/s ({target} in {secs:.2} s, from its start to the last ack, the check of the empty stream included)",
        target as f64 / secs
    );
    Ok(())
}
