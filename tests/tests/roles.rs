//! A process runs the roles it is given: only those, from a fresh database, visibly.

use std::time::Duration;

use framecart_api::Role;
use framecart_api::commands::media::{self, MediaStore};
use framecart_tests::{TestApp, click_body};
use sha2::{Digest, Sha256};
use uuid::Uuid;

#[tokio::test]
async fn a_process_without_the_api_role_serves_only_health() {
    let app = TestApp::spawn_bare(&[Role::Relay, Role::Projections]).await;
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["process"]["roles"], "relay,projections", "{ready}");
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, 200);
    for path in ["/api/v1/products", "/api/openapi.json", "/metrics"] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found", "{path}: a JSON error");
    }
    let response =
        app.http.post(app.url("/api/v1/clicks")).json(&click_body(Uuid::new_v4(), "VESeA6leQuk", 1.0, 1.0, 1.0));
    assert_eq!(response.send().await.expect("answer").status().as_u16(), 404, "no clicks taken here");
}

#[tokio::test]
async fn any_role_may_be_the_first_on_a_fresh_database() {
    // A detector-only process is the first: the schema, the stream and the media store
    // are there after it started.
    let app = TestApp::spawn_bare(&[Role::Detector]).await;
    let tables =
        app.count("SELECT count(*) FROM information_schema.tables WHERE table_name IN ('events', 'event_log')").await;
    assert_eq!(tables, 2, "migrations applied");
    assert_eq!(app.stream_len().await, 0, "the stream exists");
    let bucket = media::bucket_name(&app.namespace.namespace);
    app.jetstream.get_object_store(&bucket).await.expect("the media store exists");
}

#[tokio::test]
async fn only_the_named_views_run() {
    let app = TestApp::spawn_with(|s| {
        s.roles = vec![Role::Api, Role::Relay, Role::Projections];
        s.projections = vec!["clicks".into()];
    })
    .await;
    let click_id = Uuid::new_v4();
    let (status, _) = app.post("/api/v1/clicks", &click_body(click_id, "VESeA6leQuk", 10.0, 10.0, 1.0)).await;
    assert_eq!(status, 202);
    app.wait_for_clicks_view().await;
    // The other views and the process managers do not run here: nothing applies them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.count("SELECT count(*) FROM client_file_clicks").await, 0, "client_files does not run");
    assert_eq!(app.count("SELECT count(*) FROM matcher_clicks").await, 0, "the matcher does not run");
    let held: Vec<String> = sqlx::query_scalar("SELECT c.name FROM projection_checkpoints c ORDER BY c.name")
        .fetch_all(&app.db)
        .await
        .expect("checkpoints");
    assert_eq!(held, ["clicks"], "only clicks keeps a checkpoint");
}

#[tokio::test]
async fn the_media_store_gives_any_host_an_upload_by_its_hash() {
    let app = TestApp::spawn_bare(&[Role::Api]).await;
    let store = MediaStore::open(&app.jetstream, &app.namespace.namespace, 1).await.expect("the store");
    let here = tempfile::tempdir().expect("a folder");
    let elsewhere = tempfile::tempdir().expect("another host's folder");
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let sha = hex::encode(Sha256::digest(&bytes));
    let file = here.path().join("upload.mp4");
    std::fs::write(&file, &bytes).expect("the upload");

    assert!(!store.contains(&sha).await.expect("asked"));
    let target = elsewhere.path().join(media::SOURCE_FOLDER).join("v.mp4");
    assert!(!store.fetch(&sha, &target).await.expect("asked"), "nothing stored yet");
    store.put(&sha, &file).await.expect("stored");
    store.put(&sha, &file).await.expect("stored again: nothing new");
    assert!(store.contains(&sha).await.expect("asked"));
    assert!(store.fetch(&sha, &target).await.expect("fetched"));
    assert_eq!(std::fs::read(&target).expect("the copy"), bytes);

    // A file stored under another hash than its own is refused, and leaves nothing.
    let lie = "0".repeat(64);
    store.put(&lie, &file).await.expect("stored under a wrong name");
    let wrong = elsewhere.path().join(media::SOURCE_FOLDER).join("w.mp4");
    let refused = store.fetch(&lie, &wrong).await.expect_err("refused");
    assert!(matches!(refused, media::MediaError::Corrupt { .. }), "{refused}");
    assert!(!wrong.exists());
    let leftovers = std::fs::read_dir(elsewhere.path().join(media::SOURCE_FOLDER)).expect("the folder").count();
    assert_eq!(leftovers, 1, "only the good copy");
}
