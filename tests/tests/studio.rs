//! Framecart Studio is served by the `api` role itself, from files embedded in the binary.
//! (Its pages are tested in a browser: `studio/test/`.)

use framecart_tests::{TestApp, eventually};

#[tokio::test]
async fn the_studio_is_served_from_the_binary_with_a_strict_policy() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("a client");

    let response = client.get(app.url("/studio")).send().await.expect("GET /studio");
    assert_eq!(response.status().as_u16(), 308);
    assert_eq!(response.headers()["location"], "/studio/");

    let response = client.get(app.url("/studio/")).send().await.expect("GET /studio/");
    assert_eq!(response.status().as_u16(), 200);
    let headers = response.headers().clone();
    assert!(headers["content-type"].to_str().expect("a type").starts_with("text/html"));
    assert!(headers["content-security-policy"].to_str().expect("a policy").contains("default-src 'self'"));
    let etag = headers["etag"].clone();
    let page = response.text().await.expect("the page");
    assert!(page.contains(r#"<script type="module" src="studio.js">"#), "{page}");

    // Revalidated by its hash; scripts as JavaScript.
    let again = client.get(app.url("/studio/")).header("if-none-match", etag).send().await.expect("again");
    assert_eq!(again.status().as_u16(), 304);
    let script = client.get(app.url("/studio/studio.js")).send().await.expect("the script");
    assert_eq!(script.status().as_u16(), 200);
    assert!(script.headers()["content-type"].to_str().expect("a type").contains("javascript"));
    assert!(script.text().await.expect("text").contains("data-testid"));

    // Only the studio's own files: not its tests, not a way out of its folder.
    for path in
        ["/studio/test/studio.test.js", "/studio/package.json", "/studio/../Cargo.toml", "/studio/%2e%2e/Cargo.toml"]
    {
        let response = client.get(app.url(path)).send().await.expect("GET");
        assert_eq!(response.status().as_u16(), 404, "{path}");
    }
}

#[tokio::test]
async fn a_videos_file_is_served_with_ranges_to_staff_by_header_or_token() {
    let app = TestApp::spawn().await;
    let bytes = std::fs::read(framecart_tests::test_media("pan.mp4")).expect("the test video");
    let (status, uploaded) = app.upload("VESeA6leQuk", "pan.mp4", bytes.clone()).await;
    assert_eq!(status, 201, "{uploaded}");
    eventually("the video in its view", std::time::Duration::from_secs(10), || async {
        (app.get("/api/v1/videos/VESeA6leQuk").await.0 == 200).then_some(())
    })
    .await;
    let url = app.url("/api/v1/videos/VESeA6leQuk/file");

    let whole = app.admin.get(&url).send().await.expect("GET");
    assert_eq!(whole.status().as_u16(), 200);
    assert_eq!(whole.headers()["content-type"], "video/mp4");
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert_eq!(whole.bytes().await.expect("bytes").as_ref(), bytes.as_slice());

    // A player seeks with ranges.
    let part = app.admin.get(&url).header("range", "bytes=100-199").send().await.expect("GET a range");
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(part.headers()["content-range"].to_str().expect("a range"), format!("bytes 100-199/{}", bytes.len()));
    assert_eq!(part.bytes().await.expect("bytes").as_ref(), &bytes[100..200]);

    // `<video>` sends no header: the token may come as a query parameter instead.
    let plain = reqwest::Client::new();
    let token =
        framecart_tests::sign_in(&app.base_url, framecart_tests::ADMIN_EMAIL, framecart_tests::ADMIN_PASSWORD).await;
    let by_query = plain.get(format!("{url}?token={token}")).send().await.expect("GET with a token");
    assert_eq!(by_query.status().as_u16(), 200);
    for (what, request, expected) in [
        ("no token", plain.get(&url), 401),
        ("a forged token", plain.get(format!("{url}?token=fc1.forged")), 401),
        ("a viewer", app.user("viewer@studio.test", &[]).await.0.get(&url), 403),
        ("another video", app.admin.get(app.url("/api/v1/videos/AAAAAAAAAAA/file")), 404),
    ] {
        let response = request.send().await.expect("GET");
        assert_eq!(response.status().as_u16(), expected, "{what}");
        let error: serde_json::Value = response.json().await.expect("a JSON error");
        assert!(error["error"]["code"].is_string(), "{what}: {error}");
    }

    // A host without the file fetches it from the media store.
    let local = app.media_dir().join("source_video_files");
    for file in std::fs::read_dir(&local).expect("the uploads") {
        std::fs::remove_file(file.expect("a file").path()).expect("removed");
    }
    let fetched = app.admin.get(&url).send().await.expect("GET");
    assert_eq!(fetched.status().as_u16(), 200);
    assert_eq!(fetched.bytes().await.expect("bytes").as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn the_scene_at_a_sampled_moment_is_the_detections_of_that_frame() {
    let app = TestApp::spawn_with(|s| s.video.detector_workers = 1).await;
    let (status, _) = app.get("/api/v1/videos/VESeA6leQuk/scene?t=1").await;
    assert_eq!(status, 404, "no video, no scene");
    let bytes = std::fs::read(framecart_tests::test_media("pan.mp4")).expect("the test video");
    assert_eq!(app.upload("VESeA6leQuk", "pan.mp4", bytes).await.0, 201);
    // Each view catches up on its own: the detections, then the scene of their tracks.
    let person =
        eventually("a person detected after the first half second", std::time::Duration::from_secs(120), || async {
            let (_, detections) = app.get("/api/v1/videos/VESeA6leQuk/detections?limit=1000").await;
            detections["items"]
                .as_array()?
                .iter()
                // Its track is known once the run completed.
                .find(|d| {
                    d["label"] == "person"
                        && d["track_id"].is_string()
                        && d["timestamp"].as_f64().is_some_and(|t| t > 0.5)
                })
                .cloned()
        })
        .await;
    let t = person["timestamp"].as_f64().expect("a time");
    let (scene, object) = eventually("the person's track in the scene", std::time::Duration::from_secs(20), || async {
        let (status, scene) = app.get(&format!("/api/v1/videos/VESeA6leQuk/scene?t={t}")).await;
        let object = scene["objects"].as_array()?.iter().find(|o| o["track_id"] == person["track_id"]).cloned()?;
        (status == 200).then_some((scene, object))
    })
    .await;
    let (width, height) = (scene["width"].as_f64().expect("w"), scene["height"].as_f64().expect("h"));
    // At a sampled moment the track's box is that frame's detection, normalized.
    for (edge, size) in [("xmin", width), ("ymin", height), ("xmax", width), ("ymax", height)] {
        let expected = person[edge].as_f64().expect("an edge") / size;
        let got = object["bbox"][edge].as_f64().expect("an edge");
        assert!((got - expected).abs() < 1e-6, "{edge}: {got} ≠ {expected}");
    }
    assert_eq!(object["label"], "person");

    for bad in ["-1", "NaN", "x"] {
        let (status, error) = app.get(&format!("/api/v1/videos/VESeA6leQuk/scene?t={bad}")).await;
        assert!(status == 400 || status == 422, "t={bad}: {status} {error}");
    }

    // The preview: a click on a player twice as wide as the picture would fit, letterboxed
    // with bands left and right, as a viewer's click there would be matched.
    let (player_w, player_h) = (2.0 * width, height);
    let band = (player_w - width) / 2.0;
    let centre =
        |a: &str, b: &str| (object["bbox"][a].as_f64().expect("n") + object["bbox"][b].as_f64().expect("n")) / 2.0;
    let (x, y) = (band + centre("xmin", "xmax") * width, centre("ymin", "ymax") * height);
    let preview_in = |x: f64, y: f64, player_w: f64, player_h: f64| {
        format!("/api/v1/videos/VESeA6leQuk/preview?t={t}&x={x}&y={y}&player_width={player_w}&player_height={player_h}")
    };
    let preview = |x: f64, y: f64| preview_in(x, y, player_w, player_h);
    let (status, outcome) = app.get(&preview(x, y)).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(
        (outcome["status"].as_str(), outcome["reason"].as_str()),
        (Some("unmatched"), Some("not_linked")),
        "{outcome}"
    );
    assert_eq!(outcome["candidates"][0]["track_id"], object["track_id"], "{outcome}");
    assert!(outcome["candidates"][0]["reason"].as_str().is_some_and(|r| r.contains("contains the click")), "{outcome}");
    let (_, outcome) = app.get(&preview(band / 2.0, y)).await;
    assert_eq!(outcome["reason"], "black_band", "{outcome}");

    // Linked to a product, the same click matches it.
    let product = serde_json::json!({"article": "SKU-1", "name": "Rain jacket", "price_minor": 100, "currency": "EUR", "stock": 1});
    assert_eq!(app.post("/api/v1/products", &product).await.0, 201);
    let link = serde_json::json!({"article": "SKU-1", "track_id": object["track_id"]});
    let (status, answer) = app.post("/api/v1/videos/VESeA6leQuk/links", &link).await;
    assert_eq!(status, 201, "{answer}");
    let outcome = eventually("the preview to see the link", std::time::Duration::from_secs(20), || async {
        let (_, outcome) = app.get(&preview(x, y)).await;
        (outcome["status"] == "matched").then_some(outcome)
    })
    .await;
    assert_eq!(outcome["best"]["product"]["article"], "SKU-1", "{outcome}");
    assert_eq!(outcome["best"]["track_id"], object["track_id"], "{outcome}");

    for (bad, url) in [
        ("x=NaN", preview_in(f64::NAN, y, player_w, player_h)),
        ("player_width=0", preview_in(x, y, 0.0, player_h)),
        ("player_height=-3", preview_in(x, y, player_w, -3.0)),
    ] {
        let (status, error) = app.get(&url).await;
        assert_eq!(status, 422, "{bad}: {error}");
        assert_eq!(error["error"]["code"], "invalid_point", "{bad}: {error}");
    }
}

/// The width and height a JPEG's start-of-frame segment gives.
fn jpeg_size(jpeg: &[u8]) -> Option<(u16, u16)> {
    let mut at = 2;
    while at + 9 < jpeg.len() {
        let (marker, len) = (jpeg[at + 1], u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]) as usize);
        if (0xC0..=0xC3).contains(&marker) {
            let h = u16::from_be_bytes([jpeg[at + 5], jpeg[at + 6]]);
            let w = u16::from_be_bytes([jpeg[at + 7], jpeg[at + 8]]);
            return Some((w, h));
        }
        at += 2 + len;
    }
    None
}

#[tokio::test]
async fn a_frame_is_served_as_a_picture_of_that_moment() {
    let app = TestApp::spawn().await;
    let bytes = std::fs::read(framecart_tests::test_media("pan.mp4")).expect("the test video");
    assert_eq!(app.upload("VESeA6leQuk", "pan.mp4", bytes).await.0, 201);
    let video = eventually("the video in its view", std::time::Duration::from_secs(10), || async {
        let (status, video) = app.get("/api/v1/videos/VESeA6leQuk").await;
        (status == 200).then_some(video)
    })
    .await;
    let (w, h) = (video["width"].as_f64().expect("w"), video["height"].as_f64().expect("h"));
    let frame = |query: &str| app.admin.get(app.url(&format!("/api/v1/videos/VESeA6leQuk/frame?{query}"))).send();

    let first = frame("t=0&width=320").await.expect("GET");
    assert_eq!(first.status().as_u16(), 200);
    assert_eq!(first.headers()["content-type"], "image/jpeg");
    let first = first.bytes().await.expect("bytes");
    assert_eq!(&first[..2], &[0xFF, 0xD8], "a JPEG");
    let (jw, jh) = jpeg_size(&first).expect("a JPEG with a size");
    assert_eq!(jw, 320);
    assert!((f64::from(jh) - 320.0 * h / w).abs() <= 2.0, "the aspect kept: {jw}×{jh} of {w}×{h}");
    // The window pans: another moment is another picture; past the end, the last frame.
    let later = frame("t=2&width=320").await.expect("GET").bytes().await.expect("bytes");
    assert_ne!(first, later);
    assert_eq!(frame("t=100000").await.expect("GET").status().as_u16(), 200);

    // An `<img>` sends no header: the token may come as a query parameter.
    let token =
        framecart_tests::sign_in(&app.base_url, framecart_tests::ADMIN_EMAIL, framecart_tests::ADMIN_PASSWORD).await;
    let plain = reqwest::Client::new();
    let url = app.url("/api/v1/videos/VESeA6leQuk/frame?t=1");
    assert_eq!(plain.get(format!("{url}&token={token}")).send().await.expect("GET").status().as_u16(), 200);
    assert_eq!(plain.get(&url).send().await.expect("GET").status().as_u16(), 401);
    for (query, code) in
        [("t=-1", "invalid_time"), ("t=1&width=8", "invalid_width"), ("t=1&width=100000", "invalid_width")]
    {
        let response = frame(query).await.expect("GET");
        assert_eq!(response.status().as_u16(), 422, "{query}");
        let error: serde_json::Value = response.json().await.expect("a JSON error");
        assert_eq!(error["error"]["code"], code, "{query}: {error}");
    }
    let response = app.admin.get(app.url("/api/v1/videos/AAAAAAAAAAA/frame?t=1")).send().await.expect("GET");
    assert_eq!(response.status().as_u16(), 404);
}
