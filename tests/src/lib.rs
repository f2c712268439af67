//! Helpers for black-box tests of a running Framecart.
//!
//! Each [`TestApp`] is a whole installation: its own Postgres database, its own NATS
//! namespace (stream and consumers), its own media folder, and the real API on a port
//! picked by the OS. Tests run in parallel and leave nothing behind: dropping a
//! `TestApp` drops its database and deletes its stream.
//!
//! The fault suite needs more: processes it can kill. [`cluster`] runs PostgreSQL, NATS
//! and the `framecart` binary as processes of their own, [`load`] clicks on them, and
//! [`faults`] checks that a fault lost and duplicated nothing.

pub mod anchor;
pub mod cluster;
pub mod faults;
pub mod installation;
pub mod load;
pub mod progress;
pub mod scaleout;
pub mod synthetic;
pub mod workload;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream;
use framecart_api::commands::snapshots::SnapshotPolicy;
use framecart_api::domain::log::Namespace;
use framecart_api::limits::{ClickRate, SigninRate};
use framecart_api::{
    AuthSettings, HttpSettings, PaymentSettings, Role, Running, ServeSettings, Settings, VideoSettings,
};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

/// The server every test uses; CI and the README's set-up start it.
pub fn postgres_base() -> String {
    std::env::var("FRAMECART_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

pub fn nats_url() -> String {
    std::env::var("FRAMECART_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// A database of its own, dropped (with its connections) when this is dropped.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> anyhow::Result<Self> {
        let name = format!("framecart_test_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&format!("{}/postgres", postgres_base())).await?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await?;
        admin.close().await?;
        let url = format!("{}/{name}", postgres_base());
        Ok(Self { name, url })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any runtime we may block: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let mut admin = PgConnection::connect(&format!("{}/postgres", postgres_base())).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await?;
                anyhow::Ok(())
            })
        })
        .join();
    }
}

/// A namespace of its own on the NATS server; its stream is deleted on drop.
pub struct TestNamespace {
    pub namespace: Namespace,
}

impl TestNamespace {
    pub fn new() -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let namespace = Namespace::parse(&format!("t{}", &id[..16])).expect("a valid namespace");
        Self { namespace }
    }
}

impl Default for TestNamespace {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let stream = self.namespace.stream_name();
        let media = framecart_api::commands::media::bucket_name(&self.namespace);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let client = async_nats::connect(nats_url()).await?;
                let js = jetstream::new(client);
                let _ = js.delete_stream(&stream).await;
                let _ = js.delete_object_store(&media).await;
                anyhow::Ok(())
            })
        })
        .join();
    }
}

/// A running installation of its own.
pub struct TestApp {
    pub running: Running,
    pub base_url: String,
    /// Anonymous: no token.
    pub http: reqwest::Client,
    /// Signed in as the installation's first admin (who may do everything).
    pub admin: reqwest::Client,
    /// A small pool of the test's own, for looking at tables.
    pub db: PgPool,
    pub jetstream: jetstream::Context,
    pub media: tempfile::TempDir,
    // Dropped last: the database and the stream outlive everything above.
    pub namespace: TestNamespace,
    pub database: TestDatabase,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// An installation with no account at all (its log holds only what the test writes),
    /// running `roles`.
    pub async fn spawn_bare(roles: &[Role]) -> Self {
        let roles = roles.to_vec();
        Self::spawn_with(move |s| {
            s.auth.admin_email = None;
            s.roles = roles;
        })
        .await
    }

    /// Spawns with settings adjusted by `configure`.
    pub async fn spawn_with(configure: impl FnOnce(&mut ServeSettings)) -> Self {
        let database = TestDatabase::create().await.expect("a test database");
        Self::spawn_on(database, configure).await
    }

    /// Spawns on a database the test prepared (an older schema, stored events).
    pub async fn spawn_on(database: TestDatabase, configure: impl FnOnce(&mut ServeSettings)) -> Self {
        init_logs();
        let namespace = TestNamespace::new();
        let media = tempfile::tempdir().expect("a media folder");
        let mut serve = serve_settings(&database, &namespace, media.path());
        configure(&mut serve);
        let running = Running::start(serve).await.expect("framecart starts");
        let base_url = format!("http://{}", running.http_addr());
        let admin = match (&running.state.auth.admin_email, &running.state.auth.admin_password) {
            (Some(email), Some(password)) => signed_in_client(&base_url, email, password).await,
            _ => reqwest::Client::new(),
        };
        let db = PgPool::connect(&database.url).await.expect("a test pool");
        let client = async_nats::connect(nats_url()).await.expect("NATS");
        Self {
            base_url,
            running,
            http: reqwest::Client::new(),
            admin,
            db,
            jetstream: jetstream::new(client),
            media,
            namespace,
            database,
        }
    }

    /// The settings of this installation's views.
    pub fn view_settings(&self) -> framecart_api::projections::ViewSettings {
        self.running.state.settings.views().expect("a master key")
    }

    /// Runs the `framecart` command line in this process, against this installation.
    pub async fn cli(&self, args: &[&str]) -> anyhow::Result<()> {
        use clap::Parser as _;
        let media = self.media_dir().display().to_string();
        let nats = nats_url();
        let settings = [
            "--database-url",
            &self.database.url,
            "--nats-url",
            &nats,
            "--namespace",
            self.namespace.namespace.as_str(),
            "--media-dir",
            &media,
            "--master-key",
            TEST_MASTER_KEY,
        ];
        let argv = std::iter::once("framecart").chain(args.iter().copied()).chain(settings);
        framecart_api::cli::run(framecart_api::cli::Cli::try_parse_from(argv)?).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn media_dir(&self) -> &Path {
        self.media.path()
    }

    pub fn client_file(&self, name: &str) -> PathBuf {
        self.media.path().join("client_files").join(name)
    }

    /// The client a helper call uses: clicks are posted anonymously (as viewers without a
    /// token do), everything else as the admin.
    fn client_for(&self, path: &str) -> &reqwest::Client {
        if path.starts_with("/api/v1/clicks")
            && !path.contains('?')
            && !path.ends_with("/match")
            && path.len() == "/api/v1/clicks".len()
        {
            &self.http
        } else {
            &self.admin
        }
    }

    /// Posts a JSON body to `path`; returns the status and the JSON answer.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        send(self.client_for(path).post(self.url(path)).json(body)).await
    }

    /// Uploads `bytes` as the video `video_id` (multipart, as a merchant's tool would).
    pub async fn upload(&self, video_id: &str, file_name: &str, bytes: Vec<u8>) -> (u16, serde_json::Value) {
        let form = reqwest::multipart::Form::new()
            .text("video_id", video_id.to_owned())
            .part("file", reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned()));
        send(self.admin.post(self.url("/api/v1/videos")).multipart(form)).await
    }

    /// Gets `path` as the admin.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        send(self.admin.get(self.url(path))).await
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.db).await.expect("count query")
    }

    /// The number of messages in the installation's stream.
    pub async fn stream_len(&self) -> u64 {
        let mut stream = self.jetstream.get_stream(self.namespace.namespace.stream_name()).await.expect("the stream");
        stream.info().await.expect("stream info").state.messages
    }

    /// The message at `sequence`. A message missing says what the stream then holds, so a
    /// stream at the wrong sequences tells itself from a read that failed.
    pub async fn stream_message(&self, sequence: u64) -> async_nats::jetstream::message::StreamMessage {
        let mut stream = self.jetstream.get_stream(self.namespace.namespace.stream_name()).await.expect("the stream");
        match stream.direct_get(sequence).await {
            Ok(message) => message,
            Err(e) => {
                let state = stream.info().await.map(|info| format!("{:?}", info.state));
                panic!("no message at sequence {sequence} ({e}); the stream now: {state:?}")
            }
        }
    }

    /// Waits until every click event is in the `clicks` view.
    pub async fn wait_for_clicks_view(&self) {
        eventually("the clicks view to catch up", Duration::from_secs(20), || async {
            let events = self.count("SELECT count(*) FROM events WHERE aggregate_type = 'click'").await;
            let rows = self.count("SELECT count(*) FROM clicks_view").await;
            (events == rows).then_some(())
        })
        .await;
    }

    /// Waits until every view projection has applied everything in the log so far.
    pub async fn wait_for_projections(&self) {
        let ns = &self.namespace.namespace;
        let stream = self.jetstream.get_stream(ns.stream_name()).await.expect("the stream");
        for projection in framecart_api::projections::all(&self.view_settings()) {
            let consumer = ns.consumer_name(&format!("proj_{}", projection.name()));
            eventually(&format!("{} to catch up", projection.name()), Duration::from_secs(30), || async {
                let info = stream.consumer_info(&consumer).await.ok()?;
                (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
            })
            .await;
        }
    }

    /// Waits until the relay has put every committed event on the log.
    pub async fn wait_for_log(&self) {
        eventually("the relay to log every event", Duration::from_secs(30), || async {
            let events = self.count("SELECT count(*) FROM events").await;
            let logged = self.count("SELECT count(*) FROM event_log").await;
            (events == logged).then_some(())
        })
        .await;
    }

    /// `framecart projections status --json`, as its report.
    pub async fn projections_status(&self) -> serde_json::Value {
        let settings = Settings { db_max_connections: 2, write_batching: false, ..self.running.state.settings.clone() };
        let infra = framecart_api::Infra::connect(&settings, "test").await.expect("connect");
        let report = framecart_api::cli::projections::status(&settings, &infra).await.expect("status");
        serde_json::to_value(report).expect("json")
    }

    /// Rebuilds every projection while this server runs it (each rebuild waits for the
    /// server to replay it).
    pub async fn rebuild_every_projection(&self) {
        for projection in framecart_api::projections::all(&self.view_settings()) {
            let runner = framecart_api::projections::ProjectionRunner::new(
                self.running.state.pool.clone(),
                self.running.state.jetstream.clone(),
                self.namespace.namespace.clone(),
                projection,
            );
            runner.rebuild(&|_, _| {}).await.expect("rebuild");
        }
    }

    /// Waits until every click whose viewer is not erased is in its client file.
    pub async fn wait_for_client_files(&self) {
        eventually("the client files to be written", Duration::from_secs(20), || async {
            let events = self
                .count(
                    "SELECT count(*) FROM events e WHERE event_type = 'ClickRecorded' AND NOT EXISTS (
                         SELECT 1 FROM data_keys k WHERE k.wrapped IS NULL
                            AND k.subject = e.payload->'ClickRecorded'->'client_ip'->'sealed'->>'subject')",
                )
                .await;
            let rows = self.count("SELECT count(*) FROM client_file_clicks").await;
            let dirty = self.count("SELECT count(*) FROM client_files_dirty").await;
            (events == rows && dirty == 0).then_some(())
        })
        .await;
    }
}

/// Sends a request; returns the status and the JSON answer (`null` when it has none).
pub async fn send(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}

/// Every file under `dir` (the media folder, or a folder of it), by path under it, with
/// its contents; temporary files (`.tmp/`) left out.
pub fn media_files(dir: &Path) -> std::collections::BTreeMap<String, String> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() { walk(&path, found) } else { found.push(path) }
        }
    }
    let mut found = Vec::new();
    walk(dir, &mut found);
    found
        .into_iter()
        .filter(|p| !p.starts_with(dir.join(".tmp")))
        .map(|p| {
            let name = p.strip_prefix(dir).expect("under the folder").display().to_string();
            let contents = std::fs::read_to_string(&p).expect("a file");
            (name, contents)
        })
        .collect()
}

/// The settings a [`TestApp`] starts with, before its `configure`.
///
/// The rate limits are off: every test speaks from 127.0.0.1, and many post hundreds of
/// clicks or register several accounts in a moment. The tests of the limits turn them on
/// (`tests/limits.rs`); the extension's browser tests run the binary with the defaults.
pub fn serve_settings(database: &TestDatabase, namespace: &TestNamespace, media: &Path) -> ServeSettings {
    let settings = Settings {
        database_url: database.url.clone(),
        nats_url: nats_url(),
        media_dir: media.to_path_buf(),
        namespace: namespace.namespace.clone(),
        db_max_connections: 8,
        write_batching: true,
        store_writers: 1,
        snapshot_every: SnapshotPolicy::default(),
        relay_lag_bound_secs: framecart_api::settings::DEFAULT_RELAY_LAG_BOUND_SECS,
        stream_replicas: 1,
        instance: None,
        master_key: Some(test_master_key()),
        anonymous_retention_days: framecart_api::settings::DEFAULT_ANONYMOUS_RETENTION_DAYS,
        client_file_ip: framecart_api::projections::client_files::FileIp::Full,
    };
    let http = HttpSettings {
        bind: Some("127.0.0.1:0".parse().expect("addr")),
        rate_clicks: ClickRate::Off,
        rate_signin: SigninRate::Off,
        ..HttpSettings::default()
    };
    // No detector unless a test asks for one: most tests need no model.
    let video = VideoSettings { detector_workers: 0, ..VideoSettings::default() };
    let auth = AuthSettings {
        token_secret: Some(format!("test secret {}", Uuid::new_v4())),
        token_ttl_hours: 1,
        admin_email: Some(ADMIN_EMAIL.into()),
        admin_password: Some(ADMIN_PASSWORD.into()),
    };
    let payments = PaymentSettings {
        fake_secret: Some(format!("webhook secret {}", Uuid::new_v4())),
        fake_chaos: true,
        fake_webhook_url: None,
        ..PaymentSettings::default()
    };
    ServeSettings { roles: vec![Role::All], projections: Vec::new(), settings, http, video, auth, payments }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop the background parts before the database and the stream go away.
        self.running.cancel_all();
    }
}

pub const ADMIN_EMAIL: &str = "admin@framecart.test";
pub const ADMIN_PASSWORD: &str = "admin password for tests";

/// The master key of every test installation (`FRAMECART_MASTER_KEY`): tests only.
pub const TEST_MASTER_KEY: &str = "7465737473206f6e6c793a206e6576657220612070726f64756374696f6e2121";

pub fn test_master_key() -> framecart_api::domain::personal::MasterKey {
    framecart_api::domain::personal::MasterKey::parse(TEST_MASTER_KEY).expect("a master key")
}

/// A client that sends `Authorization: Bearer <token>` of the account.
pub async fn signed_in_client(base_url: &str, email: &str, password: &str) -> reqwest::Client {
    let token = sign_in(base_url, email, password).await;
    let mut headers = reqwest::header::HeaderMap::new();
    let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder().default_headers(headers).build().expect("a client")
}

/// A bearer token for the account.
pub async fn sign_in(base_url: &str, email: &str, password: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{base_url}/api/v1/sessions"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .expect("sign in");
    assert_eq!(response.status().as_u16(), 200, "signing in {email}");
    let session: serde_json::Value = response.json().await.expect("a session");
    session["token"].as_str().expect("a token").to_owned()
}

impl TestApp {
    /// Registers an account, has the admin grant it `roles`, and returns its signed-in
    /// client and user id.
    pub async fn user(&self, email: &str, roles: &[&str]) -> (reqwest::Client, String) {
        let password = "a password for tests";
        let response = self
            .http
            .post(self.url("/api/v1/users"))
            .json(&serde_json::json!({"email": email, "password": password}))
            .send()
            .await
            .expect("register");
        assert_eq!(response.status().as_u16(), 201, "registering {email}");
        let user: serde_json::Value = response.json().await.expect("a user");
        let user_id = user["user_id"].as_str().expect("an id").to_owned();
        for role in roles {
            let response = self
                .admin
                .post(self.url(&format!("/api/v1/users/{user_id}/roles")))
                .json(&serde_json::json!({"role": role}))
                .send()
                .await
                .expect("grant");
            assert_eq!(response.status().as_u16(), 200, "granting {role}");
        }
        (signed_in_client(&self.base_url, email, password).await, user_id)
    }
}

/// Logs of the app under test, shown for failing tests (`RUST_LOG` to change the level).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// Waits until `task` has ended, or waits for a lock that the session `pid` holds (a
/// transaction a test keeps open); panics after 10 s of neither, naming `what`.
pub async fn ended_or_blocked_by<T>(db: &sqlx::PgPool, pid: i32, task: &tokio::task::JoinHandle<T>, what: &str) {
    eventually(&format!("{what} to end, or wait for session {pid}"), Duration::from_secs(10), || async {
        let waiting: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid)))")
                .bind(pid)
                .fetch_one(db)
                .await
                .expect("waiters");
        (waiting || task.is_finished()).then_some(())
    })
    .await;
}

/// Polls `check` until it yields a value, or panics after `limit` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_or_say(what, limit, || {
        let checked = check();
        async move { checked.await.ok_or_else(String::new) }
    })
    .await
}

/// [`eventually`], where `check` says why it is not there yet: the panic after `limit`
/// gives the last answer (the counts that were still off, say). It pauses 20 ms between
/// checks, or as long as the last check took if that was longer: a slow check (counting a
/// big table) never keeps a core busy against what it waits for.
pub async fn eventually_or_say<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let started = tokio::time::Instant::now();
        let why = match check().await {
            Ok(value) => return value,
            Err(why) => why,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}{}",
            if why.is_empty() { String::new() } else { format!(": {why}") }
        );
        tokio::time::sleep(started.elapsed().max(Duration::from_millis(20))).await;
    }
}

/// A test image or video that `detector/scripts/setup.sh` put in the test media folder
/// (`FRAMECART_TEST_MEDIA`, or `~/.cache/framecart/test-media`), searched one level deep.
pub fn test_media(name: &str) -> PathBuf {
    let root = std::env::var_os("FRAMECART_TEST_MEDIA").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/framecart/test-media")
    });
    let direct = root.join(name);
    if direct.is_file() {
        return direct;
    }
    std::fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("test media {name} is missing under {}: run detector/scripts/setup.sh", root.display())
        })
}

/// A video of `seconds` at 10 fps panning a 320×320 window across `image` from left to
/// right, so that what is in the image moves right to left in the frame.
pub fn pan_video(image: &Path, out: &Path, seconds: u32) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-loop", "1", "-i"])
        .arg(image)
        .args(["-t", &seconds.to_string(), "-r", "10", "-vf"])
        .arg(format!("crop=320:320:x='(in_w-out_w)*t/{seconds}':y=(in_h-out_h)/2,format=yuv420p"))
        .args(["-c:v", "libx264"])
        .arg(out)
        .status()
        .expect("ffmpeg runs (detector/scripts/setup.sh installs it)");
    assert!(status.success(), "ffmpeg made the test video");
}

/// A small AVI whose header says its frames are `width`×`height`: a 16×16 raw-video
/// frame made by ffmpeg, with the sizes in the AVI header (`avih`) and the stream format
/// (`strf`) written over. ffprobe reports the written sizes, and a decoder would allocate
/// frames of that size: what an upload's pixel budget must refuse before decoding.
pub fn oversized_video(width: u32, height: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tiny.avi");
    let status = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=black:s=16x16:r=1:d=1"])
        .args(["-frames:v", "1", "-c:v", "rawvideo", "-pix_fmt", "bgr24"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs (detector/scripts/setup.sh installs it)");
    assert!(status.success(), "ffmpeg made the tiny video");
    let mut bytes = std::fs::read(&path).expect("the tiny video");
    let at = |bytes: &[u8], tag: &[u8]| bytes.windows(4).position(|w| w == tag).expect("an AVI chunk");
    let (w, h) = (width.to_le_bytes(), height.to_le_bytes());
    // avih: 8 bytes of tag and size, then dwWidth and dwHeight at offsets 32 and 36.
    let avih = at(&bytes, b"avih") + 8;
    bytes[avih + 32..avih + 36].copy_from_slice(&w);
    bytes[avih + 36..avih + 40].copy_from_slice(&h);
    // strf: a BITMAPINFOHEADER, biWidth at 4 and biHeight at 8 (negative: top-down rows).
    let strf = at(&bytes, b"strf") + 8;
    bytes[strf + 4..strf + 8].copy_from_slice(&w);
    let top_down = -i32::try_from(height).expect("a height that fits");
    bytes[strf + 8..strf + 12].copy_from_slice(&top_down.to_le_bytes());
    bytes
}

/// A full click body as the extension sends it.
pub fn click_body(click_id: Uuid, video: &str, x: f64, y: f64, t: f64) -> serde_json::Value {
    serde_json::to_value(ClickBody::new(click_id, video, x, y, t)).expect("a click body is JSON")
}

/// A full click body as the extension sends it, to serialise straight into a request.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClickBody<'a> {
    click_id: Uuid,
    video_id: &'a str,
    x: f64,
    y: f64,
    timestamp: f64,
    player: Size,
    video: Size,
}

#[derive(Debug, serde::Serialize)]
struct Size {
    width: u32,
    height: u32,
}

impl<'a> ClickBody<'a> {
    /// A click in an 800×600 player of a 1280×720 video.
    pub fn new(click_id: Uuid, video: &'a str, x: f64, y: f64, t: f64) -> Self {
        Self {
            click_id,
            video_id: video,
            x,
            y,
            timestamp: t,
            player: Size { width: 800, height: 600 },
            video: Size { width: 1280, height: 720 },
        }
    }
}
