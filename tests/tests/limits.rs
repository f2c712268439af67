//! Throttling and bounds: per-address and per-account limits answer 429 with
//! `Retry-After` and the JSON error; weak passwords are refused; a sign-in right after a
//! sign-out works; analytics totals cannot overflow; a video is refused by the size of its
//! frames before anything decodes it; "not a video" tells nothing of the server.
//!
//! The harness turns the rate limits off (every test posts from 127.0.0.1); the tests here
//! turn them on, small.

use std::time::{Duration, Instant};

use framecart_api::ServeSettings;
use framecart_tests::{TestApp, click_body, oversized_video};
use serde_json::{Value, json};
use uuid::Uuid;

const PASSWORD: &str = "a password for tests";

async fn send(request: reqwest::RequestBuilder) -> (u16, Option<String>, Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().expect("ascii").to_owned());
    (status, retry_after, response.json().await.unwrap_or(Value::Null))
}

fn code(answer: &Value) -> &str {
    answer["error"]["code"].as_str().unwrap_or_default()
}

/// The harness's settings plus `configure`, with `127.0.0.1` a trusted proxy so a test can
/// speak from several addresses through `X-Forwarded-For`.
fn behind_proxy(configure: impl FnOnce(&mut ServeSettings)) -> impl FnOnce(&mut ServeSettings) {
    move |s| {
        s.http.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")];
        configure(s);
    }
}

fn sign_in_body(email: &str, password: &str) -> Value {
    json!({"email": email, "password": password})
}

/// A 429 as the limits answer it: the JSON error and a whole number of seconds to wait.
fn assert_rate_limited(status: u16, retry_after: Option<&str>, answer: &Value) -> u64 {
    assert_eq!((status, code(answer)), (429, "rate_limited"), "{answer}");
    assert!(answer["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
    let secs: u64 = retry_after.expect("Retry-After").parse().expect("whole seconds");
    assert!(secs >= 1, "{secs}");
    secs
}

#[tokio::test]
async fn anonymous_clicks_over_the_limit_get_429_with_retry_after_and_pass_again_after_it() {
    let app = TestApp::spawn_with(|s| s.http.rate_clicks = "1/s,3".parse().expect("rate")).await;
    let click = || click_body(Uuid::new_v4(), "VESeA6leQuk", 10.0, 10.0, 1.0);
    for _ in 0..3 {
        let (status, _, answer) = send(app.http.post(app.url("/api/v1/clicks")).json(&click())).await;
        assert_eq!(status, 202, "{answer}");
    }
    let (status, retry_after, answer) = send(app.http.post(app.url("/api/v1/clicks")).json(&click())).await;
    let wait = assert_rate_limited(status, retry_after.as_deref(), &answer);
    assert_eq!(wait, 1, "one click a second comes back within a second");
    // An untrusted peer cannot name another address to get a bucket of its own.
    let forged = app.http.post(app.url("/api/v1/clicks")).header("x-forwarded-for", "203.0.113.7").json(&click());
    assert_eq!(send(forged).await.0, 429);
    // A signed-in viewer's clicks are not anonymous.
    let (status, _, answer) = send(app.admin.post(app.url("/api/v1/clicks")).json(&click())).await;
    assert_eq!(status, 202, "{answer}");

    tokio::time::sleep(Duration::from_secs(wait)).await;
    let (status, _, answer) = send(app.http.post(app.url("/api/v1/clicks")).json(&click())).await;
    assert_eq!(status, 202, "after Retry-After: {answer}");
    // Refused clicks were not recorded: 3 + the signed-in one + the one after the wait.
    app.wait_for_clicks_view().await;
    assert_eq!(app.count("SELECT count(*) FROM clicks_view").await, 5);
}

#[tokio::test]
async fn a_burst_past_the_default_limit_arrives_whole_and_once_when_the_client_honours_retry_after() {
    use futures::StreamExt;
    // The defaults, as `framecart serve` starts without settings (and as the extension's
    // browser tests run it).
    let app = TestApp::spawn_with(|s| s.http.rate_clicks = framecart_api::HttpSettings::default().rate_clicks).await;
    // What the extension's outbox does: send, and on a 429 send the same click (same id)
    // again after Retry-After.
    let deliver = |click_id: Uuid| {
        let app = &app;
        async move {
            let mut refused = 0;
            loop {
                let body = click_body(click_id, "VESeA6leQuk", 10.0, 10.0, 1.0);
                match send(app.http.post(app.url("/api/v1/clicks")).json(&body)).await {
                    (202, _, _) => return refused,
                    (429, Some(wait), _) => {
                        refused += 1;
                        tokio::time::sleep(Duration::from_secs(wait.parse().expect("seconds"))).await;
                    }
                    (status, _, answer) => panic!("{status}: {answer}"),
                }
            }
        }
    };
    let ids: Vec<Uuid> = (0..400).map(|_| Uuid::new_v4()).collect();
    let refusals: Vec<u32> =
        futures::stream::iter(ids.iter().copied()).map(deliver).buffer_unordered(64).collect().await;
    assert!(refusals.iter().sum::<u32>() > 0, "400 clicks at once go past a burst of 200");
    app.wait_for_clicks_view().await;
    assert_eq!(app.count("SELECT count(*) FROM clicks_view").await, 400);
    assert_eq!(app.count("SELECT count(DISTINCT click_id) FROM clicks_view").await, 400);
}

#[tokio::test]
async fn each_address_behind_a_trusted_proxy_has_its_own_click_bucket() {
    let app = TestApp::spawn_with(behind_proxy(|s| s.http.rate_clicks = "1/s,2".parse().expect("rate"))).await;
    let from = |address: &str| {
        let body = click_body(Uuid::new_v4(), "VESeA6leQuk", 10.0, 10.0, 1.0);
        app.http.post(app.url("/api/v1/clicks")).header("x-forwarded-for", address).json(&body)
    };
    for _ in 0..2 {
        assert_eq!(send(from("198.51.100.1")).await.0, 202);
    }
    assert_eq!(send(from("198.51.100.1")).await.0, 429);
    // The client forged a left-most hop; the proxy appended the real one.
    assert_eq!(send(from("198.51.100.2, 198.51.100.1")).await.0, 429);
    assert_eq!(send(from("198.51.100.2")).await.0, 202);
}

#[tokio::test]
async fn failed_sign_ins_lock_the_account_even_for_the_right_password() {
    let app = TestApp::spawn_with(|s| s.http.rate_signin = "3,100".parse().expect("rate")).await;
    app.user("locked@example.org", &[]).await; // one successful sign-in, which does not count
    app.user("other@example.org", &[]).await;
    let sign_in =
        |email: &str, password: &str| app.http.post(app.url("/api/v1/sessions")).json(&sign_in_body(email, password));
    for _ in 0..3 {
        let (status, _, answer) = send(sign_in("locked@example.org", "a wrong password")).await;
        assert_eq!((status, code(&answer)), (401, "invalid_credentials"));
    }
    let started = Instant::now();
    let (status, retry_after, answer) = send(sign_in("locked@example.org", PASSWORD)).await;
    let wait = assert_rate_limited(status, retry_after.as_deref(), &answer);
    assert!((14 * 60..=15 * 60).contains(&wait), "until the first failure is 15 minutes old: {wait}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // The same address may still sign in to another account.
    let (status, _, answer) = send(sign_in("other@example.org", PASSWORD)).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn failed_sign_ins_from_one_address_lock_that_address_for_every_account() {
    let app = TestApp::spawn_with(behind_proxy(|s| s.http.rate_signin = "100,3".parse().expect("rate"))).await;
    app.user("someone@example.org", &[]).await;
    let sign_in = |address: &str, email: &str, password: &str| {
        app.http
            .post(app.url("/api/v1/sessions"))
            .header("x-forwarded-for", address)
            .json(&sign_in_body(email, password))
    };
    for i in 0..3 {
        let (status, _, _) = send(sign_in("203.0.113.9", &format!("guess{i}@example.org"), "a wrong password")).await;
        assert_eq!(status, 401);
    }
    let (status, retry_after, answer) = send(sign_in("203.0.113.9", "someone@example.org", PASSWORD)).await;
    assert_rate_limited(status, retry_after.as_deref(), &answer);
    let (status, _, answer) = send(sign_in("203.0.113.10", "someone@example.org", PASSWORD)).await;
    assert_eq!(status, 200, "another address: {answer}");
}

#[tokio::test]
async fn registrations_are_limited_per_email_address_and_per_client_address() {
    let app = TestApp::spawn_with(behind_proxy(|s| s.http.rate_signin = "2,3".parse().expect("rate"))).await;
    let register = |address: &str, email: &str| {
        app.http.post(app.url("/api/v1/users")).header("x-forwarded-for", address).json(&sign_in_body(email, PASSWORD))
    };
    assert_eq!(send(register("192.0.2.1", "first@example.org")).await.0, 201);
    assert_eq!(send(register("192.0.2.1", "first@example.org")).await.0, 409, "taken, and counted");
    let (status, retry_after, answer) = send(register("192.0.2.2", "first@example.org")).await;
    assert_rate_limited(status, retry_after.as_deref(), &answer);
    assert!(answer["error"]["message"].as_str().is_some_and(|m| m.contains("email")), "{answer}");

    assert_eq!(send(register("192.0.2.1", "second@example.org")).await.0, 201);
    let (status, retry_after, answer) = send(register("192.0.2.1", "third@example.org")).await;
    assert_rate_limited(status, retry_after.as_deref(), &answer);
    assert_eq!(send(register("192.0.2.3", "third@example.org")).await.0, 201, "another address");
    // A weak password is refused before it counts.
    let weak = app
        .http
        .post(app.url("/api/v1/users"))
        .header("x-forwarded-for", "192.0.2.4")
        .json(&sign_in_body("weak@example.org", "password"));
    for _ in 0..5 {
        assert_eq!(send(weak.try_clone().expect("clone")).await.0, 422);
    }
}

#[tokio::test]
async fn weak_passwords_are_refused_with_422_weak_password() {
    let app = TestApp::spawn().await;
    for weak in ["password", "PASSWORD", "aaaaaaaa", "        ", "12345678", "abababababab"] {
        let body = sign_in_body(&format!("{}@example.org", Uuid::new_v4().simple()), weak);
        let (status, _, answer) = send(app.http.post(app.url("/api/v1/users")).json(&body)).await;
        assert_eq!((status, code(&answer)), (422, "weak_password"), "{weak:?}: {answer}");
    }
    let body = sign_in_body("short@example.org", "abc");
    let (status, _, answer) = send(app.http.post(app.url("/api/v1/users")).json(&body)).await;
    assert_eq!((status, code(&answer)), (422, "invalid_password"), "{answer}");
    let body = sign_in_body("fine@example.org", PASSWORD);
    assert_eq!(send(app.http.post(app.url("/api/v1/users")).json(&body)).await.0, 201);
}

#[tokio::test]
async fn a_weak_first_admin_password_stops_the_start() {
    let database = framecart_tests::TestDatabase::create().await.expect("a database");
    let namespace = framecart_tests::TestNamespace::new();
    let media = tempfile::tempdir().expect("media");
    let mut serve = framecart_tests::serve_settings(&database, &namespace, media.path());
    serve.auth.admin_password = Some("Password".into());
    let error = match framecart_api::Running::start(serve).await {
        Ok(running) => {
            running.cancel_all();
            panic!("started with a weak admin password")
        }
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("FRAMECART_ADMIN_PASSWORD") && error.contains("common"), "{error}");
}

#[tokio::test]
async fn a_token_issued_right_after_a_sign_out_is_accepted() {
    let app = TestApp::spawn().await;
    let (_, _) = app.user("leaving@example.org", &[]).await;
    for round in 0..5 {
        let token = framecart_tests::sign_in(&app.base_url, "leaving@example.org", PASSWORD).await;
        let out = app.http.delete(app.url("/api/v1/sessions")).bearer_auth(&token);
        assert_eq!(send(out).await.0, 204, "round {round}");
        assert_eq!(send(app.http.get(app.url("/api/v1/users/me")).bearer_auth(&token)).await.0, 401, "the old token");
        // At once, most likely in the same second as the sign-out.
        let fresh = framecart_tests::sign_in(&app.base_url, "leaving@example.org", PASSWORD).await;
        let (status, _, answer) = send(app.http.get(app.url("/api/v1/users/me")).bearer_auth(&fresh)).await;
        assert_eq!(status, 200, "round {round}: {answer}");
    }
}

#[tokio::test]
async fn analytics_sums_beyond_64_bits_saturate_instead_of_failing() {
    let app = TestApp::spawn().await;
    // Two paid orders of a product priced at i64::MAX, as stored before prices were bounded
    // at the door (and as any number of large orders could add up to).
    for _ in 0..2 {
        sqlx::query(
            "INSERT INTO analytics_orders (order_id, video_id, click_id, status, lines, currency)
             VALUES ($1, 'VESeA6leQuk', $2, 'paid', $3, 'EUR')",
        )
        .bind(Uuid::new_v4())
        .bind(Uuid::new_v4())
        .bind(json!([{"article": "yacht", "quantity": 3, "unit_price_minor": i64::MAX}]))
        .execute(&app.db)
        .await
        .expect("insert");
    }
    let (status, analytics) = app.get("/api/v1/videos/VESeA6leQuk/analytics").await;
    assert_eq!(status, 200, "{analytics}");
    assert_eq!(analytics["paid_orders"], 2);
    let product = &analytics["products"][0];
    assert_eq!(product["article"], "yacht");
    assert_eq!(product["paid_orders"], 2);
    assert_eq!(product["revenue_minor"], i64::MAX, "{analytics}");
    assert_eq!(product["currency"], "EUR");
}

/// The process's resident memory, in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

#[tokio::test]
async fn a_video_over_the_pixel_budget_is_refused_before_anything_decodes_it() {
    let app = TestApp::spawn_with(|s| s.video.detector_workers = 1).await;
    let big = oversized_video(16_000, 16_000);
    assert!(big.len() < 100_000, "a small file: {} bytes", big.len());
    let before = resident_bytes();
    let (status, answer) = app.upload("VESeA6leQuk", "big.avi", big).await;
    assert_eq!((status, code(&answer)), (422, "video_too_large"), "{answer}");
    let message = answer["error"]["message"].as_str().expect("message");
    assert!(message.contains("16000×16000") && message.contains("8294400"), "{message}");
    // One decoded frame would be 768 MB.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = resident_bytes().saturating_sub(before);
    assert!(grown < 300 << 20, "resident memory grew by {} MB", grown >> 20);
    assert_eq!(app.count("SELECT count(*) FROM events WHERE aggregate_type = 'video'").await, 0);
    assert!(!app.media_dir().join("source_video_files/VESeA6leQuk.avi").exists());

    // A budget raised past it lets the same file in (so the refusal was the budget's).
    let roomy = TestApp::spawn_with(|s| s.video.max_video_pixels = 16_000 * 16_000).await;
    let (status, answer) = roomy.upload("VESeA6leQuk", "big.avi", oversized_video(16_000, 16_000)).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!((answer["width"].as_u64(), answer["height"].as_u64()), (Some(16_000), Some(16_000)));
}

#[tokio::test]
async fn not_a_video_says_so_without_naming_a_path_or_quoting_ffprobe() {
    let app = TestApp::spawn().await;
    for (name, bytes) in [("notes.txt", b"hello, this is not a video".to_vec()), ("fake.mp4", vec![0u8; 4096])] {
        let (status, answer) = app.upload("VESeA6leQuk", name, bytes).await;
        assert_eq!((status, code(&answer)), (422, "not_a_video"), "{answer}");
        let message = answer["error"]["message"].as_str().expect("message");
        let media = app.media_dir().to_string_lossy().into_owned();
        for leak in ["/", media.as_str(), ".upload-", "ffprobe", "Invalid data"] {
            assert!(!message.contains(leak), "{leak:?} in {message:?}");
        }
    }
}
