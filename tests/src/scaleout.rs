//! Framecart scaled out, as separate processes on loopback: its own PostgreSQL, a
//! JetStream cluster of three `nats-server`s, and `framecart serve` processes with the
//! roles of a multi-host installation.
//!
//! | process | roles | media folder |
//! |---|---|---|
//! | `api-1`, `api-2` | `api` | one each (the "hosts" that take uploads) |
//! | `core`, `core-standby` | `relay,projections,processes` | one, shared (the host with the views' files) |
//! | `detector` | `detector` | its own, empty at start |
//!
//! Every process is given the three NATS servers, its home node first. Nothing here
//! touches the machine's shared PostgreSQL or NATS; everything stops and every file goes
//! when the [`ScaleOut`] is dropped (the end of each log is printed on a failure).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::cluster::{
    Nats, Postgres, Server, folder_with_postgres, framecart_command, free_port, log_file, log_tails, signal, wait_exit,
};

/// The installation's namespace: stream `SCALEOUT_EVENTS`.
pub const NAMESPACE: &str = "scaleout";
/// The token secret every `api` process shares (a token from one works on the others).
const TOKEN_SECRET: &str = "scale-out test token secret, shared by every api";

/// One `framecart serve` process, and how to start it again.
pub struct Process {
    pub name: &'static str,
    pub roles: &'static str,
    /// `/readyz` (and the API, with the `api` role).
    pub port: u16,
    pub media: PathBuf,
    /// Its NATS node (index into [`ScaleOut::nats`]); the others follow in its `NATS_URL`.
    home: usize,
    log: PathBuf,
    /// Killed when dropped.
    server: Option<Server>,
}

impl Process {
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub struct ScaleOut {
    /// Fields drop in order: the processes first, the folder last.
    pub processes: BTreeMap<&'static str, Process>,
    pub nats: Vec<Nats>,
    pub postgres: Postgres,
    /// A small pool of the test's own, for looking at tables.
    pub db: PgPool,
    pub http: reqwest::Client,
    /// Where the detector finds its model.
    model_dir: PathBuf,
    dir: tempfile::TempDir,
}

impl ScaleOut {
    /// Starts PostgreSQL and a three-node JetStream cluster, then the processes one by one
    /// (`core` before `core-standby`, so `core` is the active one), each until ready.
    pub async fn start() -> Self {
        let (dir, postgres, db) = folder_with_postgres();
        let nats = Nats::start_cluster(&dir.path().join("nats"), 3).await;
        let media = |name: &str| dir.path().join(format!("media-{name}"));
        let process = |name: &'static str, roles: &'static str, home: usize, media: PathBuf| Process {
            name,
            roles,
            port: free_port(),
            media,
            home,
            log: dir.path().join(format!("{name}.log")),
            server: None,
        };
        let processes = [
            process("core", "relay,projections,processes", 2, media("core")),
            process("core-standby", "relay,projections,processes", 1, media("core")),
            process("api-1", "api", 0, media("api-1")),
            process("api-2", "api", 1, media("api-2")),
            process("detector", "detector", 2, media("detector")),
        ];
        let mut scale_out = Self {
            processes: processes.into_iter().map(|p| (p.name, p)).collect(),
            nats,
            postgres,
            db,
            http: reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("a client"),
            model_dir: framecart_api::VideoSettings::default().model_dir(),
            dir,
        };
        for name in ["core", "core-standby", "api-1", "api-2", "detector"] {
            scale_out.start_process(name);
            scale_out.wait_ready(name, Duration::from_secs(90)).await;
        }
        scale_out
    }

    pub fn process(&self, name: &str) -> &Process {
        self.processes.get(name).unwrap_or_else(|| panic!("no process {name}"))
    }

    /// `NATS_URL` for a process at home on node `home`: every node, that one first.
    fn nats_urls(&self, home: usize) -> String {
        let n = self.nats.len();
        (0..n).map(|i| format!("nats://127.0.0.1:{}", self.nats[(home + i) % n].port)).collect::<Vec<_>>().join(",")
    }

    /// `framecart <args>` with this installation's settings (`home`: the NATS node first
    /// in its list).
    pub fn framecart(&self, args: &[&str], home: usize) -> Command {
        let urls = self.nats_urls(home);
        let mut command = framecart_command(args, self.dir.path(), &self.postgres.url(), &urls, NAMESPACE);
        command
            .env("FRAMECART_STREAM_REPLICAS", "3")
            .env("FRAMECART_DB_MAX_CONNECTIONS", "10")
            .env("FRAMECART_TOKEN_SECRET", TOKEN_SECRET)
            .env("FRAMECART_ADMIN_EMAIL", crate::ADMIN_EMAIL)
            .env("FRAMECART_ADMIN_PASSWORD", crate::ADMIN_PASSWORD)
            .env("FRAMECART_MODEL_DIR", &self.model_dir)
            .env("FRAMECART_DETECTOR_WORKERS", "1")
            .env("FRAMECART_DETECTOR_ACK_WAIT_SECS", "10")
            // The load comes from one address, faster than a viewer clicks.
            .env("FRAMECART_RATE_CLICKS", "off")
            .stdin(Stdio::null());
        command
    }

    /// Starts a process (without waiting for it).
    pub fn start_process(&mut self, name: &str) {
        let process = self.process(name);
        assert!(process.server.is_none(), "{name} is already running");
        let log = log_file(&process.log);
        let child = self
            .framecart(&["serve"], process.home)
            .env("FRAMECART_ROLES", process.roles)
            .env("FRAMECART_INSTANCE", process.name)
            .env("FRAMECART_MEDIA_DIR", &process.media)
            .env("FRAMECART_BIND", format!("127.0.0.1:{}", process.port))
            .stdout(log.try_clone().expect("the log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("framecart serve ({name}) starts: {e}"));
        self.processes.get_mut(name).expect("the process").server = Some(Server { child });
    }

    /// Kills a process with SIGKILL, as a crash would, and reaps it.
    pub async fn kill(&mut self, name: &str) {
        let process = self.processes.get_mut(name).unwrap_or_else(|| panic!("no process {name}"));
        let mut server = process.server.take().unwrap_or_else(|| panic!("{name} is not running"));
        signal(server.child.id(), "KILL");
        wait_exit(&mut server.child, Duration::from_secs(10)).await.unwrap_or_else(|| panic!("{name} exits"));
    }

    /// Whether the process answers `GET /readyz` with 200.
    pub async fn ready(&self, name: &str) -> bool {
        let url = format!("{}/readyz", self.process(name).base_url());
        self.http.get(url).send().await.is_ok_and(|r| r.status().as_u16() == 200)
    }

    pub async fn wait_ready(&self, name: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.ready(name).await {
            assert!(Instant::now() < deadline, "{name} is not ready after {limit:?}:\n{}", self.logs(60));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `framecart <args>` run to its end: exit status and standard output.
    pub async fn run(&self, args: &[&str]) -> (bool, String) {
        let mut command = self.framecart(args, 0);
        let out = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("the command joins")
            .expect("the command runs");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// `framecart projections status --json`.
    pub async fn status(&self) -> serde_json::Value {
        let (ok, out) = self.run(&["projections", "status", "--json"]).await;
        assert!(ok, "projections status fails: {out}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("projections status: {e}: {out}"))
    }

    /// Every URL of a NATS node, for tools of the test.
    pub fn nats_url(&self) -> String {
        let running: Vec<&Nats> = self.nats.iter().filter(|n| n.is_running()).collect();
        format!("nats://127.0.0.1:{}", running.first().expect("a running NATS node").port)
    }

    pub fn media(&self, name: &str) -> &Path {
        &self.process(name).media
    }

    /// The last `lines` lines of each process's log (each request's line says little
    /// here; what the parts did is the rest).
    pub fn logs(&self, lines: usize) -> String {
        let framecart = self.processes.values().map(|p| (p.name.to_owned(), p.log.clone()));
        let nats = self.nats.iter().enumerate().map(|(i, n)| (format!("nats node{}", i + 1), n.log.clone()));
        log_tails(framecart.chain(nats), lines, |line| !line.contains("request{"))
    }
}

impl Drop for ScaleOut {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("FRAMECART_FAULT_LOGS").is_some() {
            eprintln!("{}", self.logs(80));
        }
    }
}
