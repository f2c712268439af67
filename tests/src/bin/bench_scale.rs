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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use framecart_tests::cluster::{Nats, framecart_bin, free_port, signal, wait_exit};
use framecart_tests::workload::Workload;
use framecart_tests::{TestDatabase, eventually, faults};
use uuid::Uuid;

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

/// A `framecart serve` process of the run.
struct Server {
    child: Child,
    port: u16,
    roles: &'static str,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One installation: a database, a NATS server, and `framecart serve` processes.
struct Installation {
    servers: Vec<Server>,
    nats: Nats,
    db: sqlx::PgPool,
    _database: TestDatabase,
    _dir: tempfile::TempDir,
}

impl Installation {
    /// Starts NATS (`nats_bin`), then one process per entry of `roles`, each until ready.
    async fn start(nats_bin: &Path, roles: &[&'static str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let database = TestDatabase::create().await?;
        let nats = Nats::start_with(&dir.path().join("nats"), nats_bin).await;
        let namespace = format!("bench{}", &Uuid::new_v4().simple().to_string()[..8]);
        let mut servers = Vec::new();
        for (i, roles) in roles.iter().enumerate() {
            let port = free_port();
            let log = std::fs::File::create(dir.path().join(format!("framecart-{i}.log")))?;
            let child = Command::new(framecart_bin())
                .arg("serve")
                .env("DATABASE_URL", &database.url)
                .env("NATS_URL", nats.url())
                .env("FRAMECART_NAMESPACE", &namespace)
                .env("FRAMECART_ROLES", roles)
                .env("FRAMECART_INSTANCE", format!("bench-{i}"))
                .env("FRAMECART_BIND", format!("127.0.0.1:{port}"))
                .env("FRAMECART_MEDIA_DIR", dir.path().join("media"))
                .env("FRAMECART_DETECTOR_WORKERS", "0")
                .env("FRAMECART_AUTO_DETECT", "false")
                .env("FRAMECART_RATE_CLICKS", "off")
                .env("FRAMECART_TRUSTED_PROXIES", "127.0.0.1/32")
                .env("FRAMECART_TOKEN_SECRET", "bench token secret, shared by every api process")
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?;
            servers.push(Server { child, port, roles });
            let http = reqwest::Client::new();
            let url = format!("http://127.0.0.1:{port}/readyz");
            eventually("a framecart process to be ready", Duration::from_secs(60), || async {
                http.get(&url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())
            })
            .await;
        }
        let db = sqlx::PgPool::connect(&database.url).await?;
        Ok(Self { servers, nats, db, _database: database, _dir: dir })
    }

    fn api_urls(&self) -> Vec<String> {
        self.servers
            .iter()
            .filter(|s| s.roles == "all" || s.roles.split(',').any(|r| r == "api"))
            .map(|s| format!("http://127.0.0.1:{}", s.port))
            .collect()
    }

    /// CPU seconds so far of framecart, Postgres (every process of the server) and NATS.
    fn cpu(&self) -> [f64; 3] {
        let framecart = self.servers.iter().map(|s| cpu_seconds(s.child.id())).sum();
        let postgres = processes_named("postgres").into_iter().map(cpu_seconds).sum();
        let nats = self.nats.pid().map_or(0.0, cpu_seconds);
        [framecart, postgres, nats]
    }

    /// Messages delivered to every consumer of the stream so far.
    async fn delivered(&self) -> anyhow::Result<u64> {
        use futures::TryStreamExt;
        let client = async_nats::connect(self.nats.url()).await?;
        let js = async_nats::jetstream::new(client);
        let mut total = 0;
        let mut names = Vec::new();
        let mut streams = js.stream_names();
        while let Some(name) = streams.try_next().await? {
            names.push(name);
        }
        for name in names.into_iter().filter(|n| n.ends_with("_EVENTS")) {
            let stream = js.get_stream(&name).await?;
            let mut consumers = stream.consumers();
            while let Some(info) = consumers.try_next().await? {
                total += info.delivered.consumer_sequence;
            }
        }
        Ok(total)
    }

    async fn stop(mut self) {
        for server in &mut self.servers {
            signal(server.child.id(), "TERM");
            let _ = wait_exit(&mut server.child, Duration::from_secs(15)).await;
        }
    }
}

/// Clock ticks a second (`getconf CLK_TCK`).
fn ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// User and system CPU seconds of a process (0 once it is gone).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    let Some((_, rest)) = stat.rsplit_once(") ") else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // After the name: state is field 3, utime 14, stime 15.
    (ticks(11) + ticks(12)) / ticks_per_second()
}

fn processes_named(name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name))
        .collect()
}

/// Posts clicks from `connections` connections spread over `urls` for `duration`: the
/// [`Workload`] of many viewers on many videos, each click new. Returns the clicks answered 202 and the
/// answers by status.
async fn load(urls: &[String], args: &Args, duration: Duration) -> (u64, HashMap<String, u64>) {
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(std::sync::Mutex::new(HashMap::<String, u64>::new()));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client");
    let tasks: Vec<_> = (0..args.connections)
        .map(|i| {
            let url = format!("{}/api/v1/clicks", urls[i % urls.len()]);
            let (client, acked, stop, answers) = (client.clone(), acked.clone(), stop.clone(), answers.clone());
            let (workload, connections) =
                (Workload { viewers: args.viewers, videos: args.videos }, args.connections as u64);
            tokio::spawn(async move {
                let mut n = i as u64;
                while !stop.load(Ordering::Relaxed) {
                    n += connections;
                    let click = workload.click(n);
                    let request = client.post(&url).header("x-forwarded-for", &click.address).json(&click.body);
                    let answer = match request.send().await {
                        Ok(r) => r.status().as_u16().to_string(),
                        Err(_) => "error".to_owned(),
                    };
                    if answer == "202" {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    *answers.lock().expect("answers").entry(answer).or_default() += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let answers = answers.lock().expect("answers").clone();
    (acked.load(Ordering::Relaxed), answers)
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
    answers: HashMap<String, u64>,
}

async fn measure(nats: &Path, roles: &[&'static str], args: &Args) -> anyhow::Result<Measured> {
    let installation = Installation::start(nats, roles).await?;
    let urls = installation.api_urls();
    // Warm-up: connections, plans, caches; then everything settles before counting.
    load(&urls, args, Duration::from_secs(2)).await;
    faults::settle(&installation.db).await;
    let delivered_before = installation.delivered().await?;
    let before = installation.cpu();
    let started = Instant::now();
    let (acked, answers) = load(&urls, args, Duration::from_secs(args.duration)).await;
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

/// pgbench, one single-row insert per transaction, on a database of its own: the anchor.
async fn pgbench(args: &Args) -> anyhow::Result<f64> {
    let database = TestDatabase::create().await?;
    let db = sqlx::PgPool::connect(&database.url).await?;
    sqlx::query("CREATE TABLE anchor (id bigserial PRIMARY KEY, payload jsonb NOT NULL)").execute(&db).await?;
    db.close().await;
    let script = tempfile::NamedTempFile::new()?;
    std::fs::write(script.path(), "INSERT INTO anchor (payload) VALUES ('{\"clickId\": 1}');\n")?;
    let out = Command::new("pgbench")
        .args(["-n", "-c", &args.connections.min(32).to_string(), "-j", "2", "-T", &args.duration.to_string(), "-f"])
        .arg(script.path())
        .arg(&database.url)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("pgbench printed no tps: {text}{}", String::from_utf8_lossy(&out.stderr)))?;
    Ok(tps)
}

fn answers(m: &Measured) -> String {
    let mut all: Vec<_> = m.answers.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    all.sort();
    all.join(" ")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "{} connections, {} viewers, {} videos, {} s of load per run, {} runs of each (alternating; medians); \
         CPU from the load's start until every view caught up",
        args.connections, args.viewers, args.videos, args.duration, args.runs
    );
    let anchor = pgbench(&args).await?;
    println!("anchor: pgbench, one-row inserts: {anchor:.0} transactions/s\n");

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

fn nats_version(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().trim_start_matches("nats-server: ").to_owned())
        .unwrap_or_default()
}
