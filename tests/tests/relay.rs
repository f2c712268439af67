//! The relay: the log is complete, in commit order, and has nothing twice, across crashes
//! and late-committing transactions.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use framecart_api::commands::relay::RelayState;
use framecart_api::domain::log::LoggedEvent;
use framecart_tests::{TestApp, click_body, eventually, eventually_or_say};
use sqlx::Connection;
use uuid::Uuid;

/// Every message of the stream, in stream order.
async fn logged(app: &TestApp) -> Vec<LoggedEvent> {
    let len = app.stream_len().await;
    let mut events = Vec::new();
    for seq in 1..=len {
        let message = app.stream_message(seq).await;
        events.push(serde_json::from_slice(&message.payload).expect("an event envelope"));
    }
    events
}

/// The stored events' ids in commit order.
async fn commit_order(app: &TestApp) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT event_id FROM events ORDER BY tx_id, global_position")
        .fetch_all(&app.db)
        .await
        .expect("events")
}

async fn wait_until_relayed(app: &TestApp) {
    let stored = app.count("SELECT count(*) FROM events").await;
    eventually("the relay to publish every event", Duration::from_secs(20), || async {
        let recorded = app.count("SELECT count(*) FROM event_log").await;
        (recorded == stored && app.stream_len().await == u64::try_from(stored).unwrap_or(0)).then_some(())
    })
    .await;
}

/// The log holds every stored event once, in commit order, and the relay's table agrees.
async fn assert_log_is_exact(app: &TestApp) {
    let log = logged(app).await;
    let ids: Vec<Uuid> = log.iter().map(|e| e.event_id).collect();
    let unique: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "an event was published twice");
    assert_eq!(ids, commit_order(app).await, "the log is the store in commit order");
    let table: Vec<(i64, Uuid)> = sqlx::query_as("SELECT log_position, event_id FROM event_log ORDER BY log_position")
        .fetch_all(&app.db)
        .await
        .expect("event_log");
    let expected: Vec<(i64, Uuid)> = ids.iter().enumerate().map(|(i, id)| (i as i64 + 1, *id)).collect();
    assert_eq!(table, expected, "log positions are dense and match the stream");
}

async fn post_clicks(app: &TestApp, n: usize) {
    let bodies: Vec<_> = (0..n).map(|i| click_body(Uuid::new_v4(), "VESeA6leQuk", 1.0, 100.0, i as f64)).collect();
    let answers = futures::future::join_all(bodies.iter().map(|body| app.post("/api/v1/clicks", body))).await;
    for (status, answer) in answers {
        assert_eq!(status, 202, "{answer}");
    }
}

#[tokio::test]
async fn a_killed_and_restarted_relay_publishes_nothing_twice_and_skips_nothing() {
    let mut app = TestApp::spawn_bare(&[framecart_api::Role::All]).await;
    for round in 0..5 {
        // Kill it while clicks are being committed and published.
        let relay = app.running.relay_abort_handle().expect("a relay");
        let load = post_clicks(&app, 60);
        let kill = async {
            tokio::time::sleep(Duration::from_millis(3 + 7 * round)).await;
            relay.abort();
        };
        let ((), ()) = tokio::join!(load, kill);
        app.running.kill_relay().await;
        post_clicks(&app, 20).await;
        app.running.start_relay();
    }
    wait_until_relayed(&app).await;
    assert_eq!(app.count("SELECT count(*) FROM events").await, 400);
    assert_log_is_exact(&app).await;
}

#[tokio::test]
async fn events_published_before_a_crash_are_recorded_from_the_stream_not_republished() {
    let mut app = TestApp::spawn_bare(&[framecart_api::Role::All]).await;
    post_clicks(&app, 10).await;
    wait_until_relayed(&app).await;

    // Fifteen events wait for the relay, whose table refuses rows for now.
    app.running.kill_relay().await;
    post_clicks(&app, 15).await;
    for statement in [
        "CREATE FUNCTION refuse_log_rows() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'not now'; END $$",
        "CREATE TRIGGER refuse_log_rows BEFORE INSERT ON event_log FOR EACH STATEMENT EXECUTE FUNCTION refuse_log_rows()",
    ] {
        sqlx::query(statement).execute(&app.db).await.expect("a trigger that refuses rows");
    }
    app.running.start_relay();
    // It publishes a batch of them (all fifteen, or fewer when some committed after it
    // looked), gets the acks, and fails to record the batch: it goes no further.
    eventually("the stream to get new events", Duration::from_secs(20), || async {
        (app.stream_len().await > 10).then_some(())
    })
    .await;
    assert_eq!(app.count("SELECT count(*) FROM event_log").await, 10, "not recorded yet");
    // Crash between the ack and the checkpoint.
    app.running.kill_relay().await;
    sqlx::query("DROP TRIGGER refuse_log_rows ON event_log").execute(&app.db).await.expect("drop the trigger");

    app.running.start_relay();
    post_clicks(&app, 5).await;
    wait_until_relayed(&app).await;
    assert_eq!(app.stream_len().await, 30);
    assert_log_is_exact(&app).await;
}

#[tokio::test]
async fn a_transaction_that_commits_late_is_relayed_in_its_place() {
    let app = TestApp::spawn_bare(&[framecart_api::Role::All]).await;
    post_clicks(&app, 3).await;
    wait_until_relayed(&app).await;

    // A command's transaction takes its id and identity value, then commits late.
    let late_id = Uuid::new_v4();
    let payload = serde_json::json!({"ClickRecorded": {
        "click_id": late_id, "click_id_from_client": true, "video_id": "VESeA6leQuk",
        "video_id_reported": "VESeA6leQuk", "user_id": null, "x": 1.0, "y": 1.0, "timestamp": 1.0,
        "player": null, "video": null, "frame": null, "on_black_band": false, "during_ad": false,
        "client_ip": "127.0.0.1", "viewer_cookie": null, "received_at": "2026-11-26T00:00:00Z"
    }});
    let mut late = sqlx::PgConnection::connect(&app.database.url).await.expect("connection");
    let mut tx = late.begin().await.expect("tx");
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('click', $1, 1, 'ClickRecorded', '1.0', $2, '{}')",
    )
    .bind(late_id.to_string())
    .bind(&payload)
    .execute(&mut *tx)
    .await
    .expect("insert");

    // Later transactions commit first, with higher identity values.
    post_clicks(&app, 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.stream_len().await, 3, "nothing after the open transaction is published yet");

    tx.commit().await.expect("commit");
    wait_until_relayed(&app).await;
    assert_log_is_exact(&app).await;
    let log = logged(&app).await;
    assert_eq!(log[3].aggregate_id, late_id.to_string(), "the late transaction comes first");
    let late_position: i64 = sqlx::query_scalar("SELECT global_position FROM events WHERE aggregate_id = $1")
        .bind(late_id.to_string())
        .fetch_one(&app.db)
        .await
        .expect("late event");
    assert!(log[4..].iter().all(|e| e.global_position > late_position));
    app.wait_for_clicks_view().await;
}

#[tokio::test]
async fn a_relay_held_back_by_an_open_transaction_says_which_and_goes_on_when_it_ends() {
    use framecart_api::commands::relay::tail;
    use sqlx::postgres::PgConnectOptions;

    let app = TestApp::spawn_bare(&[framecart_api::Role::All]).await;
    post_clicks(&app, 2).await;
    wait_until_relayed(&app).await;
    let stats = app.running.relay_stats().expect("stats");
    assert_eq!(stats.held_back_seconds.load(Ordering::Relaxed), 0);

    // A session of some other program takes a transaction id and is left open; clicks are
    // committed after it.
    let options: PgConnectOptions = app.database.url.parse().expect("url");
    let mut forgotten =
        sqlx::PgConnection::connect_with(&options.application_name("a forgotten session")).await.expect("connection");
    let mut tx = forgotten.begin().await.expect("tx");
    let xid: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text").fetch_one(&mut *tx).await.expect("xid");
    post_clicks(&app, 3).await;

    // The relay cannot read them, and counts how long they have waited.
    eventually("the relay to count the seconds it is held back", Duration::from_secs(20), || async {
        (stats.held_back_seconds.load(Ordering::Relaxed) >= 2).then_some(())
    })
    .await;
    assert_eq!(app.stream_len().await, 2, "nothing after the open transaction is published");
    // What it names in its warning, the oldest open transaction of the server (tests beside
    // this one may hold older ones): that session's among them.
    let mut conn = sqlx::PgConnection::connect(&app.database.url).await.expect("connection");
    let open = tail::open_transactions(&mut conn, 1000).await.expect("query");
    let open = open.into_iter().find(|open| open.xid == xid).expect("the forgotten session's transaction");
    assert_eq!(open.application_name.as_deref(), Some("a forgotten session"));
    assert_eq!(open.state.as_deref(), Some("idle in transaction"));
    let said = open.to_string();
    assert!(said.contains("a forgotten session") && said.contains("SELECT pg_current_xact_id()"), "{said}");

    // It ends: the relay goes on, and stops counting.
    tx.rollback().await.expect("rollback");
    wait_until_relayed(&app).await;
    assert_log_is_exact(&app).await;
    eventually("the relay to stop counting", Duration::from_secs(10), || async {
        (stats.held_back_seconds.load(Ordering::Relaxed) == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_event_tables_are_append_only() {
    let app = TestApp::spawn_bare(&[framecart_api::Role::All]).await;
    post_clicks(&app, 1).await;
    wait_until_relayed(&app).await;
    for sql in [
        "UPDATE events SET payload = '{}'",
        "DELETE FROM events",
        "TRUNCATE events",
        "UPDATE event_log SET hash = 'x'",
        "DELETE FROM event_log",
        "TRUNCATE event_log",
    ] {
        let error = sqlx::query(sql).execute(&app.db).await.expect_err(sql);
        assert!(error.to_string().contains("append-only"), "{sql}: {error}");
    }
    assert_eq!(app.count("SELECT count(*) FROM events").await, 1);
}

#[tokio::test]
async fn a_standby_relay_takes_over_when_the_active_one_dies() {
    use framecart_api::commands::relay::{Relay, RelayConfig};
    use std::sync::atomic::Ordering;

    let mut app = TestApp::spawn_bare(&[framecart_api::Role::All]).await;
    post_clicks(&app, 5).await;
    wait_until_relayed(&app).await;
    let active = app.running.relay_stats().expect("stats");
    assert_eq!(active.leading.load(Ordering::Relaxed), 1);

    let standby = Relay::new(
        app.running.state.pool.clone(),
        app.running.state.jetstream.clone(),
        app.namespace.namespace.clone(),
        RelayConfig { standby_poll: Duration::from_millis(50), ..RelayConfig::default() },
    );
    let standby_stats = standby.stats();
    let token = app.running.shutdown_token().child_token();
    let handle = tokio::spawn(standby.run(token));
    post_clicks(&app, 20).await;
    wait_until_relayed(&app).await;
    assert_eq!(standby_stats.leading.load(Ordering::Relaxed), 0, "the standby waits");
    assert_eq!(standby_stats.published.load(Ordering::Relaxed), 0);

    app.running.kill_relay().await;
    post_clicks(&app, 20).await;
    wait_until_relayed(&app).await;
    assert_eq!(standby_stats.leading.load(Ordering::Relaxed), 1, "the standby took over");
    assert_eq!(standby_stats.published.load(Ordering::Relaxed), 20);
    assert_log_is_exact(&app).await;
    handle.abort();
}

#[tokio::test]
async fn commit_order_is_numeric_across_digit_boundaries_of_transaction_ids() {
    use framecart_api::commands::relay::{Relay, RelayConfig};

    let app = TestApp::spawn_bare(&[
        framecart_api::Role::Api,
        framecart_api::Role::Projections,
        framecart_api::Role::Processes,
    ])
    .await;
    // Rows as if written by transactions 9, 10, 99, 100, 999, 1000 (all long committed),
    // inserted out of order so that identity order differs from commit order. As text,
    // "10" < "9" and "1000" < "999": sorting the wrong way republishes and reorders.
    for tx in [1000_u64, 9, 100, 999, 10, 99] {
        let id = Uuid::new_v4();
        let payload = serde_json::json!({"ClickRecorded": {
            "click_id": id, "click_id_from_client": true, "video_id": "VESeA6leQuk",
            "video_id_reported": "VESeA6leQuk", "user_id": null, "x": 1.0, "y": 1.0, "timestamp": 1.0,
            "player": null, "video": null, "frame": null, "on_black_band": false, "during_ad": false,
            "client_ip": "127.0.0.1", "viewer_cookie": null, "received_at": "2026-11-26T00:00:00Z"
        }});
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, tx_id)
             VALUES ('click', $1, 1, 'ClickRecorded', '1.0', $2, '{}', $3::text::xid8)",
        )
        .bind(id.to_string())
        .bind(&payload)
        .bind(tx.to_string())
        .execute(&app.db)
        .await
        .expect("insert");
    }
    // Two at a time, so that the cursor is carried across every boundary.
    let relay = Relay::new(
        app.running.state.pool.clone(),
        app.running.state.jetstream.clone(),
        app.namespace.namespace.clone(),
        RelayConfig { batch_size: 2, ..RelayConfig::default() },
    );
    let handle = tokio::spawn(relay.run(app.running.shutdown_token().child_token()));
    wait_until_relayed(&app).await;
    assert_log_is_exact(&app).await;
    let txs: Vec<String> = sqlx::query_scalar(
        "SELECT e.tx_id::text FROM event_log l JOIN events e USING (event_id) ORDER BY l.log_position",
    )
    .fetch_all(&app.db)
    .await
    .expect("log");
    assert_eq!(txs, ["9", "10", "99", "100", "999", "1000"]);
    handle.abort();
}

/// One message as the stream stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    sequence: u64,
    subject: String,
    /// Every header but the time a direct get reports (when it was stored).
    headers: BTreeMap<String, Vec<String>>,
    payload: Vec<u8>,
}

/// Headers a direct get adds to the stored ones.
const DIRECT_GET_HEADERS: [&str; 4] = ["Nats-Stream", "Nats-Sequence", "Nats-Time-Stamp", "Nats-Subject"];

async fn stored_messages(app: &TestApp) -> Vec<Stored> {
    let mut messages = Vec::new();
    for sequence in 1..=app.stream_len().await {
        let message = app.stream_message(sequence).await;
        let headers = message
            .headers
            .iter()
            .filter(|(name, _)| name.to_string() != "Nats-Time-Stamp")
            .map(|(name, values)| (name.to_string(), values.iter().map(|v| v.as_str().to_owned()).collect()))
            .collect();
        messages.push(Stored {
            sequence,
            subject: message.subject.to_string(),
            headers,
            payload: message.payload.to_vec(),
        });
    }
    messages
}

/// Asserts that two lists of stored messages are equal, naming the first difference.
fn assert_same_messages(have: &[Stored], want: &[Stored], what: &str) {
    for (h, w) in have.iter().zip(want) {
        assert_eq!(h.sequence, w.sequence, "{what}");
        assert_eq!(h.subject, w.subject, "{what}: subject at {}", w.sequence);
        assert_eq!(h.headers, w.headers, "{what}: headers at {}", w.sequence);
        assert!(
            h.payload == w.payload,
            "{what}: body at {}:\n{}\n{}",
            w.sequence,
            String::from_utf8_lossy(&h.payload),
            String::from_utf8_lossy(&w.payload)
        );
    }
    assert_eq!(have.len(), want.len(), "{what}: message count");
}

/// Replaces the installation's stream with a new one holding `messages` (as a NATS
/// server restored from an old backup would), each published as it was stored.
async fn replace_stream(app: &TestApp, messages: &[Stored]) {
    let ns = &app.namespace.namespace;
    app.jetstream.delete_stream(ns.stream_name()).await.expect("the stream is deleted");
    framecart_api::commands::stream::ensure_stream(&app.jetstream, ns, 1).await.expect("a new stream");
    for (i, message) in messages.iter().enumerate() {
        let mut headers = async_nats::HeaderMap::new();
        for (name, values) in &message.headers {
            // A message the test moves elsewhere loses the expected sequence of its place.
            let moved = name == "Nats-Expected-Last-Sequence" && values.iter().any(|v| *v != i.to_string());
            if DIRECT_GET_HEADERS.contains(&name.as_str()) || moved {
                continue;
            }
            for value in values {
                headers.append(name.as_str(), value.as_str());
            }
        }
        let ack = app
            .jetstream
            .publish_with_headers(message.subject.clone(), headers, message.payload.clone().into())
            .await
            .expect("publish")
            .await
            .expect("ack");
        assert_eq!(ack.sequence, i as u64 + 1);
    }
}

/// Clicks counted in the heatmap: an event applied twice would count twice.
async fn heatmap_clicks(app: &TestApp) -> i64 {
    app.count("SELECT coalesce(sum(clicks), 0)::bigint FROM analytics_heatmap").await
}

#[tokio::test]
async fn a_lost_stream_is_restored_from_the_store_at_the_same_sequences_and_the_log_goes_on() {
    let mut app = TestApp::spawn_bare(&[framecart_api::Role::All]).await;
    post_clicks(&app, 40).await;
    wait_until_relayed(&app).await;
    app.wait_for_clicks_view().await;
    let before = stored_messages(&app).await;
    assert_eq!(before.len(), 40);
    let heatmap_before = heatmap_clicks(&app).await;

    // The NATS store is lost while the relay is down; clicks are still acknowledged.
    app.running.kill_relay().await;
    app.jetstream.delete_stream(app.namespace.namespace.stream_name()).await.expect("the stream is deleted");
    post_clicks(&app, 10).await;
    app.running.start_relay();
    wait_until_relayed(&app).await;

    // The same messages at the same sequences: subjects, headers, message ids and bodies.
    let after = stored_messages(&app).await;
    assert_eq!(after.len(), 50);
    assert_same_messages(&after[..40], &before, "the restored messages are the ones first published");
    assert_log_is_exact(&app).await;
    let stats = app.running.state.relay.clone();
    assert_eq!(stats.restores.load(Ordering::Relaxed), 1);
    assert_eq!(stats.restore_progress(), (40, 40));
    assert_eq!(stats.state(), RelayState::Relaying);

    // New events go on after them, and every view catches up without applying one twice
    // (their checkpoints were past the end of the new, empty stream).
    post_clicks(&app, 5).await;
    wait_until_relayed(&app).await;
    assert_log_is_exact(&app).await;
    app.wait_for_clicks_view().await;
    app.wait_for_projections().await;
    assert_eq!(app.count("SELECT count(DISTINCT log_position) FROM clicks_view").await, 55);
    eventually("the heatmap to count each new click once", Duration::from_secs(20), || async {
        (heatmap_clicks(&app).await == heatmap_before * 55 / 40).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_stream_restored_from_an_old_backup_gets_back_the_events_it_lacks() {
    let mut app = TestApp::spawn_bare(&[framecart_api::Role::All]).await;
    post_clicks(&app, 30).await;
    wait_until_relayed(&app).await;
    app.wait_for_clicks_view().await;
    let before = stored_messages(&app).await;
    assert_eq!(before.len(), 30);

    // The backup holds the first 12; the views have applied all 30.
    app.running.kill_relay().await;
    replace_stream(&app, &before[..12]).await;
    assert_same_messages(&stored_messages(&app).await, &before[..12], "the backup is what was published");
    app.running.start_relay();
    wait_until_relayed(&app).await;
    assert_same_messages(&stored_messages(&app).await, &before, "13..30 are back at their sequences");
    assert_eq!(app.running.state.relay.restore_progress(), (18, 18));

    post_clicks(&app, 5).await;
    wait_until_relayed(&app).await;
    assert_log_is_exact(&app).await;
    app.wait_for_clicks_view().await;
    app.wait_for_projections().await;
    assert_eq!(app.count("SELECT count(DISTINCT log_position) FROM clicks_view").await, 35);
    assert_eq!(app.count("SELECT count(*) FROM clicks_view").await, 35);
}

#[tokio::test]
async fn a_stream_that_disagrees_with_the_record_is_refused_and_reported_not_overwritten() {
    let mut app = TestApp::spawn().await;
    post_clicks(&app, 20).await;
    wait_until_relayed(&app).await;
    let before = stored_messages(&app).await;
    let recorded = before.len() as u64;

    // Another log's messages under this stream's name: sequence 2 holds another event.
    app.running.kill_relay().await;
    let foreign = [before[0].clone(), before[2].clone(), before[1].clone()];
    replace_stream(&app, &foreign).await;
    app.running.start_relay();
    let stats = app.running.state.relay.clone();
    eventually("the relay to refuse the stream", Duration::from_secs(20), || async {
        (stats.failures.load(Ordering::Relaxed) >= 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.stream_len().await, 3, "nothing was overwritten or added");

    // Readiness, the status command and the metrics say so.
    let (status, health) = app.get("/readyz").await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!((&health["checks"]["postgres"], &health["checks"]["nats"]), (&"ok".into(), &"ok".into()), "{health}");
    let check = health["relay"]["check"].as_str().unwrap_or_default();
    assert!(check.contains(&format!("the stream holds 3 of {recorded} recorded events")), "{health}");
    assert_eq!(health["relay"]["unrelayed"], recorded - 3, "{health}");
    let report = app.projections_status().await;
    assert_eq!(report["relay"]["state"], "restoring", "{report}");
    assert_eq!((report["relay"]["restored"].as_u64(), report["relay"]["target"].as_u64()), (Some(3), Some(recorded)));
    let metrics = app.admin.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    let ns = app.namespace.namespace.as_str();
    assert!(
        metrics.contains(&format!("framecart_relay_stream_behind_events{{namespace=\"{ns}\"}} {}", recorded - 3)),
        "{metrics}"
    );
    assert!(metrics.contains(&format!("framecart_relay_unrelayed_events{{namespace=\"{ns}\"}} {}", recorded - 3)));

    // The operator moves the foreign stream aside: the relay restores the log from the store.
    app.jetstream.delete_stream(app.namespace.namespace.stream_name()).await.expect("the stream is deleted");
    eventually("the relay to restore the log", Duration::from_secs(20), || async {
        let mut stream = app.jetstream.get_stream(app.namespace.namespace.stream_name()).await.ok()?;
        (stream.info().await.ok()?.state.messages == recorded).then_some(())
    })
    .await;
    assert_same_messages(&stored_messages(&app).await, &before, "the restored log");
    // The last messages are in the stream a moment before the relay has their acks and
    // says the restore is over: readiness follows within a moment, not at once.
    eventually_or_say("readiness after the restore", Duration::from_secs(10), || async {
        let (status, health) = app.get("/readyz").await;
        (status == 200 && health["status"] == "ready").then_some(()).ok_or_else(|| format!("{status}: {health}"))
    })
    .await;
    let report = app.projections_status().await;
    assert_eq!(report["relay"]["state"], "ok", "{report}");
}

#[tokio::test]
async fn readiness_says_restoring_while_the_relay_republishes() {
    let mut app = TestApp::spawn_bare(&[framecart_api::Role::Api, framecart_api::Role::Relay]).await;
    post_clicks(&app, 30).await;
    wait_until_relayed(&app).await;
    app.running.kill_relay().await;
    app.jetstream.delete_stream(app.namespace.namespace.stream_name()).await.expect("the stream is deleted");

    // The restore reads the stored events; a lock holds it there.
    let mut conn = sqlx::PgConnection::connect(&app.database.url).await.expect("connection");
    let mut tx = conn.begin().await.expect("tx");
    sqlx::query("LOCK TABLE events IN ACCESS EXCLUSIVE MODE").execute(&mut *tx).await.expect("lock");
    app.running.start_relay();
    let stats = app.running.state.relay.clone();
    eventually("the relay to start restoring", Duration::from_secs(10), || async {
        (stats.state() == RelayState::Restoring).then_some(())
    })
    .await;
    let (status, health) = app.get("/readyz").await;
    tx.rollback().await.expect("rollback");
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["relay"]["state"], "restoring", "{health}");
    assert_eq!(health["relay"]["restore_target"], 30, "{health}");
    let check = health["relay"]["check"].as_str().unwrap_or_default();
    assert!(check.starts_with("restoring the stream: 0 of 30 events"), "{health}");

    wait_until_relayed(&app).await;
    eventually("readiness to come back", Duration::from_secs(10), || async {
        let (status, health) = app.get("/readyz").await;
        (status == 200 && health["relay"]["state"] == "relaying").then_some(())
    })
    .await;
    assert_eq!(stats.restore_progress(), (30, 30));
}

/// A NATS server of the test's own, whose store the test can wipe.
struct PrivateNats {
    port: u16,
    store: tempfile::TempDir,
    server: Option<std::process::Child>,
}

impl PrivateNats {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let mut nats = Self { port, store: tempfile::tempdir().expect("a store folder"), server: None };
        nats.run().await;
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn run(&mut self) {
        let server = std::process::Command::new("/usr/sbin/nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.store.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.server = Some(server);
        // It starts JetStream before it listens: a connection is enough.
        eventually("the private NATS server to answer", Duration::from_secs(10), || async {
            async_nats::connect(self.url()).await.ok()
        })
        .await;
    }

    /// Kills the server, loses its store, and starts an empty one on the same port.
    async fn lose_store(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.kill().expect("kill nats-server");
            server.wait().expect("reap nats-server");
        }
        for entry in std::fs::read_dir(self.store.path()).expect("the store") {
            let path = entry.expect("an entry").path();
            if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) }.expect("wipe");
        }
        self.run().await;
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

#[tokio::test]
async fn a_nats_server_that_lost_its_store_gets_the_log_back_while_the_server_runs() {
    let mut nats = PrivateNats::start().await;
    let url = nats.url();
    let mut app = TestApp::spawn_with(|s| {
        s.settings.nats_url = url.clone();
        s.auth.admin_email = None;
    })
    .await;
    app.jetstream = async_nats::jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    post_clicks(&app, 40).await;
    wait_until_relayed(&app).await;
    app.wait_for_clicks_view().await;
    let before = stored_messages(&app).await;

    // kill -9, an empty data folder, the same address: nothing is committed meanwhile, so
    // the idle relay notices the loss by itself.
    nats.lose_store().await;
    eventually("the relay to restore the log", Duration::from_secs(30), || async {
        let mut stream = app.jetstream.get_stream(app.namespace.namespace.stream_name()).await.ok()?;
        (stream.info().await.ok()?.state.messages == 40).then_some(())
    })
    .await;
    assert_same_messages(&stored_messages(&app).await, &before, "the restored log");

    post_clicks(&app, 10).await;
    wait_until_relayed(&app).await;
    assert_log_is_exact(&app).await;
    app.wait_for_clicks_view().await;
    app.wait_for_projections().await;
    assert_eq!(app.count("SELECT count(DISTINCT log_position) FROM clicks_view").await, 50);
    assert_eq!(app.running.state.relay.restores.load(Ordering::Relaxed), 1);
}
