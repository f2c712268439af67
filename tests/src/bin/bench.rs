//! `framecart-bench`: click capture under real traffic (many viewers on many videos, see
//! [`Workload`]), with real Postgres and NATS, against an installation of its own (a fresh
//! database, a `nats-server` of its own: `FRAMECART_NATS_SERVER`, and one `framecart
//! serve` process with every role: `FRAMECART_BIN`) or an external server (`--url` with
//! `--database-url`).
//!
//! It prints:
//! 0. the anchor: pgbench's single-row INSERT commits per second on the same Postgres;
//! 1. acknowledged clicks per second at full speed and their latency, the ratio to the
//!    anchor, the CPU per acknowledged click of every process (own installation), whether
//!    every view and the client files kept up (how far behind each was
//!    when the load stopped and how long it took to catch up), and that every
//!    acknowledged click is stored, logged and projected (zero loss);
//! 2. at a fixed rate: each view's and the client files' lag from commit to applied,
//!    p50 and p99 (see [`framecart_tests::progress`]);
//!    after each of these two phases, the deadlocks Postgres broke in the database (none
//!    should occur);
//! 3. how fast the relay publishes a backlog (a second installation whose relay starts
//!    after the clicks are committed);
//! 4. how fast the relay restores a lost stream (every event so far) from the store;
//! 5. how fast `framecart projections rebuild clicks` and `framecart replay --rebuild`
//!    rebuild from a log of `--rebuild-events` clicks, while `serve` runs, and the floors
//!    under them: Postgres alone writing the view's rows, the log alone being read.
//!
//! Phases 3 to 5 need an installation of the bench's own.
//!
//! Run: `scripts/bench.sh` (release build), arguments as `--help` lists.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use framecart_api::commands::keys::Keyring;
use framecart_api::domain::personal::{Personal, Subject};
use framecart_api::projections::runner::BATCH;
use framecart_tests::anchor::Pgbench;
use framecart_tests::installation::{Installation, children_cpu_seconds, cpu_seconds, nats_server, nats_version};
use framecart_tests::progress::{self, Progress};
use framecart_tests::workload::{Workload, full_speed, histogram};
use framecart_tests::{eventually, faults};
use sqlx::PgPool;
use tokio::sync::Semaphore;

#[derive(Debug, Parser)]
struct Args {
    /// Concurrent connections posting clicks in the throughput phase.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds of the throughput phase.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Clicks per second of the lag phase.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// Seconds of the lag phase.
    #[arg(long, default_value_t = 10)]
    lag_duration: u64,
    /// Clicks in the backlog the relay publishes (0: no relay phases).
    #[arg(long, default_value_t = 20_000)]
    backlog: u64,
    /// Seconds of the pgbench anchor (0: none).
    #[arg(long, default_value_t = 15)]
    anchor_seconds: u64,
    /// Distinct viewers of the clicks, each with an address of its own (`X-Forwarded-For`
    /// through 127.0.0.1 as a trusted proxy) and a client file per video.
    #[arg(long, default_value_t = Workload::default().viewers)]
    viewers: u64,
    /// Distinct videos the clicks are on.
    #[arg(long, default_value_t = Workload::default().videos)]
    videos: u64,
    /// Click events in the log of the rebuild phase (0: none): copies of a posted click,
    /// two per viewer, so about half as many client files.
    #[arg(long, default_value_t = 100_000)]
    rebuild_events: u64,
    /// Only the rebuild phase (no anchor, load, relay): for profiling a rebuild.
    #[arg(long)]
    rebuild_only: bool,
    /// A running server to load instead of an installation of the bench's own (it should
    /// trust 127.0.0.1 as a proxy and have its click rate limit off). Needs
    /// `--database-url`.
    #[arg(long, requires = "database_url")]
    url: Option<String>,
    /// The external server's database, to check what was stored and to watch its views.
    #[arg(long)]
    database_url: Option<String>,
    /// The own installation's `framecart serve` processes, each given by its roles
    /// (`FRAMECART_ROLES`), e.g. `--processes api relay projections,processes`: the CPU a
    /// click is then also printed for each process. One process with every role by default.
    #[arg(long, num_args = 1.., default_value = "all")]
    processes: Vec<String>,
}

impl Args {
    fn workload(&self) -> Workload {
        Workload { viewers: self.viewers, videos: self.videos }
    }
}

/// What the load goes to: an installation of the bench's own, or an external server.
struct Target {
    base_url: String,
    db: PgPool,
    installation: Option<Installation>,
}

impl Target {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.db).await.expect("count query")
    }

    /// CPU seconds so far of framecart, Postgres and NATS (own installation only).
    fn cpu(&self) -> Option<[f64; 3]> {
        self.installation.as_ref().map(Installation::cpu)
    }

    /// CPU seconds so far of the Postgres backends of the bench's own queries, which
    /// [`Self::cpu`] leaves out (own installation only).
    fn own_queries_cpu(&self) -> Option<f64> {
        self.installation.as_ref().map(Installation::own_queries_cpu)
    }

    /// Prints what the bench's own queries cost Postgres since `before`, a click.
    fn print_own_queries(&self, before: Option<f64>, clicks: u64) {
        if let (Some(before), Some(after)) = (before, self.own_queries_cpu()) {
            println!(
                "… not counted there: Postgres's CPU for this bench's own queries (its progress samples, its \
                 waits for the installation to settle): {:.0} µs a click",
                (after - before) * 1e6 / clicks.max(1) as f64
            );
        }
    }

    /// CPU seconds so far of each `framecart serve` process, with its roles (own
    /// installation only).
    fn process_cpu(&self) -> Vec<(&'static str, f64)> {
        self.installation.as_ref().map(Installation::process_cpu).unwrap_or_default()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = reqwest::Client::builder().pool_max_idle_per_host(usize::MAX).build()?;
    if args.rebuild_only {
        return rebuild(&client, &args).await;
    }
    let anchor = if args.anchor_seconds > 0 {
        let pgbench = Pgbench { seconds: args.anchor_seconds, ..Pgbench::default() };
        let row = serde_json::to_string(&args.workload().click(0).body)?;
        let tps = pgbench.inserts_per_second(&row).await?;
        println!(
            "== anchor: pgbench -n -c {} -j {} -T {}: single-row INSERT commits of a click as JSON: {tps:.0}/s",
            pgbench.clients, pgbench.threads, pgbench.seconds
        );
        Some(tps)
    } else {
        None
    };
    let target = match (&args.url, &args.database_url) {
        (Some(url), Some(database_url)) => Target {
            base_url: url.trim_end_matches('/').to_owned(),
            db: PgPool::connect(database_url).await?,
            installation: None,
        },
        _ => {
            // The processes live as long as the bench: their roles too.
            let processes: Vec<&'static str> = args.processes.iter().map(|r| &*r.clone().leak()).collect();
            let installation = Installation::start(&nats_server(), &processes).await?;
            println!(
                "framecart-bench: own installation: `framecart serve` with roles {} ({}), NATS {}",
                processes.join(" | "),
                framecart_tests::cluster::framecart_bin().display(),
                nats_version(&nats_server())
            );
            Target {
                base_url: installation.api_urls()[0].clone(),
                db: installation.db.clone(),
                installation: Some(installation),
            }
        }
    };
    println!(
        "framecart-bench: {} connections, {} viewers on {} videos, at {}",
        args.connections, args.viewers, args.videos, target.base_url
    );

    // Warm-up: connections, plans, caches; then everything settles.
    full_speed(std::slice::from_ref(&target.base_url), args.connections, args.workload(), Duration::from_secs(2)).await;
    faults::settle(&target.db).await;
    throughput(&target, &args, anchor).await?;
    lag(&target, &client, &args).await?;
    if let Some(installation) = target.installation {
        keep_log(&installation, "load")?;
        installation.stop().await;
        if args.backlog > 0 {
            relay(&client, &args).await?;
        }
        if args.rebuild_events > 0 {
            rebuild(&client, &args).await?;
        }
    }
    Ok(())
}

/// Rebuilds, timed from the command's start to its exit while `serve` runs: `framecart
/// projections rebuild clicks`, then `framecart replay --rebuild` (every view, and the
/// client files). The log holds `--rebuild-events` clicks: a few posted, the rest stored
/// as copies of one of them (each its own click, viewer and video), then relayed.
async fn rebuild(client: &reqwest::Client, args: &Args) -> anyhow::Result<()> {
    let installation = Installation::start(&nats_server(), &["all"]).await?;
    let db = installation.db.clone();
    let url = format!("{}/api/v1/clicks", installation.api_urls()[0]);
    let posted = args.rebuild_events.min(100);
    for i in 0..posted {
        post_click(&url, client, args.workload(), (2 << 40) + i).await;
    }
    faults::settle(&db).await;
    let (template, metadata, version): (serde_json::Value, serde_json::Value, String) = sqlx::query_as(
        "SELECT payload::jsonb, metadata::jsonb, event_version FROM events WHERE event_type = 'ClickRecorded' LIMIT 1",
    )
    .fetch_one(&db)
    .await?;
    let copies = args.rebuild_events.saturating_sub(posted);
    // Each copy's address sealed under the posted click's key, as the API seals them.
    let keys = Keyring::open(db.clone(), framecart_tests::test_master_key()).await?;
    let sealed_for = template.as_object().and_then(|o| o.values().next()).map(|c| &c["client_ip"]["sealed"]["subject"]);
    let subject = Subject::parse(sealed_for.and_then(|s| s.as_str()).unwrap_or_default())?;
    let mut sealing = Duration::ZERO;
    let mut n = 0;
    while n < copies {
        let chunk: Vec<u64> = (n..copies.min(n + 10_000)).collect();
        n += chunk.len() as u64;
        let (mut ids, mut payloads) = (Vec::new(), Vec::new());
        for i in chunk {
            let viewer = i / 2;
            let id = uuid::Uuid::new_v4();
            let mut payload = template.clone();
            let click = payload.as_object_mut().and_then(|o| o.values_mut().next()).expect("an event body");
            click["click_id"] = id.to_string().into();
            let address: std::net::IpAddr = framecart_tests::workload::address(viewer).parse()?;
            let started = Instant::now();
            let sealed = Personal::Sealed(keys.seal(&subject, &address).await?);
            sealing += started.elapsed();
            click["client_ip"] = serde_json::to_value(sealed)?;
            click["video_id"] = framecart_tests::workload::video_id(viewer % args.videos.max(1)).into();
            click["video_id_reported"] = click["video_id"].clone();
            ids.push(id.to_string());
            payloads.push(payload.to_string());
        }
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             SELECT 'click', id, 1, 'ClickRecorded', $4, p::json, $3::json
             FROM UNNEST($1::text[], $2::text[]) AS u(id, p)",
        )
        .bind(&ids)
        .bind(&payloads)
        .bind(&metadata)
        .bind(&version)
        .execute(&db)
        .await?;
    }
    if copies > 0 {
        println!(
            "sealing a click's address (AES-256-GCM under its day's key, the key cached): {:.2} µs",
            sealing.as_secs_f64() * 1e6 / copies as f64
        );
    }
    faults::settle(&db).await;
    let events = progress::log_end(&db).await?;
    let files: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT file_name) FROM client_file_clicks").fetch_one(&db).await?;
    println!(
        "
== rebuild: {events} events in the log, {files} client files, while `framecart serve` runs"
    );
    // `users` holds next to nothing here: its time is what any rebuild costs besides the
    // replay (the process starting, the request, the server noticing it, the polls).
    let commands =
        [&["projections", "rebuild", "users"][..], &["projections", "rebuild", "clicks"], &["replay", "--rebuild"]];
    for command in commands {
        let before = cpu_with_commands(&installation);
        let secs = timed(&installation, command)?;
        let cpu = CpuSpent::between(before, cpu_with_commands(&installation));
        if command.last() == Some(&"users") {
            println!(
                "framecart {}: {secs:.2} s from start to exit (a rebuild's cost besides the replay); {cpu}",
                command.join(" ")
            );
        } else {
            println!(
                "framecart {}: {secs:.2} s from start to exit, {:.0} events/s; {cpu}, {:.1} µs an event",
                command.join(" "),
                events as f64 / secs,
                cpu.total() * 1e6 / events.max(1) as f64
            );
        }
    }
    // The same replay into an empty media folder: every client file is new (the replay
    // above found most of them holding their bytes already, and left those in place).
    // (Moved aside, and deleted after: deleting 50k files would load the disk while timed.)
    let aside = installation.media_dir().join("client_files.before");
    std::fs::rename(installation.media_dir().join("client_files"), &aside)?;
    let before = cpu_with_commands(&installation);
    let secs = timed(&installation, &["replay", "--rebuild"])?;
    let cpu = CpuSpent::between(before, cpu_with_commands(&installation));
    std::fs::remove_dir_all(aside)?;
    println!(
        "framecart replay --rebuild into an empty client files folder: {secs:.2} s from start to exit, {:.0} events/s; {cpu}",
        events as f64 / secs
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM clicks_view").fetch_one(&db).await?;
    postgres_alone(&db, events).await?;
    log_alone(&installation, events).await?;
    let dirty: i64 = sqlx::query_scalar("SELECT count(*) FROM client_files_dirty").fetch_one(&db).await?;
    let written = std::fs::read_dir(installation.media_dir().join("client_files"))?.count();
    println!("after the rebuilds: {rows} rows in clicks_view, {written} client files on disk, {dirty} waiting");
    keep_log(&installation, "rebuild")?;
    installation.stop().await;
    Ok(())
}

/// The CPU seconds the installation's processes and the command took between two readings
/// of [`cpu_with_commands`]: serve, Postgres, NATS, the command.
struct CpuSpent([f64; 4]);

impl CpuSpent {
    fn between(before: [f64; 4], after: [f64; 4]) -> Self {
        Self([0, 1, 2, 3].map(|i| after[i] - before[i]))
    }

    fn total(&self) -> f64 {
        self.0.iter().sum()
    }
}

impl std::fmt::Display for CpuSpent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [framecart, postgres, nats, command] = self.0;
        write!(
            f,
            "CPU {:.2} s (serve {framecart:.2}, the command {command:.2}, Postgres {postgres:.2}, NATS {nats:.2})",
            self.total()
        )
    }
}

/// [`Installation::cpu`], and the CPU of the commands this bench ran to their end.
fn cpu_with_commands(installation: &Installation) -> [f64; 4] {
    let [framecart, postgres, nats] = installation.cpu();
    [framecart, postgres, nats, children_cpu_seconds(std::process::id())]
}

/// Seconds from the start of `framecart <command>` to its exit; an error if it fails.
fn timed(installation: &Installation, command: &[&str]) -> anyhow::Result<f64> {
    let start = Instant::now();
    let output = installation.command(command).output()?;
    let secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        output.status.success(),
        "framecart {} failed: {}",
        command.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(secs)
}

/// `FRAMECART_BENCH_KEEP_LOG=FILE` keeps the server's log of a phase as `FILE.<phase>`
/// (with `FRAMECART_BENCH_LOG` for more in it).
fn keep_log(installation: &Installation, phase: &str) -> anyhow::Result<()> {
    if let Some(keep) = std::env::var_os("FRAMECART_BENCH_KEEP_LOG") {
        let mut path = keep;
        path.push(format!(".{phase}"));
        std::fs::copy(installation.log(0), path)?;
    }
    Ok(())
}

/// The floor under the rebuild rate: Postgres alone writing the rows `clicks_view` holds
/// into a table like it, from a table in the same database (no client, no log, no
/// decoding), with the view's indexes maintained row by row as a rebuild does, and with
/// the rows written first and the same indexes built after.
async fn postgres_alone(db: &PgPool, events: i64) -> anyhow::Result<()> {
    let mut conn = db.acquire().await?;
    sqlx::query("CREATE TEMP TABLE floor_rows AS SELECT * FROM clicks_view").execute(&mut *conn).await?;
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'clicks_view'",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut timed = Vec::new();
    for indexed_first in [true, false] {
        let like = if indexed_first { "INCLUDING ALL" } else { "INCLUDING DEFAULTS" };
        sqlx::query(&format!("CREATE TABLE floor_view (LIKE clicks_view {like})")).execute(&mut *conn).await?;
        let start = Instant::now();
        sqlx::query("INSERT INTO floor_view SELECT * FROM floor_rows").execute(&mut *conn).await?;
        let written = start.elapsed().as_secs_f64();
        if !indexed_first {
            for (i, index) in indexes.iter().enumerate() {
                // `CREATE [UNIQUE] INDEX name ON schema.clicks_view USING …`, renamed and retargeted.
                let (head, tail) = index.split_once(" ON ").expect("an index definition");
                let head = head.rsplit_once(' ').map_or(head, |(kind, _)| kind);
                let tail = tail.split_once(' ').map_or(tail, |(_, rest)| rest);
                sqlx::query(&format!("{head} floor_index_{i} ON floor_view {tail}")).execute(&mut *conn).await?;
            }
        }
        timed.push((written, start.elapsed().as_secs_f64()));
        sqlx::query("DROP TABLE floor_view").execute(&mut *conn).await?;
    }
    sqlx::query("DROP TABLE floor_rows").execute(&mut *conn).await?;
    let rate = |secs: f64| events as f64 / secs;
    println!(
        "Postgres alone, the same rows from a table in the same database into a table like clicks_view ({} indexes): \
         {:.2} s ({:.0} events/s at most); written without indexes then indexed: {:.2} s + {:.2} s ({:.0} events/s at most)",
        indexes.len(),
        timed[0].1,
        rate(timed[0].1),
        timed[1].0,
        timed[1].1 - timed[1].0,
        rate(timed[1].1),
    );
    Ok(())
}

/// The other floor under the rebuild rate: NATS delivering the log, and its messages read,
/// with nothing decoded or written. First as a projection's runner reads it (a durable
/// pull consumer, batches of [`BATCH`], one ack a batch), then through an ordered
/// consumer (no acks, as an auditor's replay reads it). CPU seconds of NATS and of this
/// reader are printed beside the time: the two share the machine's cores with everything
/// else a rebuild does.
async fn log_alone(installation: &Installation, events: i64) -> anyhow::Result<()> {
    use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy};
    use futures::StreamExt;
    let js = installation.jetstream().await?;
    let stream = js.get_stream(installation.stream_name()).await?;
    let last = stream.cached_info().state.last_sequence;
    let nats_cpu = || installation.cpu()[2];
    let own_cpu = || cpu_seconds(std::process::id());
    let mut timed = Vec::new();
    for ordered in [false, true] {
        let (nats_before, own_before, start) = (nats_cpu(), own_cpu(), Instant::now());
        let mut read = 0u64;
        let mut bytes = 0usize;
        if ordered {
            let consumer = stream
                .create_consumer(consumer::pull::OrderedConfig {
                    deliver_policy: DeliverPolicy::All,
                    ..Default::default()
                })
                .await?;
            let mut messages = consumer.messages().await?;
            while read < last {
                let message = messages.next().await.ok_or_else(|| anyhow::anyhow!("the ordered consumer ended"))??;
                bytes += message.payload.len();
                read = message.info().map_err(|e| anyhow::anyhow!("{e}"))?.stream_sequence;
            }
        } else {
            let consumer = stream
                .create_consumer(consumer::pull::Config {
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::All,
                    max_ack_pending: 20_000,
                    ..Default::default()
                })
                .await?;
            let mut chunks = consumer.stream().max_messages_per_batch(BATCH).messages().await?.ready_chunks(BATCH);
            while read < last {
                let chunk = chunks.next().await.ok_or_else(|| anyhow::anyhow!("the pull consumer ended"))?;
                let mut last_message = None;
                for message in chunk {
                    let message = message?;
                    bytes += message.payload.len();
                    read = message.info().map_err(|e| anyhow::anyhow!("{e}"))?.stream_sequence;
                    last_message = Some(message);
                }
                if let Some(message) = last_message {
                    message.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                }
            }
        }
        timed.push((start.elapsed().as_secs_f64(), nats_cpu() - nats_before, own_cpu() - own_before, bytes));
    }
    let as_a_runner = format!("as a runner reads it (pull consumer, batches of {BATCH}, an ack a batch)");
    for ((secs, nats, own, bytes), how) in
        timed.into_iter().zip([as_a_runner.as_str(), "through an ordered consumer (no acks)"])
    {
        println!(
            "the log alone, its {events} messages ({:.0} MB of payload) read {how}, nothing decoded: {secs:.2} s \
             ({:.0} events/s at most); CPU: NATS {nats:.2} s, the reader {own:.2} s",
            bytes as f64 / 1e6,
            events as f64 / secs,
        );
    }
    Ok(())
}

/// One click posted; its latency in microseconds, or `None` if it was not accepted.
async fn post_click(url: &str, client: &reqwest::Client, workload: Workload, i: u64) -> Option<u64> {
    let click = workload.click(i);
    let start = Instant::now();
    let request = client.post(url).header("x-forwarded-for", &click.address).json(&click.body);
    let response = request.send().await.ok()?;
    let ok = response.status().as_u16() == 202;
    let _ = response.bytes().await;
    ok.then(|| start.elapsed().as_micros() as u64)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// How often the views' progress is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

async fn throughput(target: &Target, args: &Args, anchor: Option<f64>) -> anyhow::Result<()> {
    let before_events = target.count("SELECT count(*) FROM events").await;
    let before_view = target.count("SELECT count(*) FROM clicks_view").await;
    let before_log = progress::log_end(&target.db).await?;
    let deadlocks_before = deadlocks(&target.db).await?;
    let progress = Progress::start(target.db.clone(), SAMPLE_EVERY);
    let cpu_before = target.cpu();
    let own_before = target.own_queries_cpu();
    let processes_before = target.process_cpu();
    let generator_before = cpu_seconds(std::process::id());
    let start = Instant::now();
    let loaded = full_speed(
        std::slice::from_ref(&target.base_url),
        args.connections,
        args.workload(),
        Duration::from_secs(args.duration),
    )
    .await;
    let (hist, failed) = (&loaded.latencies, loaded.failed());
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_window = target.cpu();
    let generator = cpu_seconds(std::process::id()) - generator_before;
    let ended = progress::db_now(&target.db).await?;
    let acked = hist.len();
    let rate = acked as f64 / elapsed;
    println!("\n== throughput: {} connections at full speed for {:.1} s", args.connections, elapsed);
    println!("acknowledged clicks: {acked} ({rate:.0}/s), failed: {failed}");
    if let Some(tps) = anchor {
        println!("acknowledged clicks/s / pgbench commits/s: {:.2}", rate / tps);
    }
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        ms(hist.value_at_quantile(0.5)),
        ms(hist.value_at_quantile(0.9)),
        ms(hist.value_at_quantile(0.99)),
        ms(hist.value_at_quantile(0.999)),
        ms(hist.max())
    );
    println!(
        "CPU per acknowledged click of the load generator (this bench, on the same cores): {:.0} µs",
        generator * 1e6 / acked.max(1) as f64
    );
    progress.settle(&target.db).await?;
    if let (Some(before), Some(window), Some(after)) = (cpu_before, cpu_window, target.cpu()) {
        let per_click = |cpu: [f64; 3], i: usize| (cpu[i] - before[i]) * 1e6 / acked.max(1) as f64;
        let total = |cpu: [f64; 3]| (0..3).map(|i| per_click(cpu, i)).sum::<f64>();
        println!(
            "CPU per acknowledged click until every view caught up: {:.0} µs (framecart {:.0}, Postgres {:.0}, \
             NATS {:.0}); in the load's seconds alone: {:.0} µs",
            total(after),
            per_click(after, 0),
            per_click(after, 1),
            per_click(after, 2),
            total(window)
        );
    }
    let processes = target.process_cpu();
    if processes.len() > 1 {
        let each = processes.iter().zip(&processes_before).map(|((roles, after), (_, before))| {
            format!("{roles} {:.0}", (after - before) * 1e6 / acked.max(1) as f64)
        });
        println!("… framecart's, by process (roles µs): {}", each.collect::<Vec<_>>().join(", "));
    }
    target.print_own_queries(own_before, acked);
    println!("keeping up at full speed: how far behind each view was when the load stopped, and when it caught up");
    println!("{:<14} {:>10} {:>10} {:>10}", "view", "behind", "caught up", "keeps up");
    for c in progress.catch_up(ended) {
        println!(
            "{:<14} {:>10} {:>9.2}s {:>10}",
            c.view,
            c.behind_at_end,
            c.seconds,
            if c.seconds <= 2.0 { "yes" } else { "NO" }
        );
    }
    println!("lag from commit to applied at full speed:");
    progress::print_lags(&progress.lags(&target.db, before_log).await?);
    let stored = (target.count("SELECT count(*) FROM events").await - before_events) as u64;
    let projected = (target.count("SELECT count(*) FROM clicks_view").await - before_view) as u64;
    let logged = (progress::log_end(&target.db).await? - before_log) as u64;
    println!(
        "zero loss: stored {stored}, logged {logged}, projected {projected} of {acked} acknowledged -> {}",
        if stored == acked && projected == acked && logged == acked { "OK" } else { "LOSS" }
    );
    print_deadlocks(&target.db, deadlocks_before).await
}

/// Deadlocks Postgres broke in the database so far (`pg_stat_database`).
async fn deadlocks(db: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(db)
        .await?)
}

/// Each deadlock stalls the transactions in it for `deadlock_timeout` (a second) and fails
/// one of them, whose process starts over: under load, a stall of every view behind the
/// relay. The writers of the views and files take their locks so that none should occur.
async fn print_deadlocks(db: &PgPool, before: i64) -> anyhow::Result<()> {
    let n = deadlocks(db).await? - before;
    println!("deadlocks in the database in this phase: {n} -> {}", if n == 0 { "OK" } else { "DEADLOCKS" });
    Ok(())
}

async fn lag(target: &Target, client: &reqwest::Client, args: &Args) -> anyhow::Result<()> {
    let before = progress::log_end(&target.db).await?;
    let deadlocks_before = deadlocks(&target.db).await?;
    let progress = Progress::start(target.db.clone(), SAMPLE_EVERY);
    let cpu_before = target.cpu();
    let own_before = target.own_queries_cpu();
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
        let url = target.url("/api/v1/clicks");
        let client = client.clone();
        let workload = args.workload();
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            // Numbered apart from the other phases' clicks: each click is new.
            let ok = post_click(&url, &client, workload, (1 << 40) + i).await.is_some();
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
    progress.settle(&target.db).await?;
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
    // The same clicks offered to every build: CPU figures that compare across runs better
    // than full speed's, whose rate (and so whose batching) differs from run to run.
    if let (Some(before), Some(after)) = (cpu_before, target.cpu()) {
        let per_click = |i: usize| (after[i] - before[i]) * 1e6 / total.max(1) as f64;
        println!(
            "CPU per click at this rate until every view caught up: {:.0} µs (framecart {:.0}, Postgres {:.0}, \
             NATS {:.0})",
            (0..3).map(per_click).sum::<f64>(),
            per_click(0),
            per_click(1),
            per_click(2)
        );
    }
    target.print_own_queries(own_before, total);
    println!("lag from commit to applied (sampled every {} ms):", SAMPLE_EVERY.as_millis());
    progress::print_lags(&progress.lags(&target.db, before).await?);
    print_deadlocks(&target.db, deadlocks_before).await
}

/// The relay's phases, on an installation of their own (an `api` process, and a relay in a
/// process of its own, no views): a backlog committed while no relay runs, then published
/// by a relay that starts; then the stream deleted and restored by a relay that starts
/// again.
async fn relay(client: &reqwest::Client, args: &Args) -> anyhow::Result<()> {
    // Only the api beside the relay: the relay's rate is measured, not what the views and
    // the client files would take of the same two cores while they catch up.
    let mut installation = Installation::start(&nats_server(), &["api"]).await?;
    let target =
        Target { base_url: installation.api_urls()[0].clone(), db: installation.db.clone(), installation: None };
    let posted = Arc::new(AtomicU64::new(0));
    let url = target.url("/api/v1/clicks");
    let workers = (0..args.connections).map(|_| {
        let (posted, url) = (posted.clone(), url.as_str());
        async move {
            loop {
                let i = posted.fetch_add(1, Ordering::Relaxed);
                if i >= args.backlog {
                    return;
                }
                post_click(url, client, args.workload(), i).await;
            }
        }
    });
    futures::future::join_all(workers).await;
    let backlog = target.count("SELECT count(*) FROM events").await;
    let start = Instant::now();
    installation.add("relay").await?;
    eventually("the relay to publish the backlog", Duration::from_secs(300), || async {
        (progress::log_end(&target.db).await.ok()? >= backlog).then_some(())
    })
    .await;
    let from_start = start.elapsed().as_secs_f64();
    // From the first record to the last: the publishing alone, without the process start.
    let publishing: f64 =
        sqlx::query_scalar("SELECT extract(epoch FROM max(relayed_at) - min(relayed_at))::float8 FROM event_log")
            .fetch_one(&target.db)
            .await?;
    println!("\n== relay: backlog of {backlog} events");
    println!(
        "relay published {:.0} events/s ({backlog} from its first record to its last, {publishing:.2} s; \
         {from_start:.2} s from the process start)",
        backlog as f64 / publishing.max(1e-3)
    );

    // The NATS store is lost: the relay republishes every recorded event from Postgres.
    installation.kill(1);
    let js = installation.jetstream().await?;
    let stream_name = installation.stream_name();
    js.delete_stream(&stream_name).await?;
    let start = Instant::now();
    installation.add("relay").await?;
    eventually("the relay to restore the stream", Duration::from_secs(300), || async {
        let mut stream = js.get_stream(&stream_name).await.ok()?;
        let info = stream.info().await.ok()?;
        (info.state.messages >= backlog as u64).then_some(())
    })
    .await;
    let secs = start.elapsed().as_secs_f64();
    println!("\n== restore: the stream lost, {backlog} recorded events");
    println!(
        "relay restored {:.0} events/s ({backlog} in {secs:.2} s, from the process start to the last message)",
        backlog as f64 / secs
    );
    installation.stop().await;
    Ok(())
}
