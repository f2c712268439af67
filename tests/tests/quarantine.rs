//! A view never stops on one event: what cannot be decoded or applied is set aside with
//! its projection, log position, event id and error; the view goes on; the quarantine is
//! visible (status, readiness, the admin API) and can be applied again once it can be.

use std::sync::Arc;
use std::time::Duration;

use framecart_api::projections::{self, ProjectionRunner, Retried};
use framecart_tests::{TestApp, click_body, eventually};
use serde_json::Value;
use uuid::Uuid;

/// Inserts an event as an operator or an old tool would: naming only postgres-es's
/// seven columns. Returns its `event_id` (a column default).
async fn insert_by_hand(
    app: &TestApp,
    aggregate_type: &str,
    aggregate_id: &str,
    event_type: &str,
    payload: &str,
) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ($1, $2, 1, $3, '1.0', $4::json, '{}'::json) RETURNING event_id",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(event_type)
    .bind(payload)
    .fetch_one(&app.db)
    .await
    .expect("an event inserted by hand")
}

/// The quarantine as the admin API lists it, for one projection.
async fn set_aside(app: &TestApp, projection: &str) -> Vec<Value> {
    let (status, page) = app.get(&format!("/api/v1/admin/quarantine?projection={projection}")).await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

async fn view_count(app: &TestApp, sql: &str, wanted: i64) {
    eventually(sql, Duration::from_secs(30), || async { (app.count(sql).await == wanted).then_some(()) }).await;
}

#[tokio::test]
async fn an_unreadable_event_is_set_aside_and_every_view_goes_on() {
    let app = TestApp::spawn().await;
    // A click as an older version stored NaN: `null` where a number must be.
    let click_id = Uuid::new_v4().to_string();
    let payload = format!(r#"{{"ClickRecorded":{{"click_id":"{click_id}","x":null,"y":null}}}}"#);
    let event_id = insert_by_hand(&app, "click", &click_id, "ClickRecorded", &payload).await;
    // Rows no command of ours writes: metadata that is not all strings, an id that is no
    // subject token, a type with a line break, an aggregate nobody reads. Each is relayed.
    for (aggregate_type, aggregate_id, event_type, metadata) in [
        ("click", "1.2.3.4 and spaces", "ClickRecorded", r#"{"actor": 5, "nested": {"a": [1]}}"#),
        ("legacy", "x", "Line\nBreak", "[1, 2]"),
        ("product", "SKU-META", "ProductRetired", r#"{"correlation_id": "a\r\nb"}"#),
    ] {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ($1, $2, 1, $3, '1.0', '{}'::json, $4::json)",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(event_type)
        .bind(metadata)
        .execute(&app.db)
        .await
        .expect("an odd row");
    }
    for i in 0..5 {
        let (status, answer) = app
            .post("/api/v1/clicks", &click_body(Uuid::new_v4(), "VESeA6leQuk", 10.0 * f64::from(i), 20.0, 1.0))
            .await;
        assert_eq!(status, 202, "{answer}");
    }
    // It was relayed like any other event, and every view went past it.
    app.wait_for_log().await;
    view_count(&app, "SELECT count(*) FROM clicks_view", 5).await;
    view_count(&app, "SELECT count(*) FROM client_file_clicks", 5).await;
    let position: i64 = sqlx::query_scalar("SELECT log_position FROM event_log WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(&app.db)
        .await
        .expect("the event has a log position");

    for projection in ["clicks", "client_files", "analytics", "matcher"] {
        let entries = eventually(&format!("{projection} to set the event aside"), Duration::from_secs(30), || async {
            let entries = set_aside(&app, projection).await;
            (!entries.is_empty()).then_some(entries)
        })
        .await;
        // The hand-written click with an odd id is set aside too (its payload is empty).
        assert_eq!(entries.len(), 2, "{projection}: {entries:?}");
        let entry = &entries[0];
        assert_eq!(entry["log_position"], position, "{entry}");
        assert_eq!(entry["event_id"], event_id.to_string(), "{entry}");
        assert_eq!(entry["aggregate_type"], "click", "{entry}");
        assert_eq!(entry["aggregate_id"], click_id, "{entry}");
        assert_eq!(entry["event_type"], "ClickRecorded", "{entry}");
        assert_eq!(entry["attempts"], 1, "{entry}");
        assert!(entry["error"].as_str().is_some_and(|e| e.contains("cannot be read")), "{entry}");
        assert!(entry["quarantined_at"].is_string(), "{entry}");
    }
    // Views that never read clicks set nothing aside of them; the product row by hand
    // (an empty payload) is set aside by the products view alone.
    assert!(set_aside(&app, "users").await.is_empty());
    let products = eventually("products to set its row aside", Duration::from_secs(30), || async {
        let entries = set_aside(&app, "products").await;
        (!entries.is_empty()).then_some(entries)
    })
    .await;
    assert_eq!(products.len(), 1, "{products:?}");
    assert_eq!(products[0]["aggregate_id"], "SKU-META");

    // Readiness reports it, without making the process unready (its views serve).
    let response = app.http.get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(response.status().as_u16(), 200);
    let health: Value = response.json().await.expect("json");
    assert_ne!(health["checks"]["quarantine"], "ok", "{health}");
    assert_eq!(health["checks"]["quarantined"]["clicks"], 2, "{health}");

    // Anyone else sees nothing of it.
    let anonymous = app.http.get(app.url("/api/v1/admin/quarantine")).send().await.expect("request");
    assert_eq!(anonymous.status().as_u16(), 401);
    let (status, error) = app.get("/api/v1/admin/quarantine?limit=0").await;
    assert_eq!((status, error["error"]["code"].as_str()), (422, Some("invalid_limit")), "{error}");

    // A retry of what still cannot be read leaves it set aside and counts the attempt.
    let runner = runner(&app, "clicks");
    assert_eq!(runner.retry().await.expect("retry"), Retried { applied: 0, still_set_aside: 2 });
    let entries = set_aside(&app, "clicks").await;
    assert_eq!(entries[0]["attempts"], 2, "{entries:?}");
    assert_eq!(app.count("SELECT count(*) FROM clicks_view").await, 5);
}

fn runner(app: &TestApp, name: &str) -> ProjectionRunner {
    let projection = projections::all(&app.view_settings())
        .into_iter()
        .find(|p| p.name() == name)
        .expect("a projection of that name");
    ProjectionRunner::new(
        app.running.state.pool.clone(),
        app.running.state.jetstream.clone(),
        app.namespace.namespace.clone(),
        Arc::clone(&projection),
    )
}

fn product_created(article: &str, name: &str, description: &str) -> String {
    serde_json::json!({"ProductCreated": {
        "article": article, "name": name, "description": description,
        "price": {"minor": 1500, "currency": "EUR"}, "stock": 3, "image_url": null
    }})
    .to_string()
}

#[tokio::test]
async fn a_value_a_view_refuses_is_set_aside_and_applied_by_a_retry_once_it_can_be() {
    let app = TestApp::spawn().await;
    // The view refuses a value (here a constraint stands in for a bug fixed later), and
    // text Postgres cannot store at all (NUL, written before input was checked).
    sqlx::query("ALTER TABLE products_view ADD CONSTRAINT refuses_for_now CHECK (name <> 'Refused scarf')")
        .execute(&app.db)
        .await
        .expect("constraint");
    insert_by_hand(&app, "product", "SKU-Q1", "ProductCreated", &product_created("SKU-Q1", "Refused scarf", "")).await;
    insert_by_hand(&app, "product", "SKU-Q2", "ProductCreated", &product_created("SKU-Q2", "Nul", "a\u{0}b")).await;
    // Later writes are applied, and answered at once.
    let body =
        serde_json::json!({"article": "SKU-OK", "name": "Scarf", "price_minor": 100, "currency": "EUR", "stock": 1});
    let (status, answer) = app.post("/api/v1/products", &body).await;
    assert_eq!(status, 201, "{answer}");

    let entries = eventually("both to be set aside", Duration::from_secs(30), || async {
        let entries = set_aside(&app, "products").await;
        (entries.len() == 2).then_some(entries)
    })
    .await;
    assert!(entries[0]["error"].as_str().is_some_and(|e| e.contains("refuses_for_now")), "{entries:?}");
    assert_eq!(entries[1]["aggregate_id"], "SKU-Q2");

    // Once the cause is gone, a retry applies it, once; the other stays set aside.
    sqlx::query("ALTER TABLE products_view DROP CONSTRAINT refuses_for_now").execute(&app.db).await.expect("drop");
    let runner = runner(&app, "products");
    assert_eq!(runner.retry().await.expect("retry"), Retried { applied: 1, still_set_aside: 1 });
    assert_eq!(runner.retry().await.expect("retry"), Retried { applied: 0, still_set_aside: 1 });
    let (status, product) = app.get("/api/v1/products/SKU-Q1").await;
    assert_eq!(status, 200, "{product}");
    assert_eq!(product["name"], "Refused scarf");
    let left = set_aside(&app, "products").await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["aggregate_id"], "SKU-Q2");
    assert_eq!(left[0]["attempts"], 3);

    // A rebuild replays everything: what still cannot be applied is set aside again, once.
    runner.rebuild(&|_, _| {}).await.expect("rebuild");
    let left = set_aside(&app, "products").await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(app.count("SELECT count(*) FROM products_view WHERE article IN ('SKU-Q1', 'SKU-OK')").await, 2);
}
