//! A click load, as many viewers' extensions make it: several tasks posting
//! `POST /api/v1/clicks` at a steady rate, each click with its own `clickId`, and a click
//! that got no 202 sent again later with the same id and body (the extension retries the
//! same way; the click id makes a retry idempotent).
//!
//! It remembers every click it sent and which were acknowledged, and counts the answers
//! while a window is open (the time of a fault).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::click_body;

/// The video every click is on (no video is uploaded: each click is judged unmatched).
pub const VIDEO: &str = "VESeA6leQuk";

/// Tries of one click before it is given up (left unacknowledged).
const MAX_TRIES: u32 = 50;
/// Pause before a click is sent again.
const RETRY_AFTER: Duration = Duration::from_millis(250);

/// One click as sent: its media time is unique, so that it can be recognised in the
/// client files, which do not name the click.
#[derive(Debug, Clone, Copy)]
struct Click {
    id: Uuid,
    timestamp: u64,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    counting: AtomicBool,
    next_timestamp: AtomicU64,
    /// Every click sent: its media time.
    sent: Mutex<HashMap<Uuid, u64>>,
    /// The clicks answered 202, in order.
    acked: Mutex<Vec<Uuid>>,
    /// Answers while the window was open: `202`, `503`, `conn-err`, `timeout`, …
    answers: Mutex<BTreeMap<String, u64>>,
    /// The slowest answer while the window was open, in milliseconds.
    slowest_ms: AtomicU64,
    /// Every answer, window or not.
    all_answers: Mutex<BTreeMap<String, u64>>,
}

/// Answers a click may get while something is down: anything else is a bug.
const EXPECTED: [&str; 6] = ["202", "503", "429", "conn-err", "timeout", "io-err"];

pub struct ClickLoad {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl ClickLoad {
    /// Starts `tasks` tasks, each sending `per_task` clicks a second to `base_url`.
    pub fn start(base_url: &str, tasks: usize, per_task: u32) -> Self {
        Self::start_balanced(&[base_url.to_owned()], tasks, per_task)
    }

    /// As [`Self::start`], spread over several API processes as a load balancer spreads
    /// viewers: task `i` starts on `base_urls[i % n]`, and a click that gets no 202 is
    /// sent again to the next one.
    pub fn start_balanced(base_urls: &[String], tasks: usize, per_task: u32) -> Self {
        assert!(!base_urls.is_empty(), "a URL to send to");
        let shared = Arc::new(Shared { next_timestamp: AtomicU64::new(1), ..Shared::default() });
        let tasks = (0..tasks)
            .map(|i| {
                let mut urls: Vec<String> = base_urls.iter().map(|u| format!("{u}/api/v1/clicks")).collect();
                urls.rotate_left(i % base_urls.len());
                tokio::spawn(sender(shared.clone(), urls, per_task))
            })
            .collect();
        Self { shared, tasks }
    }

    /// Starts counting answers afresh (a fault begins): what an earlier window counted
    /// is forgotten.
    pub fn open_window(&self) {
        self.shared.answers.lock().expect("answers").clear();
        self.shared.slowest_ms.store(0, Ordering::SeqCst);
        self.shared.counting.store(true, Ordering::SeqCst);
    }

    /// Stops counting answers.
    pub fn close_window(&self) {
        self.shared.counting.store(false, Ordering::SeqCst);
    }

    /// Stops sending and waits for the tasks; clicks not acknowledged by then stay so.
    pub async fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for task in self.tasks.drain(..) {
            task.await.expect("a load task ends");
        }
    }

    /// The clicks acknowledged so far.
    pub fn acked(&self) -> Vec<Uuid> {
        self.shared.acked.lock().expect("acked").clone()
    }

    /// Every click sent so far, with its media time.
    pub fn sent(&self) -> HashMap<Uuid, u64> {
        self.shared.sent.lock().expect("sent").clone()
    }

    /// The answers counted in the window, e.g. `202:812 503:40 conn-err:12`.
    pub fn answers(&self) -> String {
        tally(&self.shared.answers.lock().expect("answers"))
    }

    /// The slowest answer (or failure to get one) while the window was open.
    pub fn slowest(&self) -> Duration {
        Duration::from_millis(self.shared.slowest_ms.load(Ordering::SeqCst))
    }

    /// Answers at any time that no fault explains (a 500, a 4xx), e.g. `500:3`; empty
    /// when there were none.
    pub fn unexpected_answers(&self) -> String {
        let all = self.shared.all_answers.lock().expect("answers");
        let unexpected: BTreeMap<String, u64> =
            all.iter().filter(|(k, _)| !EXPECTED.contains(&k.as_str())).map(|(k, v)| (k.clone(), *v)).collect();
        if unexpected.is_empty() { String::new() } else { tally(&unexpected) }
    }
}

fn tally(answers: &BTreeMap<String, u64>) -> String {
    if answers.is_empty() {
        return "none".to_owned();
    }
    answers.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(" ")
}

impl Drop for ClickLoad {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn sender(shared: Arc<Shared>, urls: Vec<String>, per_second: u32) {
    let mut at = 0;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("a client");
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retries: VecDeque<(Click, u32, Instant)> = VecDeque::new();
    while !shared.stop.load(Ordering::SeqCst) {
        tick.tick().await;
        let (click, tries) = match retries.front() {
            Some((_, _, due)) if *due <= Instant::now() => {
                let (click, tries, _) = retries.pop_front().expect("a retry");
                (click, tries)
            }
            _ => {
                let click =
                    Click { id: Uuid::new_v4(), timestamp: shared.next_timestamp.fetch_add(1, Ordering::SeqCst) };
                shared.sent.lock().expect("sent").insert(click.id, click.timestamp);
                (click, 0)
            }
        };
        // x and y vary so that the clicks are not all alike; the media time is the key.
        let x = (click.timestamp % 700) as f64 + 50.0;
        let body = click_body(click.id, VIDEO, x, 300.0, click.timestamp as f64);
        let sent_at = Instant::now();
        let answer = match http.post(&urls[at]).json(&body).send().await {
            // A 503 tells the client when to try again (README, "Outages and stopping").
            Ok(response) if response.status().as_u16() == 503 && !response.headers().contains_key("retry-after") => {
                "503-without-retry-after".to_owned()
            }
            Ok(response) => response.status().as_u16().to_string(),
            Err(e) if e.is_timeout() => "timeout".to_owned(),
            Err(e) if e.is_connect() => "conn-err".to_owned(),
            Err(_) => "io-err".to_owned(),
        };
        *shared.all_answers.lock().expect("answers").entry(answer.clone()).or_default() += 1;
        if shared.counting.load(Ordering::SeqCst) {
            let ms = u64::try_from(sent_at.elapsed().as_millis()).unwrap_or(u64::MAX);
            shared.slowest_ms.fetch_max(ms, Ordering::SeqCst);
            *shared.answers.lock().expect("answers").entry(answer.clone()).or_default() += 1;
        }
        if answer == "202" {
            shared.acked.lock().expect("acked").push(click.id);
        } else if tries + 1 < MAX_TRIES {
            at = (at + 1) % urls.len();
            retries.push_back((click, tries + 1, Instant::now() + RETRY_AFTER));
        }
    }
}
