//! Framecart on several "hosts": two `api` processes, an active `relay,projections,processes`
//! process with a standby, and a `detector` process with its own empty media folder, on a
//! three-node JetStream cluster with three replicas of the stream (see
//! `framecart_tests::scaleout`).
//!
//! Under click load on both APIs it loses the NATS node that leads the stream, then an
//! `api` process, then the active core process, whose standby takes over. Every
//! acknowledged click must then be exactly once in the store, the stream, the view and
//! the client files; the video uploaded through one API must be detected by the detector
//! process, which has only the media store to read it from; and `audit verify` must hold.
//! Each fault adds a row to the fault table (`fault-table.md` in the cargo target folder).

use std::time::{Duration, Instant};

use framecart_tests::faults::{self, Census, RECOVERY_LIMIT, Row};
use framecart_tests::load::ClickLoad;
use framecart_tests::scaleout::{NAMESPACE, ScaleOut};
use framecart_tests::{
    ADMIN_EMAIL, ADMIN_PASSWORD, eventually, eventually_or_say, pan_video, signed_in_client, test_media,
};
use uuid::Uuid;

const VIDEO: &str = "dQw4w9WgXcQ";

/// One fault of the run, measured when it ends; its lost and duplicated clicks are
/// counted once everything has settled.
struct Fault {
    scenario: &'static str,
    acked: Vec<Uuid>,
    answers: String,
    slowest: Duration,
    recovery: Duration,
}

/// Waits until every click acknowledged so far is in the view: the fault's recovery,
/// from `began` (when what was broken is back, or for a process that stays dead, when it
/// died).
async fn recover(scenario: &'static str, s: &ScaleOut, load: &ClickLoad, began: Instant) -> Fault {
    let acked = load.acked();
    eventually(&format!("{scenario}: the acknowledged clicks to be in clicks_view"), RECOVERY_LIMIT, || {
        faults::in_view(&s.db, &acked)
    })
    .await;
    let fault = Fault { scenario, acked, answers: load.answers(), slowest: load.slowest(), recovery: began.elapsed() };
    load.close_window();
    fault
}

/// The name of the process that holds `held` (`framecart <instance> <roles>`), and the
/// names standing by.
fn holders(held: &serde_json::Value) -> (String, Vec<String>) {
    let name = |p: &serde_json::Value| p["name"].as_str().unwrap_or_default().to_owned();
    let active = held["active"].as_object().map(|_| name(&held["active"])).unwrap_or_default();
    let standby = held["standby"].as_array().map(|s| s.iter().map(name).collect()).unwrap_or_default();
    (active, standby)
}

/// Whether `instance` holds the relay and every view and process manager.
fn holds_everything(status: &serde_json::Value, instance: &str) -> bool {
    let prefix = format!("framecart {instance} ");
    let relay = holders(&status["relay"]).0.starts_with(&prefix);
    let projections = status["projections"].as_array().expect("projections");
    relay && projections.iter().all(|p| holders(p).0.starts_with(&prefix))
}

/// The node leading the stream. Asked again while the cluster answers with an error: a
/// node that just came back makes the JetStream API time out for a moment while the
/// cluster settles its leaders.
async fn stream_leader(s: &ScaleOut) -> String {
    let client = async_nats::connect(s.nats_url()).await.expect("NATS");
    let js = async_nats::jetstream::new(client);
    let name = format!("{}_EVENTS", NAMESPACE.to_uppercase());
    eventually_or_say("the stream's leader", Duration::from_secs(60), || async {
        let mut stream = js.get_stream(&name).await.map_err(|e| format!("the stream: {e}"))?;
        let info = stream.info().await.map_err(|e| format!("stream info: {e}"))?;
        assert_eq!(info.config.num_replicas, 3, "the stream has three replicas");
        info.cluster.as_ref().and_then(|c| c.leader.clone()).ok_or_else(|| "no leader yet".to_owned())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scaled_out_installation_loses_a_nats_node_an_api_and_its_active_core_without_losing_a_click() {
    let mut s = ScaleOut::start().await;

    // Who holds what: one of the two core processes holds the relay and each view and
    // process manager (mostly the first started; a runner that starts over on a cluster
    // still electing its leaders may leave one to the other), the other waits for it.
    // A process that is ready may still be starting its runners: each waits on its lock
    // moments later, so this is waited for, not read once.
    let who_holds = "each lock held by one core process and waited on by the other";
    eventually_or_say(who_holds, Duration::from_secs(30), || async {
        let status = s.status().await;
        let locks = std::iter::once(&status["relay"]).chain(status["projections"].as_array().expect("projections"));
        for held in locks {
            let (active, standby) = holders(held);
            let (one, other) = if active.starts_with("framecart core ") {
                ("core", "core-standby")
            } else {
                assert!(active.starts_with("framecart core-standby "), "a core process holds it: {held}");
                ("core-standby", "core")
            };
            if !standby.iter().any(|n| n.starts_with(&format!("framecart {other} "))) {
                return Err(format!("{other} does not wait while {one} holds: {held}"));
            }
        }
        Ok(())
    })
    .await;

    // A video uploaded through one API; clicks through both.
    let api = [s.process("api-1").base_url(), s.process("api-2").base_url()];
    let admin = signed_in_client(&api[0], ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("pan.mp4");
    pan_video(&test_media("person.jpg"), &file, 3);
    let form = reqwest::multipart::Form::new()
        .text("video_id", VIDEO)
        .part("file", reqwest::multipart::Part::bytes(std::fs::read(&file).expect("video")).file_name("pan.mp4"));
    let uploaded = admin.post(format!("{}/api/v1/videos", api[0])).multipart(form).send().await.expect("upload");
    assert_eq!(uploaded.status().as_u16(), 201, "{}", uploaded.text().await.unwrap_or_default());
    let mut load = ClickLoad::start_balanced(&api, 4, 20);
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The detector process reads the upload from the media store (its own folder was
    // empty), and the core process writes the detections file. A token of one API works
    // on the other.
    let detected = Instant::now();
    eventually("the detector process to detect the upload", Duration::from_secs(180), || async {
        let response = admin.get(format!("{}/api/v1/videos/{VIDEO}", api[1])).send().await.ok()?;
        let video: serde_json::Value = response.json().await.ok()?;
        assert_ne!(video["status"], "failed", "{video}");
        (video["status"] == "completed").then_some(())
    })
    .await;
    eprintln!("detected on the detector process in {:.1} s", detected.elapsed().as_secs_f64());
    let fetched = s.media("detector").join("source_video_files").join(format!("{VIDEO}.mp4"));
    assert!(fetched.is_file(), "the detector fetched the upload into its own folder");
    assert!(s.process("detector").log().contains("fetched the upload from the media store"));
    assert!(s.media("api-1").join("source_video_files").join(format!("{VIDEO}.mp4")).is_file(), "the local copy");
    let detections = s.media("core").join("detections").join(format!("{VIDEO}_detections.json"));
    eventually("the detections file", Duration::from_secs(30), || async {
        let text = std::fs::read_to_string(&detections).ok()?;
        let frames: Vec<serde_json::Value> = serde_json::from_str(&text).ok()?;
        (!frames.is_empty()).then_some(())
    })
    .await;

    let mut done = Vec::new();

    // 1. The NATS node that leads the stream dies; it comes back 10 s later.
    let leader = stream_leader(&s).await;
    let node: usize = leader.trim_start_matches("node").parse::<usize>().expect("nodeN") - 1;
    load.open_window();
    s.nats[node].stop("KILL").await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    s.nats[node].restart().await;
    let began = Instant::now();
    done.push(recover("kill -9 the NATS node leading the stream (of 3), restart after 10 s", &s, &load, began).await);
    let new_leader = stream_leader(&s).await;
    eprintln!("stream leader: {leader} before, {new_leader} after");

    // 2. An API process dies; the load balancer's clients go to the other.
    load.open_window();
    s.kill("api-1").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let began = Instant::now();
    done.push(recover("kill -9 one api process (of 2)", &s, &load, began).await);
    s.start_process("api-1");
    s.wait_ready("api-1", Duration::from_secs(60)).await;

    // 3. The core process dies; the other takes the relay, every view and every process
    //    manager over.
    let relay = holders(&s.status().await["relay"]).0;
    let (active, heir) =
        if relay.starts_with("framecart core ") { ("core", "core-standby") } else { ("core-standby", "core") };
    load.open_window();
    let began = Instant::now();
    s.kill(active).await;
    let took_over = eventually("the standby to hold everything", RECOVERY_LIMIT, || async {
        holds_everything(&s.status().await, heir).then_some(began.elapsed())
    })
    .await;
    eprintln!("the standby held everything {:.1} s after the kill", took_over.as_secs_f64());
    done.push(
        recover(
            "kill -9 the relay,projections,processes process holding the relay; its standby takes over",
            &s,
            &load,
            began,
        )
        .await,
    );

    // Everything settles; then each click is counted everywhere.
    tokio::time::sleep(Duration::from_secs(2)).await;
    load.stop().await;
    let acked = load.acked();
    eventually("every acknowledged click to be in clicks_view", RECOVERY_LIMIT, || faults::in_view(&s.db, &acked))
        .await;
    faults::settle(&s.db).await;
    let census = Census::take(&s.db, &s.nats_url(), s.media("core"), NAMESPACE, &load.sent()).await;
    let sent = load.sent();
    for fault in &done {
        let row = Row {
            scenario: fault.scenario,
            acknowledged: fault.acked.len(),
            lost: fault.acked.iter().filter(|id| census.lost(id, true)).count(),
            duplicated: sent.keys().filter(|id| census.duplicated(id)).count(),
            answers: fault.answers.clone(),
            slowest: fault.slowest,
            recovery: fault.recovery,
        };
        faults::record(&row);
    }
    census.assert_exactly_once("scale-out", &load);
    let (ok, audit) = s.run(&["audit", "verify"]).await;
    assert!(ok && audit.contains("\"ok\":true"), "audit verify: {audit}");
    for process in s.processes.values() {
        assert!(!process.log().contains("panicked at"), "{} panicked", process.name);
    }
}
