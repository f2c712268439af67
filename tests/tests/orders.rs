//! Users, orders and payments, end to end: accounts and roles, stock held by orders,
//! idempotent placement, the fake provider's cards, and its webhooks (duplicated,
//! reordered, forged).

use std::time::Duration;

use framecart_api::commands::payments::fake::FakeGateway;
use framecart_tests::{TestApp, eventually, pan_video, send, test_media};
use serde_json::{Value, json};
use uuid::Uuid;

const ARTICLE: &str = "SKU-1";
const PRICE: i64 = 1999;

const CARD_OK: &str = "4242424242424242";
const CARD_DECLINED: &str = "4000000000000002";
const CARD_CAPTURE_FAILS: &str = "4000000000009995";
const CARD_NEEDS_ACTION: &str = "4000002500003155";

async fn create_product(app: &TestApp, article: &str, stock: u32) {
    let body = json!({"article": article, "name": "Rain jacket", "price_minor": PRICE, "currency": "EUR",
                      "stock": stock, "image_url": "https://shop.example/jacket.png"});
    let (status, product) = app.post("/api/v1/products", &body).await;
    assert_eq!(status, 201, "{product}");
}

fn order_body(lines: &[(&str, u32)], click_id: Option<Uuid>) -> Value {
    let lines: Vec<Value> = lines.iter().map(|(a, q)| json!({"article": a, "quantity": q})).collect();
    json!({
        "lines": lines,
        "click_id": click_id,
        "contact": {"name": "Ada Viewer", "email": "ada@example.org"},
        "shipping_address": {"line1": "Hauptstraße 1", "city": "Berlin", "postal_code": "10115", "country": "de"},
    })
}

async fn place(app: &TestApp, client: &reqwest::Client, key: &str, body: &Value) -> (u16, Value) {
    send(client.post(app.url("/api/v1/orders")).header("Idempotency-Key", key).json(body)).await
}

async fn pay(app: &TestApp, client: &reqwest::Client, order_id: &str, card: &str) -> (u16, Value) {
    let body = json!({"provider": "fake", "card_number": card});
    send(client.post(app.url(&format!("/api/v1/orders/{order_id}/payments"))).json(&body)).await
}

/// Waits until the buyer sees the order in `status`.
async fn order_becomes(app: &TestApp, client: &reqwest::Client, order_id: &str, status: &str) -> Value {
    eventually(&format!("order {order_id} to be {status}"), Duration::from_secs(20), || async {
        let (code, order) = send(client.get(app.url(&format!("/api/v1/orders/{order_id}")))).await;
        (code == 200 && order["status"] == status).then_some(order)
    })
    .await
}

async fn product(app: &TestApp, article: &str) -> Value {
    app.get(&format!("/api/v1/products/{article}")).await.1
}

/// Waits until the products view shows `reserved` units held for `article`.
async fn reserved_becomes(app: &TestApp, article: &str, reserved: i64) {
    eventually(&format!("{article} to have {reserved} reserved"), Duration::from_secs(20), || async {
        (product(app, article).await["reserved"] == reserved).then_some(())
    })
    .await;
}

async fn event_count(app: &TestApp, aggregate_type: &str, event_type: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = $1 AND event_type = $2")
        .bind(aggregate_type)
        .bind(event_type)
        .fetch_one(&app.db)
        .await
        .expect("count")
}

#[tokio::test]
async fn accounts_sign_in_with_argon2_passwords_and_roles_come_from_an_admin() {
    let app = TestApp::spawn().await;
    let credentials = json!({"email": "Viewer@Example.org", "password": "correct horse battery"});
    let (status, user) = send(app.http.post(app.url("/api/v1/users")).json(&credentials)).await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["roles"], json!(["viewer"]));
    let user_id = user["user_id"].as_str().expect("an id").to_owned();

    // The same address again, in another case: one account per address.
    let again = json!({"email": "viewer@example.org", "password": "another password"});
    let (status, error) = send(app.http.post(app.url("/api/v1/users")).json(&again)).await;
    assert_eq!(status, 409, "{error}");
    let (status, error) =
        send(app.http.post(app.url("/api/v1/users")).json(&json!({"email": "x@example.org", "password": "short"})))
            .await;
    assert_eq!((status, error["error"]["code"].as_str()), (422, Some("invalid_password")));

    // The stored hash is Argon2, outside the log; no event holds it or the address in clear.
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM accounts WHERE user_id = $1::uuid")
        .bind(&user_id)
        .fetch_one(&app.db)
        .await
        .expect("the account");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let events: Vec<String> = sqlx::query_scalar("SELECT payload::text FROM events WHERE aggregate_id = $1")
        .bind(&user_id)
        .fetch_all(&app.db)
        .await
        .expect("the registration");
    assert_eq!(events.len(), 1, "the account's aggregate is its random id");
    assert!(!events[0].contains("argon2") && !events[0].contains("viewer@example.org"), "{}", events[0]);
    let (_, events) = app.get("/api/v1/audit/events?limit=1000").await;
    assert!(!events.to_string().contains("$argon2"), "an auditor never sees a password hash");

    let (status, error) = send(
        app.http
            .post(app.url("/api/v1/sessions"))
            .json(&json!({"email": "viewer@example.org", "password": "wrong password"})),
    )
    .await;
    assert_eq!((status, error["error"]["code"].as_str()), (401, Some("invalid_credentials")));
    let (status, session) = send(app.http.post(app.url("/api/v1/sessions")).json(&credentials)).await;
    assert_eq!(status, 200, "{session}");
    let token = session["token"].as_str().expect("a token").to_owned();
    let me = |token: String| {
        let request = app.http.get(app.url("/api/v1/users/me")).bearer_auth(token);
        send(request)
    };
    let (status, body) = me(token.clone()).await;
    assert_eq!((status, body["user_id"].as_str()), (200, Some(user_id.as_str())));
    let (status, _) = me("fc1.forged.token".into()).await;
    assert_eq!(status, 401);

    // A viewer cannot grant roles; an admin can, and the role holds on the next token.
    let viewer = app
        .http
        .post(app.url(&format!("/api/v1/users/{user_id}/roles")))
        .bearer_auth(&token)
        .json(&json!({"role": "merchant"}));
    assert_eq!(send(viewer).await.0, 403);
    let (status, granted) = app.post(&format!("/api/v1/users/{user_id}/roles"), &json!({"role": "merchant"})).await;
    assert_eq!(status, 200, "{granted}");
    let (_, session) = send(app.http.post(app.url("/api/v1/sessions")).json(&credentials)).await;
    let (_, body) = me(session["token"].as_str().expect("a token").into()).await;
    let mut roles: Vec<&str> = body["roles"].as_array().expect("roles").iter().filter_map(Value::as_str).collect();
    roles.sort_unstable();
    assert_eq!(roles, ["merchant", "viewer"]);

    // Signing out ends every token issued before.
    let out = app.http.delete(app.url("/api/v1/sessions")).bearer_auth(&token);
    assert_eq!(send(out).await.0, 204);
    assert_eq!(me(token).await.0, 401);
}

#[tokio::test]
async fn a_declined_card_leaves_the_order_awaiting_payment_and_another_card_pays_it() {
    let app = TestApp::spawn().await;
    create_product(&app, ARTICLE, 5).await;
    let (viewer, user_id) = app.user("ada@example.org", &[]).await;

    let (status, order) = place(&app, &viewer, "order-1", &order_body(&[(ARTICLE, 2)], None)).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "awaiting_payment");
    assert_eq!(order["total_minor"], 2 * PRICE);
    assert_eq!(order["currency"], "EUR");
    assert_eq!(order["user_id"], user_id.as_str());
    assert_eq!(order["lines"][0]["article"], ARTICLE);
    assert_eq!(order["lines"][0]["unit_price_minor"], PRICE, "the price is the catalogue's at that moment");
    let order_id = order["id"].as_str().expect("an id").to_owned();
    reserved_becomes(&app, ARTICLE, 2).await;

    let (status, declined) = pay(&app, &viewer, &order_id, CARD_DECLINED).await;
    assert_eq!(status, 201, "{declined}");
    assert_eq!(declined["status"], "requires_payment_method");
    assert_eq!(declined["failure_code"], "card_declined");
    let (_, still) = send(viewer.get(app.url(&format!("/api/v1/orders/{order_id}")))).await;
    assert_eq!(still["status"], "awaiting_payment");

    let (status, capture_failed) = pay(&app, &viewer, &order_id, CARD_CAPTURE_FAILS).await;
    assert_eq!(status, 201, "{capture_failed}");
    assert_eq!(capture_failed["status"], "requires_payment_method");
    assert_eq!(capture_failed["failure_code"], "insufficient_funds");

    let (status, paid) = pay(&app, &viewer, &order_id, CARD_OK).await;
    assert_eq!(status, 201, "{paid}");
    assert_eq!(paid["status"], "succeeded");
    assert_eq!(paid["amount_minor"], 2 * PRICE);
    let order = order_becomes(&app, &viewer, &order_id, "paid").await;
    assert_eq!(order["payment_id"], paid["id"]);

    // Paid once: the order is no longer awaiting payment, and its stock is sold.
    let (status, error) = pay(&app, &viewer, &order_id, CARD_OK).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("order_state")));
    let payments = eventually("the three attempts in the payments view", Duration::from_secs(20), || async {
        let (_, list) = send(viewer.get(app.url(&format!("/api/v1/orders/{order_id}/payments")))).await;
        let items = list["items"].as_array()?.clone();
        (items.len() == 3 && items.iter().all(|p| p["status"] != "processing")).then_some(items)
    })
    .await;
    let statuses: Vec<&str> = payments.iter().map(|p| p["status"].as_str().unwrap_or_default()).collect();
    assert_eq!(statuses, ["requires_payment_method", "requires_payment_method", "succeeded"]);

    // Shipping and completing are the merchant's; then a refund is no longer possible
    // without a merchant, and a merchant's refund marks the order refunded.
    let ship = viewer.post(app.url(&format!("/api/v1/orders/{order_id}/ship"))).json(&json!({}));
    assert_eq!(send(ship).await.0, 403);
    let (status, shipped) =
        app.post(&format!("/api/v1/orders/{order_id}/ship"), &json!({"tracking": "PARCEL-1"})).await;
    assert_eq!((status, shipped["status"].as_str()), (200, Some("shipped")), "{shipped}");
    // The stock held for the order leaves the shop with the parcel.
    eventually("the stock to be committed", Duration::from_secs(20), || async {
        let p = product(&app, ARTICLE).await;
        (p["stock"] == 3 && p["reserved"] == 0).then_some(())
    })
    .await;
    let (status, refund) = app.post(&format!("/api/v1/orders/{order_id}/refund"), &json!({})).await;
    assert_eq!(status, 200, "{refund}");
    order_becomes(&app, &viewer, &order_id, "refunded").await;
}

#[tokio::test]
async fn a_payment_that_needs_an_extra_step_is_paid_once_it_is_confirmed() {
    let app = TestApp::spawn().await;
    create_product(&app, ARTICLE, 5).await;
    let (viewer, _) = app.user("ada@example.org", &[]).await;
    let (_, order) = place(&app, &viewer, "k", &order_body(&[(ARTICLE, 1)], None)).await;
    let order_id = order["id"].as_str().expect("an id").to_owned();

    let (status, payment) = pay(&app, &viewer, &order_id, CARD_NEEDS_ACTION).await;
    assert_eq!(status, 201, "{payment}");
    assert_eq!(payment["status"], "requires_action");
    assert_eq!(payment["next_action"], "confirm");
    let (_, still) = send(viewer.get(app.url(&format!("/api/v1/orders/{order_id}")))).await;
    assert_eq!(still["status"], "awaiting_payment");

    // Nobody else confirms a viewer's payment.
    let (other, _) = app.user("eve@example.org", &[]).await;
    let payment_id = payment["id"].as_str().expect("an id");
    let confirm =
        |client: &reqwest::Client| send(client.post(app.url(&format!("/api/v1/payments/{payment_id}/confirm"))));
    assert_eq!(confirm(&other).await.0, 404);
    let (status, confirmed) = confirm(&viewer).await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["status"], "succeeded");
    order_becomes(&app, &viewer, &order_id, "paid").await;

    // An order cancelled while its payment waits for the extra step cancels the payment.
    let (_, order) = place(&app, &viewer, "k2", &order_body(&[(ARTICLE, 1)], None)).await;
    let order_id = order["id"].as_str().expect("an id").to_owned();
    let (_, payment) = pay(&app, &viewer, &order_id, CARD_NEEDS_ACTION).await;
    assert_eq!(payment["status"], "requires_action");
    intent_of(&app, &order_id).await;
    let cancel = viewer.post(app.url(&format!("/api/v1/orders/{order_id}/cancel"))).json(&json!({}));
    assert_eq!(send(cancel).await.0, 200);
    let payment_id = payment["id"].as_str().expect("an id");
    eventually("the payment to be canceled", Duration::from_secs(20), || async {
        let (_, list) = send(viewer.get(app.url(&format!("/api/v1/orders/{order_id}/payments")))).await;
        (list["items"][0]["status"] == "canceled").then_some(())
    })
    .await;
    let (status, _) = send(viewer.post(app.url(&format!("/api/v1/payments/{payment_id}/confirm")))).await;
    assert_eq!(status, 409, "a canceled payment cannot be completed");
}

#[tokio::test]
async fn a_retried_order_with_the_same_key_is_placed_once() {
    let app = TestApp::spawn().await;
    create_product(&app, ARTICLE, 5).await;
    let (viewer, _) = app.user("ada@example.org", &[]).await;
    let body = order_body(&[(ARTICLE, 2)], None);

    let (first_status, first) = place(&app, &viewer, "retry-me", &body).await;
    assert_eq!(first_status, 201, "{first}");
    let (again_status, again) = place(&app, &viewer, "retry-me", &body).await;
    assert_eq!((again_status, &again), (first_status, &first), "a retry gets the first answer");
    reserved_becomes(&app, ARTICLE, 2).await;
    assert_eq!(event_count(&app, "order", "OrderPlaced").await, 1);
    assert_eq!(event_count(&app, "product", "StockReserved").await, 1);

    // The key with other parameters is a client's mistake, and changes nothing.
    let other = order_body(&[(ARTICLE, 1)], None);
    let (status, error) = place(&app, &viewer, "retry-me", &other).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("idempotency_key_reused")), "{error}");
    // Without a key there is no order.
    let (status, error) = send(viewer.post(app.url("/api/v1/orders")).json(&body)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("missing_idempotency_key")));
    // Another buyer's key of the same name is another order.
    let (eve, _) = app.user("eve@example.org", &[]).await;
    let (status, hers) = place(&app, &eve, "retry-me", &order_body(&[(ARTICLE, 1)], None)).await;
    assert_eq!(status, 201, "{hers}");
    assert_ne!(hers["id"], first["id"]);

    // A refused order's answer is kept with its key too: a retry is refused the same way
    // even after stock came back.
    let (status, refused) = place(&app, &viewer, "too-many", &order_body(&[(ARTICLE, 5)], None)).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("insufficient_stock")), "{refused}");
    let (status, replayed) = place(&app, &viewer, "too-many", &order_body(&[(ARTICLE, 5)], None)).await;
    assert_eq!((status, &replayed), (409, &refused));

    // Concurrent retries of one attempt place one order.
    let concurrent = order_body(&[(ARTICLE, 1)], None);
    let answers = futures::future::join_all((0..4).map(|_| place(&app, &viewer, "concurrent", &concurrent))).await;
    let created: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 201).map(|(_, b)| b).collect();
    assert!(!created.is_empty(), "{answers:?}");
    assert!(created.iter().all(|b| b["id"] == created[0]["id"]), "{answers:?}");
    for (status, body) in &answers {
        assert!(
            *status == 201 || (*status == 409 && body["error"]["code"] == "request_in_progress"),
            "{status} {body}"
        );
    }
    assert_eq!(event_count(&app, "order", "OrderPlaced").await, 3);
}

#[tokio::test]
async fn an_order_that_would_oversell_is_refused_and_a_cancelled_order_gives_its_stock_back() {
    let app = TestApp::spawn().await;
    create_product(&app, ARTICLE, 3).await;
    create_product(&app, "SKU-2", 1).await;
    let (viewer, _) = app.user("ada@example.org", &[]).await;

    let (status, held) = place(&app, &viewer, "a", &order_body(&[(ARTICLE, 2)], None)).await;
    assert_eq!(status, 201, "{held}");
    let (status, error) = place(&app, &viewer, "b", &order_body(&[(ARTICLE, 2)], None)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("insufficient_stock")), "{error}");
    // A line that fails gives back what the lines before it held.
    let (status, error) = place(&app, &viewer, "c", &order_body(&[(ARTICLE, 1), ("SKU-2", 2)], None)).await;
    assert_eq!(status, 409, "{error}");
    reserved_becomes(&app, ARTICLE, 2).await;
    assert_eq!(product(&app, "SKU-2").await["reserved"], 0);

    // Unknown articles, zero quantities, a bad address: 422, and nothing is held.
    for (body, code) in [
        (order_body(&[("NOPE", 1)], None), "not_for_sale"),
        (order_body(&[(ARTICLE, 0)], None), "invalid_order"),
        (order_body(&[], None), "invalid_order"),
        (order_body(&[(ARTICLE, 1)], Some(Uuid::new_v4())), "unknown_click"),
    ] {
        let (status, error) = place(&app, &viewer, &Uuid::new_v4().to_string(), &body).await;
        assert_eq!((status, error["error"]["code"].as_str()), (422, Some(code)), "{body}: {error}");
    }
    let mut bad_address = order_body(&[(ARTICLE, 1)], None);
    bad_address["shipping_address"]["country"] = json!("Germany");
    let (status, error) = place(&app, &viewer, "d", &bad_address).await;
    assert_eq!((status, error["error"]["code"].as_str()), (422, Some("invalid_address")), "{error}");

    // Another viewer may not cancel it; its buyer may, and the stock comes back.
    let order_id = held["id"].as_str().expect("an id");
    let (eve, _) = app.user("eve@example.org", &[]).await;
    let cancel = |client: &reqwest::Client| {
        send(
            client
                .post(app.url(&format!("/api/v1/orders/{order_id}/cancel")))
                .json(&json!({"reason": "changed my mind"})),
        )
    };
    assert_eq!(cancel(&eve).await.0, 404);
    let (status, cancelled) = cancel(&viewer).await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")), "{cancelled}");
    reserved_becomes(&app, ARTICLE, 0).await;
    let (status, error) = pay(&app, &viewer, order_id, CARD_OK).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("order_state")));
    let (status, all) = place(&app, &viewer, "e", &order_body(&[(ARTICLE, 3)], None)).await;
    assert_eq!(status, 201, "{all}");
}

/// The payment's intent at the provider, and its id.
async fn intent_of(app: &TestApp, order_id: &str) -> (Uuid, String) {
    eventually("the payment in the payments view", Duration::from_secs(20), || async {
        sqlx::query_as("SELECT payment_id, intent_id FROM payments_view WHERE order_id = $1::uuid ORDER BY created_at DESC LIMIT 1")
            .bind(order_id)
            .fetch_optional(&app.db)
            .await
            .expect("the payment")
    })
    .await
}

async fn post_webhook(app: &TestApp, body: &[u8], signature: Option<String>) -> (u16, Value) {
    let mut request = app
        .http
        .post(app.url("/api/v1/payments/webhooks/fake"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("framecart-signature", signature);
    }
    send(request).await
}

fn webhook(
    id: &str,
    payment_id: Uuid,
    intent_id: &str,
    status: &str,
    created: chrono::DateTime<chrono::Utc>,
) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id, "type": format!("payment_intent.{status}"), "created": created,
        "data": {"intent_id": intent_id, "payment_id": payment_id, "status": status, "failure_code": null, "failure_message": null},
    }))
    .expect("json")
}

/// The PaymentIntent states in their forward order.
const FORWARD: [&str; 6] =
    ["requires_confirmation", "requires_action", "processing", "requires_capture", "succeeded", "canceled"];

/// Each change once, forward only, ending in `last`. (Which intermediate states are
/// recorded depends on whether the provider's webhook for them or its direct answer for
/// a later state arrived first.)
fn assert_forward(changes: &[String], last: &str) {
    let ranks: Vec<usize> = changes.iter().map(|c| FORWARD.iter().position(|f| f == c).unwrap_or(usize::MAX)).collect();
    assert!(ranks.windows(2).all(|w| w[0] < w[1]), "forward only, each once: {changes:?}");
    assert_eq!(changes.last().map(String::as_str), Some(last), "{changes:?}");
}

async fn payment_changes(app: &TestApp, payment_id: Uuid) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT payload::jsonb #>> '{PaymentStatusChanged,to}' FROM events
         WHERE aggregate_type = 'payment' AND aggregate_id = $1 AND event_type = 'PaymentStatusChanged' ORDER BY sequence",
    )
    .bind(payment_id.to_string())
    .fetch_all(&app.db)
    .await
    .expect("changes")
}

#[tokio::test]
async fn duplicate_and_out_of_order_webhooks_are_applied_once() {
    // The fake provider sends every third webhook twice, after random delays.
    let app = TestApp::spawn().await;
    create_product(&app, ARTICLE, 50).await;
    let (viewer, _) = app.user("ada@example.org", &[]).await;
    let secret = app.running.state.fake_payments_secret.clone();

    let mut orders = Vec::new();
    for i in 0..6 {
        let (_, order) = place(&app, &viewer, &format!("order-{i}"), &order_body(&[(ARTICLE, 1)], None)).await;
        let order_id = order["id"].as_str().expect("an id").to_owned();
        let (status, paid) = pay(&app, &viewer, &order_id, CARD_OK).await;
        assert_eq!((status, paid["status"].as_str()), (201, Some("succeeded")), "{paid}");
        orders.push(order_id);
    }
    // The provider's own webhooks (some twice, some overtaking) change nothing more.
    tokio::time::sleep(Duration::from_millis(800)).await;
    for order_id in &orders {
        order_becomes(&app, &viewer, order_id, "paid").await;
        let (payment_id, _) = intent_of(&app, order_id).await;
        assert_forward(&payment_changes(&app, payment_id).await, "succeeded");
    }
    // Every provider event is applied at most once.
    let duplicates: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT payload::jsonb #>> '{PaymentStatusChanged,provider_event_id}' AS id FROM events
         WHERE event_type = 'PaymentStatusChanged' GROUP BY 1 HAVING count(*) > 1) d",
    )
    .fetch_one(&app.db)
    .await
    .expect("count");
    assert_eq!(duplicates, 0);

    // A webhook of ours: the same one twice, then a late one for an older state.
    let (payment_id, intent_id) = intent_of(&app, &orders[0]).await;
    let settled = payment_changes(&app, payment_id).await;
    let now = chrono::Utc::now();
    let late =
        webhook("evt_late_processing", payment_id, &intent_id, "processing", now - chrono::Duration::seconds(60));
    let signed = |body: &[u8]| Some(FakeGateway::sign(&secret, body, now.timestamp()));
    for _ in 0..2 {
        let (status, answer) = post_webhook(&app, &late, signed(&late)).await;
        assert_eq!(status, 200, "{answer}");
    }
    assert_eq!(payment_changes(&app, payment_id).await, settled, "a payment never moves back");
    order_becomes(&app, &viewer, &orders[0], "paid").await;

    // A webhook that arrives before the direct answer: the payment is paid by it, and the
    // direct answer that follows (the same provider event) changes nothing.
    let (_, order) = place(&app, &viewer, "webhook-first", &order_body(&[(ARTICLE, 1)], None)).await;
    let order_id = order["id"].as_str().expect("an id").to_owned();
    let (_, action) = pay(&app, &viewer, &order_id, CARD_NEEDS_ACTION).await;
    assert_eq!(action["status"], "requires_action");
    let (payment_id, intent_id) = intent_of(&app, &order_id).await;
    let early = webhook("evt_from_elsewhere", payment_id, &intent_id, "succeeded", chrono::Utc::now());
    let (status, _) = post_webhook(&app, &early, signed(&early)).await;
    assert_eq!(status, 200);
    order_becomes(&app, &viewer, &order_id, "paid").await;
    let changes = payment_changes(&app, payment_id).await;
    assert_forward(&changes, "succeeded");
    assert!(changes.contains(&"requires_action".to_owned()), "{changes:?}");
}

#[tokio::test]
async fn a_forged_webhook_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    create_product(&app, ARTICLE, 5).await;
    let (viewer, _) = app.user("ada@example.org", &[]).await;
    let (_, order) = place(&app, &viewer, "k", &order_body(&[(ARTICLE, 1)], None)).await;
    let order_id = order["id"].as_str().expect("an id").to_owned();
    let (_, action) = pay(&app, &viewer, &order_id, CARD_NEEDS_ACTION).await;
    assert_eq!(action["status"], "requires_action");
    let (payment_id, intent_id) = intent_of(&app, &order_id).await;
    let before = payment_changes(&app, payment_id).await;

    let now = chrono::Utc::now();
    let body = webhook("evt_forged", payment_id, &intent_id, "succeeded", now);
    let secret = app.running.state.fake_payments_secret.clone();
    let right = FakeGateway::sign(&secret, &body, now.timestamp());
    let cases: Vec<(&str, Vec<u8>, Option<String>)> = vec![
        ("another key", body.clone(), Some(FakeGateway::sign(b"not the provider's secret", &body, now.timestamp()))),
        ("no signature", body.clone(), None),
        ("garbage", body.clone(), Some("t=1,v1=zz".into())),
        ("an old signature (a replay)", body.clone(), Some(FakeGateway::sign(&secret, &body, now.timestamp() - 3600))),
        (
            "a body changed after signing",
            webhook("evt_forged", payment_id, &intent_id, "canceled", now),
            Some(right.clone()),
        ),
    ];
    for (what, body, signature) in cases {
        let (status, error) = post_webhook(&app, &body, signature).await;
        assert_eq!((status, error["error"]["code"].as_str()), (400, Some("invalid_signature")), "{what}: {error}");
    }
    let (status, _) = send(app.http.post(app.url("/api/v1/payments/webhooks/nobody")).body(body.clone())).await;
    assert_eq!(status, 404);
    let (status, error) =
        post_webhook(&app, b"{not json", Some(FakeGateway::sign(&secret, b"{not json", now.timestamp()))).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("malformed_webhook")));

    assert_eq!(payment_changes(&app, payment_id).await, before);
    let (_, still) = send(viewer.get(app.url(&format!("/api/v1/orders/{order_id}")))).await;
    assert_eq!(still["status"], "awaiting_payment");
    // The genuine one is applied.
    let (status, _) = post_webhook(&app, &body, Some(right)).await;
    assert_eq!(status, 200);
    order_becomes(&app, &viewer, &order_id, "paid").await;
}

#[tokio::test]
async fn each_role_is_refused_where_it_does_not_belong() {
    let app = TestApp::spawn().await;
    create_product(&app, ARTICLE, 5).await;
    let (viewer, viewer_id) = app.user("viewer@example.org", &[]).await;
    let (other, _) = app.user("other@example.org", &[]).await;
    let (merchant, merchant_id) = app.user("merchant@example.org", &["merchant"]).await;
    let (auditor, _) = app.user("auditor@example.org", &["auditor"]).await;
    let anonymous = &app.http;

    let (_, order) = place(&app, &viewer, "k", &order_body(&[(ARTICLE, 1)], None)).await;
    let order_id = order["id"].as_str().expect("an id").to_owned();
    let product = json!({"article": "SKU-9", "name": "Hat", "price_minor": 500, "currency": "EUR", "stock": 1});
    let link = json!({"article": ARTICLE, "label": "person", "from": 0.0, "to": 10.0});

    // (who, method, path, body, expected status)
    let get = |path: &str| ("GET", path.to_owned(), None::<Value>);
    let post = |path: &str, body: Value| ("POST", path.to_owned(), Some(body));
    type Case<'a> = (&'a str, &'a reqwest::Client, (&'a str, String, Option<Value>), u16);
    let cases: Vec<Case<'_>> = vec![
        ("anonymous", anonymous, get("/api/v1/orders"), 401),
        ("anonymous", anonymous, post("/api/v1/orders", order_body(&[(ARTICLE, 1)], None)), 401),
        ("anonymous", anonymous, get("/api/v1/clicks"), 401),
        ("anonymous", anonymous, post("/api/v1/products", product.clone()), 401),
        ("anonymous", anonymous, get("/api/v1/audit/verify"), 401),
        ("a viewer", &viewer, post("/api/v1/products", product.clone()), 403),
        ("a viewer", &viewer, post("/api/v1/videos/VESeA6leQuk/links", link.clone()), 403),
        ("a viewer", &viewer, post("/processing/video/VESeA6leQuk/start", json!({})), 403),
        ("a viewer", &viewer, get("/api/v1/videos/VESeA6leQuk/analytics"), 403),
        ("a viewer", &viewer, get("/api/v1/audit/events"), 403),
        ("a viewer", &viewer, get("/api/v1/audit/verify"), 403),
        ("a viewer", &viewer, get("/api/v1/users"), 403),
        ("a viewer", &viewer, post(&format!("/api/v1/orders/{order_id}/ship"), json!({})), 403),
        ("a viewer", &viewer, post(&format!("/api/v1/orders/{order_id}/refund"), json!({})), 403),
        ("another viewer", &other, get(&format!("/api/v1/orders/{order_id}")), 404),
        ("another viewer", &other, get(&format!("/api/v1/orders/{order_id}/payments")), 404),
        (
            "another viewer",
            &other,
            post(&format!("/api/v1/orders/{order_id}/payments"), json!({"provider": "fake", "card_number": CARD_OK})),
            404,
        ),
        ("a merchant", &merchant, get("/api/v1/audit/events"), 403),
        ("a merchant", &merchant, get(&format!("/api/v1/audit/streams/order/{order_id}")), 403),
        ("a merchant", &merchant, post(&format!("/api/v1/users/{viewer_id}/roles"), json!({"role": "admin"})), 403),
        (
            "a merchant",
            &merchant,
            post(&format!("/api/v1/orders/{order_id}/payments"), json!({"provider": "fake", "card_number": CARD_OK})),
            403,
        ),
        ("an auditor", &auditor, post("/api/v1/products", product.clone()), 403),
        ("an auditor", &auditor, post(&format!("/api/v1/orders/{order_id}/ship"), json!({})), 403),
        ("an auditor", &auditor, post(&format!("/api/v1/users/{viewer_id}/roles"), json!({"role": "admin"})), 403),
        // Where each belongs.
        ("the buyer", &viewer, get(&format!("/api/v1/orders/{order_id}")), 200),
        ("a merchant", &merchant, post("/api/v1/products", product.clone()), 201),
        ("a merchant", &merchant, get(&format!("/api/v1/orders/{order_id}")), 200),
        ("a merchant", &merchant, get("/api/v1/videos/VESeA6leQuk/analytics"), 200),
        ("an auditor", &auditor, get("/api/v1/audit/verify"), 200),
        ("an auditor", &auditor, get(&format!("/api/v1/audit/streams/order/{order_id}")), 200),
        ("an auditor", &auditor, get("/api/v1/videos/VESeA6leQuk/analytics"), 200),
        ("the admin", &app.admin, get("/api/v1/audit/events"), 200),
        ("the admin", &app.admin, post(&format!("/api/v1/users/{merchant_id}/roles"), json!({"role": "auditor"})), 200),
    ];
    for (who, client, (method, path, body), expected) in cases {
        let request = match method {
            "GET" => client.get(app.url(&path)),
            _ => client.post(app.url(&path)).header("Idempotency-Key", "k2").json(&body.unwrap_or(Value::Null)),
        };
        let (status, answer) = send(request).await;
        assert_eq!(status, expected, "{who} {method} {path}: {answer}");
        if status >= 400 {
            assert!(answer["error"]["code"].is_string(), "{who} {method} {path}: a JSON error: {answer}");
        }
    }

    // A viewer sees only their own clicks and orders.
    let click = |client: &reqwest::Client, user: Option<&str>| {
        let mut body = framecart_tests::click_body(Uuid::new_v4(), "VESeA6leQuk", 10.0, 10.0, 1.0);
        if let Some(user) = user {
            body["userId"] = json!(user);
        }
        send(client.post(app.url("/api/v1/clicks")).json(&body))
    };
    assert_eq!(click(&viewer, None).await.0, 202);
    assert_eq!(click(&viewer, Some("someone_else")).await.0, 202, "the token wins over a reported id");
    assert_eq!(click(anonymous, Some("someone_else")).await.0, 202);
    app.wait_for_clicks_view().await;
    let (_, mine) = send(viewer.get(app.url("/api/v1/clicks"))).await;
    let users: Vec<&str> =
        mine["items"].as_array().expect("items").iter().map(|c| c["user_id"].as_str().unwrap_or_default()).collect();
    assert_eq!(users, [viewer_id.as_str(), viewer_id.as_str()]);
    let (_, theirs) = send(other.get(app.url("/api/v1/clicks"))).await;
    assert_eq!(theirs["items"], json!([]));
    let (_, staff) = send(merchant.get(app.url("/api/v1/clicks"))).await;
    assert_eq!(staff["items"].as_array().expect("items").len(), 3);
    let (_, listed) = send(other.get(app.url("/api/v1/orders"))).await;
    assert_eq!(listed["items"], json!([]));
}

#[tokio::test]
async fn a_matched_click_becomes_a_paid_order_and_the_video_funnel_counts_it() {
    const VIDEO: &str = "VESeA6leQuk";
    let app = TestApp::spawn_with(|s| s.video.detector_workers = 1).await;
    let (viewer, viewer_id) = app.user("ada@example.org", &[]).await;

    // A video in which a person moves, and a product linked to people in it.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("pan.mp4");
    pan_video(&test_media("person.jpg"), &file, 3);
    let (status, answer) = app.upload(VIDEO, "pan.mp4", std::fs::read(&file).expect("video")).await;
    assert_eq!(status, 201, "{answer}");
    create_product(&app, ARTICLE, 5).await;
    let (status, link) = app
        .post(
            &format!("/api/v1/videos/{VIDEO}/links"),
            &json!({"article": ARTICLE, "label": "person", "from": 0.0, "to": 10.0}),
        )
        .await;
    assert_eq!(status, 201, "{link}");
    let person = eventually("a person detected at 1.5 s", Duration::from_secs(120), || async {
        let (_, d) = app.get(&format!("/api/v1/videos/{VIDEO}/detections?label=person&from=1.2&to=1.8")).await;
        d["items"].as_array()?.first().cloned()
    })
    .await;
    let t = person["timestamp"].as_f64().expect("t");
    let centre = |a: &str, b: &str| (person[a].as_f64().expect("n") + person[b].as_f64().expect("n")) / 2.0;
    // The player shows the 320×320 upload at 400×400: a click on the person's centre.
    let (x, y) = (centre("xmin", "xmax") * 1.25, centre("ymin", "ymax") * 1.25);
    let click_id = Uuid::new_v4();
    let mut body = json!({"clickId": click_id, "videoId": VIDEO, "x": x, "y": y, "timestamp": t,
                          "player": {"width": 400, "height": 400}, "video": {"width": 320, "height": 320}});
    let (status, answer) = send(viewer.post(app.url("/api/v1/clicks")).json(&body)).await;
    assert_eq!(status, 202, "{answer}");
    // And one click on nothing, from nobody.
    body["clickId"] = json!(Uuid::new_v4());
    body["x"] = json!(1.0);
    body["y"] = json!(1.0);
    assert_eq!(send(app.http.post(app.url("/api/v1/clicks")).json(&body)).await.0, 202);

    let matched = eventually("the click to be matched", Duration::from_secs(60), || async {
        let (_, m) = send(viewer.get(app.url(&format!("/api/v1/clicks/{click_id}/match")))).await;
        (m["status"] == "matched").then_some(m)
    })
    .await;
    assert_eq!(matched["article"], ARTICLE);
    let (_, stored) = app.get(&format!("/api/v1/clicks/{click_id}")).await;
    assert_eq!(stored["user_id"], viewer_id.as_str(), "a click with a token carries its user");

    let (status, order) = place(&app, &viewer, "from-the-card", &order_body(&[(ARTICLE, 1)], Some(click_id))).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["click_id"], json!(click_id));
    let order_id = order["id"].as_str().expect("an id").to_owned();
    let (status, paid) = pay(&app, &viewer, &order_id, CARD_OK).await;
    assert_eq!((status, paid["status"].as_str()), (201, Some("succeeded")), "{paid}");
    order_becomes(&app, &viewer, &order_id, "paid").await;
    // Staff list orders by state.
    let ids = |list: &Value| -> Vec<String> {
        list["items"].as_array().expect("items").iter().filter_map(|o| o["id"].as_str().map(str::to_owned)).collect()
    };
    let (status, paid) = app.get("/api/v1/orders?status=paid").await;
    assert_eq!((status, ids(&paid)), (200, vec![order_id.clone()]), "{paid}");
    let (_, shipped) = app.get("/api/v1/orders?status=shipped").await;
    assert!(ids(&shipped).is_empty(), "{shipped}");
    let (status, error) = app.get("/api/v1/orders?status=lost").await;
    assert_eq!((status, error["error"]["code"].as_str()), (422, Some("invalid_status")), "{error}");

    let analytics = eventually("the funnel to count the paid order", Duration::from_secs(20), || async {
        let (_, a) = app.get(&format!("/api/v1/videos/{VIDEO}/analytics")).await;
        (a["paid_orders"] == 1 && a["clicks"] == 2 && a["unmatched"] == 1).then_some(a)
    })
    .await;
    assert_eq!(analytics["matched"], 1, "{analytics}");
    assert_eq!(analytics["orders"], 1, "{analytics}");
    let products = analytics["products"].as_array().expect("products");
    assert_eq!(products.len(), 1, "{analytics}");
    assert_eq!(products[0]["article"], ARTICLE);
    assert_eq!(products[0]["matched_clicks"], 1);
    assert_eq!(products[0]["orders"], 1);
    assert_eq!(products[0]["paid_orders"], 1);
    assert_eq!(products[0]["revenue_minor"], PRICE);
    assert_eq!(products[0]["currency"], "EUR");
    let heatmap = &analytics["heatmap"];
    let grid = heatmap["grid"].as_i64().expect("grid");
    let cells = heatmap["cells"].as_array().expect("cells");
    assert_eq!(cells.iter().map(|c| c[2].as_i64().unwrap_or(0)).sum::<i64>(), 2, "{heatmap}");
    let cell =
        |u: f64, v: f64| json!([((u * grid as f64) as i64).min(grid - 1), ((v * grid as f64) as i64).min(grid - 1), 1]);
    assert!(cells.contains(&cell(x / 400.0, y / 400.0)), "the click's cell: {heatmap}");
    assert!(cells.contains(&cell(1.0 / 400.0, 1.0 / 400.0)), "{heatmap}");
    // The paid revenue in all, and both clicks in the second of the video they came at.
    assert_eq!(analytics["revenue"], json!([{"currency": "EUR", "revenue_minor": PRICE}]), "{analytics}");
    let timeline = &analytics["timeline"];
    assert_eq!(timeline["bin_seconds"], 1.0, "{timeline}");
    assert_eq!(timeline["bins"], json!([[t.floor() as i64, 2]]), "{timeline}");
}

// Money moves once (issue 12, finding 2).

/// Minor units the fake provider captured and refunded, over every payment of the test.
async fn money_moved(app: &TestApp) -> (i64, i64) {
    let fake = app.running.state.fake_payments.as_ref().expect("the fake provider");
    fake.money_moved().await.expect("the provider's books")
}

/// Places an order of one unit and returns its id.
async fn placed_order(app: &TestApp, client: &reqwest::Client, key: &str) -> String {
    let (status, order) = place(app, client, key, &order_body(&[(ARTICLE, 1)], None)).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "awaiting_payment");
    order["id"].as_str().expect("an id").to_owned()
}

async fn order_event_count(app: &TestApp, order_id: &str, event_type: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'order' AND aggregate_id = $1 AND event_type = $2",
    )
    .bind(order_id)
    .bind(event_type)
    .fetch_one(&app.db)
    .await
    .expect("count")
}

#[tokio::test]
async fn concurrent_payments_of_one_order_capture_its_total_once() {
    let app = TestApp::spawn().await;
    create_product(&app, ARTICLE, 5).await;
    let (viewer, _) = app.user("ada@example.org", &[]).await;
    let order_id = placed_order(&app, &viewer, "k").await;

    let answers = futures::future::join_all((0..4).map(|_| pay(&app, &viewer, &order_id, CARD_OK))).await;
    let paid: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 201).map(|(_, b)| b).collect();
    assert_eq!(paid.len(), 1, "one attempt goes through: {answers:?}");
    assert_eq!(paid[0]["status"], "succeeded");
    for (status, body) in answers.iter().filter(|(s, _)| *s != 201) {
        let code = body["error"]["code"].as_str();
        assert!(
            *status == 409 && matches!(code, Some("payment_in_progress" | "order_state")),
            "the others are refused: {status} {body}"
        );
    }
    let order = order_becomes(&app, &viewer, &order_id, "paid").await;
    assert_eq!(order["payment_id"], paid[0]["id"]);
    assert_eq!(money_moved(&app).await, (PRICE, 0), "captured once");
    assert_eq!(
        event_count(&app, "payment", "PaymentCreated").await,
        1,
        "the refused attempts asked the provider nothing"
    );
    assert_eq!(order_event_count(&app, &order_id, "OrderPaid").await, 1);
    assert_eq!(order_event_count(&app, &order_id, "OrderSurplusCaptured").await, 0);
}

#[tokio::test]
async fn another_card_is_refused_while_a_payment_waits_for_its_extra_step() {
    let app = TestApp::spawn().await;
    create_product(&app, ARTICLE, 5).await;
    let (viewer, _) = app.user("ada@example.org", &[]).await;
    let order_id = placed_order(&app, &viewer, "k").await;

    let (status, first) = pay(&app, &viewer, &order_id, CARD_NEEDS_ACTION).await;
    assert_eq!((status, first["status"].as_str()), (201, Some("requires_action")), "{first}");
    let (status, error) = pay(&app, &viewer, &order_id, CARD_OK).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("payment_in_progress")), "{error}");

    let payment_id = first["id"].as_str().expect("an id");
    let (status, confirmed) = send(viewer.post(app.url(&format!("/api/v1/payments/{payment_id}/confirm")))).await;
    assert_eq!((status, confirmed["status"].as_str()), (200, Some("succeeded")), "{confirmed}");
    order_becomes(&app, &viewer, &order_id, "paid").await;
    assert_eq!(money_moved(&app).await, (PRICE, 0), "captured once");
    assert_eq!(event_count(&app, "payment", "PaymentCreated").await, 1);

    // A failed attempt ends its claim at once: the next card is taken.
    let order_id = placed_order(&app, &viewer, "k2").await;
    let (status, declined) = pay(&app, &viewer, &order_id, CARD_DECLINED).await;
    assert_eq!((status, declined["failure_code"].as_str()), (201, Some("card_declined")), "{declined}");
    let (status, paid) = pay(&app, &viewer, &order_id, CARD_OK).await;
    assert_eq!((status, paid["status"].as_str()), (201, Some("succeeded")), "{paid}");
}

#[tokio::test]
async fn a_capture_beyond_the_order_total_is_refunded_automatically_and_shows_on_the_order() {
    use framecart_api::commands::execute::execute;
    use framecart_api::domain::EventMetadata;
    use framecart_api::domain::money::{Currency, Money};
    use framecart_api::domain::payment::{CreatePayment, PaymentCommand};

    let app = TestApp::spawn().await;
    create_product(&app, ARTICLE, 5).await;
    let (viewer, user_id) = app.user("ada@example.org", &[]).await;
    let order_id = placed_order(&app, &viewer, "k").await;
    let (_, first) = pay(&app, &viewer, &order_id, CARD_OK).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    order_becomes(&app, &viewer, &order_id, "paid").await;

    // The provider captures a second attempt of the paid order (one taken over after it
    // was left, then completed by the customer all the same): recorded as a payment of
    // the order that succeeded, as its webhooks would.
    let state = &app.running.state;
    let gateway = state.gateways.get("fake").expect("the fake provider").clone();
    let amount = Money::new(PRICE, Currency::parse("EUR").expect("EUR"));
    let payment_id = Uuid::now_v7();
    let intent = gateway.initiate(payment_id, amount).await.expect("an intent");
    let create = CreatePayment {
        payment_id,
        order_id: order_id.parse().expect("a uuid"),
        user_id: user_id.parse().expect("a uuid"),
        provider: "fake".into(),
        intent_id: intent.clone(),
        amount,
        created_at: chrono::Utc::now(),
    };
    let metadata = || EventMetadata::for_request("test", None, "provider:fake".into());
    let payments = &state.commands.payments;
    execute(payments, &payment_id.to_string(), PaymentCommand::Create(create), metadata()).await.expect("created");
    let authorized = gateway.authorize(&intent, CARD_OK).await.expect("authorized");
    let captured = gateway.capture(&intent).await.expect("captured");
    for event in [authorized, captured] {
        execute(payments, &payment_id.to_string(), PaymentCommand::Report(event.report()), metadata())
            .await
            .expect("reported");
    }

    let order = eventually("the surplus to be refunded", Duration::from_secs(20), || async {
        let (_, order) = send(viewer.get(app.url(&format!("/api/v1/orders/{order_id}")))).await;
        (order["surplus_refunded_minor"] == PRICE).then_some(order)
    })
    .await;
    assert_eq!(order["surplus_captured_minor"], PRICE, "{order}");
    assert_eq!(order["status"], "paid", "the order stays paid by its first payment");
    assert_eq!(order["payment_id"], first["id"]);
    assert_eq!(money_moved(&app).await, (2 * PRICE, PRICE), "what was captured twice was given back once");
    // The order's history shows both, and the refund was the provider's, once.
    let (_, history) = app.get(&format!("/api/v1/audit/streams/order/{order_id}")).await;
    let types: Vec<&str> =
        history["items"].as_array().expect("items").iter().filter_map(|e| e["event_type"].as_str()).collect();
    assert!(types.contains(&"OrderSurplusCaptured") && types.contains(&"OrderSurplusRefunded"), "{types:?}");
    assert_eq!(event_count(&app, "payment", "PaymentRefunded").await, 1);
    let refused = app.count("SELECT count(*) FROM order_followups WHERE refused_at IS NOT NULL").await;
    assert_eq!(refused, 0);
    let (_, payments) = send(viewer.get(app.url(&format!("/api/v1/orders/{order_id}/payments")))).await;
    let refunded: Vec<bool> =
        payments["items"].as_array().expect("items").iter().map(|p| p["refunded"] == true).collect();
    assert_eq!(refunded, [false, true], "only the surplus payment is refunded");
}

#[tokio::test]
async fn a_signed_webhook_never_revives_a_cancelled_payment_and_must_name_its_intent() {
    let app = TestApp::spawn().await;
    create_product(&app, ARTICLE, 5).await;
    let (viewer, _) = app.user("ada@example.org", &[]).await;
    let secret = app.running.state.fake_payments_secret.clone();
    let order_id = placed_order(&app, &viewer, "k").await;
    let (_, payment) = pay(&app, &viewer, &order_id, CARD_NEEDS_ACTION).await;
    assert_eq!(payment["status"], "requires_action", "{payment}");
    let (payment_id, intent_id) = intent_of(&app, &order_id).await;

    // A webhook about another intent is refused while the payment is under way.
    let now = chrono::Utc::now();
    let signed = |body: &[u8]| Some(FakeGateway::sign(&secret, body, now.timestamp()));
    let stranger = webhook("evt_stranger", payment_id, "pi_not_this_one", "succeeded", now);
    let (status, error) = post_webhook(&app, &stranger, signed(&stranger)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("intent_mismatch")), "{error}");
    assert_eq!(order_event_count(&app, &order_id, "OrderPaid").await, 0);

    // Cancelled with its order; then a signed webhook says it succeeded.
    let cancel = viewer.post(app.url(&format!("/api/v1/orders/{order_id}/cancel"))).json(&json!({}));
    assert_eq!(send(cancel).await.0, 200);
    eventually("the payment to be canceled", Duration::from_secs(20), || async {
        let changes = payment_changes(&app, payment_id).await;
        (changes.last().map(String::as_str) == Some("canceled")).then_some(())
    })
    .await;
    let late = webhook("evt_revive", payment_id, &intent_id, "succeeded", chrono::Utc::now());
    let (status, answer) = post_webhook(&app, &late, signed(&late)).await;
    assert_eq!(status, 200, "kept as ignored: {answer}");
    let (status, error) = post_webhook(&app, &stranger, signed(&stranger)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("intent_mismatch")), "{error}");

    assert_eq!(payment_changes(&app, payment_id).await.last().map(String::as_str), Some("canceled"));
    assert_eq!(event_count(&app, "payment", "PaymentReportIgnored").await, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, order) = send(viewer.get(app.url(&format!("/api/v1/orders/{order_id}")))).await;
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order_event_count(&app, &order_id, "OrderPaid").await, 0);
    assert_eq!(order_event_count(&app, &order_id, "OrderSurplusCaptured").await, 0);
    assert_eq!(money_moved(&app).await, (0, 0), "nothing was captured");
}

#[tokio::test]
async fn a_webhook_too_large_is_refused_with_the_json_error() {
    let app = TestApp::spawn().await;
    let body = vec![b' '; app.running.state.http.max_body_bytes + 1];
    let (status, error) = post_webhook(&app, &body, Some("t=1,v1=00".into())).await;
    assert_eq!((status, error["error"]["code"].as_str()), (413, Some("payload_too_large")), "{error}");
}

#[tokio::test]
async fn only_the_buyer_and_staff_who_act_cancel_an_order_and_an_auditor_only_reads() {
    let app = TestApp::spawn().await;
    create_product(&app, ARTICLE, 5).await;
    let (viewer, _) = app.user("ada@example.org", &[]).await;
    let (other, _) = app.user("eve@example.org", &[]).await;
    let (auditor, _) = app.user("audrey@example.org", &["auditor"]).await;
    let (merchant, _) = app.user("mia@example.org", &["merchant"]).await;
    let cancel = |client: &reqwest::Client, order_id: &str| {
        send(client.post(app.url(&format!("/api/v1/orders/{order_id}/cancel"))).json(&json!({})))
    };

    let order_id = placed_order(&app, &viewer, "a").await;
    let (status, error) = cancel(&auditor, &order_id).await;
    assert_eq!((status, error["error"]["code"].as_str()), (403, Some("forbidden")), "{error}");
    assert_eq!(cancel(&other, &order_id).await.0, 404, "another viewer does not see it");
    let (_, still) = send(viewer.get(app.url(&format!("/api/v1/orders/{order_id}")))).await;
    assert_eq!(still["status"], "awaiting_payment");
    assert_eq!(order_event_count(&app, &order_id, "OrderCancelled").await, 0);
    let (status, cancelled) = cancel(&viewer, &order_id).await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")), "{cancelled}");

    let order_id = placed_order(&app, &viewer, "b").await;
    let (status, cancelled) = cancel(&merchant, &order_id).await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")), "{cancelled}");
    let order_id = placed_order(&app, &viewer, "c").await;
    let (status, cancelled) = cancel(&app.admin, &order_id).await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")), "{cancelled}");
}

#[tokio::test]
async fn stock_held_for_an_order_that_was_never_placed_is_given_back_when_it_expires() {
    use framecart_api::commands::execute::execute;
    use framecart_api::domain::EventMetadata;
    use framecart_api::domain::product::ProductCommand;

    let app = TestApp::spawn_with(|s| s.payments.reservation_ttl_secs = 1).await;
    create_product(&app, ARTICLE, 5).await;
    let (viewer, user_id) = app.user("ada@example.org", &[]).await;
    let (status, order) = place(&app, &viewer, "placed", &order_body(&[(ARTICLE, 2)], None)).await;
    assert_eq!(status, 201, "{order}");
    let placed_id = order["id"].as_str().expect("an id").to_owned();

    // Another attempt crashed between its reservation and its order (the id the buyer's
    // key names): its stock is held, and nothing will place the order.
    let user_id: Uuid = user_id.parse().expect("a uuid");
    let crashed = Uuid::new_v5(&user_id, b"crashed");
    let reserve = ProductCommand::ReserveStock {
        order_id: crashed,
        quantity: 3,
        // Long enough for the next request to see it held, even on a busy machine.
        expires_at: Some(chrono::Utc::now() + chrono::Duration::seconds(3)),
    };
    let metadata = EventMetadata::for_request("test", None, format!("user:{user_id}"));
    execute(&app.running.state.commands.products, ARTICLE, reserve, metadata).await.expect("reserved");
    let (status, error) = place(&app, &viewer, "more", &order_body(&[(ARTICLE, 1)], None)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("insufficient_stock")), "{error}");

    // Past its time it is given back; the placed order keeps its units.
    eventually("the expired reservation to be released", Duration::from_secs(20), || async {
        (event_count(&app, "product", "StockReleased").await == 1).then_some(())
    })
    .await;
    reserved_becomes(&app, ARTICLE, 2).await;
    assert_eq!(order_event_count(&app, &crashed.to_string(), "OrderVoided").await, 1);
    assert_eq!(order_event_count(&app, &placed_id, "OrderVoided").await, 0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(product(&app, ARTICLE).await["reserved"], 2, "a placed order holds its stock past the TTL");
    let (status, paid) = pay(&app, &viewer, &placed_id, CARD_OK).await;
    assert_eq!((status, paid["status"].as_str()), (201, Some("succeeded")), "{paid}");

    // The crashed attempt, retried late, is not placed.
    let (status, error) = place(&app, &viewer, "crashed", &order_body(&[(ARTICLE, 3)], None)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("order_expired")), "{error}");
    let (status, more) = place(&app, &viewer, "more-again", &order_body(&[(ARTICLE, 3)], None)).await;
    assert_eq!(status, 201, "the stock given back is sold again: {more}");
}

// The fake provider is shared by every process of the installation (issue 13).

#[tokio::test]
async fn a_payment_started_through_one_api_process_is_confirmed_through_another() {
    let app = TestApp::spawn().await;
    // A second `api` process of the same installation, with the same token secret.
    let media = tempfile::tempdir().expect("its own media folder");
    let mut serve = framecart_tests::serve_settings(&app.database, &app.namespace, media.path());
    serve.roles = vec![framecart_api::Role::Api];
    serve.auth.token_secret = app.running.state.auth.token_secret.clone();
    serve.payments.fake_secret = Some(String::from_utf8(app.running.state.fake_payments_secret.clone()).expect("text"));
    let other = framecart_api::Running::start(serve).await.expect("a second api process");
    let other_url = format!("http://{}", other.http_addr());

    create_product(&app, ARTICLE, 5).await;
    let (viewer, _) = app.user("ada@example.org", &[]).await;
    let order_id = placed_order(&app, &viewer, "k").await;
    let (status, payment) = pay(&app, &viewer, &order_id, CARD_NEEDS_ACTION).await;
    assert_eq!((status, &payment["status"]), (201, &json!("requires_action")), "{payment}");
    let payment_id = payment["id"].as_str().expect("an id");
    let confirm = viewer.post(format!("{other_url}/api/v1/payments/{payment_id}/confirm"));
    let (status, confirmed) = send(confirm).await;
    assert_eq!(status, 200, "the other process knows the provider's intent: {confirmed}");
    assert_eq!(confirmed["status"], "succeeded");
    order_becomes(&app, &viewer, &order_id, "paid").await;
    assert_eq!(money_moved(&app).await, (PRICE, 0), "captured once, as either process sees it");
    let seen_there = other.state.fake_payments.as_ref().expect("the fake provider").money_moved().await;
    assert_eq!(seen_there.expect("its books"), (PRICE, 0));
    other.cancel_all();
}

#[tokio::test]
async fn a_refund_sent_again_with_its_key_moves_no_more_money() {
    use framecart_api::commands::payments::{GatewayError, PaymentGateway};
    use framecart_api::domain::money::{Currency, Money};
    let app = TestApp::spawn_bare(&[framecart_api::Role::Api]).await;
    let fake = app.running.state.fake_payments.clone().expect("the fake provider");
    let eur = |minor| Money::new(minor, Currency::parse("EUR").expect("EUR"));
    let intent = fake.initiate(Uuid::new_v4(), eur(1000)).await.expect("intent");
    fake.authorize(&intent, "4242424242424242").await.expect("authorized");
    fake.capture(&intent).await.expect("captured");
    fake.refund(&intent, eur(1000), "surplus-1").await.expect("refunded");
    fake.refund(&intent, eur(1000), "surplus-1").await.expect("the same refund again");
    assert_eq!(money_moved(&app).await, (1000, 1000));
    let again = fake.refund(&intent, eur(1), "surplus-2").await;
    assert!(matches!(again, Err(GatewayError::Refused(_))), "nothing is left to refund: {again:?}");
    let unknown = fake.status("pi_unknown").await;
    assert!(matches!(unknown, Err(GatewayError::UnknownIntent(_))), "{unknown:?}");
}
