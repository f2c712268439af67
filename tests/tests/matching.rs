//! Products, links and matching, end to end: a moving object in an uploaded video, a
//! product linked to it, and clicks from a letterboxed player at another resolution.

use std::time::Duration;

use framecart_tests::{TestApp, eventually, pan_video, test_media};
use serde_json::{Value, json};
use uuid::Uuid;

const VIDEO: &str = "VESeA6leQuk";

/// The viewer's player: an 800×600 element showing the video at 640×640 (another quality
/// than the 320×320 upload): scale 0.9375, a 600×600 picture with 100 px bands left and right.
const PLAYER: (f64, f64) = (800.0, 600.0);
const PLAYED: (f64, f64) = (640.0, 640.0);
const SCALE: f64 = 0.9375;
const BAND: f64 = 100.0;

/// Element coordinates of a point at normalized frame coordinates (u, v).
fn element_point(u: f64, v: f64) -> (f64, f64) {
    (BAND + u * PLAYED.0 * SCALE, v * PLAYED.1 * SCALE)
}

fn click(x: f64, y: f64, t: f64) -> (Uuid, Value) {
    let id = Uuid::new_v4();
    let body = json!({
        "clickId": id, "videoId": VIDEO, "x": x, "y": y, "timestamp": t,
        "player": {"width": PLAYER.0, "height": PLAYER.1},
        "video": {"width": PLAYED.0, "height": PLAYED.1},
        "userId": "viewer1",
    });
    (id, body)
}

/// Person boxes by sampled time, normalized by the 320×320 upload.
async fn person_boxes(app: &TestApp) -> Vec<(f64, [f64; 4])> {
    let (_, d) = app.get(&format!("/api/v1/videos/{VIDEO}/detections?label=person")).await;
    d["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            let n = |k: &str| i[k].as_f64().expect("number") / 320.0;
            (i["timestamp"].as_f64().expect("t"), [n("xmin"), n("ymin"), n("xmax"), n("ymax")])
        })
        .collect()
}

/// Every box of the current run at a sampled time, normalized.
async fn all_boxes_at(app: &TestApp, t: f64) -> Vec<[f64; 4]> {
    let (_, d) = app.get(&format!("/api/v1/videos/{VIDEO}/detections?from={}&to={}", t - 0.3, t + 0.3)).await;
    d["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            let n = |k: &str| i[k].as_f64().expect("number") / 320.0;
            [n("xmin"), n("ymin"), n("xmax"), n("ymax")]
        })
        .collect()
}

async fn verdict(app: &TestApp, click_id: Uuid, status: &str) -> Value {
    eventually(&format!("click {click_id} to be {status}"), Duration::from_secs(30), || async {
        let (code, m) = app.get(&format!("/api/v1/clicks/{click_id}/match")).await;
        (code == 200 && m["status"] == status).then_some(m)
    })
    .await
}

async fn post(app: &TestApp, body: &Value) {
    let (status, answer) = app.post("/api/v1/clicks", body).await;
    assert_eq!(status, 202, "{answer}");
}

async fn processed_video(app: &TestApp) {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("pan.mp4");
    pan_video(&test_media("person.jpg"), &file, 3);
    let (status, answer) = app.upload(VIDEO, "pan.mp4", std::fs::read(&file).expect("video")).await;
    assert_eq!(status, 201, "{answer}");
    eventually("detection to complete", Duration::from_secs(120), || async {
        let (_, v) = app.get(&format!("/api/v1/videos/{VIDEO}")).await;
        (v["status"] == "completed").then_some(())
    })
    .await;
    // The detections view catches up with the completion.
    eventually("the detections", Duration::from_secs(20), || async {
        (!person_boxes(app).await.is_empty()).then_some(())
    })
    .await;
}

async fn create_product(app: &TestApp, article: &str) {
    let body = json!({"article": article, "name": "Rain jacket", "price_minor": 1999, "currency": "EUR", "stock": 10,
                      "image_url": "https://shop.example/jacket.png"});
    let (status, product) = app.post("/api/v1/products", &body).await;
    assert_eq!(status, 201, "{product}");
    assert_eq!(product["article"], article);
    assert_eq!(product["price_minor"], 1999);
}

#[tokio::test]
async fn clicks_are_matched_to_the_moving_object_and_its_product() {
    let app = TestApp::spawn_with(|s| s.video.detector_workers = 1).await;

    // A click made before the video was processed is pending, and matched later.
    let (early_id, early) = {
        let (x, y) = element_point(0.5, 0.5);
        click(x, y, 1.0)
    };
    post(&app, &early).await;
    app.wait_for_clicks_view().await;
    let (_, pending) = app.get(&format!("/api/v1/clicks/{early_id}/match")).await;
    assert_eq!(pending["status"], "pending");

    processed_video(&app).await;
    create_product(&app, "SKU-1").await;
    let link =
        json!({"article": "SKU-1", "label": "person", "from": 0.0, "to": 10.0, "additional_identifier": "size M"});
    let (status, created) = app.post(&format!("/api/v1/videos/{VIDEO}/links"), &link).await;
    assert_eq!(status, 201, "{created}");

    let boxes = person_boxes(&app).await;
    assert!(boxes.len() >= 10, "the person is tracked through the video: {boxes:?}");
    let centre = |b: &[f64; 4]| ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);

    // Inside the moving person at sampled times, early and late (it moves).
    let mut inside = Vec::new();
    for (t, b) in [boxes[1], boxes[boxes.len() - 2]] {
        let (u, v) = centre(&b);
        let (x, y) = element_point(u, v);
        inside.push(click(x, y, t));
    }
    // Between two samples: the interpolated box's centre.
    let (t0, b0) = boxes[3];
    let (t1, b1) = boxes[4];
    let mid: [f64; 4] = std::array::from_fn(|i| (b0[i] + b1[i]) / 2.0);
    let (u, v) = centre(&mid);
    let (x, y) = element_point(u, v);
    inside.push(click(x, y, (t0 + t1) / 2.0));
    for (_, body) in &inside {
        post(&app, body).await;
    }

    // On a black band, during an ad, and beside every object.
    let band = click(50.0, 300.0, 1.0);
    let mut ad = click(element_point(0.5, 0.5).0, element_point(0.5, 0.5).1, 1.0);
    ad.1["adShowing"] = json!(true);
    let (t_beside, _) = boxes[2];
    let others = all_boxes_at(&app, t_beside).await;
    let far = (0..=20)
        .flat_map(|i| (0..=20).map(move |j| (f64::from(i) / 20.0 * 0.98, f64::from(j) / 20.0 * 0.98)))
        .find(|(u, v)| {
            others.iter().all(|b| {
                // 30 CSS px from every box: well beyond the 12 px radius.
                let margin = 30.0 / (PLAYED.0 * SCALE);
                *u < b[0] - margin || *u > b[2] + margin || *v < b[1] - margin || *v > b[3] + margin
            })
        })
        .expect("a point away from every object");
    let beside = click(element_point(far.0, far.1).0, element_point(far.0, far.1).1, t_beside);
    for (_, body) in [&band, &ad, &beside] {
        post(&app, body).await;
    }

    for (id, _) in &inside {
        let m = verdict(&app, *id, "matched").await;
        assert_eq!(m["article"], "SKU-1", "{m}");
        assert_eq!(m["additional_identifier"], "size M");
        assert_eq!(m["label"], "person");
        assert!(m["track_id"].as_str().is_some_and(|t| t.contains(':')), "{m}");
        assert!(m["score"].as_f64().expect("score") < 0.0, "inside the box: {m}");
        assert!(m["candidates"][0]["reason"].as_str().is_some_and(|r| r.contains("contains the click")), "{m}");
    }
    let tracks: Vec<Value> = futures::future::join_all(inside.iter().map(|(id, _)| verdict(&app, *id, "matched")))
        .await
        .into_iter()
        .map(|m| m["track_id"].clone())
        .collect();
    assert!(tracks.windows(2).all(|w| w[0] == w[1]), "one person, one track: {tracks:?}");
    assert_eq!(verdict(&app, band.0, "unmatched").await["reason"], "black_band");
    assert_eq!(verdict(&app, ad.0, "unmatched").await["reason"], "during_ad");
    assert_eq!(verdict(&app, beside.0, "unmatched").await["reason"], "no_object_near");
    // The click made before processing was matched once the detections and the link came.
    let early = verdict(&app, early_id, "matched").await;
    assert_eq!(early["article"], "SKU-1");

    // What can be bought in the video, and the detections file, carry the product.
    let (_, products) = app.get(&format!("/api/v1/videos/{VIDEO}/products")).await;
    assert_eq!(products["items"][0]["article"], "SKU-1");
    assert_eq!((products["items"][0]["from"].as_f64(), products["items"][0]["to"].as_f64()), (Some(0.0), Some(10.0)));
    let file = app.media_dir().join(format!("detections/{VIDEO}_detections.json"));
    eventually("the file to carry the product", Duration::from_secs(20), || async {
        let entries: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&file).ok()?).ok()?;
        let people: Vec<&Value> = entries.iter().filter(|e| e["item_name"] == "person").collect();
        (!people.is_empty()
            && people.iter().all(|e| e["article_fragment"] == "SKU-1" && e["additional_identifier"] == "size M")
            && entries.iter().filter(|e| e["item_name"] != "person").all(|e| e["article_fragment"] == ""))
        .then_some(())
    })
    .await;

    // Removing the link re-evaluates the clicks: the person is no longer for sale.
    let link_id = created["link_id"].as_str().expect("link id");
    let response =
        app.admin.delete(app.url(&format!("/api/v1/videos/{VIDEO}/links/{link_id}"))).send().await.expect("delete");
    assert_eq!(response.status().as_u16(), 204);
    for (id, _) in &inside {
        assert_eq!(verdict(&app, *id, "unmatched").await["reason"], "not_linked");
    }
    let (_, by_user) = app.get(&format!("/api/v1/matches?video_id={VIDEO}&user_id=viewer1")).await;
    assert_eq!(by_user["items"].as_array().map(Vec::len), Some(7));
}

#[tokio::test]
async fn a_link_to_one_track_matches_that_object_only() {
    let app = TestApp::spawn_with(|s| s.video.detector_workers = 1).await;
    processed_video(&app).await;
    create_product(&app, "SKU-2").await;
    let (_, tracks) = app.get(&format!("/api/v1/videos/{VIDEO}/tracks")).await;
    let person = tracks["items"]
        .as_array()
        .expect("tracks")
        .iter()
        .filter(|t| t["label"] == "person")
        .max_by_key(|t| t["samples"].as_u64())
        .expect("a person track")
        .clone();
    let link = json!({"article": "SKU-2", "track_id": person["track_id"]});
    let (status, created) = app.post(&format!("/api/v1/videos/{VIDEO}/links"), &link).await;
    assert_eq!(status, 201, "{created}");
    let (status, error) =
        app.post(&format!("/api/v1/videos/{VIDEO}/links"), &json!({"article": "SKU-2", "track_id": "nope:1"})).await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, error) =
        app.post(&format!("/api/v1/videos/{VIDEO}/links"), &json!({"article": "NOPE", "label": "person"})).await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("not_found")));

    let boxes = person_boxes(&app).await;
    let (t, b) = boxes[boxes.len() / 2];
    let (x, y) = element_point((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
    let (id, body) = click(x, y, t);
    post(&app, &body).await;
    let m = verdict(&app, id, "matched").await;
    assert_eq!((m["article"].as_str(), m["track_id"].clone()), (Some("SKU-2"), person["track_id"].clone()));
}

#[tokio::test]
async fn products_are_created_searched_changed_and_retired() {
    let app = TestApp::spawn().await;
    create_product(&app, "SKU-1").await;
    create_product(&app, "JACKET-42").await;
    let (status, error) = app
        .post(
            "/api/v1/products",
            &json!({"article": "SKU-1", "name": "x", "price_minor": 1, "currency": "EUR", "stock": 1}),
        )
        .await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("article_taken")));
    for (body, code) in [
        (json!({"article": "a b", "name": "x", "price_minor": 1, "currency": "EUR", "stock": 1}), "invalid_article"),
        (json!({"article": "A", "name": "x", "price_minor": -1, "currency": "EUR", "stock": 1}), "invalid_price"),
        (json!({"article": "A", "name": "x", "price_minor": 1, "currency": "euro", "stock": 1}), "invalid_currency"),
        (json!({"article": "A", "name": "", "price_minor": 1, "currency": "EUR", "stock": 1}), "invalid_name"),
        (json!({"article": "A", "name": "x", "price_minor": 1.5, "currency": "EUR", "stock": 1}), "invalid_body"),
    ] {
        let (status, error) = app.post("/api/v1/products", &body).await;
        assert_eq!((status, error["error"]["code"].as_str()), (422, Some(code)), "{body}");
    }
    let (_, found) = app.get("/api/v1/products?q=ket-4").await;
    assert_eq!(found["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(found["items"][0]["article"], "JACKET-42");
    let (_, found) = app.get("/api/v1/products?q=%25").await;
    assert_eq!(found["items"].as_array().map(Vec::len), Some(0), "a % is literal");

    let response = app
        .admin
        .patch(app.url("/api/v1/products/SKU-1"))
        .json(&json!({"price_minor": 2499, "currency": "EUR", "stock": 3, "active": false, "image_url": null}))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status().as_u16(), 200);
    let changed: Value = response.json().await.expect("json");
    assert_eq!((changed["price_minor"].as_i64(), changed["stock"].as_i64()), (Some(2499), Some(3)));
    assert_eq!((changed["active"].as_bool(), changed["image_url"].clone()), (Some(false), Value::Null));
    let types: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_type = 'product' AND aggregate_id = 'SKU-1' ORDER BY sequence",
    )
    .fetch_all(&app.db)
    .await
    .expect("events");
    assert_eq!(
        types,
        ["ProductCreated", "ProductRepriced", "ProductRestocked", "ProductImageChanged", "ProductRetired"]
    );
    let (_, active) = app.get("/api/v1/products?active=true").await;
    assert_eq!(active["items"].as_array().map(Vec::len), Some(1));
    let (status, _) = app.get("/api/v1/products/NOPE").await;
    assert_eq!(status, 404);
}

/// The settler's clearing of settled debts never waits for the matcher's batch that owes
/// the same clicks again (a video's run completed, a link changed), so the two cannot
/// deadlock: both would stall for a second, holding back the relay, and one would fail.
#[tokio::test]
async fn forgetting_settled_debts_never_waits_for_a_batch_owing_them_again() {
    use framecart_api::processes::matcher::forget_settled;
    // No matcher runs: the test alone owes and forgets.
    let app = TestApp::spawn_bare(&[framecart_api::Role::Api]).await;
    let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
    // Owed in this order, so the clearing below meets a first, however it is planned.
    let owe = "INSERT INTO matcher_pending (click_id, due_position, barrier_position, cause_event_id, correlation_id)
               VALUES ($1, $2, $2, gen_random_uuid(), '')
               ON CONFLICT (click_id) DO UPDATE SET due_position = EXCLUDED.due_position";
    for (click, position) in [(a, 1_i64), (b, 2)] {
        sqlx::query(owe).bind(click).bind(position).execute(&app.db).await.expect("owe");
    }

    // The matcher's batch owes b again, and holds it.
    let mut batch = app.db.begin().await.expect("a batch");
    let batch_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *batch).await.expect("pid");
    sqlx::query(owe).bind(b).bind(3_i64).execute(&mut *batch).await.expect("owe b again");

    // The settler forgets both debts meanwhile: until it is done, or waits for the batch.
    let forgetting = tokio::spawn({
        let db = app.db.clone();
        async move { forget_settled(&db, &[a, b], &[1, 2]).await }
    });
    framecart_tests::ended_or_blocked_by(&app.db, batch_pid, &forgetting, "the clearing").await;
    // The batch owes a again too, and commits.
    let owed = sqlx::query(owe).bind(a).bind(4_i64).execute(&mut *batch).await;
    let committed = match owed {
        Ok(_) => batch.commit().await,
        Err(e) => Err(e),
    };
    let forgotten = tokio::time::timeout(Duration::from_secs(10), forgetting).await.expect("the clearing ends");
    assert!(committed.is_ok(), "the batch failed: {committed:?}");
    assert!(forgotten.as_ref().is_ok_and(Result::is_ok), "the clearing failed: {forgotten:?}");

    // Both clicks are owed again, from the batch's positions.
    let left: Vec<(Uuid, i64)> = sqlx::query_as("SELECT click_id, due_position FROM matcher_pending ORDER BY click_id")
        .fetch_all(&app.db)
        .await
        .expect("debts");
    assert_eq!(left, [(a, 4), (b, 3)]);
}
