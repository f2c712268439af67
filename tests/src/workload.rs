//! Click traffic as it comes: many viewers, each behind an address of their own (sent as
//! `X-Forwarded-For` through a trusted proxy on 127.0.0.1), on many videos, a few clicks
//! per viewer and video. Each click is new (its own id) and its body is a full one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::click_body;

/// Who clicks on what.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Distinct viewers: each has an address, and a client file per video.
    pub viewers: u64,
    /// Distinct videos.
    pub videos: u64,
}

impl Default for Workload {
    /// Thousands of viewers on hundreds of videos.
    fn default() -> Self {
        Self { viewers: 5_000, videos: 200 }
    }
}

/// One click to send: its body and the viewer's address.
#[derive(Debug, Clone)]
pub struct Click {
    pub body: serde_json::Value,
    /// For `X-Forwarded-For`.
    pub address: String,
}

impl Workload {
    /// The `n`th click: a viewer and a video drawn from `n` (each viewer watches a few of
    /// the videos), a point in the player, a media time.
    pub fn click(&self, n: u64) -> Click {
        let mix = splitmix64(n);
        let viewer = (mix >> 33) % self.viewers.max(1);
        // A viewer's videos: a handful, so a viewer and a video meet a few times.
        let video = (viewer * 7 + (mix >> 17) % 4) % self.videos.max(1);
        let x = ((mix >> 8) % 780) as f64 + 10.0;
        let y = ((mix >> 20) % 580) as f64 + 10.0;
        let t = ((mix >> 40) % 6000) as f64 / 10.0;
        let body = click_body(Uuid::new_v4(), &video_id(video), x, y, t);
        Click { body, address: address(viewer) }
    }
}

/// SplitMix64: well-spread bits from a counter.
fn splitmix64(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// An 11-character YouTube-shaped id for video `i`.
pub fn video_id(i: u64) -> String {
    format!("vid{i:08}")
}

/// A viewer's address: 10.x.y.z, distinct for up to 16 million viewers.
pub fn address(viewer: u64) -> String {
    let v = viewer + 1;
    format!("10.{}.{}.{}", (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff)
}

/// What a load at full speed got back.
#[derive(Debug)]
pub struct Loaded {
    /// The latency of each acknowledged (202) click, in microseconds.
    pub latencies: hdrhistogram::Histogram<u64>,
    /// Every answer by status (`202`, `503`, …, `error` when none came).
    pub answers: std::collections::BTreeMap<String, u64>,
}

impl Loaded {
    /// Clicks answered with anything but 202.
    pub fn failed(&self) -> u64 {
        self.answers.iter().filter(|(status, _)| *status != "202").map(|(_, n)| n).sum()
    }
}

/// A latency histogram in microseconds, from 1 µs to a minute.
pub fn histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// Posts `workload`'s clicks from `connections` connections, spread over the servers at
/// `urls` as a balancer spreads viewers, each posting its next click as soon as the last
/// is answered, for `duration`.
pub async fn full_speed(urls: &[String], connections: usize, workload: Workload, duration: Duration) -> Loaded {
    // Numbered across calls: a warm-up and the load that follows click on other things.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client");
    let deadline = Instant::now() + duration;
    let workers = (0..connections).map(|i| {
        let url = format!("{}/api/v1/clicks", urls[i % urls.len()]);
        let client = client.clone();
        async move {
            let mut loaded = Loaded { latencies: histogram(), answers: Default::default() };
            while Instant::now() < deadline {
                let click = workload.click(NEXT.fetch_add(1, Ordering::Relaxed));
                let sent = Instant::now();
                let request = client.post(&url).header("x-forwarded-for", &click.address).json(&click.body);
                let answer = match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16().to_string();
                        let _ = response.bytes().await;
                        status
                    }
                    Err(_) => "error".to_owned(),
                };
                if answer == "202" {
                    loaded.latencies.record(sent.elapsed().as_micros() as u64).expect("record");
                }
                *loaded.answers.entry(answer).or_default() += 1;
            }
            loaded
        }
    });
    let mut all = Loaded { latencies: histogram(), answers: Default::default() };
    for loaded in futures::future::join_all(workers).await {
        all.latencies.add(loaded.latencies).expect("merge");
        for (answer, n) in loaded.answers {
            *all.answers.entry(answer).or_default() += n;
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clicks_spread_over_many_viewers_and_videos_a_few_times_each() {
        let workload = Workload { viewers: 1000, videos: 100 };
        let clicks: Vec<Click> = (0..20_000).map(|n| workload.click(n)).collect();
        let viewers: std::collections::HashSet<&str> = clicks.iter().map(|c| c.address.as_str()).collect();
        let videos: std::collections::HashSet<&str> =
            clicks.iter().map(|c| c.body["videoId"].as_str().expect("a video")).collect();
        let pairs: std::collections::HashSet<(&str, &str)> =
            clicks.iter().map(|c| (c.address.as_str(), c.body["videoId"].as_str().expect("a video"))).collect();
        assert!(viewers.len() > 950, "{} viewers", viewers.len());
        assert!(videos.len() > 90, "{} videos", videos.len());
        let per_pair = clicks.len() as f64 / pairs.len() as f64;
        assert!((2.0..10.0).contains(&per_pair), "{per_pair:.1} clicks per viewer and video");
        assert_ne!(address(0), address(256));
    }
}
