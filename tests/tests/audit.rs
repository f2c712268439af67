//! The auditor's promises: every event can be read in commit order, replayed into fresh
//! views with the same answers, and any change to a stored event is found.

use std::time::Duration;

use framecart_tests::{TestApp, click_body, eventually, send};
use serde_json::{Value, json};
use uuid::Uuid;

/// A bit of everything: products, accounts, clicks, orders paid, declined and cancelled.
async fn some_history(app: &TestApp) -> Vec<String> {
    for (article, stock) in [("SKU-1", 10), ("SKU-2", 3)] {
        let body = json!({"article": article, "name": format!("Product {article}"), "price_minor": 1250, "currency": "EUR", "stock": stock});
        let (status, answer) = app.post("/api/v1/products", &body).await;
        assert_eq!(status, 201, "{answer}");
    }
    let (ada, _) = app.user("ada@example.org", &[]).await;
    let (bob, _) = app.user("bob@example.org", &["merchant"]).await;
    for (i, client) in [&ada, &bob, &app.http].into_iter().enumerate() {
        for j in 0..3 {
            let body =
                click_body(Uuid::new_v4(), "VESeA6leQuk", 100.0 + 50.0 * j as f64, 80.0 * i as f64, 1.0 + j as f64);
            assert_eq!(send(client.post(app.url("/api/v1/clicks")).json(&body)).await.0, 202);
        }
    }
    let mut orders = Vec::new();
    for (key, lines, card, cancel) in [
        ("paid", json!([{"article": "SKU-1", "quantity": 2}]), Some("4242424242424242"), false),
        ("declined", json!([{"article": "SKU-2", "quantity": 1}]), Some("4000000000000002"), false),
        ("cancelled", json!([{"article": "SKU-1", "quantity": 1}, {"article": "SKU-2", "quantity": 1}]), None, true),
    ] {
        let body = json!({"lines": lines, "contact": {"name": "Ada", "email": "ada@example.org"},
                          "shipping_address": {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}});
        let (status, order) =
            send(ada.post(app.url("/api/v1/orders")).header("Idempotency-Key", key).json(&body)).await;
        assert_eq!(status, 201, "{order}");
        let id = order["id"].as_str().expect("an id").to_owned();
        if let Some(card) = card {
            let pay = json!({"provider": "fake", "card_number": card});
            assert_eq!(send(ada.post(app.url(&format!("/api/v1/orders/{id}/payments"))).json(&pay)).await.0, 201);
        }
        if cancel {
            assert_eq!(send(ada.post(app.url(&format!("/api/v1/orders/{id}/cancel"))).json(&json!({}))).await.0, 200);
        }
        orders.push(id);
    }
    // The paid order is marked paid by a process manager: wait for it.
    eventually("the paid order", Duration::from_secs(20), || async {
        let (_, order) = app.get(&format!("/api/v1/orders/{}", orders[0])).await;
        (order["status"] == "paid").then_some(())
    })
    .await;
    // The fake provider's webhooks may still be arriving: let them land.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    orders
}

/// What the views answer, through the API.
async fn answers(app: &TestApp, orders: &[String]) -> Value {
    let mut paths = vec![
        "/api/v1/products".to_owned(),
        "/api/v1/users".to_owned(),
        "/api/v1/clicks?limit=1000".to_owned(),
        "/api/v1/orders".to_owned(),
        "/api/v1/videos/VESeA6leQuk/analytics".to_owned(),
    ];
    for id in orders {
        paths.push(format!("/api/v1/orders/{id}"));
        paths.push(format!("/api/v1/orders/{id}/payments"));
    }
    let mut all = serde_json::Map::new();
    for path in paths {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
        all.insert(path, body);
    }
    Value::Object(all)
}

/// Runs the `framecart` command line in this process, against the test's installation.
async fn framecart(app: &TestApp, args: &[&str]) -> anyhow::Result<()> {
    app.cli(args).await
}

#[tokio::test]
async fn replaying_every_event_into_fresh_views_gives_the_same_answers() {
    let app = TestApp::spawn().await;
    let orders = some_history(&app).await;
    app.wait_for_log().await;
    app.wait_for_projections().await;
    let before = answers(&app, &orders).await;
    let files_before = client_files(&app);
    assert!(!files_before.is_empty());

    // Throw every view away and replay the log into it (while the server runs, as an
    // operator would): `framecart replay --rebuild`.
    framecart(&app, &["replay", "--rebuild"]).await.expect("replay --rebuild");
    for projection in framecart_api::projections::all(&app.view_settings()) {
        let generation: i64 = sqlx::query_scalar("SELECT generation FROM projection_checkpoints WHERE name = $1")
            .bind(projection.name())
            .fetch_one(&app.db)
            .await
            .expect("a checkpoint");
        assert_eq!(generation, 1, "{} was rebuilt once", projection.name());
    }
    app.wait_for_projections().await;
    app.wait_for_client_files().await;
    let after = answers(&app, &orders).await;
    assert_eq!(after, before);
    assert_eq!(client_files(&app), files_before);
    assert_eq!(app.count("SELECT count(*) FROM orders_view").await, 3);
}

fn client_files(app: &TestApp) -> Vec<(String, String)> {
    let dir = app.media_dir().join("client_files");
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).unwrap_or_default()))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn the_log_reads_in_commit_order_with_a_hash_chain() {
    let app = TestApp::spawn().await;
    let orders = some_history(&app).await;
    app.wait_for_log().await;
    let total = app.count("SELECT count(*) FROM events").await;

    // Page through everything.
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = app.get(&format!("/api/v1/audit/events?after={after}&limit=7")).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().expect("items").clone();
        events.extend(items);
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(events.len() as i64, total);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["position"], json!(i + 1), "dense positions in commit order");
        for field in [
            "event_id",
            "aggregate_type",
            "aggregate_id",
            "sequence",
            "event_type",
            "payload",
            "metadata",
            "recorded_at",
        ] {
            assert!(!event[field].is_null(), "{field} in {event}");
        }
        assert_eq!(event["hash"].as_str().map(str::len), Some(64), "{event}");
        assert!(event["metadata"]["correlation_id"].is_string(), "{event}");
    }
    let hashes: std::collections::HashSet<&str> = events.iter().filter_map(|e| e["hash"].as_str()).collect();
    assert_eq!(hashes.len(), events.len());

    // One aggregate's history, in its own order.
    let (status, stream) = app.get(&format!("/api/v1/audit/streams/order/{}", orders[0])).await;
    assert_eq!(status, 200, "{stream}");
    let types: Vec<&str> = stream["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(types, ["OrderPlaced", "OrderPaymentStarted", "OrderPaid"]);
    let (status, _) = app.get("/api/v1/audit/streams/order/no-such-order").await;
    assert_eq!(status, 404);

    // Filtered pages: by aggregate type, by aggregate, by event type, still in log order.
    let filtered = |query: &str| {
        let query = query.to_owned();
        let app = &app;
        async move {
            let (status, page) = app.get(&format!("/api/v1/audit/events?limit=1000&{query}")).await;
            assert_eq!(status, 200, "{query}: {page}");
            page["items"].as_array().expect("items").clone()
        }
    };
    let expected = |keep: &dyn Fn(&Value) -> bool| events.iter().filter(|e| keep(e)).cloned().collect::<Vec<_>>();
    let orders_only = filtered("aggregate_type=order").await;
    assert!(!orders_only.is_empty());
    assert_eq!(orders_only, expected(&|e| e["aggregate_type"] == "order"));
    let one = filtered(&format!("aggregate_type=order&aggregate_id={}", orders[0])).await;
    assert_eq!(one, expected(&|e| e["aggregate_id"] == orders[0].as_str()));
    let paid = filtered("event_type=OrderPaid").await;
    assert_eq!(paid, expected(&|e| e["event_type"] == "OrderPaid"));
    assert!(filtered("event_type=NoSuchEvent").await.is_empty());
    // An empty filter is no filter.
    assert_eq!(filtered("aggregate_type=&event_type=").await.len(), events.len());

    let (status, verdict) = app.get("/api/v1/audit/verify").await;
    assert_eq!((status, verdict), (200, json!({"ok": true, "checked": total})));
    framecart(&app, &["audit", "verify"]).await.expect("the chain is intact");
}

#[tokio::test]
async fn an_altered_event_is_named_by_verify() {
    let app = TestApp::spawn().await;
    let orders = some_history(&app).await;
    app.wait_for_log().await;

    // The store refuses changes to history.
    let refused = sqlx::query("UPDATE events SET payload = '{}' WHERE global_position = 1").execute(&app.db).await;
    assert!(refused.is_err(), "events are append-only");
    assert!(sqlx::query("DELETE FROM events").execute(&app.db).await.is_err());

    // Someone with the power to disable the triggers raises the paid order's total.
    let (position, event_id): (i64, Uuid) = sqlx::query_as(
        "SELECT l.log_position, e.event_id FROM events e JOIN event_log l USING (global_position)
         WHERE e.aggregate_type = 'order' AND e.aggregate_id = $1 AND e.event_type = 'OrderPlaced'",
    )
    .bind(&orders[0])
    .fetch_one(&app.db)
    .await
    .expect("the order's placement");
    let mut tx = app.db.begin().await.expect("tx");
    sqlx::query("ALTER TABLE events DISABLE TRIGGER USER").execute(&mut *tx).await.expect("disable");
    let changed = sqlx::query("UPDATE events SET payload = replace(payload::text, '\"minor\":2500', '\"minor\":99')::json WHERE event_id = $1")
        .bind(event_id)
        .execute(&mut *tx)
        .await
        .expect("tamper");
    assert_eq!(changed.rows_affected(), 1);
    sqlx::query("ALTER TABLE events ENABLE TRIGGER USER").execute(&mut *tx).await.expect("enable");
    tx.commit().await.expect("commit");
    let text: String = sqlx::query_scalar("SELECT payload::text FROM events WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(&app.db)
        .await
        .expect("payload");
    assert!(text.contains("\"minor\":99"), "the tampering took: {text}");

    let (status, verdict) = app.get("/api/v1/audit/verify").await;
    assert_eq!(status, 200);
    assert_eq!(verdict["ok"], false, "{verdict}");
    assert_eq!(verdict["first_bad_position"], position, "{verdict}");
    assert!(verdict["reason"].as_str().is_some_and(|r| r.contains(&event_id.to_string())), "{verdict}");
    let error = framecart(&app, &["audit", "verify"]).await.expect_err("the command fails");
    assert!(error.to_string().contains(&format!("position {position}")), "{error}");

    // A removed event is found too, at its place in the chain.
    let first_click: i64 = app.count("SELECT min(l.log_position) FROM event_log l JOIN events e USING (global_position) WHERE e.aggregate_type = 'click'").await;
    assert!(first_click < position, "a click came before the order");
    let mut tx = app.db.begin().await.expect("tx");
    sqlx::query("ALTER TABLE events DISABLE TRIGGER USER").execute(&mut *tx).await.expect("disable");
    sqlx::query(
        "DELETE FROM events WHERE global_position = (SELECT global_position FROM event_log WHERE log_position = $1)",
    )
    .bind(first_click)
    .execute(&mut *tx)
    .await
    .expect("delete");
    sqlx::query("ALTER TABLE events ENABLE TRIGGER USER").execute(&mut *tx).await.expect("enable");
    tx.commit().await.expect("commit");
    let (_, verdict) = app.get("/api/v1/audit/verify").await;
    assert_eq!(verdict["first_bad_position"], first_click, "{verdict}");
}

#[tokio::test]
async fn a_stored_event_with_no_log_position_is_reported_by_verify_once_past_the_relay_bound() {
    let mut app = TestApp::spawn_with(|s| s.settings.relay_lag_bound_secs = 1).await;
    for i in 0..3 {
        let body = click_body(Uuid::new_v4(), "VESeA6leQuk", 10.0, 10.0, f64::from(i));
        assert_eq!(app.post("/api/v1/clicks", &body).await.0, 202);
    }
    app.wait_for_log().await;

    // A row written by hand, naming only postgres-es's seven columns, while no relay runs.
    app.running.kill_relay().await;
    let id = Uuid::new_v4();
    let payload = json!({"ClickRecorded": {
        "click_id": id, "click_id_from_client": true, "video_id": "VESeA6leQuk",
        "video_id_reported": "VESeA6leQuk", "user_id": null, "x": 1.0, "y": 1.0, "timestamp": 1.0,
        "player": null, "video": null, "frame": null, "on_black_band": false, "during_ad": false,
        "client_ip": "127.0.0.1", "viewer_cookie": null, "received_at": "2026-11-26T00:00:00Z"
    }});
    let (event_id, global_position): (Uuid, i64) = sqlx::query_as(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('click', $1, 1, 'ClickRecorded', '1.0', $2, '{}') RETURNING event_id, global_position",
    )
    .bind(id.to_string())
    .bind(&payload)
    .fetch_one(&app.db)
    .await
    .expect("insert");
    let logged = app.count("SELECT count(*) FROM event_log").await;

    // Within the bound it may still be on its way.
    let (status, verdict) = app.get("/api/v1/audit/verify").await;
    assert_eq!((status, verdict), (200, json!({"ok": true, "checked": logged})));
    assert_eq!(app.get("/readyz").await.0, 200);

    // Past it, the log misses it: verify names it, readiness is degraded, metrics show it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, verdict) = app.get("/api/v1/audit/verify").await;
    assert_eq!(status, 200);
    assert_eq!(verdict["ok"], false, "{verdict}");
    assert_eq!(verdict["checked"], logged, "{verdict}");
    assert_eq!(verdict["unlogged_count"], 1, "{verdict}");
    assert_eq!(verdict["unlogged"][0]["event_id"], event_id.to_string(), "{verdict}");
    assert_eq!(verdict["unlogged"][0]["global_position"], global_position, "{verdict}");
    let error = framecart(&app, &["audit", "verify", "--relay-lag-bound-secs", "1"]).await.expect_err("it fails");
    assert!(error.to_string().contains(&event_id.to_string()), "{error}");
    framecart(&app, &["audit", "verify", "--relay-lag-bound-secs", "60"]).await.expect("a longer bound waits");

    let (status, health) = app.get("/readyz").await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["relay"]["unrelayed"], 1, "{health}");
    let check = health["relay"]["check"].as_str().unwrap_or_default();
    assert!(check.contains("1 committed events are not in the stream"), "{health}");
    let metrics = app.admin.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    let ns = app.namespace.namespace.as_str();
    assert!(metrics.contains(&format!("framecart_relay_unrelayed_events{{namespace=\"{ns}\"}} 1")), "{metrics}");
    assert!(metrics.contains(&format!("framecart_relay_restoring{{namespace=\"{ns}\"}} 0")), "{metrics}");
    assert!(metrics.contains(&format!("framecart_relay_held_back_seconds{{namespace=\"{ns}\"}} 0")), "{metrics}");

    // The relay comes back and logs it: everything holds again.
    app.running.start_relay();
    app.wait_for_log().await;
    let (_, verdict) = app.get("/api/v1/audit/verify").await;
    assert_eq!(verdict, json!({"ok": true, "checked": logged + 1}));
    eventually("readiness to come back", Duration::from_secs(10), || async {
        (app.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
}
