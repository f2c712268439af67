//! Personal data is sealed in the store and the log, and erased by destroying its key.

use std::time::Duration;

use chrono::Utc;
use framecart_api::domain::personal::{MasterKey, Subject};
use framecart_api::processes::retention;
use framecart_api::projections::client_files::FileIp;
use framecart_tests::{TestApp, TestDatabase, click_body, eventually, media_files, send};
use serde_json::Value;
use uuid::Uuid;

const VIEWER_IP: &str = "198.51.100.23";
const COOKIE: &str = "cookie-secret-4711";

async fn spawn() -> TestApp {
    TestApp::spawn_with(|s| {
        s.http.trusted_proxies = vec!["127.0.0.1/32".parse().expect("a net")];
        s.http.viewer_cookie = Some("fc_viewer".into());
    })
    .await
}

/// An anonymous viewer's click, through the trusted proxy, with the viewer cookie.
async fn post_click(app: &TestApp, x: f64) -> Uuid {
    let click_id = Uuid::new_v4();
    let request = app
        .http
        .post(app.url("/api/v1/clicks"))
        .header("x-forwarded-for", VIEWER_IP)
        .header("cookie", format!("fc_viewer={COOKIE}"))
        .json(&click_body(click_id, "VESeA6leQuk", x, 300.0, 1.5));
    let (status, answer) = send(request).await;
    assert_eq!(status, 202, "{answer}");
    click_id
}

/// Every row of every table of the installation's database, as text.
async fn every_row(app: &TestApp) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT quote_ident(table_name) FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&app.db)
    .await
    .expect("tables");
    let mut all = String::new();
    for table in tables {
        let rows: Vec<String> =
            sqlx::query_scalar(&format!("SELECT t::text FROM {table} t")).fetch_all(&app.db).await.expect("rows");
        all.push_str(&rows.join("\n"));
    }
    all
}

/// Every message of the installation's stream, raw, read with plain NATS requests.
async fn every_message(app: &TestApp) -> String {
    let mut all = String::new();
    for sequence in 1..=app.stream_len().await {
        let message = app.stream_message(sequence).await;
        all.push_str(&String::from_utf8_lossy(&message.payload));
        all.push_str(&format!("{:?}", message.headers));
    }
    all
}

fn client_files(app: &TestApp) -> Vec<String> {
    media_files(&app.media_dir().join("client_files")).into_keys().collect()
}

/// Waits until every committed event is on the log and applied by every view.
async fn settle(app: &TestApp) {
    app.wait_for_log().await;
    app.wait_for_projections().await;
}

/// Waits until no client file is left (the only viewer's were erased).
async fn files_deleted(app: &TestApp) {
    eventually("the viewer's files deleted", Duration::from_secs(10), || async {
        client_files(app).is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_anonymous_viewers_address_and_cookie_are_sealed_then_erased_after_retention() {
    let app = spawn().await;
    let clicks = [post_click(&app, 100.0).await, post_click(&app, 200.0).await];
    app.wait_for_clicks_view().await;
    app.wait_for_client_files().await;

    // In clear only where they are read: the view and the file (named by the address).
    let (status, view) = app.get(&format!("/api/v1/clicks/{}", clicks[0])).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        (view["client_ip"].as_str(), view["viewer"].as_str()),
        (Some(VIEWER_IP), Some("cookie:cookie-secret-4711"))
    );
    assert_eq!(client_files(&app), vec![format!("None_{VIEWER_IP}_VESeA6leQuk.json")]);
    // Never in the store's events or in the log.
    let events: Vec<String> =
        sqlx::query_scalar("SELECT payload::text FROM events").fetch_all(&app.db).await.expect("events");
    let events = events.join("\n");
    assert!(events.contains("anonymous-") && !events.contains(VIEWER_IP) && !events.contains(COOKIE), "{events}");
    app.wait_for_log().await;
    let log = every_message(&app).await;
    assert!(!log.contains(VIEWER_IP) && !log.contains(COOKIE));

    // A day past its retention period is erased by the job, once.
    let today = Utc::now().date_naive();
    let commands = &app.running.state.commands;
    assert!(retention::erase_expired(commands, today, 90).await.expect("retention").is_empty());
    let later = today + chrono::Days::new(91);
    let erased = retention::erase_expired(commands, later, 90).await.expect("retention");
    assert_eq!(erased, vec![Subject::anonymous(today)]);
    assert!(retention::erase_expired(commands, later, 90).await.expect("again").is_empty());
    let recorded: (String, serde_json::Value) = sqlx::query_as(
        "SELECT event_type, payload FROM events WHERE aggregate_type = 'data_subject' AND aggregate_id = $1",
    )
    .bind(Subject::anonymous(today).as_str())
    .fetch_one(&app.db)
    .await
    .expect("the job records what it destroyed");
    assert_eq!(recorded.0, "PersonalDataErased");
    assert_eq!(recorded.1["PersonalDataErased"]["reason"], "retention");

    // The views forget the address and cookie, the file is deleted, and no table holds them.
    settle(&app).await;
    app.wait_for_client_files().await;
    let erased_view = |app: &TestApp| {
        let app_url = app.url(&format!("/api/v1/clicks/{}", clicks[1]));
        let admin = app.admin.clone();
        async move { send(admin.get(app_url)).await }
    };
    let (_, view) = erased_view(&app).await;
    assert_eq!((view["client_ip"].clone(), view["viewer"].as_str()), (serde_json::Value::Null, Some("erased")));
    files_deleted(&app).await;
    let rows = every_row(&app).await;
    assert!(!rows.contains(VIEWER_IP) && !rows.contains(COOKIE));

    // A rebuild of every view brings nothing back, and the chain still holds.
    app.cli(&["replay", "--rebuild"]).await.expect("replay --rebuild");
    app.wait_for_client_files().await;
    let (_, view) = erased_view(&app).await;
    assert_eq!(view["viewer"], "erased");
    assert!(client_files(&app).is_empty());
    let rows = every_row(&app).await;
    assert!(!rows.contains(VIEWER_IP) && !rows.contains(COOKIE));
    app.cli(&["audit", "verify"]).await.expect("the chain holds");

    // The day's key is gone for good: no key is made again for an erased subject.
    let keys = &app.running.state.keys;
    keys.forget(&Subject::anonymous(today));
    let sealed = keys.seal(&Subject::anonymous(today), &VIEWER_IP.to_owned()).await;
    assert!(matches!(sealed, Err(framecart_api::commands::keys::KeyError::Erased(_))), "{sealed:?}");
}

#[tokio::test]
async fn a_wrong_or_missing_master_key_fails_at_start() {
    let app = spawn().await;
    post_click(&app, 10.0).await;
    let mut settings = app.running.state.settings.clone();
    settings.master_key = Some(MasterKey::from_bytes([9; 32]));
    let error = framecart_api::Infra::connect_reading(&settings, "test").await.err().expect("refused");
    assert!(error.to_string().contains("FRAMECART_MASTER_KEY does not open"), "{error}");
    settings.master_key = None;
    let error = framecart_api::Infra::connect_reading(&settings, "test").await.err().expect("refused");
    assert!(error.to_string().contains("FRAMECART_MASTER_KEY is not set"), "{error}");
    // With the right one, it starts.
    settings.master_key = Some(framecart_tests::test_master_key());
    framecart_api::Infra::connect_reading(&settings, "test").await.expect("the right key opens");
}

#[tokio::test]
async fn a_user_erases_their_own_personal_data_and_an_admin_erases_anothers() {
    let app = spawn().await;
    let (viewer, viewer_id) = app.user("erase-me@example.com", &[]).await;
    let click_id = Uuid::new_v4();
    let request = viewer
        .post(app.url("/api/v1/clicks"))
        .header("x-forwarded-for", VIEWER_IP)
        .header("cookie", format!("fc_viewer={COOKIE}"))
        .json(&click_body(click_id, "VESeA6leQuk", 40.0, 30.0, 2.0));
    assert_eq!(send(request).await.0, 202);
    app.wait_for_clicks_view().await;
    app.wait_for_client_files().await;
    assert_eq!(client_files(&app), vec![format!("{viewer_id}_{VIEWER_IP}_VESeA6leQuk.json")]);
    let sealed_under: String = sqlx::query_scalar("SELECT subject FROM clicks_view WHERE click_id = $1")
        .bind(click_id)
        .fetch_one(&app.db)
        .await
        .expect("the click");
    assert_eq!(sealed_under, format!("user-{viewer_id}"), "a signed-in viewer's click is under their key");

    // Another viewer may not erase them; they may, and asking again answers the same.
    let (other, _) = app.user("someone-else@example.com", &[]).await;
    let (status, _) = send(other.delete(app.url(&format!("/api/v1/users/{viewer_id}/personal-data")))).await;
    assert_eq!(status, 403);
    let (status, erasure) = send(viewer.delete(app.url("/api/v1/users/me/personal-data"))).await;
    assert_eq!(status, 200, "{erasure}");
    assert_eq!(
        (erasure["subject"].as_str(), erasure["reason"].as_str()),
        (Some(&*format!("user-{viewer_id}")), Some("request"))
    );
    let (status, again) = send(viewer.delete(app.url("/api/v1/users/me/personal-data"))).await;
    assert_eq!((status, &again["erased_at"]), (200, &erasure["erased_at"]));

    settle(&app).await;
    files_deleted(&app).await;
    let (_, view) = send(app.admin.get(app.url(&format!("/api/v1/clicks/{click_id}")))).await;
    assert_eq!((view["client_ip"].clone(), view["viewer"].as_str()), (serde_json::Value::Null, Some("erased")));
    let rows = every_row(&app).await;
    assert!(!rows.contains(VIEWER_IP) && !rows.contains(COOKIE));

    // An admin erases another user's.
    let (status, erasure) =
        send(app.admin.delete(app.url(&format!("/api/v1/users/{}/personal-data", Uuid::new_v4())))).await;
    assert_eq!((status, erasure["reason"].as_str()), (200, Some("request")));
    assert!(erasure["by"].as_str().is_some_and(|by| by.starts_with("user:")));
}

/// A product the admin creates (the admin may do what a merchant does).
async fn create_product(app: &TestApp, article: &str) {
    let body = serde_json::json!({"article": article, "name": "Rain jacket", "price_minor": 1999, "currency": "EUR", "stock": 5});
    let (status, product) = app.post("/api/v1/products", &body).await;
    assert_eq!(status, 201, "{product}");
}

#[tokio::test]
async fn an_erased_buyer_appears_nowhere_and_their_orders_still_add_up() {
    const EMAIL: &str = "ada.lovelace@example.org";
    const NAME: &str = "Ada Byron-Lovelace";
    const STREET: &str = "Hauptstraße 77";
    const PHONE: &str = "+49 30 5550199";
    let app = spawn().await;
    create_product(&app, "SKU-PD").await;
    let (buyer, buyer_id) = app.user(EMAIL, &[]).await;
    let click_id = Uuid::new_v4();
    let request = buyer
        .post(app.url("/api/v1/clicks"))
        .header("x-forwarded-for", VIEWER_IP)
        .header("cookie", format!("fc_viewer={COOKIE}"))
        .json(&click_body(click_id, "VESeA6leQuk", 40.0, 30.0, 2.0));
    assert_eq!(send(request).await.0, 202);
    let order = serde_json::json!({
        "lines": [{"article": "SKU-PD", "quantity": 2}],
        "click_id": click_id,
        "contact": {"name": NAME, "email": EMAIL, "phone": PHONE},
        "shipping_address": {"line1": STREET, "city": "Berlin", "postal_code": "10115", "country": "DE"},
    });
    let (status, placed) =
        send(buyer.post(app.url("/api/v1/orders")).header("Idempotency-Key", "pd-1").json(&order)).await;
    assert_eq!(status, 201, "{placed}");
    assert_eq!(placed["contact"]["name"], NAME, "the buyer sees their own contact");
    let order_id = placed["id"].as_str().expect("an id").to_owned();
    let payment = serde_json::json!({"provider": "fake", "card_number": "4242424242424242"});
    let (status, paid) = send(buyer.post(app.url(&format!("/api/v1/orders/{order_id}/payments"))).json(&payment)).await;
    assert!(status < 300, "{paid}");
    eventually("the order paid", Duration::from_secs(20), || async {
        let (_, order) = send(buyer.get(app.url(&format!("/api/v1/orders/{order_id}")))).await;
        (order["status"] == "paid").then_some(())
    })
    .await;
    settle(&app).await;
    app.wait_for_client_files().await;
    let secrets = [VIEWER_IP, COOKIE, EMAIL, NAME, STREET, PHONE];

    // The export holds all of it; the store and the log hold none of it in clear.
    let (status, export) = send(buyer.get(app.url("/api/v1/users/me/export"))).await;
    assert_eq!(status, 200, "{export}");
    assert_eq!(export["profile"]["email"], EMAIL);
    assert_eq!(export["clicks"][0]["client_ip"], VIEWER_IP);
    assert_eq!(export["orders"][0]["shipping_address"]["line1"], STREET);
    assert_eq!(export["payments"][0]["status"], "succeeded");
    let events: Vec<String> =
        sqlx::query_scalar("SELECT payload::text FROM events").fetch_all(&app.db).await.expect("events");
    let log = every_message(&app).await;
    for secret in secrets {
        assert!(!events.iter().any(|e| e.contains(secret)), "{secret} in an event");
        assert!(!log.contains(secret), "{secret} in the log");
    }
    let audited = |app: &TestApp| {
        let url = app.url(&format!("/api/v1/audit/streams/click/{click_id}"));
        let admin = app.admin.clone();
        async move {
            let (status, stream) = send(admin.get(url)).await;
            assert_eq!(status, 200, "{stream}");
            stream["items"][0]["personal_data"].clone()
        }
    };
    let fields = audited(&app).await;
    assert_eq!(fields[0]["field"], "/ClickRecorded/client_ip");
    assert_eq!(
        (fields[0]["subject"].clone(), fields[0]["state"].as_str()),
        (format!("user-{buyer_id}").into(), Some("sealed"))
    );
    let analytics_before = app.get("/api/v1/videos/VESeA6leQuk/analytics").await.1;
    assert_eq!(analytics_before["orders"], 1);
    assert_eq!(analytics_before["paid_orders"], 1);

    let (status, _) = send(buyer.delete(app.url("/api/v1/users/me/personal-data"))).await;
    assert_eq!(status, 200);
    settle(&app).await;
    files_deleted(&app).await;

    let nowhere = |what: &str, text: &str| {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} is still in {what}");
        }
    };
    nowhere("a table", &every_row(&app).await);
    let fields = audited(&app).await;
    let states: Vec<&str> = fields.as_array().expect("fields").iter().filter_map(|f| f["state"].as_str()).collect();
    assert_eq!(states, ["erased", "erased"], "the audit API shows the address and cookie as erased: {fields}");
    nowhere("the log", &every_message(&app).await);
    // Orders keep their lines, totals and payments; the views show the personal fields
    // as erased.
    let (status, order) = send(app.admin.get(app.url(&format!("/api/v1/orders/{order_id}")))).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!((order["total_minor"].as_i64(), order["status"].as_str()), (Some(3998), Some("paid")));
    assert_eq!((order["contact"].clone(), order["shipping_address"].clone()), (Value::Null, Value::Null));
    let (_, users) = app.get("/api/v1/users?limit=1000").await;
    let erased = users["items"].as_array().expect("users").iter().find(|u| u["user_id"] == buyer_id.as_str()).cloned();
    assert_eq!(erased.expect("the account stays")["email"], Value::Null);
    assert_eq!(app.get("/api/v1/videos/VESeA6leQuk/analytics").await.1, analytics_before);
    // They sign in no more.
    let (status, _) = send(
        app.http
            .post(app.url("/api/v1/sessions"))
            .json(&serde_json::json!({"email": EMAIL, "password": "a password for tests"})),
    )
    .await;
    assert_eq!(status, 401);

    // A rebuild of every view brings nothing back, and the chain holds.
    app.cli(&["replay", "--rebuild"]).await.expect("replay --rebuild");
    app.wait_for_client_files().await;
    nowhere("a table after a rebuild", &every_row(&app).await);
    assert!(client_files(&app).is_empty());
    let (_, order) = send(app.admin.get(app.url(&format!("/api/v1/orders/{order_id}")))).await;
    assert_eq!((order["total_minor"].as_i64(), order["contact"].clone()), (Some(3998), Value::Null));
    assert_eq!(app.get("/api/v1/videos/VESeA6leQuk/analytics").await.1, analytics_before);
    app.cli(&["audit", "verify"]).await.expect("the chain holds");
}

#[tokio::test]
async fn client_file_names_keep_as_much_of_the_address_as_configured() {
    for (file_ip, part) in [(FileIp::Truncated, "198.51.100.0"), (FileIp::None, "None")] {
        let app = TestApp::spawn_with(|s| {
            s.http.trusted_proxies = vec!["127.0.0.1/32".parse().expect("a net")];
            s.settings.client_file_ip = file_ip;
        })
        .await;
        post_click(&app, 10.0).await;
        app.wait_for_client_files().await;
        assert_eq!(client_files(&app), vec![format!("None_{part}_VESeA6leQuk.json")]);
    }
}

#[tokio::test]
async fn rotating_the_master_key_keeps_every_value_readable_under_the_new_key_only() {
    let app = spawn().await;
    let click_id = post_click(&app, 10.0).await;
    app.wait_for_clicks_view().await;
    let new = "c0ffee".repeat(10) + "c0ff";
    app.cli(&["rotate-master-key", "--new-master-key", &new]).await.expect("rotated");
    // The old key opens nothing any more; the new one opens what was sealed before.
    let mut settings = app.running.state.settings.clone();
    let error = framecart_api::Infra::connect_reading(&settings, "test").await.err().expect("the old key is refused");
    assert!(error.to_string().contains("does not open"), "{error}");
    settings.master_key = Some(MasterKey::parse(&new).expect("a key"));
    framecart_api::Infra::connect_reading(&settings, "test").await.expect("the new key opens");
    let keys = framecart_api::commands::keys::Keyring::open(app.db.clone(), MasterKey::parse(&new).expect("a key"))
        .await
        .expect("a keyring");
    let stored: Value = sqlx::query_scalar("SELECT payload::jsonb FROM events WHERE aggregate_id = $1")
        .bind(click_id.to_string())
        .fetch_one(&app.db)
        .await
        .expect("the click");
    let ip: framecart_api::domain::personal::Personal<std::net::IpAddr> =
        serde_json::from_value(stored["ClickRecorded"]["client_ip"].clone()).expect("a sealed address");
    assert_eq!(keys.reveal(&ip).await.expect("a key").map(|ip| ip.to_string()).as_deref(), Some(VIEWER_IP));
}

#[tokio::test]
async fn an_address_is_claimed_once_and_freed_by_a_failed_registration() {
    use framecart_api::commands::accounts;
    use framecart_api::domain::user::Email;
    let app = spawn().await;
    let email = Email::parse("claimed@example.org").expect("an address");
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    assert!(accounts::claim(&app.db, first, &email, "$argon2id$first").await.expect("claim"));
    assert!(!accounts::claim(&app.db, second, &email, "$argon2id$second").await.expect("claim"), "claimed already");
    assert!(accounts::by_email(&app.db, &email).await.expect("lookup").is_none(), "not registered yet");
    accounts::release(&app.db, first).await.expect("release");
    assert!(accounts::claim(&app.db, second, &email, "$argon2id$second").await.expect("claim"), "free again");
    accounts::registered(&app.db, second).await.expect("registered");
    accounts::release(&app.db, second).await.expect("a registered account is not released");
    let account = accounts::by_email(&app.db, &email).await.expect("lookup").expect("registered");
    assert_eq!((account.user_id, account.password_hash.as_deref()), (second, Some("$argon2id$second")));
}

/// A database as the version before sealing left it: every migration before it applied,
/// and events of version 1.0 with their personal data in clear.
async fn database_of_the_previous_version(email: &str, password: &str, click_id: Uuid) -> TestDatabase {
    use std::borrow::Cow;

    use framecart_api::commands::db::MIGRATOR;
    use sha2::Digest;
    use sqlx::migrate::Migrator;
    const SEALING: i64 = 20261210000001;
    let database = TestDatabase::create().await.expect("a database");
    let pool = sqlx::PgPool::connect(&database.url).await.expect("a pool");
    let before: Vec<_> = MIGRATOR.migrations.iter().filter(|m| m.version < SEALING).cloned().collect();
    Migrator { migrations: Cow::Owned(before), ..Migrator::DEFAULT }.run(&pool).await.expect("the old schema");
    let hash = framecart_api::auth::hash_password(password).expect("a hash");
    let digest = hex::encode(sha2::Sha256::digest(email.as_bytes()));
    let registered = serde_json::json!({"UserRegistered": {"user_id": Uuid::now_v7(), "email": email,
        "password_hash": hash, "roles": ["viewer"], "registered_at": "2026-11-30T10:00:00Z"}});
    let mut click: Value = serde_json::from_str(include_str!("../../domain/tests/golden/click/ClickRecorded.json"))
        .expect("the golden click");
    click["payload"]["ClickRecorded"]["click_id"] = click_id.to_string().into();
    click["payload"]["ClickRecorded"]["client_ip"] = VIEWER_IP.into();
    for (aggregate_type, aggregate_id, event_type, payload) in [
        ("user", digest, "UserRegistered", registered),
        ("click", click_id.to_string(), "ClickRecorded", click["payload"].clone()),
    ] {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ($1, $2, 1, $3, '1.0', $4, '{}')",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(event_type)
        .bind(payload)
        .execute(&pool)
        .await
        .expect("an old event");
    }
    pool.close().await;
    database
}

#[tokio::test]
async fn an_upgraded_installation_keeps_its_accounts_and_reads_its_clear_events() {
    const EMAIL: &str = "before.sealing@example.org";
    const PASSWORD: &str = "a password from before";
    let click_id = Uuid::new_v4();
    let database = database_of_the_previous_version(EMAIL, PASSWORD, click_id).await;
    let app = TestApp::spawn_on(database, |_| {}).await;

    // The account was carried into `accounts`: it signs in, and the view reads its
    // address from the old event.
    let client = framecart_tests::signed_in_client(&app.base_url, EMAIL, PASSWORD).await;
    settle(&app).await;
    let (status, me) = send(client.get(app.url("/api/v1/users/me"))).await;
    assert_eq!((status, me["email"].as_str()), (200, Some(EMAIL)), "{me}");
    let (_, view) = app.get(&format!("/api/v1/clicks/{click_id}")).await;
    assert_eq!(view["client_ip"], VIEWER_IP, "an old click reads in clear: {view}");

    // Erasing such an account blanks what Framecart derives from it, but its old event
    // still holds the address: events of 1.0 cannot be shredded (the README says so).
    let (status, _) = send(client.delete(app.url("/api/v1/users/me/personal-data"))).await;
    assert_eq!(status, 200);
    settle(&app).await;
    let (_, me) = send(client.get(app.url("/api/v1/users/me"))).await;
    assert_eq!(me["email"], Value::Null);
    let old: String = sqlx::query_scalar("SELECT payload::text FROM events WHERE event_type = 'UserRegistered'")
        .fetch_one(&app.db)
        .await
        .expect("the old registration");
    assert!(old.contains(EMAIL));
}
