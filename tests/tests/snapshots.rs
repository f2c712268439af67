//! Snapshots of aggregates (`framecart_commands::snapshots`): a command loads the latest
//! snapshot and the events after it, and what it loads is what a fold of every event
//! gives, for every aggregate type. Snapshots are a cache: deleted, unreadable or of
//! another state version, they change nothing but speed.

use std::collections::BTreeMap;
use std::time::Duration;

use framecart_api::commands::snapshots::SnapshotPolicy;
use framecart_api::commands::store::WriteMode;
use framecart_api::commands::{CommandError, Commands, Snapshot};
use framecart_api::domain::VideoId;
use framecart_api::domain::click::Click;
use framecart_api::domain::detection::{DetectionError, DetectionRun};
use framecart_api::domain::order::Order;
use framecart_api::domain::payment::Payment;
use framecart_api::domain::product::Product;
use framecart_api::domain::upcast::{self, Upcast};
use framecart_api::domain::user::User;
use framecart_api::domain::video::Video;
use framecart_api::projections;
use framecart_tests::{TestApp, click_body, eventually, media_files, send, synthetic};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

const ARTICLE: &str = "SKU-1";
const STOCK: u32 = 50;

async fn spawn_snapshotting_every(every: u64) -> TestApp {
    TestApp::spawn_with(|serve| serve.settings.snapshot_every = SnapshotPolicy::Every(every)).await
}

/// Commands over the test's database that read snapshots as `policy` says.
fn commands(app: &TestApp, policy: SnapshotPolicy) -> Commands {
    Commands::with_snapshots(app.db.clone(), WriteMode::PerCommand, policy)
}

/// The fold of an aggregate's events up to `sequence`, read from `events` alone.
async fn fold_to<A>(db: &PgPool, id: &str, sequence: i64) -> A
where
    A: Snapshot,
    A::Event: Upcast,
{
    let rows: Vec<(String, String, Value)> = sqlx::query_as(
        "SELECT event_type, event_version, payload FROM events
         WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence <= $3 ORDER BY sequence",
    )
    .bind(A::TYPE)
    .bind(id)
    .bind(sequence)
    .fetch_all(db)
    .await
    .expect("events");
    let mut aggregate = A::default();
    for (event_type, event_version, payload) in rows {
        aggregate.apply(upcast::decode_value(&event_type, &event_version, payload).expect("an event"));
    }
    aggregate
}

/// For every aggregate of type `A`: each stored snapshot is the fold of the events up to
/// its sequence, and what a command loads through `commands` (a snapshot and the events
/// after it) is the fold of all its events. How many loads started from a snapshot.
async fn check<A>(db: &PgPool, commands: &Commands) -> usize
where
    A: Snapshot + PartialEq + std::fmt::Debug,
    A::Event: Upcast,
{
    let ids: Vec<(String, i64)> = sqlx::query_as(
        "SELECT aggregate_id, max(sequence) FROM events WHERE aggregate_type = $1 GROUP BY aggregate_id",
    )
    .bind(A::TYPE)
    .fetch_all(db)
    .await
    .expect("aggregates");
    assert!(!ids.is_empty(), "no {} at all", A::TYPE);
    let mut from_snapshot = 0;
    for (id, last) in ids {
        let loaded = commands.events().load_state::<A>(&id).await.expect("a load");
        assert_eq!(loaded.aggregate, fold_to::<A>(db, &id, last).await, "{} {id}", A::TYPE);
        assert_eq!(i64::try_from(loaded.sequence).expect("a sequence"), last, "{} {id}", A::TYPE);
        from_snapshot += usize::from(loaded.from_snapshot.is_some());
    }
    let snapshots: Vec<(String, i64, Value)> =
        sqlx::query_as("SELECT aggregate_id, last_sequence, state FROM aggregate_snapshots WHERE aggregate_type = $1")
            .bind(A::TYPE)
            .fetch_all(db)
            .await
            .expect("snapshots");
    for (id, sequence, state) in snapshots {
        let state: A = serde_json::from_value(state).expect("a snapshot decodes");
        assert_eq!(state, fold_to::<A>(db, &id, sequence).await, "the snapshot of {} {id} at {sequence}", A::TYPE);
    }
    from_snapshot
}

/// [`check`] for every aggregate type: how many loads of each started from a snapshot.
async fn check_all(db: &PgPool, commands: &Commands) -> BTreeMap<&'static str, usize> {
    BTreeMap::from([
        ("click", check::<Click>(db, commands).await),
        ("video", check::<Video>(db, commands).await),
        ("detection_run", check::<DetectionRun>(db, commands).await),
        ("product", check::<Product>(db, commands).await),
        ("user", check::<User>(db, commands).await),
        ("order", check::<Order>(db, commands).await),
        ("payment", check::<Payment>(db, commands).await),
    ])
}

/// Every view's rows, without the columns that say when a row was written.
async fn views(db: &PgPool) -> BTreeMap<String, Vec<Value>> {
    let mut all = BTreeMap::new();
    for projection in
        projections::all(&projections::ViewSettings::new("unused".into(), framecart_tests::test_master_key()))
    {
        for table in projection.tables() {
            let written_at: Vec<String> = sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1
                   AND (column_default LIKE '%clock_timestamp()%' OR column_default LIKE '%now()%'
                        OR column_name LIKE '%projected_at')",
            )
            .bind(table)
            .fetch_all(db)
            .await
            .expect("columns");
            let rows: Vec<Value> = sqlx::query_scalar(&format!(
                "SELECT to_jsonb(t) - $1::text[] FROM {table} t ORDER BY (to_jsonb(t) - $1::text[])::text"
            ))
            .bind(&written_at)
            .fetch_all(db)
            .await
            .expect("rows");
            all.insert((*table).to_owned(), rows);
        }
    }
    all
}

/// A history that touches every aggregate type: products with stock reserved, committed
/// and released across many events, accounts, clicks with their verdicts, a video, a
/// detection run taken over by a second attempt, orders and their payments.
async fn every_kind_of_history(app: &TestApp) {
    let body = json!({"article": ARTICLE, "name": "Rain jacket", "price_minor": 1999, "currency": "EUR",
                      "stock": STOCK, "image_url": "https://shop.example/jacket.png"});
    assert_eq!(app.post("/api/v1/products", &body).await.0, 201);
    let (viewer, _) = app.user("ada@example.org", &[]).await;
    let _ = app.user("mia@example.org", &["merchant"]).await;
    let commands = &app.running.state.commands;
    let video = VideoId::parse("VESeA6leQuk").expect("an id");
    let run = synthetic::started_run(commands, &video, 60.0, 5.0).await.expect("a run");
    for batch in 0..7 {
        let frames = synthetic::frames(u64::from(batch) * 5, 5, 5.0, 3);
        synthetic::record(commands, run, &video, 1, batch, frames).await.expect("a batch");
    }
    synthetic::start(commands, run, &video, 300).await.expect("taken over");
    // The second attempt goes on from the first one's last batch.
    for batch in 7..10 {
        let frames = synthetic::frames(u64::from(batch) * 5, 5, 5.0, 3);
        synthetic::record(commands, run, &video, 2, batch, frames).await.expect("a batch of attempt 2");
    }
    let stale = synthetic::record(commands, run, &video, 1, 10, synthetic::frames(50, 5, 5.0, 3)).await;
    assert!(
        matches!(stale, Err(CommandError::Refused(DetectionError::StaleAttempt { given: 1, current: 2 }))),
        "{stale:?}"
    );
    synthetic::complete(commands, run, &video, 2).await.expect("complete");
    // Clicks on the processed video get their verdicts (a second event each).
    for i in 0..3 {
        let click = click_body(Uuid::new_v4(), video.as_str(), 0.2 * f64::from(i), 0.5, 3.0);
        let (status, answer) = send(viewer.post(app.url("/api/v1/clicks")).json(&click)).await;
        assert!((200..=202).contains(&status), "{status} {answer}");
    }
    events_become(app, "the clicks' verdicts", "aggregate_type = 'click' AND event_type <> 'ClickRecorded'", 3).await;

    let order = |key: String| {
        let body = json!({
            "lines": [{"article": ARTICLE, "quantity": 1}],
            "contact": {"name": "Ada Viewer", "email": "ada@example.org"},
            "shipping_address": {"line1": "Hauptstraße 1", "city": "Berlin", "postal_code": "10115", "country": "de"},
        });
        send(viewer.post(app.url("/api/v1/orders")).header("Idempotency-Key", key).json(&body))
    };
    let mut placed = Vec::new();
    for i in 0..8 {
        let (status, answer) = order(format!("order-{i}")).await;
        assert_eq!(status, 201, "{answer}");
        placed.push(answer["id"].as_str().expect("an id").to_owned());
    }
    for id in &placed[..3] {
        let body = json!({"provider": "fake", "card_number": "4242424242424242"});
        let (status, answer) = send(viewer.post(app.url(&format!("/api/v1/orders/{id}/payments"))).json(&body)).await;
        assert!((200..=202).contains(&status), "{status} {answer}");
    }
    for id in &placed[3..6] {
        let cancel = json!({"reason": "changed my mind"});
        let (status, answer) = send(viewer.post(app.url(&format!("/api/v1/orders/{id}/cancel"))).json(&cancel)).await;
        assert_eq!(status, 200, "{answer}");
    }
    // Shipped orders commit their stock (a follow-up): 3 committed, 3 released, 2 held.
    for id in &placed[..3] {
        eventually(&format!("order {id} to be paid"), Duration::from_secs(30), || async {
            let (status, answer) = send(viewer.get(app.url(&format!("/api/v1/orders/{id}")))).await;
            (status == 200 && answer["status"] == "paid").then_some(())
        })
        .await;
        let ship = app
            .admin
            .post(app.url(&format!("/api/v1/orders/{id}/ship")))
            .header("Idempotency-Key", format!("ship-{id}"));
        let (status, answer) = send(ship.json(&json!({"tracking": "DHL 123"}))).await;
        assert_eq!(status, 200, "{answer}");
    }
    events_become(app, "stock committed for the shipped orders", "event_type = 'StockCommitted'", 3).await;
}

/// Waits until `count` events match `filter` (an SQL condition on `events`).
async fn events_become(app: &TestApp, what: &str, filter: &str, count: i64) {
    eventually(what, Duration::from_secs(30), || async {
        (app.count(&format!("SELECT count(*) FROM events WHERE {filter}")).await == count).then_some(())
    })
    .await;
}

#[tokio::test]
async fn every_aggregate_type_loads_from_its_snapshot_what_its_whole_history_gives() {
    let app = spawn_snapshotting_every(2).await;
    every_kind_of_history(&app).await;
    app.wait_for_projections().await;

    let from_snapshots = check_all(&app.db, &commands(&app, SnapshotPolicy::Every(2))).await;
    for (aggregate_type, loads) in &from_snapshots {
        assert!(*loads > 0, "no {aggregate_type} was loaded from a snapshot: {from_snapshots:?}");
    }
    // Without snapshots, the same states, from the events alone.
    let off = check_all(&app.db, &commands(&app, SnapshotPolicy::Off)).await;
    assert!(off.values().all(|loads| *loads == 0), "{off:?}");

    // Stock: 50 on hand, 3 sold, 2 held by open orders, 3 given back.
    let product = app.running.state.commands.load::<Product>(ARTICLE).await.expect("the product");
    assert_eq!(product.available(), STOCK - 3 - 2);
    let (_, view) = app.get(&format!("/api/v1/products/{ARTICLE}")).await;
    assert_eq!(view["reserved"], 2, "{view}");
    // The run resumes where its second attempt is, fenced against the first.
    let run_id: String =
        sqlx::query_scalar("SELECT aggregate_id FROM events WHERE aggregate_type = 'detection_run' LIMIT 1")
            .fetch_one(&app.db)
            .await
            .expect("a run");
    let run = app.running.state.commands.load::<DetectionRun>(&run_id).await.expect("the run");
    assert_eq!((run.attempt(), run.next_batch(), run.frames_done()), (2, 10, 50));
    assert_eq!(run, fold_to::<DetectionRun>(&app.db, &run_id, i64::MAX).await);
}

#[tokio::test]
async fn snapshots_deleted_unreadable_or_of_another_version_change_nothing_but_speed() {
    let app = spawn_snapshotting_every(3).await;
    every_kind_of_history(&app).await;
    app.wait_for_projections().await;
    let every3 = commands(&app, SnapshotPolicy::Every(3));
    let before = app.running.state.commands.load::<Product>(ARTICLE).await.expect("the product");
    assert!(check::<Product>(&app.db, &every3).await > 0);

    // Unreadable: the load folds every event instead, and says so in the log.
    sqlx::query("UPDATE aggregate_snapshots SET state = '{\"not\": \"a product\"}' WHERE aggregate_type = 'product'")
        .execute(&app.db)
        .await
        .expect("spoil");
    let loaded = every3.events().load_state::<Product>(ARTICLE).await.expect("a load");
    assert_eq!((loaded.aggregate, loaded.from_snapshot), (before.clone(), None));
    // Of another state version (a state of another shape or meaning): not read, even
    // when it decodes.
    let mut tampered = serde_json::to_value(&before).expect("json");
    tampered["on_hand"] = json!(1_000_000);
    sqlx::query(
        "UPDATE aggregate_snapshots SET state = $1, state_version = state_version + 1 WHERE aggregate_type = 'product'",
    )
    .bind(&tampered)
    .execute(&app.db)
    .await
    .expect("tamper");
    let loaded = every3.events().load_state::<Product>(ARTICLE).await.expect("a load");
    assert_eq!((loaded.aggregate, loaded.from_snapshot), (before.clone(), None));

    // Deleted: the same states, and commands go on and take new ones.
    sqlx::query("DELETE FROM aggregate_snapshots").execute(&app.db).await.expect("delete");
    let none = check_all(&app.db, &every3).await;
    assert!(none.values().all(|loads| *loads == 0), "{none:?}");
    // Taken again at once, as `framecart snapshots` does after an upgrade.
    let taken = every3.take_snapshots(3).await.expect("snapshots");
    assert!(taken["product"] >= 1 && taken["detection_run"] >= 1, "{taken:?}");
    let again = check_all(&app.db, &every3).await;
    assert!(again["product"] >= 1 && again["order"] >= 1, "{again:?}");
    assert_eq!(every3.take_snapshots(3).await.expect("snapshots").values().sum::<u64>(), 0, "nothing left to take");
    let (viewer, _) = app.user("bea@example.org", &[]).await;
    for i in 0..4 {
        let body = json!({
            "lines": [{"article": ARTICLE, "quantity": 1}],
            "contact": {"name": "Bea Viewer", "email": "bea@example.org"},
            "shipping_address": {"line1": "Hauptstraße 2", "city": "Berlin", "postal_code": "10115", "country": "de"},
        });
        let request = viewer.post(app.url("/api/v1/orders")).header("Idempotency-Key", format!("again-{i}"));
        let (status, answer) = send(request.json(&body)).await;
        assert_eq!(status, 201, "{answer}");
    }
    let after = app.running.state.commands.load::<Product>(ARTICLE).await.expect("the product");
    assert_eq!(after.available(), before.available() - 4);
    assert!(check::<Product>(&app.db, &every3).await > 0, "a new snapshot was taken");
}

#[tokio::test]
async fn a_rebuild_of_every_view_gives_the_same_views_and_files_with_snapshots_on() {
    let app = spawn_snapshotting_every(2).await;
    every_kind_of_history(&app).await;
    app.wait_for_projections().await;
    app.wait_for_client_files().await;
    let views_before = views(&app.db).await;
    let files_before = media_files(app.media_dir());
    assert!(views_before.values().filter(|rows| !rows.is_empty()).count() > 8, "{views_before:?}");
    assert!(!files_before.is_empty());

    std::fs::remove_dir_all(app.media_dir().join("client_files")).expect("remove");
    app.rebuild_every_projection().await;
    app.wait_for_projections().await;
    let views_after = views(&app.db).await;
    for (table, before) in &views_before {
        let after = &views_after[table];
        assert_eq!(after.len(), before.len(), "{table}: {} rows, then {}", before.len(), after.len());
        for (before, after) in before.iter().zip(after) {
            assert_eq!(after, before, "{table}");
        }
    }
    assert_eq!(media_files(app.media_dir()), files_before);
}
