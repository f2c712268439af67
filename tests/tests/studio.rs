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
}
