//! Restoring the stream from the store.
//!
//! The stream is a replica: `events` and the relay's `event_log` say which event went to
//! which sequence, with which hash. When the stream lost messages (a wiped NATS store, a
//! new server, a restore from an old backup), the leader republishes the recorded ones
//! after the stream's end:
//!
//! - in log order, each with `Nats-Expected-Last-Sequence` set to its recorded position
//!   minus one, so it lands exactly at its recorded sequence or not at all, and each ack's
//!   sequence is checked against the record;
//! - byte for byte as first published: the same body (the recorded hash, the envelope
//!   from the stored event), the same headers and `Nats-Msg-Id = event_id`;
//! - pipelined: a page of events is published while the acks of the page before come
//!   back and the page after is read from Postgres.
//!
//! What the stream still holds is checked first: a message whose event id or hash is not
//! the recorded one at its sequence means the stream is not this installation's log (or
//! the record was changed). That is refused, never overwritten.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::{consumer, stream::Stream};
use framecart_domain::log as layout;
use futures::StreamExt;
use sqlx::PgConnection;
use uuid::Uuid;

use super::tail::{self, LogEntry, RecordedEvent};
use super::{Relay, RelayError, nats};

/// Events read, published and acknowledged per round. Two rounds are in flight at most,
/// well inside the JetStream context's 4096 unacknowledged publishes.
const PAGE: i64 = 1000;
/// Longest wait for the next message while the stream's messages are checked.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One republished event waiting for its ack.
struct Sent {
    ack: PublishAckFuture,
    log_position: u64,
    event_id: Uuid,
}

impl Relay {
    /// Republishes the recorded events after log position `from` up to `to`, then says so
    /// in the stats. The stream must end at `from`.
    pub(super) async fn restore(&self, conn: &mut PgConnection, from: u64, to: u64) -> Result<(), RelayError> {
        let stats = &self.stats;
        stats.restored.store(0, Ordering::Relaxed);
        stats.restore_target.store(to - from, Ordering::Relaxed);
        stats.restoring.store(1, Ordering::Relaxed);
        tracing::warn!(
            stream = from,
            recorded = to,
            "the stream lost recorded events: restoring log positions {}..={to} from the store",
            from + 1
        );
        let started = Instant::now();
        let mut page = tail::recorded_between(conn, from, to, PAGE).await?;
        let mut sent_up_to = from;
        let mut in_flight: Vec<Sent> = Vec::new();
        while !page.is_empty() {
            let sent = self.republish(&page, &mut sent_up_to).await?;
            let more = page.len() as i64 == PAGE && sent_up_to < to;
            let (confirmed, next) = tokio::join!(self.confirm(std::mem::take(&mut in_flight)), async {
                if more { tail::recorded_between(conn, sent_up_to, to, PAGE).await } else { Ok(Vec::new()) }
            });
            confirmed?;
            in_flight = sent;
            page = next?;
        }
        self.confirm(in_flight).await?;
        if sent_up_to != to {
            return Err(RelayError::Inconsistent(format!(
                "log position {} names no stored event: the stream cannot be restored past {sent_up_to}",
                sent_up_to + 1
            )));
        }
        stats.restoring.store(0, Ordering::Relaxed);
        stats.restores.fetch_add(1, Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64();
        let events = to - from;
        tracing::info!(events, secs, per_sec = (events as f64 / secs.max(1e-9)) as u64, "stream restored");
        Ok(())
    }

    /// Publishes a page of recorded events, each at the sequence after `sent_up_to`.
    async fn republish(&self, page: &[RecordedEvent], sent_up_to: &mut u64) -> Result<Vec<Sent>, RelayError> {
        let mut sent = Vec::with_capacity(page.len());
        for recorded in page {
            let log_position = *sent_up_to + 1;
            if u64::try_from(recorded.log_position).ok() != Some(log_position) {
                // The join left a recorded position out: its event is not in the store.
                return Err(RelayError::Inconsistent(format!(
                    "log position {log_position} names no stored event: the stream cannot be restored past {}",
                    *sent_up_to
                )));
            }
            let event = &recorded.event;
            if recorded.logged_id != event.event_id {
                return Err(RelayError::Inconsistent(format!(
                    "log position {log_position} records event {} but the store holds {} at global position {}",
                    recorded.logged_id, event.event_id, event.global_position
                )));
            }
            let (subject, message) = self.message(event, &recorded.hash)?;
            let ack = self.js.send_publish(subject, message.expected_last_sequence(*sent_up_to)).await.map_err(nats)?;
            sent.push(Sent { ack, log_position, event_id: event.event_id });
            *sent_up_to = log_position;
        }
        Ok(sent)
    }

    /// Waits for the acks of republished events: each must have landed at its recorded
    /// sequence, as a new message.
    async fn confirm(&self, sent: Vec<Sent>) -> Result<(), RelayError> {
        let count = sent.len() as u64;
        let mut last = None;
        for Sent { ack, log_position, event_id } in sent {
            let ack = ack.await.map_err(nats)?;
            if ack.sequence != log_position || ack.duplicate {
                return Err(RelayError::Inconsistent(format!(
                    "restored event {event_id} landed at stream sequence {} (duplicate: {}), recorded at {log_position}",
                    ack.sequence, ack.duplicate
                )));
            }
            last = Some(log_position);
        }
        if let Some(last) = last {
            self.stats.restored.fetch_add(count, Ordering::Relaxed);
            self.stats.published.fetch_add(count, Ordering::Relaxed);
            self.stats.log_position.store(last, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Checks that the stream's messages `1..=last` are the recorded ones: at each sequence
/// the recorded event id (`Nats-Msg-Id`) and hash. Reads headers only, in order.
pub(super) async fn check_prefix(stream: &Stream, conn: &mut PgConnection, last: u64) -> Result<(), RelayError> {
    if last == 0 {
        return Ok(());
    }
    let started = Instant::now();
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            headers_only: true,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(nats)?;
    let mut messages = consumer.messages().await.map_err(nats)?;
    let mut checked = 0;
    while checked < last {
        let page = tail::logged_after(conn, checked, PAGE.min(i64::try_from(last - checked).unwrap_or(PAGE))).await?;
        if page.is_empty() {
            return Err(RelayError::Inconsistent(format!("log position {} is not recorded", checked + 1)));
        }
        for entry in page {
            let message = tokio::time::timeout(READ_TIMEOUT, messages.next())
                .await
                .map_err(|_| nats(format!("message {} of the stream did not come within 10 s", checked + 1)))?
                .ok_or_else(|| nats("the stream's messages ended early"))?
                .map_err(nats)?;
            let sequence = message.info().map_err(nats)?.stream_sequence;
            if sequence != checked + 1 {
                return Err(RelayError::Inconsistent(format!(
                    "stream sequence {} is missing (the next message is {sequence})",
                    checked + 1
                )));
            }
            agrees(sequence, message.headers.as_ref(), &entry)?;
            checked = sequence;
        }
    }
    tracing::info!(
        messages = last,
        ms = started.elapsed().as_millis() as u64,
        "the stream's messages are the recorded ones"
    );
    Ok(())
}

/// Checks that the stream's message at `at` is the recorded one (a cheap check that the
/// stream is this installation's log, made on every start).
pub(super) async fn check_prefix_end(stream: &Stream, conn: &mut PgConnection, at: u64) -> Result<(), RelayError> {
    if at == 0 {
        return Ok(());
    }
    let Some(entry) = tail::logged_after(conn, at - 1, 1).await?.into_iter().next().filter(|e| e.log_position == at)
    else {
        return Err(RelayError::Inconsistent(format!("log position {at} is not recorded")));
    };
    let message = stream.direct_get(at).await.map_err(nats)?;
    agrees(at, Some(&message.headers), &entry)
}

/// The message at `sequence` carries the recorded event id and hash.
fn agrees(sequence: u64, headers: Option<&HeaderMap>, entry: &LogEntry) -> Result<(), RelayError> {
    let header = |name: &str| headers.and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
    let id = header("Nats-Msg-Id");
    if entry.log_position != sequence || id.as_deref() != Some(entry.event_id.to_string().as_str()) {
        return Err(RelayError::Inconsistent(format!(
            "stream sequence {sequence} holds event {} where the relay recorded {} at log position {}: the \
             stream is not this installation's log; move it aside (or start a new namespace) and the relay \
             restores the log from the store",
            id.as_deref().unwrap_or("(no id)"),
            entry.event_id,
            entry.log_position
        )));
    }
    match header(layout::HEADER_HASH) {
        Some(hash) if hash != entry.hash => Err(RelayError::Inconsistent(format!(
            "stream sequence {sequence} (event {}) has hash {hash} where the relay recorded {}",
            entry.event_id, entry.hash
        ))),
        _ => Ok(()),
    }
}
