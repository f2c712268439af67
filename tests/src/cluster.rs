//! A whole Framecart installation as separate processes, to break them: its own
//! PostgreSQL server (`initdb` and `pg_ctl` on a free port), its own `nats-server` with
//! JetStream, and the real `framecart serve` binary.
//!
//! Nothing here touches the machine's shared PostgreSQL or NATS. Every process is
//! stopped and every file removed when the [`Cluster`] is dropped, a panicking test
//! included; the end of each process's log is printed then, so a failing test shows it
//! (`FRAMECART_FAULT_LOGS=1`: for every test).

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// Where PostgreSQL's server programs are: `FRAMECART_PG_BIN`, or Debian's layout for the
/// newest installed major version (`/usr/lib/postgresql/<N>/bin`), as `scripts/setup.sh`
/// picks the cluster it starts.
fn pg_bin(program: &str) -> PathBuf {
    let dir = std::env::var_os("FRAMECART_PG_BIN").map(PathBuf::from).unwrap_or_else(|| {
        let newest = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .max()
            .unwrap_or(15);
        PathBuf::from(format!("/usr/lib/postgresql/{newest}/bin"))
    });
    dir.join(program)
}

/// The NATS server (`FRAMECART_NATS_SERVER` to change), else Debian's.
pub fn nats_server() -> PathBuf {
    std::env::var_os("FRAMECART_NATS_SERVER").map_or_else(|| "/usr/sbin/nats-server".into(), PathBuf::from)
}

/// The `framecart` binary under test: `FRAMECART_BIN`, or the one in this test binary's
/// cargo target folder (`target/debug/deps/faults-…` → `target/debug/framecart`).
///
/// `cargo test` builds a binary target only as a test harness, so the binary itself may be
/// missing or older than the code under test: it is built first, with the same targets
/// and features as the test run (`--workspace --all-targets`), so nothing else is built.
pub fn framecart_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("FRAMECART_BIN") {
            return bin.into();
        }
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
        let target_dir = profile_dir.parent().expect("the target folder");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev",
            Some(other) => other,
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
        let mut build = Command::new(cargo);
        build
            .args(["build", "--workspace", "--all-targets", "--locked", "--offline", "--profile", profile])
            .arg("--manifest-path")
            .arg(manifest)
            .env("CARGO_TARGET_DIR", target_dir);
        // `cargo test` runs this binary with the package's variables (`CARGO_PKG_NAME`, …).
        // Build scripts that watch them (ring's) would see them changed and rebuild, in
        // this build and again in the next one: the build gets the user's environment.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if (name.starts_with("CARGO_") && name != "CARGO_HOME" && name != "CARGO_TARGET_DIR") || name == "OUT_DIR" {
                build.env_remove(name.as_ref());
            }
        }
        run(&mut build, "cargo build of the framecart binary");
        let bin = profile_dir.join("framecart");
        assert!(bin.is_file(), "{} is missing after cargo build", bin.display());
        bin
    })
    .clone()
}

/// A port nobody listens on, below the kernel's range of ephemeral ports, so that no
/// outgoing connection takes it while the server that owns it is down.
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(Default::default);
    let ephemeral = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(32768);
    let low = 10_000u16.min(ephemeral / 2);
    let span = u32::from(ephemeral - low);
    let seed = uuid::Uuid::new_v4().as_u128();
    for i in 0..span {
        let port = low + u16::try_from((seed as u32).wrapping_add(i) % span).expect("below the span");
        let mut given = given.lock().expect("the port list");
        if given.contains(&port) || TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        given.insert(port);
        return port;
    }
    panic!("no free port below {ephemeral}");
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("`id -u` runs");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// A command run as the `postgres` user when this process is root (`initdb` refuses root).
fn as_postgres(program: PathBuf) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends `signal` (`TERM`, `KILL`, …) to a process.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().expect("`kill` runs");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Waits for `child` to exit, at most `limit`.
pub async fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn wait_listening(port: u16, what: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "{what} does not listen on {port} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last `lines` lines of each log that `keep` keeps, under a heading with its name.
pub(crate) fn log_tails(
    logs: impl Iterator<Item = (String, PathBuf)>,
    lines: usize,
    keep: impl Fn(&str) -> bool,
) -> String {
    let mut all = String::new();
    for (name, path) in logs {
        let text = fs::read_to_string(&path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().filter(|l| keep(l)).take(lines).collect();
        all.push_str(&format!("---- {name} ({}) ----\n", path.display()));
        for line in tail.iter().rev() {
            all.push_str(line);
            all.push('\n');
        }
    }
    all
}

pub(crate) fn log_file(path: &Path) -> File {
    OpenOptions::new().create(true).append(true).open(path).expect("a log file")
}

/// A PostgreSQL server of its own, its data and socket in `dir`.
pub struct Postgres {
    pub port: u16,
    data: PathBuf,
    log: PathBuf,
}

impl Postgres {
    pub fn init(dir: &Path) -> Self {
        fs::create_dir_all(dir).expect("the PostgreSQL folder");
        if is_root() {
            run(Command::new("chown").args(["-R", "postgres:"]).arg(dir), "chown of the PostgreSQL folder");
        }
        let data = dir.join("data");
        let mut initdb = as_postgres(pg_bin("initdb"));
        initdb.args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C", "-D"]).arg(&data);
        run(initdb.current_dir(dir), "initdb");
        let port = free_port();
        // Fault tests kill processes, not machines: the page cache outlives them, so
        // fsync only costs time here.
        let conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             max_connections = 100\nshared_buffers = 32MB\nfsync = off\nfull_page_writes = off\n",
            dir.display()
        );
        OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(conf.as_bytes()))
            .expect("postgresql.conf");
        Self { port, data, log: dir.join("postgres.log") }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut command = as_postgres(pg_bin("pg_ctl"));
        command.arg("-D").arg(&self.data).args(args);
        command.current_dir(self.data.parent().expect("the PostgreSQL folder"));
        command
    }

    pub fn start(&self) {
        let mut command = self.pg_ctl(&["-w", "-t", "60", "-l"]);
        command.arg(&self.log).arg("start");
        run(&mut command, "pg_ctl start");
    }

    /// `pg_ctl stop -m fast`: every connection is cut, the server shuts down cleanly.
    pub fn stop(&self) {
        run(&mut self.pg_ctl(&["-w", "-t", "60", "-m", "fast", "stop"]), "pg_ctl stop");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-w", "-t", "30", "-m", "immediate", "stop"]).output();
    }
}

/// A `nats-server` with JetStream of its own, its store in `store`.
pub struct Nats {
    pub port: u16,
    pub store: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    /// The options that make it a node of a cluster (none for a single server).
    cluster: Vec<String>,
    /// The `nats-server` it runs.
    binary: PathBuf,
}

impl Nats {
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(dir, &nats_server()).await
    }

    /// A single server running `binary`.
    pub async fn start_with(dir: &Path, binary: &Path) -> Self {
        let mut nats = Self {
            port: free_port(),
            store: dir.join("store"),
            log: dir.join("nats.log"),
            child: None,
            cluster: Vec::new(),
            binary: binary.to_path_buf(),
        };
        nats.restart().await;
        nats
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `n` servers of one JetStream cluster on loopback (`node1`…), each with its store
    /// in `dir/nodeN/` and routes to the others. Their client ports answer at once; the
    /// cluster elects its JetStream leader within seconds.
    pub async fn start_cluster(dir: &Path, n: usize) -> Vec<Self> {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let mut nodes = Vec::new();
        for (i, (port, cluster_port)) in ports.iter().enumerate() {
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (_, c))| format!("nats://127.0.0.1:{c}"))
                .collect();
            let node = dir.join(format!("node{}", i + 1));
            let cluster = vec![
                "-n".to_owned(),
                format!("node{}", i + 1),
                "--cluster_name".to_owned(),
                "framecart".to_owned(),
                "--cluster".to_owned(),
                format!("nats://127.0.0.1:{cluster_port}"),
                "--routes".to_owned(),
                routes.join(","),
            ];
            nodes.push(Self {
                port: *port,
                store: node.join("store"),
                log: node.join("nats.log"),
                child: None,
                cluster,
                binary: nats_server(),
            });
        }
        for node in &mut nodes {
            node.restart().await;
        }
        nodes
    }

    /// Whether the server runs.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server again, on the same port with the same store.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "NATS is already running");
        fs::create_dir_all(&self.store).expect("the NATS store");
        let log = log_file(&self.log);
        let child = Command::new(&self.binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(&self.store)
            .args(&self.cluster)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log"))
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        wait_listening(self.port, "nats-server", Duration::from_secs(30)).await;
    }

    /// Stops the server with `signal` (`TERM`: it shuts down cleanly; `KILL`: it dies).
    pub async fn stop(&mut self, how: &str) {
        let mut child = self.child.take().expect("NATS is running");
        signal(child.id(), how);
        if wait_exit(&mut child, Duration::from_secs(10)).await.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Loses everything the server stored (it must be stopped).
    pub fn wipe_store(&self) {
        assert!(self.child.is_none(), "NATS is running");
        fs::remove_dir_all(&self.store).expect("the NATS store is removed");
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running `framecart serve`.
pub struct Server {
    pub child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One installation: PostgreSQL, NATS and `framecart serve`, each a process of its own.
pub struct Cluster {
    /// Fields drop in order: the server first, the folder last.
    pub server: Option<Server>,
    pub nats: Nats,
    pub postgres: Postgres,
    /// A small pool of the test's own, for looking at tables.
    pub db: PgPool,
    pub http_port: u16,
    pub http: reqwest::Client,
    pub media: PathBuf,
    /// What `framecart serve` prints (appended across restarts).
    server_log: PathBuf,
    dir: tempfile::TempDir,
}

/// `framecart <args>` with nothing of this machine's environment but `PATH`: its home is
/// `home`, its store, log and namespace those given.
pub(crate) fn framecart_command(
    args: &[&str],
    home: &Path,
    database_url: &str,
    nats_url: &str,
    namespace: &str,
) -> Command {
    let mut command = Command::new(framecart_bin());
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("RUST_LOG", "info,sqlx::postgres::notice=warn")
        .env("DATABASE_URL", database_url)
        .env("NATS_URL", nats_url)
        .env("FRAMECART_NAMESPACE", namespace)
        .env("FRAMECART_MASTER_KEY", crate::TEST_MASTER_KEY);
    command
}

/// A temporary folder, a PostgreSQL server of its own started in its `pg/`, and a small
/// pool of the test's own on it, once the `framecart` binary is built (on a multi-threaded
/// runtime: PostgreSQL's tools block).
pub(crate) fn folder_with_postgres() -> (tempfile::TempDir, Postgres, PgPool) {
    let dir = tempfile::tempdir().expect("a folder for the installation");
    // The `postgres` user must reach its folder inside.
    fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("the folder's mode");
    let postgres = tokio::task::block_in_place(|| {
        framecart_bin();
        let postgres = Postgres::init(&dir.path().join("pg"));
        postgres.start();
        postgres
    });
    let db = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(&postgres.url())
        .expect("the test's pool");
    (dir, postgres, db)
}

/// The installation's namespace: stream `FAULTS_EVENTS`.
pub const NAMESPACE: &str = "faults";

impl Cluster {
    /// Starts PostgreSQL, NATS and the server, and waits until the server is ready (on a
    /// multi-threaded runtime: PostgreSQL's tools block).
    pub async fn start() -> Self {
        let (dir, postgres, db) = folder_with_postgres();
        let nats = Nats::start(&dir.path().join("nats")).await;
        let mut cluster = Self {
            server: None,
            media: dir.path().join("media"),
            server_log: dir.path().join("framecart.log"),
            http_port: free_port(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("a client"),
            db,
            nats,
            postgres,
            dir,
        };
        cluster.start_server();
        cluster.wait_ready(Duration::from_secs(60)).await;
        cluster
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// `framecart <args>` with this installation's settings.
    pub fn framecart(&self, args: &[&str]) -> Command {
        let mut command = framecart_command(args, self.dir.path(), &self.postgres.url(), &self.nats.url(), NAMESPACE);
        command
            .env("FRAMECART_MEDIA_DIR", &self.media)
            .env("FRAMECART_BIND", format!("127.0.0.1:{}", self.http_port))
            .env("FRAMECART_DB_MAX_CONNECTIONS", "16")
            .env("FRAMECART_DETECTOR_WORKERS", "0")
            .env("FRAMECART_AUTO_DETECT", "false")
            .env("FRAMECART_TOKEN_SECRET", "fault suite token secret")
            // The load comes from one address, faster than a viewer clicks.
            .env("FRAMECART_RATE_CLICKS", "off")
            .stdin(Stdio::null());
        command
    }

    /// Starts `framecart serve` (without waiting for it).
    pub fn start_server(&mut self) {
        assert!(self.server.is_none(), "the server is already running");
        let log = log_file(&self.server_log);
        let child = self
            .framecart(&["serve"])
            .stdout(log.try_clone().expect("the log"))
            .stderr(log)
            .spawn()
            .expect("framecart serve starts");
        self.server = Some(Server { child });
    }

    /// The running server's process.
    pub fn server_process(&mut self) -> &mut Child {
        &mut self.server.as_mut().expect("the server is running").child
    }

    /// Takes the server out, to stop it by hand.
    pub fn take_server(&mut self) -> Server {
        self.server.take().expect("the server is running")
    }

    /// Whether `GET /readyz` answers 200.
    pub async fn ready(&self) -> bool {
        let response = self.http.get(format!("{}/readyz", self.base_url())).send().await;
        response.is_ok_and(|r| r.status().as_u16() == 200)
    }

    /// Waits until `GET /readyz` answers 200.
    pub async fn wait_ready(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.ready().await {
            if Instant::now() >= deadline {
                panic!("the server is not ready after {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `framecart audit verify` against this installation: its exit status and output.
    pub async fn audit_verify(&self) -> (bool, String) {
        let mut command = self.framecart(&["audit", "verify"]);
        let out = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("audit verify joins")
            .expect("audit verify runs");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Everything `framecart serve` printed so far, restarts included.
    pub fn server_log(&self) -> String {
        fs::read_to_string(&self.server_log).unwrap_or_default()
    }

    /// The last `lines` lines of each process's log.
    pub fn logs(&self, lines: usize) -> String {
        let logs = [("framecart", &self.server_log), ("nats-server", &self.nats.log), ("postgres", &self.postgres.log)];
        log_tails(logs.into_iter().map(|(name, path)| (name.to_owned(), path.clone())), lines, |_| true)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // FRAMECART_FAULT_LOGS=1 shows them for passing tests too (with `--nocapture`).
        if std::thread::panicking() || std::env::var_os("FRAMECART_FAULT_LOGS").is_some() {
            eprintln!("{}", self.logs(80));
        }
    }
}
