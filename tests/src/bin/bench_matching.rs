//! `framecart-bench-matching`: click-to-match latency on a processed 10-minute video, and
//! what matching one click costs.
//!
//! It builds a whole installation of its own, records a synthetic detection run of a
//! 10-minute video through the real commands (moving objects, sampled at 5 fps), links a
//! product, then posts clicks at a fixed rate at random times of the video and measures
//! the time from a click's commit to its verdict in the `clicks` view. It then times the
//! matching query on its own and counts what it reads.
//!
//! Run: `cargo run --release -p framecart-tests --bin framecart-bench-matching -- --help`

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Parser;
use framecart_api::commands::execute::execute;
use framecart_api::domain::VideoId;
use framecart_api::domain::product::{Article, CreateProduct, ProductCommand};
use framecart_api::domain::video::{LinkProduct, LinkTarget, VideoCommand};
use framecart_api::limits::{ClickRate, SigninRate};
use framecart_api::projections::tracks;
use framecart_tests::synthetic::{self, meta};
use framecart_tests::{TestApp, eventually};
use uuid::Uuid;

/// The allocator of the `framecart` binary, so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
struct Args {
    /// Clicks per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Seconds of clicking.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Minutes of the synthetic video.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// Objects on screen at any time.
    #[arg(long, default_value_t = 8)]
    objects: usize,
}

const VIDEO: &str = "VESeA6leQuk";
const WIDTH: f64 = 1280.0;
const HEIGHT: f64 = 720.0;
const FPS: f64 = 5.0;
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let app = TestApp::spawn_with(|s| {
        s.settings.db_max_connections = 32;
        // One address sends every click: the per-address limits would measure themselves.
        s.http.rate_clicks = ClickRate::Off;
        s.http.rate_signin = SigninRate::Off;
    })
    .await;
    println!(
        "framecart-bench-matching: rate limits off (FRAMECART_RATE_CLICKS={}, FRAMECART_RATE_SIGNIN={})",
        app.running.state.http.rate_clicks, app.running.state.http.rate_signin
    );
    let commands = app.running.state.commands.clone();
    let video = VideoId::parse(VIDEO)?;
    let seconds = args.minutes as f64 * 60.0;

    // A processed video, written through the real commands.
    let started = Instant::now();
    let run_id = synthetic::started_run(&commands, &video, seconds, FPS).await?;
    let frames_total = (seconds * FPS) as u64;
    for (batch, first) in (0..frames_total).step_by(25).enumerate() {
        let frames = synthetic::frames(first, 25.min(frames_total - first), FPS, args.objects);
        synthetic::record(&commands, run_id, &video, 1, batch as u32, frames).await?;
    }
    synthetic::complete(&commands, run_id, &video, 1).await?;
    let article = Article::parse("SKU-1")?;
    let product = CreateProduct {
        article: article.clone(),
        name: "Jacket".into(),
        description: String::new(),
        price: framecart_api::domain::money::Money::new(1999, framecart_api::domain::money::Currency::parse("EUR")?),
        stock: 100,
        image_url: None,
    };
    execute(&commands.products, "SKU-1", ProductCommand::CreateProduct(product), meta()).await?;
    let link = LinkProduct {
        video_id: video.clone(),
        link_id: Uuid::now_v7(),
        article,
        target: LinkTarget::Label { label: "person".into(), from: 0.0, to: seconds },
        additional_identifier: String::new(),
        linked_at: Utc::now(),
    };
    execute(&commands.videos, VIDEO, VideoCommand::LinkProduct(link), meta()).await?;
    let (detections, track_count) = eventually("the tracks", Duration::from_secs(600), || async {
        let tracks = app.count("SELECT count(*) FROM tracks_view").await;
        let links = app.count("SELECT count(*) FROM links_view").await;
        (tracks > 0 && links > 0).then_some(())?;
        Some((app.count("SELECT count(*) FROM detections_view").await, tracks))
    })
    .await;
    println!(
        "framecart-bench-matching: a {}-minute video, {} sampled frames, {detections} detections in {track_count} tracks \
         (prepared in {:.1} s)",
        args.minutes,
        frames_total,
        started.elapsed().as_secs_f64()
    );

    // Warm up (the matcher loads the run's tracks once), then measure only what follows.
    let client = reqwest::Client::builder().pool_max_idle_per_host(usize::MAX).build()?;
    for i in 0..200u32 {
        let body = serde_json::json!({
            "clickId": Uuid::new_v4(), "videoId": VIDEO, "x": 400, "y": 300, "timestamp": f64::from(i),
            "player": {"width": 800, "height": 600}, "video": {"width": 1280, "height": 720},
        });
        client.post(app.url("/api/v1/clicks")).json(&body).send().await?;
    }
    eventually("the warm-up verdicts", Duration::from_secs(60), || async {
        (app.count("SELECT count(*) FROM clicks_view WHERE match_status <> 'pending'").await == 200).then_some(())
    })
    .await;
    let warm: i64 = app.count("SELECT max(log_position) FROM clicks_view").await;

    let total = args.rate * args.duration;
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let limit = Arc::new(tokio::sync::Semaphore::new(512));
    let clock = tokio::time::Instant::now();
    let mut sent = Vec::with_capacity(total as usize);
    for i in 0..total {
        tokio::time::sleep_until(clock + interval * i as u32).await;
        let permit = limit.clone().acquire_owned().await?;
        // A deterministic spread of times and objects.
        let t = ((i * 7919) % (frames_total * 10)) as f64 / (FPS * 10.0);
        let b = synthetic::object_box((i as usize) % args.objects, t);
        let (u, v) = (((b.xmin + b.xmax) / 2.0) / WIDTH, ((b.ymin + b.ymax) / 2.0) / HEIGHT);
        let body = serde_json::json!({
            "clickId": Uuid::new_v4(), "videoId": VIDEO, "x": u * 800.0, "y": 75.0 + v * 450.0, "timestamp": t,
            "player": {"width": 800, "height": 600}, "video": {"width": 1280, "height": 720},
            "userId": format!("viewer{}", i % 200),
        });
        let url = app.url("/api/v1/clicks");
        let client = client.clone();
        sent.push(tokio::spawn(async move {
            let ok = client.post(url).json(&body).send().await.is_ok_and(|r| r.status().as_u16() == 202);
            drop(permit);
            ok
        }));
    }
    let mut accepted = 0;
    for task in sent {
        accepted += u64::from(task.await?);
    }
    let offered = clock.elapsed().as_secs_f64();
    eventually("every verdict", Duration::from_secs(300), || async {
        let done = app.count("SELECT count(*) FROM clicks_view WHERE match_status <> 'pending'").await;
        (done as u64 >= accepted + 200).then_some(())
    })
    .await;
    let (p50, p90, p99, max, matched, n): (f64, f64, f64, f64, i64, i64) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), percentile_cont(0.9) WITHIN GROUP (ORDER BY lag),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), max(lag),
                count(*) FILTER (WHERE status = 'matched'), count(*)
         FROM (SELECT extract(epoch FROM match_projected_at - recorded_at)::float8 * 1000 AS lag, match_status AS status
               FROM clicks_view WHERE log_position > $1) l",
    )
    .bind(warm)
    .fetch_one(&app.db)
    .await?;
    println!(
        "\n== click to match: {accepted} of {total} clicks accepted at {}/s (offered over {offered:.1} s)",
        args.rate
    );
    println!(
        "commit of the click -> verdict in the clicks view, ms over {n}: p50 {p50:.1}  p90 {p90:.1}  p99 {p99:.1}  max {max:.1}"
    );
    println!("verdicts: {matched} matched (person), {} other", n - matched);
    let (a50, a99, b50, b99): (f64, f64, f64, f64) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY decided), percentile_cont(0.99) WITHIN GROUP (ORDER BY decided),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY shown), percentile_cont(0.99) WITHIN GROUP (ORDER BY shown)
         FROM (SELECT extract(epoch FROM v.recorded_at - c.recorded_at)::float8 * 1000 AS decided,
                      extract(epoch FROM cv.match_projected_at - v.recorded_at)::float8 * 1000 AS shown
               FROM events c
               JOIN events v ON v.aggregate_type = 'click' AND v.aggregate_id = c.aggregate_id AND v.sequence = 2
               JOIN clicks_view cv ON cv.click_id::text = c.aggregate_id
               WHERE c.aggregate_type = 'click' AND c.sequence = 1 AND cv.log_position > $1) s",
    )
    .bind(warm)
    .fetch_one(&app.db)
    .await?;
    println!("  click commit -> verdict commit (relay, matcher, command): p50 {a50:.1}  p99 {a99:.1}");
    println!("  verdict commit -> clicks view (relay, projection):        p50 {b50:.1}  p99 {b99:.1}");

    // The cost of matching one click: finding what is on screen, timed alone, in memory (as
    // the matcher does, with the run's tracks loaded once) and through the store's index.
    let run = tracks::load_run(&app.db, run_id).await?.expect("the run's tracks");
    let links = tracks::links(&app.db, VIDEO).await?;
    let rounds = 100_000;
    let started = Instant::now();
    let mut objects = 0;
    for i in 0..rounds {
        let t = (i * 7919 % (frames_total as usize * 10)) as f64 / (FPS * 10.0);
        objects += run.scene(t, &links).objects.len();
    }
    let in_memory = started.elapsed().as_secs_f64() / rounds as f64 * 1e6;
    let rounds = 2000;
    let started = Instant::now();
    for i in 0..rounds {
        let t = (i * 7919 % (frames_total as usize * 10)) as f64 / (FPS * 10.0);
        tracks::scene_at(&app.db, VIDEO, t).await?;
    }
    let per = started.elapsed().as_secs_f64() / rounds as f64 * 1e6;
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT track_id, class_id, label, samples FROM tracks_view
         WHERE run_id = (SELECT run_id FROM detection_current LIMIT 1) AND span @> 300.1::float8::numeric",
    )
    .fetch_all(&app.db)
    .await?;
    println!("\n== cost of matching one click against {track_count} tracks ({detections} detections)");
    println!(
        "in memory (the matcher's way, tracks binary-searched by start): {in_memory:.2} µs per click, {:.1} objects on screen",
        objects as f64 / 100_000.0
    );
    println!("from the store through the span index (4 queries): {per:.0} µs per click; the track query's plan:");
    for line in plan {
        println!("  {line}");
    }
    Ok(())
}
