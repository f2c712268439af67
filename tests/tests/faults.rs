//! The fault suite: the real `framecart serve`, its own PostgreSQL and its own NATS, each
//! a process, broken under click load the way an operator meets it (a killed server, a
//! stopped or killed NATS, a stopped PostgreSQL, a lost NATS store).
//!
//! After each fault every acknowledged click is exactly once in `events`, the stream,
//! `clicks_view` and the client files, and `framecart audit verify` holds. Each test adds
//! a row to the fault table (`fault-table.md` in the cargo target folder;
//! `scripts/fault-table.sh` runs the suite and prints it).

use std::time::Duration;

use framecart_tests::cluster::{signal, wait_exit};
use framecart_tests::faults::FaultRun;

/// How long a stopped server may take to exit (README, "Outages and stopping").
const STOP_LIMIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_killed_with_sigkill_loses_no_acknowledged_click() {
    let mut run = FaultRun::start("kill -9 framecart, restart").await;
    run.fault_begins();
    let mut server = run.cluster.take_server();
    signal(server.child.id(), "KILL");
    wait_exit(&mut server.child, STOP_LIMIT).await.expect("a killed server exits");
    run.cluster.start_server();
    run.fault_ends().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_stopped_with_sigterm_exits_in_time_and_loses_no_acknowledged_click() {
    let mut run = FaultRun::start("SIGTERM framecart, restart").await;
    run.fault_begins();
    let mut server = run.cluster.take_server();
    signal(server.child.id(), "TERM");
    let signalled = std::time::Instant::now();
    let status = wait_exit(&mut server.child, STOP_LIMIT).await;
    let status = status.unwrap_or_else(|| panic!("SIGTERM: the server did not exit within {STOP_LIMIT:?}"));
    assert!(status.success(), "SIGTERM: the server exited with {status}");
    eprintln!("SIGTERM: the server exited in {:.2} s", signalled.elapsed().as_secs_f64());
    // Before it exits, the relay publishes everything committed.
    let (events, logged): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM event_log)")
            .fetch_one(&run.cluster.db)
            .await
            .expect("counts");
    assert_eq!(logged, events, "SIGTERM: every committed event is in the stream when the server has exited");
    run.cluster.start_server();
    run.fault_ends().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_stopped_for_30_s_loses_no_acknowledged_click() {
    let mut run = FaultRun::start("NATS stopped 30 s").await;
    run.fault_begins();
    run.cluster.nats.stop("TERM").await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    run.cluster.nats.restart().await;
    run.fault_ends().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_killed_with_sigkill_loses_no_acknowledged_click() {
    let mut run = FaultRun::start("kill -9 NATS, restart after 3 s").await;
    run.fault_begins();
    run.cluster.nats.stop("KILL").await;
    // Long enough for the relay and the consumers to notice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    run.cluster.nats.restart().await;
    run.fault_ends().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_for_15_s_loses_no_acknowledged_click() {
    let mut run = FaultRun::start("PostgreSQL stopped 15 s").await;
    run.fault_begins();
    tokio::task::block_in_place(|| run.cluster.postgres.stop());
    tokio::time::sleep(Duration::from_secs(15)).await;
    tokio::task::block_in_place(|| run.cluster.postgres.start());
    run.fault_ends().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wiped_nats_store_is_restored_from_postgres() {
    let mut run = FaultRun::start("NATS store wiped").await;
    run.fault_begins();
    let mut server = run.cluster.take_server();
    signal(server.child.id(), "TERM");
    wait_exit(&mut server.child, STOP_LIMIT).await.expect("the server exits");
    run.cluster.nats.stop("TERM").await;
    run.cluster.nats.wipe_store();
    run.cluster.nats.restart().await;
    run.cluster.start_server();
    run.fault_ends().await;
    let log = run.cluster.server_log();
    assert!(log.contains("stream restored"), "the relay restored the stream from PostgreSQL");
}
