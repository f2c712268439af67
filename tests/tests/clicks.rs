//! Click capture, end to end: HTTP → event store → JetStream → views and files.

use std::collections::HashSet;

use framecart_api::Role;
use framecart_api::domain::log::{self, LoggedEvent};
use framecart_tests::{TestApp, click_body, eventually};
use serde_json::{Value, json};
use uuid::Uuid;

#[tokio::test]
async fn a_posted_click_is_stored_logged_projected_and_written_to_its_file() {
    let app = TestApp::spawn().await;
    let click_id = Uuid::new_v4();
    let mut body = click_body(
        click_id,
        "https://www.youtube.com/watch?v=VESeA6leQuk&list=PL9&index=37",
        431.0625,
        255.0,
        2.983575,
    );
    body["userId"] = json!("viewer_7");

    let (status, answer) = app.post("/api/v1/clicks", &body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer, json!({"click_id": click_id, "video_id": "VESeA6leQuk"}));

    // In the event store, with a global position and metadata, as soon as it is answered.
    let (global_position, event_id, event_type, metadata): (i64, Uuid, String, Value) = sqlx::query_as(
        "SELECT global_position, event_id, event_type, metadata::jsonb FROM events WHERE aggregate_id = $1",
    )
    .bind(click_id.to_string())
    .fetch_one(&app.db)
    .await
    .expect("the event is committed before the answer");
    assert_eq!(event_type, "ClickRecorded");
    assert!(global_position > 0);
    for key in ["correlation_id", "causation_id", "actor", "request_id"] {
        assert!(metadata.get(key).and_then(Value::as_str).is_some_and(|v| !v.is_empty()), "{key} in {metadata}");
    }

    // In the stream, with its headers.
    // (The first admin's registration is logged before it.)
    let position: i64 = eventually("the event in the stream", std::time::Duration::from_secs(10), || async {
        sqlx::query_scalar("SELECT log_position FROM event_log WHERE event_id = $1")
            .bind(event_id)
            .fetch_optional(&app.db)
            .await
            .expect("query")
    })
    .await;
    assert_eq!(app.stream_len().await, 2);
    let message = app.stream_message(u64::try_from(position).expect("positive")).await;
    let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(header("Nats-Msg-Id"), Some(event_id.to_string()));
    assert_eq!(header(log::HEADER_GLOBAL_POSITION), Some(global_position.to_string()));
    assert_eq!(header(log::HEADER_EVENT_TYPE).as_deref(), Some("ClickRecorded"));
    assert_eq!(header(log::HEADER_SEQUENCE).as_deref(), Some("1"));
    assert_eq!(header(log::HEADER_EVENT_VERSION).as_deref(), Some("2.0"));
    // The viewer's address is sealed, in the store and in the log.
    let stored: String = sqlx::query_scalar("SELECT payload::text FROM events WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(&app.db)
        .await
        .expect("the event");
    assert!(stored.contains("sealed") && !stored.contains("127.0.0.1"), "{stored}");
    assert!(!String::from_utf8_lossy(&message.payload).contains("127.0.0.1"));
    assert!(header(log::HEADER_RECORDED_AT).is_some());
    assert!(header(log::HEADER_CORRELATION_ID).is_some());
    assert!(header(log::HEADER_CAUSATION_ID).is_some());
    assert_eq!(message.subject.as_str(), format!("{}.events.click.{click_id}.ClickRecorded", app.namespace.namespace));
    let logged: LoggedEvent = serde_json::from_slice(&message.payload).expect("an event envelope");
    assert_eq!((logged.event_id, logged.global_position), (event_id, global_position));
    assert_eq!(header(log::HEADER_HASH), Some(logged.hash.clone()));
    let (log_position, hash): (i64, String) =
        sqlx::query_as("SELECT log_position, hash FROM event_log WHERE event_id = $1")
            .bind(event_id)
            .fetch_one(&app.db)
            .await
            .expect("the relay recorded it");
    assert_eq!((log_position, hash), (position, logged.hash));

    // In the clicks view, with the frame point computed from the letterboxed player.
    app.wait_for_clicks_view().await;
    let (status, view) = app.get(&format!("/api/v1/clicks/{click_id}")).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["video_id"], "VESeA6leQuk");
    assert_eq!(view["video_id_reported"], "https://www.youtube.com/watch?v=VESeA6leQuk&list=PL9&index=37");
    assert_eq!(view["user_id"], "viewer_7");
    assert_eq!(view["client_ip"], "127.0.0.1");
    // 800×600 player, 1280×720 frame: scale 0.625, 75 px bands above and below.
    assert_eq!(view["frame"]["x"], 431.0625 / 0.625);
    assert_eq!(view["frame"]["y"], (255.0 - 75.0) / 0.625);
    assert_eq!(view["on_black_band"], false);

    // In the viewer's JSON file, in the original format.
    app.wait_for_client_files().await;
    let file = app.client_file("viewer_7_127.0.0.1_VESeA6leQuk.json");
    let text = std::fs::read_to_string(&file).expect("the client file");
    assert_eq!(text, r#"[{"x":431.0625,"y":255,"timestamp":2.983575,"videoId":"VESeA6leQuk"}]"#);
}

#[tokio::test]
async fn a_retried_click_id_is_recorded_once_and_answered_the_same() {
    let app = TestApp::spawn().await;
    let click_id = Uuid::new_v4();
    let body = click_body(click_id, "VESeA6leQuk", 100.0, 300.0, 1.0);
    let first = app.post("/api/v1/clicks", &body).await;
    // Sequential and concurrent retries.
    let second = app.post("/api/v1/clicks", &body).await;
    let concurrent = futures::future::join_all((0..8).map(|_| app.post("/api/v1/clicks", &body))).await;
    assert_eq!(first.0, 202);
    assert_eq!(first, second);
    for answer in concurrent {
        assert_eq!(answer, first);
    }
    assert_eq!(app.count("SELECT count(*) FROM events WHERE aggregate_type = 'click'").await, 1);

    // The same id with other content is refused and changes nothing.
    let (status, error) = app.post("/api/v1/clicks", &click_body(click_id, "VESeA6leQuk", 101.0, 300.0, 1.0)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("click_id_reused")));
    assert_eq!(app.count("SELECT count(*) FROM events WHERE aggregate_type = 'click'").await, 1);
    app.wait_for_clicks_view().await;
    assert_eq!(app.count("SELECT count(*) FROM clicks_view").await, 1);
}

/// Clicks appended together get time-ordered event ids (UUIDv7), in the order of their
/// positions within each transaction: the unique index on `event_id` then grows at its
/// right edge instead of taking each id in a random leaf.
#[tokio::test]
async fn events_appended_together_get_time_ordered_ids_in_their_order() {
    let app = TestApp::spawn().await;
    let started = chrono::Utc::now();
    let bodies: Vec<Value> =
        (0..40).map(|i| click_body(Uuid::new_v4(), "VESeA6leQuk", 10.0 + f64::from(i), 300.0, 1.0)).collect();
    let answers = futures::future::join_all(bodies.iter().map(|body| app.post("/api/v1/clicks", body))).await;
    assert!(answers.iter().all(|(status, _)| *status == 202), "{answers:?}");
    let rows: Vec<(String, Uuid)> = sqlx::query_as(
        "SELECT tx_id::text, event_id FROM events WHERE aggregate_type = 'click' ORDER BY global_position",
    )
    .fetch_all(&app.db)
    .await
    .expect("events");
    assert_eq!(rows.len(), 40);
    for (_, id) in &rows {
        assert_eq!(id.get_version_num(), 7, "{id}");
        let (seconds, _) = id.get_timestamp().expect("a v7 id has a time").to_unix();
        let seconds = i64::try_from(seconds).expect("seconds");
        assert!((seconds - started.timestamp()).abs() < 60, "{id} was made now");
    }
    let mut batched = false;
    for pair in rows.windows(2) {
        if pair[0].0 == pair[1].0 {
            batched = true;
            assert!(pair[0].1 < pair[1].1, "ids in one transaction follow their positions: {pair:?}");
        }
    }
    assert!(batched, "40 concurrent clicks share a transaction somewhere: {rows:?}");
}

#[tokio::test]
async fn the_original_minimal_body_is_accepted_with_a_server_made_id() {
    let app = TestApp::spawn().await;
    let body = json!({"x": 431.0625, "y": 255, "timestamp": 2.983575, "videoId": "VESeA6leQuk&list=PLx&index=37"});
    let (status, first) = app.post("/api/v1/clicks", &body).await;
    assert_eq!(status, 202);
    let (_, second) = app.post("/api/v1/clicks", &body).await;
    assert_ne!(first["click_id"], second["click_id"], "without a client id every post is a new click");
    app.wait_for_clicks_view().await;
    let (_, view) = app.get(&format!("/api/v1/clicks/{}", first["click_id"].as_str().expect("id"))).await;
    assert_eq!(view["video_id"], "VESeA6leQuk");
    assert_eq!(view["frame"], Value::Null);
    app.wait_for_client_files().await;
    let text = std::fs::read_to_string(app.client_file("None_127.0.0.1_VESeA6leQuk.json")).expect("file");
    let entries: Vec<Value> = serde_json::from_str(&text).expect("a JSON list");
    assert_eq!(entries.len(), 2);
}

#[tokio::test]
async fn a_click_on_a_black_band_is_stored_and_flagged() {
    let app = TestApp::spawn().await;
    let click_id = Uuid::new_v4();
    // 800×600 player showing 1280×720: the picture spans y 75..525.
    let (status, _) = app.post("/api/v1/clicks", &click_body(click_id, "VESeA6leQuk", 400.0, 30.0, 3.0)).await;
    assert_eq!(status, 202);
    app.wait_for_clicks_view().await;
    let (_, view) = app.get(&format!("/api/v1/clicks/{click_id}")).await;
    assert_eq!(view["on_black_band"], true);
    assert!(view["frame"]["v"].as_f64().expect("v") < 0.0);
}

#[tokio::test]
async fn bad_input_gets_a_clear_json_error_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let ok = || click_body(Uuid::new_v4(), "VESeA6leQuk", 10.0, 10.0, 1.0);
    let with = |key: &str, value: Value| {
        let mut body = ok();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = ok();
        body.as_object_mut().expect("object").remove(key);
        body
    };
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("missing videoId", without("videoId"), 422, "invalid_body"),
        ("missing x", without("x"), 422, "invalid_body"),
        ("missing timestamp", without("timestamp"), 422, "invalid_body"),
        ("string timestamp", with("timestamp", json!("1.0")), 422, "invalid_body"),
        ("negative time", with("timestamp", json!(-0.1)), 422, "invalid_timestamp"),
        ("absurd time", with("timestamp", json!(1e12)), 422, "invalid_timestamp"),
        ("negative x", with("x", json!(-5)), 422, "invalid_position"),
        ("outside the player", with("y", json!(601)), 422, "invalid_position"),
        ("zero-width player", with("player", json!({"width": 0, "height": 600})), 422, "invalid_size"),
        ("absurd frame", with("video", json!({"width": 1e7, "height": 720})), 422, "invalid_size"),
        ("player without video", without("video"), 422, "incomplete_sizes"),
        ("path as video id", with("videoId", json!("../../../etc/passwd")), 422, "invalid_video_id"),
        ("foreign URL", with("videoId", json!("https://evil.example/watch?v=VESeA6leQuk")), 422, "invalid_video_id"),
        ("short id", with("videoId", json!("VESeA6leQu")), 422, "invalid_video_id"),
        ("path as user id", with("userId", json!("../../x")), 422, "invalid_user_id"),
        ("dotted user id", with("userId", json!("a.b")), 422, "invalid_user_id"),
        ("long user id", with("userId", json!("u".repeat(65))), 422, "invalid_user_id"),
        ("bad click id", with("clickId", json!("not-a-uuid")), 422, "invalid_body"),
    ];
    for (what, body, status, code) in cases {
        let (got, error) = app.post("/api/v1/clicks", &body).await;
        assert_eq!(got, status, "{what}: {error}");
        assert_eq!(error["error"]["code"], code, "{what}: {error}");
        assert!(error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}");
    }

    let raw = |body: &'static str, content_type: &'static str| {
        app.http.post(app.url("/api/v1/clicks")).header("content-type", content_type).body(body).send()
    };
    for (what, response, status, code) in [
        ("malformed", raw("{\"x\": 1,", "application/json").await, 400, "malformed_json"),
        (
            "NaN",
            raw(r#"{"x":1,"y":1,"timestamp":NaN,"videoId":"VESeA6leQuk"}"#, "application/json").await,
            400,
            "malformed_json",
        ),
        ("not JSON", raw("x=1", "application/x-www-form-urlencoded").await, 415, "unsupported_media_type"),
    ] {
        let response = response.expect("request");
        assert_eq!(response.status().as_u16(), status, "{what}");
        let error: Value = response.json().await.expect("a JSON error");
        assert_eq!(error["error"]["code"], code, "{what}");
    }

    let huge = json!({"videoId": "VESeA6leQuk", "x": 1, "y": 1, "timestamp": 1, "pad": "a".repeat(70_000)});
    let (status, error) = app.post("/api/v1/clicks", &huge).await;
    assert_eq!((status, error["error"]["code"].as_str()), (413, Some("payload_too_large")));

    assert_eq!(app.count("SELECT count(*) FROM events WHERE aggregate_type = 'click'").await, 0, "nothing is stored");
    assert!(!app.media_dir().join("client_files").exists(), "no file is written");
    // The server is still healthy after all that.
    assert_eq!(app.post("/api/v1/clicks", &ok()).await.0, 202);
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let trusting = TestApp::spawn_with(|s| s.http.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")]).await;
    let untrusting = TestApp::spawn().await;
    for (app, expected) in [(&trusting, "198.51.100.7"), (&untrusting, "127.0.0.1")] {
        let click_id = Uuid::new_v4();
        let response = app
            .http
            .post(app.url("/api/v1/clicks"))
            .header("x-forwarded-for", "6.6.6.6, 198.51.100.7")
            .json(&click_body(click_id, "VESeA6leQuk", 1.0, 100.0, 1.0))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 202);
        app.wait_for_clicks_view().await;
        let (_, view) = app.get(&format!("/api/v1/clicks/{click_id}")).await;
        assert_eq!(view["client_ip"], expected);
        assert_eq!(view["viewer"], format!("ip:{expected}"));
    }
}

#[tokio::test]
async fn the_configured_cookie_identifies_the_viewer() {
    let app = TestApp::spawn_with(|s| s.http.viewer_cookie = Some("fc_viewer".into())).await;
    let click_id = Uuid::new_v4();
    let response = app
        .http
        .post(app.url("/api/v1/clicks"))
        .header("cookie", "other=1; fc_viewer=v-42")
        .json(&click_body(click_id, "VESeA6leQuk", 1.0, 100.0, 1.0))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 202);
    app.wait_for_clicks_view().await;
    let (_, page) = app.get("/api/v1/clicks?viewer=cookie:v-42").await;
    assert_eq!(page["items"][0]["click_id"], json!(click_id));
}

#[tokio::test]
async fn clicks_are_listed_by_video_user_and_viewer_page_by_page() {
    let app = TestApp::spawn().await;
    let mut posted = Vec::new();
    for i in 0..7 {
        let video = if i % 2 == 0 { "VESeA6leQuk" } else { "dQw4w9WgXcQ" };
        let mut body = click_body(Uuid::new_v4(), video, 10.0, 100.0, f64::from(i));
        if i < 3 {
            body["userId"] = json!("alice");
        }
        let (status, answer) = app.post("/api/v1/clicks", &body).await;
        assert_eq!(status, 202);
        posted.push(answer["click_id"].clone());
    }
    app.wait_for_clicks_view().await;

    let ids = |page: &Value| -> Vec<Value> {
        page["items"].as_array().expect("items").iter().map(|c| c["click_id"].clone()).collect()
    };
    let (_, by_video) = app.get("/api/v1/clicks?video_id=https://youtu.be/VESeA6leQuk").await;
    assert_eq!(ids(&by_video).len(), 4);
    let (_, by_user) = app.get("/api/v1/clicks?user_id=alice").await;
    assert_eq!(ids(&by_user).len(), 3);
    let (_, by_viewer) = app.get("/api/v1/clicks?viewer=ip:127.0.0.1").await;
    assert_eq!(ids(&by_viewer).len(), 7);

    // Paging walks every click once, in log order.
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = app.get(&format!("/api/v1/clicks?limit=3&after={after}")).await;
        assert_eq!(status, 200);
        seen.extend(ids(&page));
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => break,
        }
    }
    let unique: HashSet<String> = seen.iter().map(Value::to_string).collect();
    assert_eq!(unique.len(), 7);
    assert_eq!(seen.len(), 7);

    for (query, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=5000", "invalid_limit"),
        ("video_id=../etc", "invalid_video_id"),
        ("user_id=a/b", "invalid_user_id"),
    ] {
        let (status, error) = app.get(&format!("/api/v1/clicks?{query}")).await;
        assert_eq!((status, error["error"]["code"].as_str()), (422, Some(code)), "{query}");
    }
    let (status, error) = app.get("/api/v1/clicks?limit=many").await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("invalid_query")));
    let (status, error) = app.get(&format!("/api/v1/clicks/{}", Uuid::new_v4())).await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn health_readiness_and_the_openapi_document_are_served() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz").await, (200, json!({"status": "ok"})));
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(ready["checks"], json!({"postgres": "ok", "nats": "ok", "quarantine": "ok", "quarantined": {}}));
    let (status, doc) = app.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    for path in ["/api/v1/clicks", "/api/v1/clicks/{click_id}", "/healthz", "/readyz"] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert!(doc["paths"]["/api/v1/clicks"]["post"]["responses"]["422"].is_object());
    // Every operation documents the errors any route may answer (a fuzzer meets no
    // undocumented status).
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            for status in ["400", "401", "403", "404", "422", "429", "503"] {
                assert!(operation["responses"][status].is_object(), "{method} {path} documents {status}");
            }
        }
    }
    let (status, error) = app.get("/no/such/route").await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn only_configured_origins_get_cors_headers() {
    let extension = "chrome-extension://abcdefghijklmnopabcdefghijklmnop";
    let app = TestApp::spawn_with(|s| s.http.cors_origins = vec![extension.into()]).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/clicks"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight(extension).await.expect("preflight");
    assert_eq!(allowed.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()), Some(extension));
    let other = preflight("https://evil.example").await.expect("preflight");
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_signed_in_click_and_its_personal_fields_are_its_owner_s_and_staff_s_only() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = app.user("alice@framecart.test", &[]).await;
    let (bob, _) = app.user("bob@framecart.test", &[]).await;
    let (merchant, _) = app.user("merchant@framecart.test", &["merchant"]).await;
    let (auditor, _) = app.user("auditor@framecart.test", &["auditor"]).await;
    let click_id = Uuid::new_v4();
    let sent = alice.post(app.url("/api/v1/clicks")).json(&click_body(click_id, "VESeA6leQuk", 10.0, 10.0, 1.0));
    assert_eq!(sent.send().await.expect("a click").status().as_u16(), 202);
    app.wait_for_clicks_view().await;

    let status = |client: &reqwest::Client, path: String| {
        let request = client.get(app.url(&path));
        async move { request.send().await.expect("an answer").status().as_u16() }
    };
    let click = format!("/api/v1/clicks/{click_id}");
    let verdict = format!("/api/v1/clicks/{click_id}/match");
    assert_eq!(status(&app.http, click.clone()).await, 401, "anonymous");
    assert_eq!(status(&bob, click.clone()).await, 404, "another viewer");
    assert_eq!(status(&app.http, verdict.clone()).await, 404, "anonymous, match");
    assert_eq!(status(&bob, verdict.clone()).await, 404, "another viewer, match");
    for (who, client) in [("owner", &alice), ("merchant", &merchant), ("auditor", &auditor), ("admin", &app.admin)] {
        assert_eq!(status(client, click.clone()).await, 200, "{who}");
        assert_eq!(status(client, verdict.clone()).await, 200, "{who}, match");
    }
    let mine: Value = alice.get(app.url(&click)).send().await.expect("an answer").json().await.expect("JSON");
    assert_eq!(mine["user_id"], json!(alice_id));
    assert_eq!(mine["client_ip"], json!("127.0.0.1"));
    // Bob's list holds none of Alice's clicks; hers holds hers.
    let list = |client: &reqwest::Client| {
        let request = client.get(app.url("/api/v1/clicks"));
        async move { request.send().await.expect("an answer").json::<Value>().await.expect("JSON")["items"].clone() }
    };
    assert_eq!(list(&bob).await, json!([]));
    assert_eq!(list(&alice).await.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn an_anonymous_click_s_verdict_is_answered_by_its_id_without_personal_fields() {
    let app = TestApp::spawn().await;
    let (viewer, viewer_id) = app.user("viewer@framecart.test", &[]).await;
    // Without a token a reported user id is only a claim, even one naming an account.
    let click_id = Uuid::new_v4();
    let mut body = click_body(click_id, "VESeA6leQuk", 10.0, 10.0, 1.0);
    body["userId"] = json!(viewer_id);
    assert_eq!(app.post("/api/v1/clicks", &body).await.0, 202);
    app.wait_for_clicks_view().await;

    let verdict = app.http.get(app.url(&format!("/api/v1/clicks/{click_id}/match"))).send().await.expect("answer");
    assert_eq!(verdict.status().as_u16(), 200);
    let verdict: Value = verdict.json().await.expect("JSON");
    assert_eq!(verdict["status"], json!("pending"));
    assert_eq!(verdict["user_id"], Value::Null, "no personal field for the holder of the id");
    let click = format!("/api/v1/clicks/{click_id}");
    assert_eq!(app.http.get(app.url(&click)).send().await.expect("answer").status().as_u16(), 401);
    assert_eq!(viewer.get(app.url(&click)).send().await.expect("answer").status().as_u16(), 404);
    let listed: Value = viewer.get(app.url("/api/v1/clicks")).send().await.expect("answer").json().await.expect("JSON");
    assert_eq!(listed["items"], json!([]), "a claimed click is not the account's");
    let (status, seen) = app.get(&format!("/api/v1/clicks/{click_id}/match")).await;
    assert_eq!((status, &seen["user_id"]), (200, &json!(viewer_id)), "staff see the reported id");
}

#[tokio::test]
async fn a_stop_publishes_what_is_committed_and_ends_within_its_grace() {
    let mut app = TestApp::spawn_bare(&[Role::Api]).await;
    // A backlog the relay has not seen: committed while no relay ran.
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT 'backlog', gen_random_uuid()::text, 1, 'Waited', '1.0', '{}', '{}' FROM generate_series(1, 10000)",
    )
    .execute(&app.db)
    .await
    .expect("a backlog");
    app.running.start_relay();
    let started = std::time::Instant::now();
    app.running.stop().await.expect("a clean stop");
    let took = started.elapsed();
    assert!(took < framecart_api::supervisor::STOP_GRACE, "the stop took {took:?}");
    assert_eq!(app.stream_len().await, 10_000, "every committed event is in the stream after the stop");
}

#[tokio::test]
async fn metrics_show_commands_latency_and_lag_to_staff_only() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        let (status, _) = app.post("/api/v1/clicks", &click_body(Uuid::new_v4(), "VESeA6leQuk", 1.0, 1.0, 1.0)).await;
        assert_eq!(status, 202);
    }
    app.wait_for_clicks_view().await;
    let anonymous = app.http.get(app.url("/metrics")).send().await.expect("an answer");
    assert_eq!(anonymous.status().as_u16(), 401);
    let (viewer, _) = app.user("viewer@framecart.test", &[]).await;
    assert_eq!(viewer.get(app.url("/metrics")).send().await.expect("an answer").status().as_u16(), 403);
    let answer = app.admin.get(app.url("/metrics")).send().await.expect("an answer");
    assert_eq!(answer.status().as_u16(), 200);
    let text = answer.text().await.expect("text");
    let ns = app.namespace.namespace.to_string();
    for expected in [
        "framecart_commands_total{aggregate=\"click\",command=\"RecordClick\",outcome=\"acknowledged\"}".to_owned(),
        "framecart_http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/v1/clicks\",status=\"202\""
            .to_owned(),
        format!("framecart_projection_lag_events{{namespace=\"{ns}\",projection=\"clicks\"}} 0"),
        format!("framecart_stream_last_sequence{{namespace=\"{ns}\"}}"),
        format!("framecart_detector_queue_runs{{namespace=\"{ns}\",state=\"queued\"}} 0"),
        format!("framecart_projection_quarantined_events{{namespace=\"{ns}\",projection=\"clicks\"}} 0"),
        format!("framecart_relay_unrelayed_events{{namespace=\"{ns}\"}}"),
    ] {
        assert!(text.contains(&expected), "{expected} is missing from:\n{text}");
    }
}
