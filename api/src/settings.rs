//! Typed settings, from flags and environment, in one place. Secrets are never printed.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};
use framecart_commands::snapshots::SnapshotPolicy;
use framecart_domain::log::Namespace;
use framecart_domain::personal::MasterKey;
use framecart_projections::ViewSettings;
use framecart_projections::client_files::FileIp;
use ipnet::IpNet;

use crate::limits::rates::{ClickRate, SigninRate};

/// The browser extension's origin; its id is in `extension/extension-id.txt`.
pub const EXTENSION_ORIGIN: &str = "chrome-extension://kklalonaopmjdkiofpmpkdhbfgmceonh";

/// Everything `framecart serve` is configured with.
#[derive(Args, Debug, Clone)]
pub struct ServeSettings {
    /// What this process runs, comma-separated: `api` (the HTTP API; any number of them),
    /// `relay` (store → log), `projections` (the views and media files), `processes`
    /// (the matcher, order and payment follow-ups, reservations), `detector` (detector
    /// workers), or `all`. Of the relay, each view and each process manager one process
    /// is active at a time; the others stand by and take over when it dies.
    #[arg(long, env = "FRAMECART_ROLES", value_delimiter = ',', default_value = "all")]
    pub roles: Vec<Role>,

    /// Only these views, comma-separated (with the `projections` role; default: every
    /// view). `framecart projections status` lists their names.
    #[arg(long, env = "FRAMECART_PROJECTIONS", value_delimiter = ',')]
    pub projections: Vec<String>,

    #[command(flatten)]
    pub settings: Settings,
    #[command(flatten)]
    pub http: HttpSettings,
    #[command(flatten)]
    pub video: VideoSettings,
    #[command(flatten)]
    pub auth: AuthSettings,
    #[command(flatten)]
    pub payments: PaymentSettings,
}

/// A part of Framecart a process may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Api,
    Relay,
    Projections,
    Processes,
    Detector,
    All,
}

/// The parts a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub api: bool,
    pub relay: bool,
    pub projections: bool,
    pub processes: bool,
    pub detector: bool,
}

impl Roles {
    pub const ALL: Self = Self { api: true, relay: true, projections: true, processes: true, detector: true };
    pub const NONE: Self = Self { api: false, relay: false, projections: false, processes: false, detector: false };

    pub fn of(roles: &[Role]) -> Self {
        roles.iter().fold(Self::NONE, |mut all, role| {
            match role {
                Role::Api => all.api = true,
                Role::Relay => all.relay = true,
                Role::Projections => all.projections = true,
                Role::Processes => all.processes = true,
                Role::Detector => all.detector = true,
                Role::All => all = Self::ALL,
            }
            all
        })
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::NONE
    }
}

impl Default for Roles {
    fn default() -> Self {
        Self::ALL
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::ALL {
            return f.write_str("all");
        }
        let named = [
            (self.api, "api"),
            (self.relay, "relay"),
            (self.projections, "projections"),
            (self.processes, "processes"),
            (self.detector, "detector"),
        ];
        let names: Vec<&str> = named.iter().filter(|(on, _)| *on).map(|(_, name)| *name).collect();
        f.write_str(&names.join(","))
    }
}

impl ServeSettings {
    pub fn roles(&self) -> Roles {
        Roles::of(&self.roles)
    }
}

/// Accounts and tokens.
#[derive(Args, Clone, Default)]
pub struct AuthSettings {
    /// Secret that signs bearer tokens (at least 32 characters). Without it a random one is
    /// made at start, and tokens stop working when the process restarts.
    #[arg(long, env = "FRAMECART_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,

    /// Hours a bearer token stays valid.
    #[arg(long, env = "FRAMECART_TOKEN_TTL_HOURS", default_value_t = 24 * 7)]
    pub token_ttl_hours: u64,

    /// The first admin's email, created at start when no such account exists.
    #[arg(long, env = "FRAMECART_ADMIN_EMAIL")]
    pub admin_email: Option<String>,

    /// The first admin's password.
    #[arg(long, env = "FRAMECART_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("token_secret", &self.token_secret.as_ref().map(|_| "********"))
            .field("token_ttl_hours", &self.token_ttl_hours)
            .field("admin_email", &self.admin_email)
            .field("admin_password", &self.admin_password.as_ref().map(|_| "********"))
            .finish()
    }
}

/// Payment providers, and how long an order being placed holds stock.
#[derive(Args, Clone)]
pub struct PaymentSettings {
    /// Secret the fake provider signs its webhooks with (random when unset).
    #[arg(long, env = "FRAMECART_FAKE_PAYMENTS_SECRET", hide_env_values = true)]
    pub fake_secret: Option<String>,

    /// Make the fake provider deliver some webhooks twice and out of order, as real
    /// providers may.
    #[arg(long, env = "FRAMECART_FAKE_PAYMENTS_CHAOS", default_value_t = true, action = ArgAction::Set)]
    pub fake_chaos: bool,

    /// Where the fake provider sends its webhooks (default: this server).
    #[arg(long, env = "FRAMECART_FAKE_PAYMENTS_WEBHOOK_URL")]
    pub fake_webhook_url: Option<String>,

    /// Seconds stock stays reserved for an order being placed: if the order is not placed
    /// by then (a crash, a client that gave up), the stock is given back.
    #[arg(long, env = "FRAMECART_RESERVATION_TTL_SECS", default_value_t = DEFAULT_RESERVATION_TTL_SECS)]
    pub reservation_ttl_secs: u64,
}

pub const DEFAULT_RESERVATION_TTL_SECS: u64 = 900;

impl Default for PaymentSettings {
    fn default() -> Self {
        Self {
            fake_secret: None,
            fake_chaos: true,
            fake_webhook_url: None,
            reservation_ttl_secs: DEFAULT_RESERVATION_TTL_SECS,
        }
    }
}

impl fmt::Debug for PaymentSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaymentSettings")
            .field("fake_secret", &self.fake_secret.as_ref().map(|_| "********"))
            .field("fake_chaos", &self.fake_chaos)
            .field("fake_webhook_url", &self.fake_webhook_url)
            .field("reservation_ttl_secs", &self.reservation_ttl_secs)
            .finish()
    }
}

/// Where Framecart keeps its state: the store, the log, the media folder.
#[derive(Args, Clone)]
pub struct Settings {
    /// Postgres connection URL (the event store and the views).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub database_url: String,

    /// NATS server URL (JetStream carries the event log); several servers of a cluster
    /// separated by commas.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// Folder for runtime files: client_files/, source_video_files/, detections/.
    #[arg(long, env = "FRAMECART_MEDIA_DIR", default_value = "media")]
    pub media_dir: PathBuf,

    /// This installation's namespace on NATS: stream `<NAMESPACE>_EVENTS`,
    /// subjects `<namespace>.events.>`.
    #[arg(long, env = "FRAMECART_NAMESPACE", default_value = "framecart", value_parser = parse_namespace)]
    pub namespace: Namespace,

    /// Most Postgres connections this process opens.
    #[arg(long, env = "FRAMECART_DB_MAX_CONNECTIONS", default_value_t = 32)]
    pub db_max_connections: u32,

    /// Commit concurrent commands together (group commit); `false` uses postgres-es's
    /// one transaction per command.
    #[arg(long, env = "FRAMECART_WRITE_BATCHING", default_value_t = true, action = ArgAction::Set)]
    pub write_batching: bool,

    /// How many transactions of batched commands are committed at once. One by default:
    /// each batch then takes every command that arrived while the last one committed. On
    /// 2 cores at full speed, one writer gave the throughput and CPU per click of four,
    /// and a p99 as low or lower (37-43 ms against 45-54 ms, alternated; after pgbench had
    /// just run, 41-71 ms against 48-73 ms). More may help where Postgres has cores to
    /// spare, or where batches often conflict (a conflicting batch is committed again one
    /// command at a time, and one writer waits for that).
    #[arg(long, env = "FRAMECART_STORE_WRITERS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=64))]
    pub store_writers: u8,

    /// How often commands store an aggregate's snapshot, so that a load reads the snapshot
    /// and the events after it: `auto` (each aggregate type's interval: 100 events, 10 for
    /// a detection run's batches), a number of events, or `off` (every load folds the
    /// whole history). Snapshots are a cache: this changes only speed.
    #[arg(long, env = "FRAMECART_SNAPSHOT_EVERY", default_value = "auto", value_parser = parse_snapshots)]
    pub snapshot_every: SnapshotPolicy,

    /// Seconds a committed event may wait to reach the stream. Past it `/readyz` says the
    /// relay is degraded (503), and `audit verify` reports the event if it has no log
    /// position.
    #[arg(long, env = "FRAMECART_RELAY_LAG_BOUND_SECS", default_value_t = DEFAULT_RELAY_LAG_BOUND_SECS)]
    pub relay_lag_bound_secs: u64,

    /// Copies JetStream keeps of the stream and of the media store: 1 on a single server,
    /// 3 on a cluster of three or more. An existing stream is scaled to it.
    #[arg(long, env = "FRAMECART_STREAM_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub stream_replicas: u8,

    /// This process's name in `framecart projections status` and in Postgres's
    /// `pg_stat_activity` (default: `<host>:<pid>`).
    #[arg(long, env = "FRAMECART_INSTANCE")]
    pub instance: Option<String>,

    /// The key that wraps the data keys of personal data: 32 bytes, as 64 hex digits or in
    /// standard base64 (`openssl rand -hex 32`). Required by every command that writes or
    /// reads events; every process of one installation uses the same. Keep it apart from
    /// the database's backups. `scripts/run.sh` makes a local one.
    #[arg(long, env = "FRAMECART_MASTER_KEY", hide_env_values = true, value_parser = parse_master_key)]
    pub master_key: Option<MasterKey>,

    /// Days an anonymous viewer's address and cookie are kept: each day's key is destroyed
    /// once the day is older (by the `processes` role, hourly).
    #[arg(long, env = "FRAMECART_ANONYMOUS_RETENTION_DAYS", default_value_t = DEFAULT_ANONYMOUS_RETENTION_DAYS)]
    pub anonymous_retention_days: u32,

    /// How much of a viewer's address names their client files
    /// (`<user>_<address>_<video>.json`): `full`, as the original system had it;
    /// `truncated`, IPv4 to its /24 and IPv6 to its /48; or `none` (`None` in its place).
    #[arg(long, env = "FRAMECART_CLIENT_FILE_IP", default_value = "full", value_parser = parse_file_ip)]
    pub client_file_ip: FileIp,
}

fn parse_file_ip(s: &str) -> Result<FileIp, String> {
    s.parse()
}

/// The default of [`Settings::anonymous_retention_days`].
pub const DEFAULT_ANONYMOUS_RETENTION_DAYS: u32 = 90;

pub fn parse_master_key(s: &str) -> Result<MasterKey, String> {
    MasterKey::parse(s).map_err(|e| e.to_string())
}

/// The default of [`Settings::relay_lag_bound_secs`].
pub const DEFAULT_RELAY_LAG_BOUND_SECS: u64 = 30;

impl Settings {
    /// This process's name: `--instance`, or `<host>:<pid>`.
    pub fn instance(&self) -> String {
        self.instance.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "localhost".to_owned());
            format!("{host}:{}", std::process::id())
        })
    }

    /// How long a committed event may wait to reach the stream.
    pub fn relay_lag_bound(&self) -> Duration {
        Duration::from_secs(self.relay_lag_bound_secs)
    }

    /// What the views need: the media folder, the master key, the file names' address.
    pub fn views(&self) -> anyhow::Result<ViewSettings> {
        Ok(ViewSettings {
            file_ip: self.client_file_ip,
            ..ViewSettings::new(self.media_dir.clone(), self.master_key()?)
        })
    }

    /// The master key; an error that says how to set one when it is missing.
    pub fn master_key(&self) -> anyhow::Result<MasterKey> {
        self.master_key.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "FRAMECART_MASTER_KEY is not set: personal data is sealed under keys that it wraps. \
                 Set it to 32 random bytes as 64 hex digits (`openssl rand -hex 32`), the same for \
                 every process of this installation, and keep it apart from the database's backups"
            )
        })
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &redact(&self.database_url))
            .field("nats_url", &redact_all(&self.nats_url))
            .field("media_dir", &self.media_dir)
            .field("namespace", &self.namespace)
            .field("db_max_connections", &self.db_max_connections)
            .field("write_batching", &self.write_batching)
            .field("store_writers", &self.store_writers)
            .field("snapshot_every", &self.snapshot_every)
            .field("relay_lag_bound_secs", &self.relay_lag_bound_secs)
            .field("stream_replicas", &self.stream_replicas)
            .field("instance", &self.instance)
            .field("master_key", &self.master_key.as_ref().map(|_| "********"))
            .field("anonymous_retention_days", &self.anonymous_retention_days)
            .field("client_file_ip", &self.client_file_ip)
            .finish()
    }
}

/// How the HTTP side behaves.
#[derive(Args, Debug, Clone)]
pub struct HttpSettings {
    /// Address to listen on (with the `api` role: 127.0.0.1:8000 by default). A process
    /// without the `api` role serves only `/healthz` and `/readyz`, and only where this is
    /// given.
    #[arg(long, env = "FRAMECART_BIND")]
    pub bind: Option<SocketAddr>,

    /// Proxies (addresses or CIDR blocks, comma-separated) whose `X-Forwarded-For` is
    /// believed. Without any, the client address is the direct peer.
    #[arg(long, env = "FRAMECART_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpNet>,

    /// Name of a cookie whose value identifies a viewer, recorded with each click.
    #[arg(long, env = "FRAMECART_VIEWER_COOKIE")]
    pub viewer_cookie: Option<String>,

    /// Largest JSON request body accepted, in bytes (larger ones get 413).
    #[arg(long, env = "FRAMECART_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Origins (comma-separated) that browsers may let call the API; by default the
    /// Framecart extension's (its id is pinned by the key in its manifest). No other
    /// origin gets CORS headers.
    #[arg(long, env = "FRAMECART_CORS_ORIGINS", value_delimiter = ',', default_value = EXTENSION_ORIGIN)]
    pub cors_origins: Vec<String>,

    /// A second address serving `GET /metrics` without authentication, for a scraper on
    /// a private network. Without it, `/metrics` is served on the API address to staff.
    #[arg(long, env = "FRAMECART_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,

    /// Anonymous clicks per client address: `N/s,BURST` (a token bucket: N a second on
    /// average, bursts of up to BURST), or `off`. Over it: 429 with `Retry-After`.
    #[arg(long, env = "FRAMECART_RATE_CLICKS", default_value = DEFAULT_RATE_CLICKS)]
    pub rate_clicks: ClickRate,

    /// Failed sign-ins allowed per 15 minutes, per account and per client address:
    /// `ACCOUNT,ADDRESS`, or `off`. Over either, sign-ins are refused (429) until the
    /// oldest failure is 15 minutes old. Registrations are limited with the same numbers,
    /// per email address and per client address.
    #[arg(long, env = "FRAMECART_RATE_SIGNIN", default_value = DEFAULT_RATE_SIGNIN)]
    pub rate_signin: SigninRate,
}

/// Where the API listens when `--bind` is not given.
pub const DEFAULT_BIND: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8000);

const DEFAULT_RATE_CLICKS: &str = "50/s,200";
const DEFAULT_RATE_SIGNIN: &str = "10,30";

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            bind: None,
            trusted_proxies: Vec::new(),
            viewer_cookie: None,
            max_body_bytes: 64 * 1024,
            cors_origins: vec![EXTENSION_ORIGIN.to_owned()],
            metrics_bind: None,
            rate_clicks: DEFAULT_RATE_CLICKS.parse().unwrap_or(ClickRate::Off),
            rate_signin: DEFAULT_RATE_SIGNIN.parse().unwrap_or(SigninRate::Off),
        }
    }
}

/// Video uploads and object detection.
#[derive(Args, Debug, Clone)]
pub struct VideoSettings {
    /// Largest video upload accepted, in bytes (larger ones get 413 and leave nothing).
    #[arg(long, env = "FRAMECART_MAX_UPLOAD_BYTES", default_value_t = 2 * 1024 * 1024 * 1024)]
    pub max_upload_bytes: u64,

    /// Most pixels a video frame may have, as `WIDTHxHEIGHT` or a number (larger videos
    /// are refused with 422 `video_too_large` before anything decodes them: a frame is
    /// decoded whole, 3 bytes a pixel).
    #[arg(long, env = "FRAMECART_MAX_VIDEO_PIXELS", default_value = DEFAULT_MAX_VIDEO_PIXELS, value_parser = parse_pixels)]
    pub max_video_pixels: u64,

    /// Request detection of every class as soon as a video is uploaded.
    #[arg(long, env = "FRAMECART_AUTO_DETECT", default_value_t = true, action = ArgAction::Set)]
    pub auto_detect: bool,

    /// Frames per second sampled for detection when a request names none.
    #[arg(long, env = "FRAMECART_SAMPLE_FPS", default_value_t = 5.0)]
    pub sample_fps: f64,

    /// Minimum confidence of a detection when a request names none.
    #[arg(long, env = "FRAMECART_MIN_CONFIDENCE", default_value_t = 0.25)]
    pub min_confidence: f64,

    /// Detector workers in this process (0: this process detects nothing; run workers
    /// elsewhere against the same database and NATS).
    #[arg(long, env = "FRAMECART_DETECTOR_WORKERS", default_value_t = 1)]
    pub detector_workers: usize,

    /// Folder of the darknet model (`framecart model fetch` fills it).
    #[arg(long, env = "FRAMECART_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,

    /// Where detector workers run the model: `cpu`, or `wgpu` / `cuda` in a build with the
    /// cargo feature `gpu-wgpu` / `gpu-cuda`. A GPU backend that is missing or finds no
    /// device falls back to the CPU, with a warning in the log.
    #[arg(long, env = "FRAMECART_DETECTOR_BACKEND", default_value = "cpu", value_parser = parse_backend)]
    pub detector_backend: framecart_detector::Backend,

    /// Seconds without a sign of life after which a detection job goes to another worker
    /// (workers report every quarter of it while they work).
    #[arg(long, env = "FRAMECART_DETECTOR_ACK_WAIT_SECS", default_value_t = 60)]
    pub detector_ack_wait_secs: u64,
}

impl Default for VideoSettings {
    fn default() -> Self {
        Self {
            max_upload_bytes: 2 * 1024 * 1024 * 1024,
            max_video_pixels: 3840 * 2160,
            auto_detect: true,
            sample_fps: 5.0,
            min_confidence: 0.25,
            detector_workers: 1,
            model_dir: None,
            detector_backend: framecart_detector::Backend::Cpu,
            detector_ack_wait_secs: 60,
        }
    }
}

impl VideoSettings {
    pub fn model_dir(&self) -> PathBuf {
        self.model_dir.clone().unwrap_or_else(framecart_detector::default_model_dir)
    }
}

const DEFAULT_MAX_VIDEO_PIXELS: &str = "3840x2160";

/// `auto`, `off`, or a number of events, at least 1.
fn parse_snapshots(s: &str) -> Result<SnapshotPolicy, String> {
    match s.trim() {
        "auto" => Ok(SnapshotPolicy::PerAggregate),
        "off" => Ok(SnapshotPolicy::Off),
        n => match n.parse::<u64>() {
            Ok(every) if every > 0 => Ok(SnapshotPolicy::Every(every)),
            _ => Err(format!("{s:?} is not `auto`, `off` or a number of events (1 or more)")),
        },
    }
}

/// `cpu`, `wgpu` or `cuda`.
fn parse_backend(s: &str) -> Result<framecart_detector::Backend, String> {
    s.parse()
}

/// `3840x2160` (or `3840×2160`) or a number of pixels, at least 1.
fn parse_pixels(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let number = |n: &str| n.trim().parse::<u64>().ok().filter(|n| *n > 0);
    let pixels = match s.split_once(['x', 'X', '×']) {
        Some((w, h)) => number(w).zip(number(h)).and_then(|(w, h)| w.checked_mul(h)),
        None => number(s),
    };
    pixels.ok_or_else(|| "expected WIDTHxHEIGHT (e.g. 3840x2160) or a number of pixels, at least 1".to_owned())
}

fn parse_namespace(s: &str) -> Result<Namespace, String> {
    Namespace::parse(s).map_err(|e| e.to_string())
}

/// A comma-separated list of URLs, each with its password replaced, for logs.
pub fn redact_all(urls: &str) -> String {
    urls.split(',').map(|u| redact(u.trim())).collect::<Vec<_>>().join(",")
}

/// A URL with its password replaced, for logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("********"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cors_origin_is_the_extension_s() {
        let id = include_str!("../../extension/extension-id.txt").trim();
        assert_eq!(EXTENSION_ORIGIN, format!("chrome-extension://{id}"));
    }

    #[test]
    fn a_pixel_budget_is_a_size_or_a_number() {
        assert_eq!(parse_pixels("3840x2160"), Ok(3840 * 2160));
        assert_eq!(parse_pixels("3840×2160"), Ok(3840 * 2160));
        assert_eq!(parse_pixels(" 1000000 "), Ok(1_000_000));
        for bad in ["", "0", "0x100", "100x", "x", "-5", "axb", "99999999999x99999999999"] {
            assert!(parse_pixels(bad).is_err(), "{bad:?}");
        }
        assert_eq!(VideoSettings::default().max_video_pixels, parse_pixels(DEFAULT_MAX_VIDEO_PIXELS).expect("default"));
    }

    #[derive(Debug, clap::Parser)]
    struct Flags {
        #[command(flatten)]
        http: HttpSettings,
        #[command(flatten)]
        video: VideoSettings,
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        use clap::Parser;
        let parsed = Flags::try_parse_from(["framecart"]).expect("defaults parse");
        let http = HttpSettings::default();
        assert_eq!((parsed.http.rate_clicks, parsed.http.rate_signin), (http.rate_clicks, http.rate_signin));
        assert_eq!(http.rate_clicks.to_string(), DEFAULT_RATE_CLICKS);
        assert_eq!(http.rate_signin.to_string(), DEFAULT_RATE_SIGNIN);
        assert_eq!(parsed.video.max_video_pixels, VideoSettings::default().max_video_pixels);
    }

    #[test]
    fn one_store_writer_by_default_and_a_count_out_of_range_is_refused() {
        use clap::Parser;
        #[derive(Debug, clap::Parser)]
        struct Store {
            #[command(flatten)]
            settings: Settings,
        }
        let parse = |args: &[&str]| Store::try_parse_from(std::iter::once("framecart").chain(args.iter().copied()));
        assert_eq!(parse(&[]).expect("defaults").settings.store_writers, 1);
        assert_eq!(parse(&["--store-writers", "4"]).expect("four").settings.store_writers, 4);
        for bad in ["0", "65", "-1", "many"] {
            let refused = parse(&[&format!("--store-writers={bad}")]).expect_err(bad).to_string();
            assert!(refused.contains("--store-writers"), "{refused}");
        }
    }

    #[test]
    fn a_bad_limit_stops_the_start_with_the_form_it_needs() {
        use clap::Parser;
        let error = |args: &[&str]| {
            let args = std::iter::once("framecart").chain(args.iter().copied());
            Flags::try_parse_from(args).expect_err("refused").to_string()
        };
        let clicks = error(&["--rate-clicks", "fast"]);
        assert!(clicks.contains("--rate-clicks") && clicks.contains("N/s,BURST"), "{clicks}");
        let signin = error(&["--rate-signin", "10"]);
        assert!(signin.contains("--rate-signin") && signin.contains("ACCOUNT,ADDRESS"), "{signin}");
        let pixels = error(&["--max-video-pixels", "big"]);
        assert!(pixels.contains("WIDTHxHEIGHT"), "{pixels}");
        let off = Flags::try_parse_from(["framecart", "--rate-clicks", "off", "--rate-signin", "off"]).expect("off");
        assert_eq!((off.http.rate_clicks, off.http.rate_signin), (ClickRate::Off, SigninRate::Off));
    }

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(redact("postgres://app:s3cret@db:5432/framecart"), "postgres://app:********@db:5432/framecart");
        assert!(!redact("not a url s3cret").contains("s3cret"));
    }
}
