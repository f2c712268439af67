//! A whole installation for the benches: a fresh database on the machine's Postgres, a
//! `nats-server` of its own (any version: `FRAMECART_NATS_SERVER`), and real `framecart
//! serve` processes ([`crate::cluster::framecart_bin`]: `FRAMECART_BIN`, a release build in the bench
//! scripts), each with the roles it is given. It can read the CPU time every process of
//! the installation used, from `/proc`; the Postgres backends of the bench's own queries
//! (its progress samples, its waits for the installation to settle) are counted apart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

pub use crate::cluster::nats_server;
use crate::cluster::{Nats, framecart_command, free_port, signal, wait_exit};
use crate::{TestDatabase, eventually};

/// A `framecart serve` process of the installation (killed when dropped).
pub struct Server {
    process: crate::cluster::Server,
    pub port: u16,
    pub roles: &'static str,
}

/// One installation: a database, a NATS server, and `framecart serve` processes.
pub struct Installation {
    pub servers: Vec<Server>,
    pub nats: Nats,
    /// The bench's own connections: its queries are not the load's.
    pub db: sqlx::PgPool,
    own_backends: OwnBackends,
    pub namespace: String,
    pub database: TestDatabase,
    pub dir: tempfile::TempDir,
}

impl Installation {
    /// Starts NATS (`nats_bin`), then one process per entry of `roles`, each until ready.
    pub async fn start(nats_bin: &Path, roles: &[&'static str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let database = TestDatabase::create().await?;
        let nats = Nats::start_with(&dir.path().join("nats"), nats_bin).await;
        let namespace = format!("bench{}", &Uuid::new_v4().simple().to_string()[..8]);
        let own_backends = OwnBackends::default();
        let recorded = own_backends.clone();
        let db = PgPoolOptions::new()
            .after_connect(move |conn, _| {
                let recorded = recorded.clone();
                Box::pin(async move {
                    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(conn).await?;
                    recorded.add(pid.unsigned_abs());
                    Ok(())
                })
            })
            .connect(&database.url)
            .await?;
        let mut installation = Self { servers: Vec::new(), nats, db, own_backends, namespace, database, dir };
        for roles in roles {
            installation.add(roles).await?;
        }
        Ok(installation)
    }

    /// Starts one more process with `roles`, and waits until it is ready (a process
    /// without `api` answers `/readyz` on its `--bind` too).
    pub async fn add(&mut self, roles: &'static str) -> anyhow::Result<()> {
        let i = self.servers.len();
        let port = free_port();
        let log = std::fs::File::create(self.log(i))?;
        let child = self
            .command(&["serve"])
            .env("FRAMECART_ROLES", roles)
            .env("FRAMECART_INSTANCE", format!("bench-{i}"))
            .env("FRAMECART_BIND", format!("127.0.0.1:{port}"))
            .env("FRAMECART_DETECTOR_WORKERS", "0")
            .env("FRAMECART_AUTO_DETECT", "false")
            .env("FRAMECART_RATE_CLICKS", "off")
            .env("FRAMECART_TRUSTED_PROXIES", "127.0.0.1/32")
            .env("FRAMECART_TOKEN_SECRET", "bench token secret, shared by every api process")
            // `FRAMECART_BENCH_LOG` (a `RUST_LOG` filter) to see more in the processes' logs.
            .env("RUST_LOG", std::env::var("FRAMECART_BENCH_LOG").unwrap_or_else(|_| "warn".to_owned()))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.servers.push(Server { process: crate::cluster::Server { child }, port, roles });
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/readyz");
        eventually("a framecart process to be ready", Duration::from_secs(60), || async {
            http.get(&url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())
        })
        .await;
        Ok(())
    }

    /// A `framecart` command line (`serve`, `projections rebuild clicks`, `replay
    /// --rebuild`) for this installation: its database, NATS, namespace and media folder.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command =
            framecart_command(args, self.dir.path(), &self.database.url, &self.nats.url(), &self.namespace);
        command.env("FRAMECART_MEDIA_DIR", self.media_dir()).env("RUST_LOG", "warn").stdin(Stdio::null());
        command
    }

    /// Kills process `i` (as a crash would); its slot stays, empty of CPU.
    pub fn kill(&mut self, i: usize) {
        let child = &mut self.servers[i].process.child;
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Where process `i` writes its log.
    pub fn log(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("framecart-{i}.log"))
    }

    pub fn media_dir(&self) -> PathBuf {
        self.dir.path().join("media")
    }

    pub fn api_urls(&self) -> Vec<String> {
        self.servers
            .iter()
            .filter(|s| s.roles == "all" || s.roles.split(',').any(|r| r == "api"))
            .map(|s| format!("http://127.0.0.1:{}", s.port))
            .collect()
    }

    /// CPU seconds so far of framecart, Postgres (every process of the server, less the
    /// backends of the bench's own queries: [`Self::own_queries_cpu`]) and NATS.
    pub fn cpu(&self) -> [f64; 3] {
        let framecart = self.servers.iter().map(|s| cpu_seconds(s.process.child.id())).sum();
        let postgres = postgres_cpu_seconds() - self.own_queries_cpu();
        let nats = self.nats.pid().map_or(0.0, cpu_seconds);
        [framecart, postgres, nats]
    }

    /// CPU seconds so far of the Postgres backends serving the bench's own pool ([`Self::db`]).
    pub fn own_queries_cpu(&self) -> f64 {
        self.own_backends.cpu_seconds()
    }

    /// CPU seconds so far of each `framecart serve` process, with its roles.
    pub fn process_cpu(&self) -> Vec<(&'static str, f64)> {
        self.servers.iter().map(|s| (s.roles, cpu_seconds(s.process.child.id()))).collect()
    }

    /// The installation's stream (`Namespace::stream_name`).
    pub fn stream_name(&self) -> String {
        framecart_api::domain::log::Namespace::parse(&self.namespace).expect("a valid namespace").stream_name()
    }

    /// The installation's JetStream.
    pub async fn jetstream(&self) -> anyhow::Result<async_nats::jetstream::Context> {
        Ok(async_nats::jetstream::new(async_nats::connect(self.nats.url()).await?))
    }

    /// Messages delivered to every consumer of the stream so far.
    pub async fn delivered(&self) -> anyhow::Result<u64> {
        use futures::TryStreamExt;
        let js = self.jetstream().await?;
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

    /// Stops every process gracefully.
    pub async fn stop(mut self) {
        for server in &mut self.servers {
            let child = &mut server.process.child;
            if !matches!(child.try_wait(), Ok(None)) {
                continue; // killed already
            }
            signal(child.id(), "TERM");
            let _ = wait_exit(child, Duration::from_secs(15)).await;
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
pub fn cpu_seconds(pid: u32) -> f64 {
    Stat::of(pid).map_or(0.0, |stat| stat.cpu_seconds)
}

/// User and system CPU seconds of the children of a process that it waited for (a
/// command run to its end).
pub fn children_cpu_seconds(pid: u32) -> f64 {
    Stat::of(pid).map_or(0.0, |stat| stat.children_cpu_seconds)
}

/// The Postgres backends of a pool, by process id, each with the CPU it had used when last
/// read. One that ended keeps its last reading: its CPU is then in the postmaster's reaped
/// children ([`postgres_cpu_seconds`]), and is taken out of the server's figure still (up to
/// what it used after that reading).
#[derive(Clone, Default)]
struct OwnBackends(Arc<Mutex<HashMap<u32, f64>>>);

impl OwnBackends {
    fn add(&self, pid: u32) {
        self.0.lock().expect("own backends").insert(pid, cpu_seconds(pid));
    }

    fn cpu_seconds(&self) -> f64 {
        let mut backends = self.0.lock().expect("own backends");
        backends
            .iter_mut()
            .map(|(pid, last)| {
                if let Some(stat) = Stat::of(*pid) {
                    *last = stat.cpu_seconds;
                }
                *last
            })
            .sum()
    }
}

/// The CPU seconds of the Postgres server: its processes', and those of the backends that
/// have exited (the postmaster waited for them), so that connections that end in between
/// two readings (a command's) still count.
pub fn postgres_cpu_seconds() -> f64 {
    let postgres: Vec<(u32, Stat)> =
        processes_named("postgres").into_iter().filter_map(|pid| Some((pid, Stat::of(pid)?))).collect();
    postgres
        .iter()
        .map(|(_, stat)| {
            let postmaster = !postgres.iter().any(|(pid, _)| *pid == stat.parent);
            stat.cpu_seconds + if postmaster { stat.children_cpu_seconds } else { 0.0 }
        })
        .sum()
}

/// What the bench reads of `/proc/<pid>/stat`, read once.
struct Stat {
    parent: u32,
    /// utime + stime.
    cpu_seconds: f64,
    /// cutime + cstime: the children it waited for.
    children_cpu_seconds: f64,
}

impl Stat {
    fn of(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (_, rest) = stat.rsplit_once(") ")?;
        // Numbered from the state (field 3): ppid 4, utime 14, stime 15, cutime 16, cstime 17.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
        Some(Self {
            parent: fields.get(1)?.parse().ok()?,
            cpu_seconds: (ticks(11) + ticks(12)) / ticks_per_second(),
            children_cpu_seconds: (ticks(13) + ticks(14)) / ticks_per_second(),
        })
    }
}

/// The processes whose command name is `name`.
pub fn processes_named(name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name))
        .collect()
}

/// The version a NATS server binary says it is (`2.15.1`).
pub fn nats_version(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().trim_start_matches("nats-server: ").to_owned())
        .unwrap_or_default()
}
