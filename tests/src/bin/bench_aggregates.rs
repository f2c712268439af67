//! `framecart-bench-aggregates`: a command's cost as its aggregate's history grows.
//!
//! Against a database of its own (Postgres only: commands need no log), through the real
//! command path (`framecart_commands::execute`, group commit, snapshots as `serve` takes
//! them), it prints:
//!
//! 1. **Orders on one product** whose stream grows from 0 to 100k to 1M events. An order
//!    is placed as `routes::orders` places it, without HTTP: the product is loaded, its
//!    stock reserved, the order placed. The history is inserted as rows like those the API
//!    writes (a reservation and its release, per order), with no snapshot among them, as
//!    an installation that upgrades from a version without snapshots has it: the first
//!    order after each insert folds it all and takes the snapshot, and is shown apart.
//!    For contrast, the same at 100k with snapshots off (`FRAMECART_SNAPSHOT_EVERY=off`).
//! 2. **A detection run of `--batches` batches** of 25 frames (the worker's batch), each
//!    frame with `--objects` synthetic boxes: the store's time per recorded batch around
//!    batch 100 and around the last, and the one-hour run (5 fps: 720 batches) recorded
//!    end to end, with the store's share of it beside the detector's time for the same
//!    frames (`--detector-ms-per-frame`, from `detector-bench`). For contrast, the first
//!    `--batches-off` batches with snapshots off.
//!
//! Run: `scripts/bench-aggregates.sh` (release build), arguments as `--help` lists.

use std::time::Instant;

use chrono::Utc;
use clap::Parser;
use framecart_api::commands::execute::execute;
use framecart_api::commands::keys::random;
use framecart_api::commands::snapshots::SnapshotPolicy;
use framecart_api::commands::store::WriteMode;
use framecart_api::commands::{Commands, db};
use framecart_api::domain::VideoId;
use framecart_api::domain::money::{Currency, Money};
use framecart_api::domain::order::{Address, Contact, Order, OrderCommand, OrderLine, PlaceOrder};
use framecart_api::domain::personal::{DataKey, Subject};
use framecart_api::domain::product::{Article, CreateProduct, Product, ProductCommand};
use framecart_api::domain::user::Email;
use framecart_tests::synthetic::{self, meta};
use framecart_tests::{TestDatabase, workload::histogram};
use sqlx::PgPool;
use uuid::Uuid;

/// The allocator of the `framecart` binary, so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
struct Args {
    /// The product's history sizes at which orders are timed, in events.
    #[arg(long, value_delimiter = ',', default_value = "0,100000,1000000")]
    history: Vec<u64>,
    /// Orders timed at each history size.
    #[arg(long, default_value_t = 300)]
    orders: u64,
    /// Batches of the detection run (0: no detection phase).
    #[arg(long, default_value_t = 10_000)]
    batches: u32,
    /// Batches recorded with snapshots off, for contrast.
    #[arg(long, default_value_t = 1000)]
    batches_off: u32,
    /// Objects in each synthetic frame.
    #[arg(long, default_value_t = 8)]
    objects: usize,
    /// The detector's time per frame, for the store's share of a run (the median of
    /// `detector-bench` on this machine).
    #[arg(long, default_value_t = 65.0)]
    detector_ms_per_frame: f64,
}

/// The worker's batch.
const FRAMES_PER_BATCH: u64 = framecart_api::processes::detector_worker::FRAMES_PER_BATCH as u64;
const FPS: f64 = 5.0;
const ARTICLE: &str = "SKU-1";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let database = TestDatabase::create().await?;
    let pool = PgPool::connect(&database.url).await?;
    db::migrate(&pool).await?;
    let writes = WriteMode::Batched { writers: 4 };
    let commands = Commands::with_snapshots(pool.clone(), writes, SnapshotPolicy::PerAggregate);
    let unsnapshotted = Commands::with_snapshots(pool.clone(), writes, SnapshotPolicy::Off);
    println!("framecart-bench-aggregates: a database of its own ({}), snapshots as `serve` takes them", database.name);

    if !args.history.is_empty() {
        orders(&args, &pool, &commands, &unsnapshotted).await?;
    }
    if args.batches > 0 {
        detection(&args, &commands, &unsnapshotted).await?;
    }
    Ok(())
}

async fn orders(args: &Args, pool: &PgPool, commands: &Commands, unsnapshotted: &Commands) -> anyhow::Result<()> {
    let price = Money::new(1999, Currency::parse("EUR")?);
    let product = CreateProduct {
        article: Article::parse(ARTICLE)?,
        name: "Rain jacket".into(),
        description: String::new(),
        price,
        stock: 1_000_000,
        image_url: None,
    };
    execute(&commands.products, ARTICLE, ProductCommand::CreateProduct(product), meta()).await?;
    println!("\n== orders on one product ({} timed at each history size, one after another)", args.orders);
    println!(
        "{:>10} {:>10} {:>9} {:>9} {:>9} {:>14}",
        "history", "snapshots", "orders/s", "p50 ms", "p99 ms", "first order ms"
    );
    let mut empty_p99 = None;
    for &size in &args.history {
        let events = grow_history(pool, commands, size).await?;
        let first = place_order(commands, price).await?;
        let latencies = time_orders(commands, price, args.orders).await?;
        let (per_second, p50, p99) = summary(&latencies)?;
        println!("{events:>10} {:>10} {per_second:>9.0} {p50:>9.1} {p99:>9.1} {:>14.1}", "on", first * 1e3);
        let ratio = *empty_p99.get_or_insert(p99);
        if size > 0 {
            println!("{:>10} p99 / the empty product's: {:.2}", "", p99 / ratio);
        }
        if size > 0 && size <= 100_000 {
            let latencies = time_orders(unsnapshotted, price, 20.min(args.orders)).await?;
            let (per_second, p50, p99) = summary(&latencies)?;
            println!("{events:>10} {:>10} {per_second:>9.1} {p50:>9.1} {p99:>9.1}", "off");
        }
    }
    Ok(())
}

/// Grows the product's stream to about `size` events with rows like those the API writes
/// (a reservation and its release, per order, as `ReserveStock` and `ReleaseStock` record
/// them), copied from a real pair with a new order id each. No snapshot is taken among
/// them. The product's event count after.
async fn grow_history(pool: &PgPool, commands: &Commands, size: u64) -> anyhow::Result<i64> {
    let have = product_events(pool).await?;
    let missing = i64::try_from(size)?.saturating_sub(have) / 2;
    if missing > 0 {
        let order_id = Uuid::new_v4();
        let reserve = ProductCommand::ReserveStock { order_id, quantity: 1, expires_at: Some(Utc::now()) };
        execute(&commands.products, ARTICLE, reserve, meta()).await?;
        execute(&commands.products, ARTICLE, ProductCommand::ReleaseStock { order_id }, meta()).await?;
        let started = Instant::now();
        let pairs = missing - 1;
        for chunk_start in (0..pairs).step_by(100_000) {
            let chunk = (pairs - chunk_start).min(100_000);
            sqlx::query(
                "WITH pair AS (
                     SELECT sequence, event_type, event_version, payload::text AS payload, metadata
                     FROM events WHERE aggregate_type = 'product' AND aggregate_id = $1
                       AND event_type IN ('StockReserved', 'StockReleased')
                     ORDER BY sequence DESC LIMIT 2),
                 last AS (SELECT max(sequence) AS sequence FROM events WHERE aggregate_type = 'product' AND aggregate_id = $1),
                 original AS (SELECT (regexp_match(payload, '\"order_id\":\"([0-9a-f-]+)\"'))[1] AS id FROM pair LIMIT 1)
                 INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
                 SELECT 'product', $1, last.sequence + 2 * n + CASE p.event_type WHEN 'StockReserved' THEN 1 ELSE 2 END,
                        p.event_type, p.event_version,
                        replace(p.payload, original.id, md5(n::text || $3)::uuid::text)::json, p.metadata
                 FROM generate_series(0, $2 - 1) AS n, pair p, last, original
                 ORDER BY n, p.event_type DESC",
            )
            .bind(ARTICLE)
            .bind(chunk)
            .bind(format!("{chunk_start}"))
            .execute(pool)
            .await?;
        }
        sqlx::query("ANALYZE events").execute(pool).await?;
        println!("(history grown by {} events in {:.1} s)", 2 * missing, started.elapsed().as_secs_f64());
    }
    product_events(pool).await
}

async fn product_events(pool: &PgPool) -> anyhow::Result<i64> {
    let count =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_type = 'product' AND aggregate_id = $1")
            .bind(ARTICLE)
            .fetch_one(pool)
            .await?;
    Ok(count)
}

/// One order placed as `routes::orders` places it: the product loaded, its stock
/// reserved, the order checked and placed. Its wall time in seconds.
async fn place_order(commands: &Commands, price: Money) -> anyhow::Result<f64> {
    let started = Instant::now();
    let product: Product = commands.load(ARTICLE).await?;
    anyhow::ensure!(product.available() > 0, "the product is sold out");
    let order_id = Uuid::new_v4();
    let existing: Order = commands.load(&order_id.to_string()).await?;
    anyhow::ensure!(existing.placed().is_none(), "a new order id");
    let reserve = ProductCommand::ReserveStock { order_id, quantity: 1, expires_at: Some(Utc::now()) };
    execute(&commands.products, ARTICLE, reserve, meta()).await?;
    // The buyer's contact and address, sealed as the API seals them.
    let buyer = Uuid::new_v4();
    let key = DataKey::from_bytes(random()?);
    let subject = Subject::user(buyer);
    let contact = Contact { name: "Ada Viewer".into(), email: Email::parse("ada@example.org")?, phone: None };
    let address = Address {
        line1: "Hauptstraße 1".into(),
        line2: None,
        city: "Berlin".into(),
        postal_code: "10115".into(),
        country: "DE".into(),
    };
    let place = PlaceOrder {
        order_id,
        user_id: buyer,
        lines: vec![OrderLine {
            article: Article::parse(ARTICLE)?,
            name: "Rain jacket".into(),
            quantity: 1,
            unit_price: price,
        }],
        click_id: None,
        contact: key.seal(&subject, &contact, random()?),
        shipping_address: key.seal(&subject, &address, random()?),
        placed_at: Utc::now(),
    };
    execute(&commands.orders, &order_id.to_string(), OrderCommand::PlaceOrder(place), meta()).await?;
    Ok(started.elapsed().as_secs_f64())
}

async fn time_orders(commands: &Commands, price: Money, orders: u64) -> anyhow::Result<Vec<f64>> {
    let mut latencies = Vec::new();
    for _ in 0..orders {
        latencies.push(place_order(commands, price).await?);
    }
    Ok(latencies)
}

/// Per second, p50 and p99 in milliseconds, of sequential operations' seconds.
fn summary(seconds: &[f64]) -> anyhow::Result<(f64, f64, f64)> {
    let total: f64 = seconds.iter().sum();
    let micros: Vec<u64> = seconds.iter().map(|s| (s * 1e6) as u64).collect();
    let mut h = histogram();
    for m in micros {
        h.record(m.max(1))?;
    }
    Ok((seconds.len() as f64 / total, h.value_at_quantile(0.5) as f64 / 1e3, h.value_at_quantile(0.99) as f64 / 1e3))
}

async fn detection(args: &Args, commands: &Commands, unsnapshotted: &Commands) -> anyhow::Result<()> {
    println!(
        "\n== a detection run: batches of {FRAMES_PER_BATCH} frames, {} objects a frame (store time per batch)",
        args.objects
    );
    let started = Instant::now();
    let times = record_run(commands, "VESeA6leQuk", args.batches, args.objects).await?;
    let wall = started.elapsed().as_secs_f64();
    let around = |at: usize| {
        let from = at.saturating_sub(50).min(times.len().saturating_sub(100));
        let window = &times[from..(from + 100).min(times.len())];
        summary(window)
    };
    let (_, p50_100, p99_100) = around(100)?;
    let (_, p50_last, p99_last) = around(times.len())?;
    println!("around batch 100: p50 {p50_100:.2} ms, p99 {p99_100:.2} ms");
    println!(
        "around batch {}: p50 {p50_last:.2} ms, p99 {p99_last:.2} ms ({:.2}× batch 100's p50)",
        times.len(),
        p50_last / p50_100
    );
    let hour = (3600.0 * FPS / FRAMES_PER_BATCH as f64) as usize;
    if times.len() >= hour {
        let store: f64 = times[..hour].iter().sum();
        let detector = 3600.0 * FPS * args.detector_ms_per_frame / 1e3;
        println!(
            "a one-hour video at {FPS} fps ({hour} batches): the store took {store:.1} s; the detector, at {} ms a \
             frame, {detector:.0} s: the store's share of the run is {:.2}%",
            args.detector_ms_per_frame,
            100.0 * store / (store + detector)
        );
    }
    println!("all {} batches recorded in {wall:.1} s", times.len());

    if args.batches_off > 0 {
        let off = record_run(unsnapshotted, "dQw4w9WgXcQ", args.batches_off, args.objects).await?;
        let (_, p50_first, _) = summary(&off[..off.len().min(100)])?;
        let (_, p50_last, _) = summary(&off[off.len().saturating_sub(100)..])?;
        println!(
            "snapshots off, for contrast: p50 {p50_first:.2} ms over the first 100 batches, {p50_last:.2} ms over the \
             last 100 of {}",
            off.len()
        );
    }
    Ok(())
}

/// A detection run of `batches` batches with `objects` synthetic boxes a frame, recorded
/// through `commands` for a video of its own: the store's time for each batch, in seconds.
async fn record_run(commands: &Commands, video: &str, batches: u32, objects: usize) -> anyhow::Result<Vec<f64>> {
    let video = VideoId::parse(video)?;
    let seconds = f64::from(batches) * FRAMES_PER_BATCH as f64 / FPS;
    let run = synthetic::started_run(commands, &video, seconds, FPS).await?;
    let mut times = Vec::with_capacity(batches as usize);
    for batch in 0..batches {
        let frames = synthetic::frames(u64::from(batch) * FRAMES_PER_BATCH, FRAMES_PER_BATCH, FPS, objects);
        let at = Instant::now();
        synthetic::record(commands, run, &video, 1, batch, frames).await?;
        times.push(at.elapsed().as_secs_f64());
    }
    Ok(times)
}
