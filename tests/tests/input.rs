//! Bad input is stopped at the door: a value no view could store or read is refused
//! with a 4xx and a stable code before anything is committed, so no view stops on it.

use framecart_tests::{TestApp, click_body, send};
use serde_json::{Value, json};
use uuid::Uuid;

fn code(answer: &Value) -> &str {
    answer["error"]["code"].as_str().unwrap_or("")
}

/// After each refused request, a good click still goes all the way into the views.
async fn a_good_click_still_reaches_the_views(app: &TestApp) {
    let click_id = Uuid::new_v4();
    let (status, answer) = app.post("/api/v1/clicks", &click_body(click_id, "VESeA6leQuk", 10.0, 10.0, 1.0)).await;
    assert_eq!(status, 202, "{answer}");
    app.wait_for_clicks_view().await;
    app.wait_for_projections().await;
    let (status, click) = app.get(&format!("/api/v1/clicks/{click_id}")).await;
    assert_eq!(status, 200, "{click}");
}

#[tokio::test]
async fn a_click_whose_frame_point_would_not_be_a_number_is_refused() {
    let app = TestApp::spawn().await;
    // The finding's body: a player of 5e-324 px makes the frame point 0/0 = NaN.
    let body = json!({"videoId": "VESeA6leQuk", "x": 0, "y": 0, "timestamp": 1,
                      "player": {"width": 5e-324, "height": 5e-324}, "video": {"width": 320, "height": 320}});
    let (status, answer) = app.post("/api/v1/clicks", &body).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(code(&answer), "invalid_size", "{answer}");
    // Sizes below one pixel, and a frame far larger than its player, are refused too.
    for (player, video) in [((0.5, 600.0), (1280.0, 720.0)), ((800.0, 600.0), (1e300, 720.0))] {
        let mut body = click_body(Uuid::new_v4(), "VESeA6leQuk", 1.0, 1.0, 1.0);
        body["player"] = json!({"width": player.0, "height": player.1});
        body["video"] = json!({"width": video.0, "height": video.1});
        let (status, answer) = app.post("/api/v1/clicks", &body).await;
        assert_eq!(status, 422, "{body} → {answer}");
    }
    assert_eq!(app.count("SELECT count(*) FROM events WHERE aggregate_type = 'click'").await, 0);
    a_good_click_still_reaches_the_views(&app).await;
}

#[tokio::test]
async fn nul_and_control_characters_in_a_body_are_refused_before_anything_is_committed() {
    let app = TestApp::spawn().await;
    let before = app.count("SELECT count(*) FROM events").await;
    for video in ["VESeA6leQuk&\u{0}", "https://www.youtube.com/watch?v=VESeA6leQuk&t=\u{1b}[2J"] {
        let (status, answer) = app.post("/api/v1/clicks", &click_body(Uuid::new_v4(), video, 1.0, 1.0, 1.0)).await;
        assert_eq!(status, 422, "{video:?} → {answer}");
        assert_eq!(code(&answer), "invalid_text", "{answer}");
        assert!(answer["error"]["message"].as_str().is_some_and(|m| m.contains("/videoId")), "{answer}");
    }
    // A NUL in a product's description used to jam the products view.
    let product = json!({"article": "SKU-NUL", "name": "Rain jacket", "description": "dry\u{0}", "price_minor": 100,
                         "currency": "EUR", "stock": 1});
    let (status, answer) = app.post("/api/v1/products", &product).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(code(&answer), "invalid_text", "{answer}");
    // Even in a key the handler would ignore.
    let (status, answer) = app.post("/api/v1/products", &json!({"art\u{0}icle": "x"})).await;
    assert_eq!((status, code(&answer)), (422, "invalid_text"), "{answer}");
    assert_eq!(app.count("SELECT count(*) FROM events").await, before, "nothing was committed");

    // Line breaks and tabs are text, not control: a description may hold them.
    let product = json!({"article": "SKU-OK", "name": "Rain jacket", "description": "dry\n\twarm", "price_minor": 100,
                         "currency": "EUR", "stock": 1});
    let (status, answer) = app.post("/api/v1/products", &product).await;
    assert_eq!(status, 201, "{answer}");
    app.wait_for_projections().await;
    let (status, answer) = app.get("/api/v1/products/SKU-OK").await;
    assert_eq!(status, 200, "{answer}");
    a_good_click_still_reaches_the_views(&app).await;
}

#[tokio::test]
async fn a_price_beyond_the_bound_is_refused() {
    let app = TestApp::spawn().await;
    let product = json!({"article": "SKU-MAX", "name": "Rain jacket", "price_minor": i64::MAX, "currency": "EUR",
                         "stock": 1});
    let (status, answer) = app.post("/api/v1/products", &product).await;
    assert_eq!((status, code(&answer)), (422, "invalid_price"), "{answer}");
}

#[tokio::test]
async fn nul_in_a_query_string_or_a_path_parameter_is_a_400() {
    let app = TestApp::spawn().await;
    let paths = [
        "/api/v1/products?q=%00",
        "/api/v1/clicks?viewer=%00",
        "/api/v1/audit/streams/click/%00",
        "/api/v1/videos/VESeA6leQuk/detections?label=%00",
        "/api/v1/products/SKU%00",
    ];
    for path in paths {
        let (status, answer) = send(app.admin.get(app.url(path))).await;
        assert_eq!((status, code(&answer)), (400, "invalid_text"), "{path} → {answer}");
    }
    let (status, answer) = send(app.admin.delete(app.url("/api/v1/videos/VESeA6leQuk/links/%01"))).await;
    assert_eq!((status, code(&answer)), (400, "invalid_text"), "{answer}");
    // The server is fine afterwards.
    let (status, _) = app.get("/api/v1/products?q=jacket").await;
    assert_eq!(status, 200);
}
