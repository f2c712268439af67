//! Projections: exactly-once in effect across crashes, and rebuildable while serving.

use std::sync::Arc;
use std::time::Duration;

use framecart_api::projections::{self, ProjectionRunner};
use framecart_tests::{TestApp, click_body, media_files};
use serde_json::json;
use uuid::Uuid;

/// The `clicks` view, minus the column that records when a row was written.
async fn clicks_view(app: &TestApp) -> Vec<serde_json::Value> {
    sqlx::query_scalar("SELECT to_jsonb(c) - 'projected_at' FROM clicks_view c ORDER BY log_position")
        .fetch_all(&app.db)
        .await
        .expect("the view")
}

/// A runner of the `clicks` projection in the test's own process.
fn clicks_runner(app: &TestApp) -> ProjectionRunner {
    ProjectionRunner::new(
        app.running.state.pool.clone(),
        app.running.state.jetstream.clone(),
        app.namespace.namespace.clone(),
        Arc::new(projections::clicks::ClicksProjection::new(Arc::new(projections::personal::KeyReader::new(
            framecart_tests::test_master_key(),
        )))),
    )
}

async fn post_mixed_clicks(app: &TestApp, n: usize) {
    for i in 0..n {
        let mut body =
            click_body(Uuid::new_v4(), "VESeA6leQuk", (i * 7 % 800) as f64, 100.0 + i as f64, i as f64 * 0.5);
        if i % 3 == 0 {
            body["userId"] = json!(format!("user{}", i % 2));
        }
        let (status, answer) = app.post("/api/v1/clicks", &body).await;
        assert_eq!(status, 202, "{answer}");
    }
}

#[tokio::test]
async fn a_projection_rebuilt_from_scratch_while_serving_gives_the_same_view_and_files() {
    let app = TestApp::spawn_bare(&[framecart_api::Role::All]).await;
    post_mixed_clicks(&app, 30).await;
    app.wait_for_clicks_view().await;
    app.wait_for_client_files().await;
    let view_before = clicks_view(&app).await;
    let files_before = media_files(&app.media_dir().join("client_files"));
    assert_eq!(view_before.len(), 30);
    assert_eq!(files_before.len(), 3, "no user, user0 and user1");

    // Files are rewritten from the view: remove them to see them come back.
    std::fs::remove_dir_all(app.media_dir().join("client_files")).expect("remove");
    app.rebuild_every_projection().await;
    assert_eq!(clicks_view(&app).await, view_before);
    assert_eq!(media_files(&app.media_dir().join("client_files")), files_before);

    // And it keeps projecting afterwards.
    post_mixed_clicks(&app, 2).await;
    app.wait_for_clicks_view().await;
    assert_eq!(clicks_view(&app).await.len(), 32);
}

#[tokio::test]
async fn a_rebuild_with_no_server_running_applies_the_log_itself() {
    let mut app = TestApp::spawn_bare(&[framecart_api::Role::All]).await;
    post_mixed_clicks(&app, 12).await;
    app.wait_for_clicks_view().await;
    app.wait_for_client_files().await;
    let view_before = clicks_view(&app).await;
    let files_before = media_files(&app.media_dir().join("client_files"));
    app.running.kill_projections().await;

    let runner = clicks_runner(&app);
    let progress = std::sync::Mutex::new(Vec::new());
    runner.rebuild(&|applied, last| progress.lock().expect("lock").push((applied, last))).await.expect("rebuild");
    assert_eq!(clicks_view(&app).await, view_before);
    assert_eq!(media_files(&app.media_dir().join("client_files")), files_before);
}

/// A rebuild applies thousands of clicks at a time, copied (`COPY … FROM STDIN (FORMAT
/// binary)`) rather than inserted: every column must come out as the live path, which
/// inserts a few rows at a time, wrote it. A second `ClickRecorded` for one click (written
/// by hand: the aggregate never writes one) fails the copy; the batch is then applied
/// event by event, and the first is kept, as live.
#[tokio::test]
async fn a_rebuild_copies_clicks_in_bulk_into_the_view_the_live_path_wrote() {
    let mut app = TestApp::spawn_bare(&[framecart_api::Role::All]).await;
    post_mixed_clicks(&app, 150).await;
    app.wait_for_clicks_view().await;
    app.wait_for_log().await;
    let view_before = clicks_view(&app).await;
    app.running.kill_projections().await;
    let rebuild = || async {
        // From the store: the whole log in one batch (the stream may deliver a few at a time).
        let runner = clicks_runner(&app).catching_up_from_store_above(1);
        runner.rebuild(&|_, _| {}).await.expect("rebuild");
        assert!(runner.caught_up_from_store() >= 150, "the log, read from the store");
    };
    rebuild().await;
    assert_eq!(clicks_view(&app).await, view_before);

    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT aggregate_type, aggregate_id, sequence + 1, event_type, event_version, payload, metadata
         FROM events WHERE event_type = 'ClickRecorded' ORDER BY global_position OFFSET 70 LIMIT 1",
    )
    .execute(&app.db)
    .await
    .expect("a second ClickRecorded for one click");
    app.wait_for_log().await;
    rebuild().await;
    assert_eq!(clicks_view(&app).await, view_before);
    let set_aside = app.count("SELECT count(*) FROM projection_quarantine WHERE projection = 'clicks'").await;
    assert_eq!(set_aside, 0, "nothing set aside");
}

/// A long backlog is read from the store's record of the log (`event_log` joined with
/// `events`), then from the stream: the store is read only as far as it holds what was
/// recorded. Here the stored event at one position is not the one recorded there (its id
/// changed by hand), so the catch-up stops before it and the stream delivers the rest.
#[tokio::test]
async fn a_long_backlog_is_caught_up_from_the_store_as_far_as_it_holds_what_was_logged() {
    let mut app = TestApp::spawn_bare(&[framecart_api::Role::All]).await;
    post_mixed_clicks(&app, 24).await;
    app.wait_for_clicks_view().await;
    app.wait_for_log().await;
    let view_before = clicks_view(&app).await;
    app.running.kill_projections().await;

    let (changed, last): (i64, i64) = sqlx::query_as(
        "SELECT l.log_position, (SELECT max(log_position) FROM event_log)
         FROM event_log l JOIN events e USING (global_position)
         WHERE e.event_type = 'ClickRecorded' ORDER BY l.log_position OFFSET 12 LIMIT 1",
    )
    .fetch_one(&app.db)
    .await
    .expect("a click in the middle of the log");
    let mut tx = app.db.begin().await.expect("a transaction");
    for statement in [
        "ALTER TABLE events DISABLE TRIGGER events_append_only",
        "UPDATE events SET event_id = gen_random_uuid()
         WHERE global_position = (SELECT global_position FROM event_log WHERE log_position = $1)",
        "ALTER TABLE events ENABLE TRIGGER events_append_only",
    ] {
        sqlx::query(statement).bind(changed).execute(&mut *tx).await.expect(statement);
    }
    tx.commit().await.expect("commit");

    let runner = clicks_runner(&app).catching_up_from_store_above(1);
    runner.rebuild(&|_, _| {}).await.expect("rebuild");
    assert!(changed > 1 && changed < last, "{changed} of {last}");
    assert_eq!(runner.caught_up_from_store(), changed - 1, "from the store up to the changed event");
    // Every click once, the changed one as the stream carries it (its logged id).
    assert_eq!(clicks_view(&app).await, view_before);
}

/// A batch from the store reads its own events, each by its index, whatever the store
/// holds besides and whether Postgres has statistics on it or not: as a plain join ordered
/// by position, each batch scanned the whole of `events` once it had them (a rebuild's cost
/// grew with the square of the store), and sorted its wide rows on disk before.
#[tokio::test]
async fn a_batch_from_the_store_reads_only_its_own_events() {
    let database = framecart_tests::TestDatabase::create().await.expect("a database");
    let db = sqlx::PgPool::connect(&database.url).await.expect("a pool");
    framecart_api::commands::db::migrate(&db).await.expect("migrations");
    for statement in [
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT 'click', i::text, 1, 'ClickRecorded', '2.0', json_build_object('pad', repeat('x', 600)), '{}'
         FROM generate_series(1, 50000) i",
        "INSERT INTO event_log (log_position, global_position, event_id, hash)
         SELECT global_position, global_position, event_id, '' FROM events",
    ] {
        sqlx::query(statement).execute(&db).await.expect(statement);
    }
    for statistics in [false, true] {
        if statistics {
            sqlx::query("ANALYZE events, event_log").execute(&db).await.expect("analyze");
        }
        let plan: serde_json::Value =
            sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) {}", projections::recorded::READ))
                .bind(20_000_i64)
                .bind(5_000_i64)
                .bind(vec!["click".to_owned()])
                .bind(vec!["PersonalDataErased".to_owned()])
                .bind(false)
                .fetch_one(&db)
                .await
                .expect("the plan");
        let mut nodes = vec![&plan[0]["Plan"]];
        let mut kinds = Vec::new();
        while let Some(node) = nodes.pop() {
            kinds.push((node["Node Type"].as_str().unwrap_or(""), node["Relation Name"].as_str().unwrap_or("")));
            nodes.extend(node["Plans"].as_array().into_iter().flatten());
        }
        let said = format!("statistics: {statistics}, plan: {kinds:?}");
        assert!(!kinds.contains(&("Seq Scan", "events")), "scans the whole store; {said}");
        assert!(kinds.contains(&("Index Scan", "events")), "looks each event up by its index; {said}");
        assert!(!kinds.iter().any(|(kind, _)| ["Sort", "Gather", "Gather Merge"].contains(kind)), "{said}");
    }
    db.close().await;
}

/// A runner hears a rebuild requested elsewhere as it is committed, not at its next
/// periodic check: here the check comes once an hour, and the rebuild is done in seconds.
#[tokio::test]
async fn a_rebuild_request_is_heard_as_it_is_made() {
    let mut app = TestApp::spawn_bare(&[framecart_api::Role::All]).await;
    post_mixed_clicks(&app, 12).await;
    app.wait_for_clicks_view().await;
    app.running.kill_projections().await;

    let shutdown = tokio_util::sync::CancellationToken::new();
    let (notices, listening) =
        projections::notices::RebuildNotices::listen(app.running.state.pool.clone(), shutdown.clone());
    let listening = tokio::spawn(listening);
    let runner = clicks_runner(&app).hearing_rebuilds(&notices).checking_every(Duration::from_secs(3600));
    let running = tokio::spawn(runner.run(shutdown.clone()));
    framecart_tests::eventually("the runner leads", Duration::from_secs(20), || async {
        let leads: Option<bool> = sqlx::query_scalar(
            "SELECT leader_generation = generation FROM projection_checkpoints WHERE name = 'clicks'",
        )
        .fetch_optional(&app.db)
        .await
        .expect("the checkpoint");
        leads.filter(|leads| *leads)
    })
    .await;
    // A click it applies: it is past its first check, which comes at once.
    post_mixed_clicks(&app, 1).await;
    app.wait_for_clicks_view().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let view_before = clicks_view(&app).await;
    assert_eq!(view_before.len(), 13);

    // Were the command to apply it itself, it would catch up from the store.
    let command = clicks_runner(&app).catching_up_from_store_above(1);
    let rebuilt = tokio::time::timeout(Duration::from_secs(30), command.rebuild(&|_, _| {})).await;
    assert!(matches!(rebuilt, Ok(Ok(()))), "the leading runner never heard the rebuild: {rebuilt:?}");
    assert_eq!(command.caught_up_from_store(), 0, "the command replayed it, not the runner that leads");
    assert_eq!(clicks_view(&app).await, view_before);
    shutdown.cancel();
    running.await.expect("the runner ends");
    listening.await.expect("the listener ends");
}

#[tokio::test]
async fn killed_projections_resume_without_loss_or_duplicates() {
    let mut app = TestApp::spawn_bare(&[framecart_api::Role::All]).await;
    for _ in 0..4 {
        post_mixed_clicks(&app, 10).await;
        app.running.kill_projections().await;
        post_mixed_clicks(&app, 5).await;
        app.running.start_projections();
    }
    app.wait_for_clicks_view().await;
    app.wait_for_client_files().await;
    assert_eq!(app.count("SELECT count(*) FROM clicks_view").await, 60);
    // Every file lists each of its clicks once.
    let total: usize = media_files(&app.media_dir().join("client_files"))
        .values()
        .map(|text| serde_json::from_str::<Vec<serde_json::Value>>(text).expect("a list").len())
        .sum();
    assert_eq!(total, 60);
}

#[tokio::test]
async fn a_projection_is_not_held_up_by_events_it_does_not_apply() {
    let app = TestApp::spawn_bare(&[framecart_api::Role::All]).await;
    post_mixed_clicks(&app, 20).await;
    app.wait_for_log().await;
    let last: i64 = app.count("SELECT max(log_position) FROM event_log").await;
    let ns = &app.namespace.namespace;
    let stream = app.jetstream.get_stream(ns.stream_name()).await.expect("the stream");
    let consumer = ns.consumer_name("proj_videos");
    if several_filters(&app) {
        // NATS 2.10+: `videos` filters on the video and run subjects, so the server
        // delivers it no click at all, and nothing is pending for it.
        let info = framecart_tests::eventually("the videos consumer", Duration::from_secs(10), || async {
            stream.consumer_info(&consumer).await.ok()
        })
        .await;
        assert_eq!(info.config.filter_subjects.len(), 2, "{:?}", info.config);
        assert_eq!((info.num_pending, info.delivered.stream_sequence), (0, 0), "{info:?}");
    } else {
        // NATS 2.9: one filter, the whole log; the clicks are counted past, not applied,
        // and its checkpoint still reaches the end of the log, without a write per click.
        framecart_tests::eventually(
            "videos to save the position of the clicks it skipped",
            Duration::from_secs(5),
            || async {
                let applied = app.count("SELECT last_sequence FROM projection_checkpoints WHERE name = 'videos'").await;
                (applied == last).then_some(())
            },
        )
        .await;
    }
    assert_eq!(app.count("SELECT count(*) FROM videos_view").await, 0);
    // The clicks view applied every one of them.
    app.wait_for_clicks_view().await;
    assert_eq!(app.count("SELECT count(*) FROM clicks_view").await, 20);
}

/// Whether the test's NATS server filters consumers on several subjects (2.10+).
fn several_filters(app: &TestApp) -> bool {
    projections::runner::filters_several_subjects(&app.jetstream.client().server_info().version)
}

/// The status says how far the client files are behind their rows: here the files cannot
/// be written (a plain file stands where their folder goes), so they stay at the log
/// position before the first click while the projection has applied clicks; once the
/// folder can be made, the files catch up and the status says so.
#[tokio::test]
async fn status_says_up_to_where_the_client_files_hold_every_click() {
    let app = TestApp::spawn_bare(&[framecart_api::Role::All]).await;
    std::fs::create_dir_all(app.media_dir()).expect("media");
    std::fs::write(app.media_dir().join("client_files"), b"in the way").expect("a file in the way");
    post_mixed_clicks(&app, 6).await;
    app.wait_for_clicks_view().await;
    let first: i64 = app.count("SELECT min(log_position) FROM clicks_view").await;
    let last: i64 = app.count("SELECT max(log_position) FROM clicks_view").await;
    let client_files = |report: &serde_json::Value| {
        report["projections"]
            .as_array()
            .expect("projections")
            .iter()
            .find(|p| p["name"] == "client_files")
            .cloned()
            .expect("client_files")
    };
    framecart_tests::eventually("client_files to apply a click", Duration::from_secs(20), || async {
        let status = client_files(&app.projections_status().await);
        (status["applied"].as_i64().expect("applied") >= first).then_some(())
    })
    .await;
    let status = client_files(&app.projections_status().await);
    assert_eq!(status["files_up_to"], first - 1, "{status}");
    // Views that write no files say nothing of files.
    let report = app.projections_status().await;
    let clicks = report["projections"].as_array().expect("projections").iter().find(|p| p["name"] == "clicks");
    assert!(clicks.expect("clicks").get("files_up_to").is_none(), "{report}");

    std::fs::remove_file(app.media_dir().join("client_files")).expect("out of the way");
    app.wait_for_client_files().await;
    let status = client_files(&app.projections_status().await);
    assert_eq!(status["files_up_to"], last, "{status}");
}

/// The client files that have waited longest are written first, and a file marked again
/// keeps the position of its oldest unwritten click: files just written (and held back a
/// moment by the throttle) never crowd out the others, however many are waiting.
#[tokio::test]
async fn marked_files_are_taken_oldest_first_and_keep_their_oldest_click() {
    use framecart_api::projections::files::DirtyFiles;
    // No projection runs: the test alone marks and clears.
    let app = TestApp::spawn_bare(&[framecart_api::Role::Api]).await;
    let dirty = DirtyFiles { table: "client_files_dirty" };
    let mut conn = app.db.acquire().await.expect("a connection");
    let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
    dirty.mark_all(&mut conn, &names(&["late.json", "early.json"]), &[30, 10]).await.expect("mark");
    dirty.mark_all(&mut conn, &names(&["middle.json", "early.json"]), &[20, 40]).await.expect("mark again");
    drop(conn);
    let pending = dirty.some_pending(&app.db, 2).await.expect("pending");
    let first: Vec<&str> = pending.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(first, ["early.json", "middle.json"]);
    assert_eq!(dirty.waiting_since(&app.db).await.expect("since"), Some(9), "early.json waits since 10");
    let all = dirty.some_pending(&app.db, 10).await.expect("pending");
    dirty.written_all(&app.db, &all).await.expect("written");
    assert_eq!(dirty.waiting_since(&app.db).await.expect("since"), None);

    // A mark from before marks kept their position waits for the start, and comes first.
    dirty.mark_all(&mut app.db.acquire().await.expect("conn"), &names(&["later.json"]), &[50]).await.expect("mark");
    sqlx::query("INSERT INTO client_files_dirty (file_name) VALUES ('unknown.json')")
        .execute(&app.db)
        .await
        .expect("an old mark");
    let pending = dirty.some_pending(&app.db, 1).await.expect("pending");
    assert_eq!(pending.first().map(|(name, _)| name.as_str()), Some("unknown.json"));
    assert_eq!(dirty.waiting_since(&app.db).await.expect("since"), Some(0));

    // Both reads are served by the index in that order, not by reading every mark: under
    // load the table holds thousands of marks, read every round and by every observer.
    let mut conn = app.db.acquire().await.expect("a connection");
    sqlx::query("SET enable_seqscan = off").execute(&mut *conn).await.expect("set");
    for query in [
        "SELECT file_name, version FROM client_files_dirty ORDER BY first_position NULLS FIRST LIMIT 10",
        "SELECT coalesce(first_position, 1) - 1 FROM client_files_dirty ORDER BY first_position NULLS FIRST LIMIT 1",
    ] {
        let plan: Vec<String> =
            sqlx::query_scalar(&format!("EXPLAIN {query}")).fetch_all(&mut *conn).await.expect("explain");
        let plan = plan.join("\n");
        assert!(plan.contains("client_files_dirty_by_wait") && !plan.contains("Sort"), "{query}:\n{plan}");
    }
}

/// The writer's clearing of written marks never waits for a batch that marks files
/// again, so the two cannot deadlock. (They did: the batch held one mark and wanted
/// another that the clearing held while it waited for the first. Postgres broke the
/// cycle after its `deadlock_timeout`, a second, by failing one of them, and the failed
/// side started over: under load, a second's stall of every view behind the relay.)
#[tokio::test]
async fn clearing_written_marks_never_waits_for_a_batch_marking_them_again() {
    use framecart_api::projections::files::DirtyFiles;
    let app = TestApp::spawn_bare(&[framecart_api::Role::Api]).await;
    let dirty = DirtyFiles { table: "client_files_dirty" };
    let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
    // Marked in this order, so the clearing below meets a.json first, however it is planned.
    let mut conn = app.db.acquire().await.expect("a connection");
    dirty.mark_all(&mut conn, &names(&["a.json"]), &[1]).await.expect("mark a");
    dirty.mark_all(&mut conn, &names(&["b.json"]), &[2]).await.expect("mark b");
    drop(conn);
    let written = dirty.some_pending(&app.db, 10).await.expect("pending");
    let mut by_name = written.clone();
    by_name.sort();
    assert_eq!(by_name.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["a.json", "b.json"]);

    // A batch marks b.json again and holds it.
    let mut batch = app.db.begin().await.expect("a batch");
    let batch_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *batch).await.expect("pid");
    dirty.mark_all(&mut batch, &names(&["b.json"]), &[3]).await.expect("mark b again");

    // The writer clears both files' marks meanwhile.
    let clearing = tokio::spawn({
        let (db, written) = (app.db.clone(), by_name.clone());
        async move { dirty.written_all(&db, &written).await }
    });
    framecart_tests::ended_or_blocked_by(&app.db, batch_pid, &clearing, "the clearing").await;
    // The batch marks a.json too, and commits.
    let marked = dirty.mark_all(&mut batch, &names(&["a.json"]), &[4]).await;
    let committed = match marked {
        Ok(()) => batch.commit().await,
        Err(e) => Err(e),
    };
    let cleared = tokio::time::timeout(Duration::from_secs(10), clearing).await.expect("the clearing ends");
    assert!(committed.is_ok(), "the batch failed: {committed:?}");
    assert!(cleared.as_ref().is_ok_and(Result::is_ok), "the clearing failed: {cleared:?}");

    // Both files got a click after the writer read them: both are still marked, a.json
    // from its new click on, b.json from its first.
    let mut left = dirty.some_pending(&app.db, 10).await.expect("pending");
    left.sort();
    assert_eq!(left.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["a.json", "b.json"], "{left:?}");
    let b_before = by_name[1].1;
    assert!(left[1].1 > b_before, "b.json's mark was bumped, not cleared: {left:?}");
    assert_eq!(dirty.waiting_since(&app.db).await.expect("since"), Some(1), "b.json waits since 2");
}

/// Every index of the test's schema, by name, with its definition.
async fn index_definitions(app: &TestApp) -> Vec<(String, String)> {
    sqlx::query_as("SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1")
        .fetch_all(&app.db)
        .await
        .expect("indexes")
}

#[tokio::test]
async fn a_rebuild_indexes_the_view_after_the_replay_even_across_a_crash() {
    let mut app = TestApp::spawn_bare(&[framecart_api::Role::All]).await;
    post_mixed_clicks(&app, 12).await;
    app.wait_for_clicks_view().await;
    let view_before = clicks_view(&app).await;
    let indexes_before = index_definitions(&app).await;
    assert!(indexes_before.iter().any(|(name, _)| name == "clicks_view_by_video"));

    // A rebuild is requested, and its applier dies before it caught up: the view is empty
    // and lacks the indexes the rebuild defers, and status says so.
    app.running.kill_projections().await;
    let clicks = projections::all(&app.view_settings())
        .into_iter()
        .find(|p| p.name() == "clicks")
        .expect("the clicks projection");
    projections::runner::request_rebuild(&app.db, clicks.as_ref()).await.expect("rebuild requested");
    let missing: Vec<String> = sqlx::query_scalar(
        "SELECT n FROM UNNEST(ARRAY['clicks_view_by_video', 'clicks_view_by_user', 'clicks_view_by_viewer']) n
         WHERE to_regclass(n) IS NULL",
    )
    .fetch_all(&app.db)
    .await
    .expect("missing indexes");
    assert_eq!(missing.len(), 3, "{missing:?}");
    assert!(clicks_view(&app).await.is_empty());
    let report = app.projections_status().await;
    let status = report["projections"].as_array().expect("projections").iter().find(|p| p["name"] == "clicks").cloned();
    assert_eq!(status.expect("clicks")["indexes_to_build"], 3, "{report}");

    // The next applier replays the log, then builds them: the same view, the same indexes.
    app.running.start_projections();
    framecart_tests::eventually("the deferred indexes to be built", Duration::from_secs(30), || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_deferred_indexes")
            .fetch_one(&app.db)
            .await
            .expect("count");
        (left == 0).then_some(())
    })
    .await;
    assert_eq!(index_definitions(&app).await, indexes_before);
    assert_eq!(clicks_view(&app).await, view_before);

    // A rebuild of every projection while serving ends with every index in place.
    app.rebuild_every_projection().await;
    assert_eq!(index_definitions(&app).await, indexes_before);
    assert_eq!(clicks_view(&app).await, view_before);
}

/// A JetStream API on `prefix` that passes every request to this NATS's own, replies
/// going straight back to the asker, except consumer deletes: those are dropped, so they
/// time out, as they do while a cluster moves the stream's leader.
async fn api_without_consumer_deletes(prefix: String) -> tokio::task::JoinHandle<()> {
    use futures::StreamExt as _;
    let client = async_nats::connect(framecart_tests::nats_url()).await.expect("NATS");
    let mut requests = client.subscribe(format!("{prefix}.>")).await.expect("subscribe");
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let api = request.subject.as_str().trim_start_matches(&prefix).trim_start_matches('.');
            if api.starts_with("CONSUMER.DELETE.") {
                continue;
            }
            let Some(reply) = request.reply else { continue };
            let subject = format!("$JS.API.{api}");
            client.publish_with_reply(subject, reply, request.payload).await.expect("passed on");
        }
    })
}

#[tokio::test]
async fn a_runner_that_cannot_delete_the_last_consumer_never_reads_on_from_it() {
    let app = TestApp::spawn_bare(&[framecart_api::Role::Api, framecart_api::Role::Relay]).await;
    post_mixed_clicks(&app, 12).await;
    let clicks = projections::all(&app.view_settings())
        .into_iter()
        .find(|p| p.name() == "clicks")
        .expect("the clicks projection");
    let runner = |js: async_nats::jetstream::Context| {
        ProjectionRunner::new(app.running.state.pool.clone(), js, app.namespace.namespace.clone(), clicks.clone())
    };
    app.wait_for_log().await;
    runner(app.jetstream.clone()).rebuild(&|_, _| {}).await.expect("a rebuild");
    assert_eq!(app.count("SELECT count(*) FROM clicks_view").await, 12);

    // The next rebuild's runner cannot delete the consumer the first one left, which has
    // acknowledged the whole log, and which it would create with the same settings.
    let prefix = format!("{}.api", app.namespace.namespace.as_str());
    let proxy = api_without_consumer_deletes(prefix.clone()).await;
    let client = async_nats::connect(framecart_tests::nats_url()).await.expect("NATS");
    let js =
        async_nats::jetstream::ContextBuilder::new().api_prefix(prefix).timeout(Duration::from_secs(1)).build(client);
    let rebuilt = tokio::time::timeout(Duration::from_secs(30), runner(js).rebuild(&|_, _| {})).await;
    let rows = app.count("SELECT count(*) FROM clicks_view").await;
    match rebuilt {
        // Taking the old consumer over, it would find nothing pending and end with an
        // empty view.
        Ok(Ok(())) => assert_eq!(rows, 12, "a rebuild said it was done with {rows} of the 12 clicks"),
        Ok(Err(e)) => assert!(e.to_string().contains("deleting the consumer"), "{e}"),
        Err(_) => panic!("the rebuild neither ended nor failed"),
    }
    proxy.abort();

    // Once deletes go through, the next rebuild applies the whole log.
    runner(app.jetstream.clone()).rebuild(&|_, _| {}).await.expect("a rebuild");
    assert_eq!(app.count("SELECT count(*) FROM clicks_view").await, 12);
}
