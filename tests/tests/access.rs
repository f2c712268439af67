//! Every route of the OpenAPI document, tried once by each role, against the role table
//! in the README ("Users and roles"). A route added without a row here fails the test.

use std::collections::BTreeSet;

use framecart_tests::{TestApp, click_body};
use serde_json::{Value, json};
use uuid::Uuid;

/// What a role gets from a route.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Let through: answered by the handler (any status but 401, 403 and 5xx; a 404 or a
    /// 409 about the resource is the handler's answer).
    Ok,
    /// Let through and answered 2xx (the caller's own resource, which exists).
    Yes,
    /// 401: not signed in.
    Unauth,
    /// 403: signed in without the role.
    Forbidden,
    /// 404: someone else's resource, whose existence is not confirmed.
    Hidden,
}
use Expect::{Forbidden as F, Hidden as H, Ok as A, Unauth as U, Yes as Y};

/// The callers, in the order of each row's expectations.
const ROLES: [&str; 6] = ["anonymous", "owner", "other viewer", "merchant", "auditor", "admin"];

enum Body {
    None,
    Json(Value),
    Upload,
}

struct Fixture {
    order_id: String,
    payment_id: String,
    click_id: Uuid,
    user_id: String,
}

/// One row per route: method, path as in the OpenAPI document, the concrete path, the
/// body, and what each of [`ROLES`] gets.
fn table(f: &Fixture) -> Vec<(&'static str, &'static str, String, Body, [Expect; 6])> {
    let order = &f.order_id;
    let unique = || Uuid::new_v4().simple().to_string();
    let product = || json!({"article": format!("SKU-{}", &unique()[..8]), "name": "Scarf", "price_minor": 100, "currency": "EUR", "stock": 1});
    vec![
        ("get", "/healthz", "/healthz".into(), Body::None, [A, A, A, A, A, A]),
        ("get", "/readyz", "/readyz".into(), Body::None, [A, A, A, A, A, A]),
        // Clicks: anyone records; a signed-in click is its owner's and staff's.
        (
            "post",
            "/api/v1/clicks",
            "/api/v1/clicks".into(),
            Body::Json(click_body(Uuid::new_v4(), "VESeA6leQuk", 1.0, 1.0, 1.0)),
            [A, A, A, A, A, A],
        ),
        ("get", "/api/v1/clicks", "/api/v1/clicks".into(), Body::None, [U, Y, Y, Y, Y, Y]),
        ("get", "/api/v1/clicks/{click_id}", format!("/api/v1/clicks/{}", f.click_id), Body::None, [U, Y, H, Y, Y, Y]),
        (
            "get",
            "/api/v1/clicks/{click_id}/match",
            format!("/api/v1/clicks/{}/match", f.click_id),
            Body::None,
            [H, A, H, A, A, A],
        ),
        ("get", "/api/v1/matches", "/api/v1/matches".into(), Body::None, [U, Y, Y, Y, Y, Y]),
        // Catalogue: public reads, merchant writes.
        ("get", "/api/v1/products", "/api/v1/products".into(), Body::None, [Y, Y, Y, Y, Y, Y]),
        ("post", "/api/v1/products", "/api/v1/products".into(), Body::Json(product()), [U, F, F, Y, F, A]),
        ("get", "/api/v1/products/{article}", "/api/v1/products/SKU-1".into(), Body::None, [Y, Y, Y, Y, Y, Y]),
        (
            "patch",
            "/api/v1/products/{article}",
            "/api/v1/products/SKU-1".into(),
            Body::Json(json!({"name": "Rain jacket"})),
            [U, F, F, Y, F, Y],
        ),
        (
            "get",
            "/api/v1/videos/{video_id}/products",
            "/api/v1/videos/VESeA6leQuk/products".into(),
            Body::None,
            [Y, Y, Y, Y, Y, Y],
        ),
        // Videos and detection: merchant writes, staff read.
        ("post", "/api/v1/videos", "/api/v1/videos".into(), Body::Upload, [U, F, F, A, F, A]),
        ("get", "/api/v1/videos", "/api/v1/videos".into(), Body::None, [U, F, F, Y, Y, Y]),
        ("get", "/api/v1/videos/{video_id}", "/api/v1/videos/VESeA6leQuk".into(), Body::None, [U, F, F, A, A, A]),
        (
            "get",
            "/api/v1/videos/{video_id}/file",
            "/api/v1/videos/VESeA6leQuk/file".into(),
            Body::None,
            [U, F, F, A, A, A],
        ),
        (
            "get",
            "/api/v1/videos/{video_id}/scene",
            "/api/v1/videos/VESeA6leQuk/scene?t=1".into(),
            Body::None,
            [U, F, F, A, A, A],
        ),
        ("get", "/api/v1/detector/classes", "/api/v1/detector/classes".into(), Body::None, [U, F, F, Y, Y, Y]),
        (
            "get",
            "/api/v1/videos/{video_id}/frame",
            "/api/v1/videos/VESeA6leQuk/frame?t=1".into(),
            Body::None,
            [U, F, F, A, A, A],
        ),
        (
            "get",
            "/api/v1/videos/{video_id}/preview",
            "/api/v1/videos/VESeA6leQuk/preview?t=1&x=10&y=10&player_width=640&player_height=360".into(),
            Body::None,
            [U, F, F, A, A, A],
        ),
        (
            "get",
            "/api/v1/videos/{video_id}/runs",
            "/api/v1/videos/VESeA6leQuk/runs".into(),
            Body::None,
            [U, F, F, A, A, A],
        ),
        (
            "get",
            "/api/v1/videos/{video_id}/detections",
            "/api/v1/videos/VESeA6leQuk/detections".into(),
            Body::None,
            [U, F, F, A, A, A],
        ),
        (
            "post",
            "/processing/video/{video_id}/start",
            "/processing/video/VESeA6leQuk/start".into(),
            Body::Json(json!({})),
            [U, F, F, A, F, A],
        ),
        (
            "post",
            "/api/v1/videos/{video_id}/links",
            "/api/v1/videos/VESeA6leQuk/links".into(),
            Body::Json(json!({"article": "SKU-1", "label": "person"})),
            [U, F, F, A, F, A],
        ),
        (
            "get",
            "/api/v1/videos/{video_id}/links",
            "/api/v1/videos/VESeA6leQuk/links".into(),
            Body::None,
            [U, F, F, A, A, A],
        ),
        (
            "delete",
            "/api/v1/videos/{video_id}/links/{link_id}",
            format!("/api/v1/videos/VESeA6leQuk/links/{}", Uuid::new_v4()),
            Body::None,
            [U, F, F, A, F, A],
        ),
        (
            "get",
            "/api/v1/videos/{video_id}/tracks",
            "/api/v1/videos/VESeA6leQuk/tracks".into(),
            Body::None,
            [U, F, F, A, A, A],
        ),
        (
            "get",
            "/api/v1/videos/{video_id}/analytics",
            "/api/v1/videos/VESeA6leQuk/analytics".into(),
            Body::None,
            [U, F, F, A, A, A],
        ),
        // Orders and payments: the buyer's own, staff read; merchant and admin act for others.
        ("post", "/api/v1/orders", "/api/v1/orders".into(), Body::Json(order_body()), [U, Y, Y, Y, Y, Y]),
        ("get", "/api/v1/orders", "/api/v1/orders".into(), Body::None, [U, Y, Y, Y, Y, Y]),
        ("get", "/api/v1/orders/{order_id}", format!("/api/v1/orders/{order}"), Body::None, [U, Y, H, Y, Y, Y]),
        (
            "get",
            "/api/v1/orders/{order_id}/payments",
            format!("/api/v1/orders/{order}/payments"),
            Body::None,
            [U, Y, H, Y, Y, Y],
        ),
        (
            "post",
            "/api/v1/orders/{order_id}/payments",
            format!("/api/v1/orders/{order}/payments"),
            Body::Json(json!({"provider": "fake", "card_number": "4000000000000002"})),
            [U, A, H, F, F, A],
        ),
        (
            "post",
            "/api/v1/payments/{payment_id}/confirm",
            format!("/api/v1/payments/{}/confirm", f.payment_id),
            Body::None,
            [U, A, H, H, H, A],
        ),
        (
            "post",
            "/api/v1/orders/{order_id}/ship",
            format!("/api/v1/orders/{order}/ship"),
            Body::Json(json!({"tracking": "T-1"})),
            [U, F, F, A, F, A],
        ),
        (
            "post",
            "/api/v1/orders/{order_id}/complete",
            format!("/api/v1/orders/{order}/complete"),
            Body::None,
            [U, F, F, A, F, A],
        ),
        (
            "post",
            "/api/v1/orders/{order_id}/refund",
            format!("/api/v1/orders/{order}/refund"),
            Body::Json(json!({})),
            [U, F, F, A, F, A],
        ),
        // The owner cancels their own unpaid order; an auditor only reads.
        (
            "post",
            "/api/v1/orders/{order_id}/cancel",
            format!("/api/v1/orders/{order}/cancel"),
            Body::Json(json!({"reason": "changed my mind"})),
            [U, A, H, A, F, A],
        ),
        // A provider's webhook: its signature decides, not a role (unsigned here: refused alike).
        (
            "post",
            "/api/v1/payments/webhooks/{provider}",
            "/api/v1/payments/webhooks/fake".into(),
            Body::Json(json!({})),
            [A, A, A, A, A, A],
        ),
        // Audit: auditors (and admins) only.
        ("get", "/api/v1/audit/events", "/api/v1/audit/events".into(), Body::None, [U, F, F, F, Y, Y]),
        (
            "get",
            "/api/v1/audit/streams/{aggregate_type}/{aggregate_id}",
            format!("/api/v1/audit/streams/order/{order}"),
            Body::None,
            [U, F, F, F, Y, Y],
        ),
        ("get", "/api/v1/audit/verify", "/api/v1/audit/verify".into(), Body::None, [U, F, F, F, Y, Y]),
        ("get", "/api/v1/admin/quarantine", "/api/v1/admin/quarantine".into(), Body::None, [U, F, F, F, Y, Y]),
        ("get", "/metrics", "/metrics".into(), Body::None, [U, F, F, Y, Y, Y]),
        // Accounts.
        (
            "post",
            "/api/v1/users",
            "/api/v1/users".into(),
            Body::Json(json!({"email": format!("{}@example.org", unique()), "password": "a password for tests"})),
            [Y, A, A, A, A, A],
        ),
        (
            "post",
            "/api/v1/sessions",
            "/api/v1/sessions".into(),
            Body::Json(json!({"email": "owner@example.org", "password": "a password for tests"})),
            [Y, Y, Y, Y, Y, Y],
        ),
        ("get", "/api/v1/users/me", "/api/v1/users/me".into(), Body::None, [U, Y, Y, Y, Y, Y]),
        ("get", "/api/v1/users", "/api/v1/users".into(), Body::None, [U, F, F, F, F, Y]),
        (
            "post",
            "/api/v1/users/{user_id}/roles",
            format!("/api/v1/users/{}/roles", f.user_id),
            Body::Json(json!({"role": "viewer"})),
            [U, F, F, F, F, Y],
        ),
        (
            "delete",
            "/api/v1/users/{user_id}/roles/{role}",
            format!("/api/v1/users/{}/roles/merchant", f.user_id),
            Body::None,
            [U, F, F, F, F, Y],
        ),
        ("get", "/api/v1/users/me/export", "/api/v1/users/me/export".into(), Body::None, [U, Y, Y, Y, Y, Y]),
        // Near the end: erasing the caller's personal data (their sessions go on).
        (
            "delete",
            "/api/v1/users/{user_id}/personal-data",
            format!("/api/v1/users/{}/personal-data", f.user_id),
            Body::None,
            [U, F, F, F, F, Y],
        ),
        (
            "delete",
            "/api/v1/users/me/personal-data",
            "/api/v1/users/me/personal-data".into(),
            Body::None,
            [U, Y, Y, Y, Y, Y],
        ),
        // Last: signing out ends every session of the caller.
        ("delete", "/api/v1/sessions", "/api/v1/sessions".into(), Body::None, [U, Y, Y, Y, Y, Y]),
    ]
}

fn order_body() -> Value {
    json!({
        "lines": [{"article": "SKU-1", "quantity": 1}],
        "contact": {"name": "Ada Viewer", "email": "ada@example.org"},
        "shipping_address": {"line1": "Hauptstraße 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
    })
}

fn upload_form() -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .text("video_id", "VESeA6leQuk")
        .part("file", reqwest::multipart::Part::bytes(b"not a video".to_vec()).file_name("v.mp4"))
}

fn meets(expect: Expect, status: u16) -> bool {
    match expect {
        Expect::Ok => !matches!(status, 401 | 403) && status < 500,
        Expect::Yes => (200..300).contains(&status),
        Expect::Unauth => status == 401,
        Expect::Forbidden => status == 403,
        Expect::Hidden => status == 404,
    }
}

#[tokio::test]
async fn each_role_gets_what_the_role_table_says_on_every_route() {
    let app = TestApp::spawn().await;
    let body = json!({"article": "SKU-1", "name": "Rain jacket", "price_minor": 100, "currency": "EUR", "stock": 100});
    let (status, answer) = app.post("/api/v1/products", &body).await;
    assert_eq!(status, 201, "{answer}");
    let (owner, owner_id) = app.user("owner@example.org", &[]).await;
    let (other, _) = app.user("other@example.org", &[]).await;
    let (merchant, _) = app.user("merchant@example.org", &["merchant"]).await;
    let (auditor, _) = app.user("auditor@example.org", &["auditor"]).await;

    // The owner's signed-in click, unpaid order, and a payment waiting for an extra step.
    let click_id = Uuid::new_v4();
    let response = owner
        .post(app.url("/api/v1/clicks"))
        .json(&click_body(click_id, "VESeA6leQuk", 1.0, 1.0, 1.0))
        .send()
        .await
        .expect("click");
    assert_eq!(response.status().as_u16(), 202);
    let response = owner
        .post(app.url("/api/v1/orders"))
        .header("Idempotency-Key", "access-1")
        .json(&order_body())
        .send()
        .await
        .expect("order");
    assert_eq!(response.status().as_u16(), 201);
    let order: Value = response.json().await.expect("an order");
    let order_id = order["id"].as_str().expect("an order id").to_owned();
    let response = owner
        .post(app.url(&format!("/api/v1/orders/{order_id}/payments")))
        .json(&json!({"provider": "fake", "card_number": "4000002500003155"}))
        .send()
        .await
        .expect("payment");
    let payment: Value = response.json().await.expect("a payment");
    let payment_id = payment["id"].as_str().expect("a payment id").to_owned();
    app.wait_for_clicks_view().await;
    app.wait_for_projections().await;
    let fixture = Fixture { order_id, payment_id, click_id, user_id: owner_id };

    // Every documented route has a row.
    let (status, spec) = app.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let rows = table(&fixture);
    let covered: BTreeSet<(String, String)> =
        rows.iter().map(|(m, p, ..)| ((*m).to_owned(), (*p).to_owned())).collect();
    let undocumented: Vec<_> = covered.difference(&documented).collect();
    let untested: Vec<_> = documented.difference(&covered).collect();
    assert!(untested.is_empty(), "routes without a row in the role table: {untested:?}");
    assert!(
        undocumented.iter().all(|(_, p)| p == "/metrics"),
        "rows for routes the OpenAPI document lacks: {undocumented:?}"
    );

    let clients = [&app.http, &owner, &other, &merchant, &auditor, &app.admin];
    let mut wrong = Vec::new();
    for (method, template, path, body, expects) in rows {
        for ((role, client), expect) in ROLES.iter().zip(clients).zip(expects) {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
            let mut request = client.request(method.clone(), app.url(&path));
            request = match &body {
                Body::None => request,
                Body::Json(value) => request.json(value),
                Body::Upload => request.multipart(upload_form()),
            };
            if template == "/api/v1/orders" && method == reqwest::Method::POST {
                request = request.header("Idempotency-Key", Uuid::new_v4().to_string());
            }
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            if !meets(expect, status) {
                let text = response.text().await.unwrap_or_default();
                wrong.push(format!("{method} {template} as {role}: expected {expect:?}, got {status} {text}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{} answers differ from the role table:\n{}", wrong.len(), wrong.join("\n"));
}
