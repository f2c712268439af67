//! Click traffic as it comes: many viewers, each behind an address of their own (sent as
//! `X-Forwarded-For` through a trusted proxy on 127.0.0.1), on many videos, a few clicks
//! per viewer and video. Each click is new (its own id) and its body is a full one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use uuid::Uuid;

use crate::{ClickBody, click_body};

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
        let drawn = self.draw(n);
        let body = click_body(Uuid::new_v4(), &drawn.video, drawn.x, drawn.y, drawn.t);
        Click { body, address: address(drawn.viewer) }
    }

    /// The `n`th click as [`Workload::click`] draws it, ready to send: the viewer's address
    /// and the body's bytes.
    pub fn request(&self, n: u64) -> (String, Bytes) {
        let drawn = self.draw(n);
        let body = ClickBody::new(Uuid::new_v4(), &drawn.video, drawn.x, drawn.y, drawn.t);
        let bytes = serde_json::to_vec(&body).expect("a click body is JSON");
        (address(drawn.viewer), Bytes::from(bytes))
    }

    fn draw(&self, n: u64) -> Drawn {
        let mix = splitmix64(n);
        let viewer = (mix >> 33) % self.viewers.max(1);
        // A viewer's videos: a handful, so a viewer and a video meet a few times.
        let video = (viewer * 7 + (mix >> 17) % 4) % self.videos.max(1);
        let x = ((mix >> 8) % 780) as f64 + 10.0;
        let y = ((mix >> 20) % 580) as f64 + 10.0;
        let t = ((mix >> 40) % 6000) as f64 / 10.0;
        Drawn { viewer, video: video_id(video), x, y, t }
    }
}

/// Who clicks where, on what, when.
struct Drawn {
    viewer: u64,
    video: String,
    x: f64,
    y: f64,
    t: f64,
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
///
/// It loads as wrk does, since it shares the machine's cores with what it measures: each
/// connection is one kept-alive HTTP/1.1 connection of its own (no pool), and a click is
/// serialised straight into its request's body. (Through a pooled `reqwest` client, with
/// the body built as a JSON value first, it cost about 160 µs of CPU a click here, five
/// times what wrk does.) A connection that fails is opened again for the next click.
pub async fn full_speed(urls: &[String], connections: usize, workload: Workload, duration: Duration) -> Loaded {
    // Numbered across calls: a warm-up and the load that follows click on other things.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let deadline = Instant::now() + duration;
    let workers = (0..connections).map(|i| {
        let endpoint = Endpoint::of(&urls[i % urls.len()]);
        async move {
            let mut latencies = histogram();
            let mut answers: BTreeMap<Option<u16>, u64> = BTreeMap::new();
            let mut connection = None;
            while Instant::now() < deadline {
                let (address, body) = workload.request(NEXT.fetch_add(1, Ordering::Relaxed));
                let sent = Instant::now();
                let status = post_click(&mut connection, &endpoint, &address, body).await;
                if status == Some(202) {
                    latencies.record(sent.elapsed().as_micros() as u64).expect("record");
                }
                *answers.entry(status).or_default() += 1;
            }
            let answers = answers
                .into_iter()
                .map(|(status, n)| (status.map_or_else(|| "error".to_owned(), |s| s.to_string()), n))
                .collect();
            Loaded { latencies, answers }
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

/// A connection of the load: where its requests go.
type Connection = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Where a server's clicks go: the host and port to connect to, and the path of
/// `/api/v1/clicks` under the server's URL (`http://host:port` or `http://host/prefix`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    authority: String,
    path: String,
}

impl Endpoint {
    fn of(url: &str) -> Self {
        let url = reqwest::Url::parse(url).unwrap_or_else(|e| panic!("{url:?}: not a server's URL ({e})"));
        let host = url.host_str().unwrap_or_else(|| panic!("{url}: no host"));
        let port = url.port_or_known_default().unwrap_or(80);
        Self {
            authority: format!("{host}:{port}"),
            path: format!("{}/api/v1/clicks", url.path().trim_end_matches('/')),
        }
    }
}

/// Posts one click on `connection` (opened first when there is none, or it closed); its
/// status, or `None` when the connection failed or no answer came within 10 s (the
/// connection is then dropped).
async fn post_click(connection: &mut Option<Connection>, to: &Endpoint, address: &str, body: Bytes) -> Option<u16> {
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        if connection.as_ref().is_none_or(Connection::is_closed) {
            *connection = Some(connect(&to.authority).await?);
        }
        let sender = connection.as_mut()?;
        sender.ready().await.ok()?;
        let request = hyper::Request::post(&to.path)
            .header(hyper::header::HOST, &to.authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header("x-forwarded-for", address)
            .body(Full::new(body))
            .ok()?;
        let response = sender.send_request(request).await.ok()?;
        let status = response.status().as_u16();
        response.into_body().collect().await.ok()?;
        Some(status)
    })
    .await
    .ok()
    .flatten();
    if answer.is_none() {
        *connection = None;
    }
    answer
}

async fn connect(authority: &str) -> Option<Connection> {
    let stream = tokio::net::TcpStream::connect(authority).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(connection);
    Some(sender)
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

    #[test]
    fn a_request_is_the_click_it_draws_serialised() {
        let workload = Workload::default();
        let (address, bytes) = workload.request(7);
        let mut sent: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        let mut drawn = workload.click(7);
        assert!(sent["clickId"].as_str().is_some_and(|id| Uuid::parse_str(id).is_ok()), "{sent}");
        // Each is a new click, with an id of its own; the rest is the same.
        sent["clickId"] = serde_json::Value::Null;
        drawn.body["clickId"] = serde_json::Value::Null;
        assert_eq!((address, sent), (drawn.address, drawn.body));
    }

    #[test]
    fn clicks_go_to_the_host_port_and_path_of_the_servers_url() {
        let endpoint = |authority: &str, path: &str| Endpoint { authority: authority.into(), path: path.into() };
        assert_eq!(Endpoint::of("http://127.0.0.1:8000"), endpoint("127.0.0.1:8000", "/api/v1/clicks"));
        assert_eq!(Endpoint::of("http://127.0.0.1:8000/"), endpoint("127.0.0.1:8000", "/api/v1/clicks"));
        assert_eq!(Endpoint::of("http://shop.test/framecart/"), endpoint("shop.test:80", "/framecart/api/v1/clicks"));
    }
}
