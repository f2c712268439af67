//! The layout of the event log on NATS JetStream, shared by the relay that writes it
//! and every consumer that reads it: names, subjects, headers and the message body.
//!
//! One installation owns one namespace: its stream is `<NAMESPACE>_EVENTS`, its subjects
//! `<namespace>.events.<aggregate_type>.<aggregate_id>.<EventType>`, and every durable
//! consumer's name starts with the namespace, so two installations (or two tests) on one
//! server never see each other's events.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

pub const HEADER_GLOBAL_POSITION: &str = "Framecart-Global-Position";
pub const HEADER_SEQUENCE: &str = "Framecart-Sequence";
pub const HEADER_EVENT_TYPE: &str = "Framecart-Event-Type";
pub const HEADER_EVENT_VERSION: &str = "Framecart-Event-Version";
pub const HEADER_RECORDED_AT: &str = "Framecart-Recorded-At";
pub const HEADER_CORRELATION_ID: &str = "Framecart-Correlation-Id";
pub const HEADER_CAUSATION_ID: &str = "Framecart-Causation-Id";
pub const HEADER_HASH: &str = "Framecart-Hash";

/// An installation's namespace: a lower-case NATS subject token.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Namespace(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a namespace is 1 to 32 characters of a-z, 0-9, '_' and '-', starting with a letter")]
pub struct NamespaceError;

impl Namespace {
    pub fn parse(s: &str) -> Result<Self, NamespaceError> {
        let ok = (1..=32).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        ok.then(|| Self(s.to_owned())).ok_or(NamespaceError)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `FRAMECART_EVENTS` for the namespace `framecart`.
    pub fn stream_name(&self) -> String {
        format!("{}_EVENTS", self.0.to_ascii_uppercase())
    }

    /// Every subject of this installation's events: `<namespace>.events.>`.
    pub fn all_events_subject(&self) -> String {
        format!("{}.events.>", self.0)
    }

    /// All events of one aggregate type: `<namespace>.events.<aggregate_type>.>`.
    pub fn aggregate_subject(&self, aggregate_type: &str) -> String {
        format!("{}.events.{aggregate_type}.>", self.0)
    }

    /// Every event of one type of one aggregate type: `<namespace>.events.<aggregate_type>.*.<EventType>`.
    pub fn event_type_subject(&self, aggregate_type: &str, event_type: &str) -> String {
        format!("{}.events.{aggregate_type}.*.{event_type}", self.0)
    }

    /// The subject of one event. Each part must already be a valid subject token.
    pub fn event_subject(&self, aggregate_type: &str, aggregate_id: &str, event_type: &str) -> String {
        format!("{}.events.{aggregate_type}.{aggregate_id}.{event_type}", self.0)
    }

    /// The aggregate type, aggregate id and event type tokens of one of this
    /// installation's event subjects; `None` for any other subject.
    pub fn subject_parts<'s>(&self, subject: &'s str) -> Option<(&'s str, &'s str, &'s str)> {
        let rest = subject.strip_prefix(self.0.as_str())?.strip_prefix(".events.")?;
        let mut tokens = rest.split('.');
        match (tokens.next(), tokens.next(), tokens.next(), tokens.next()) {
            (Some(aggregate_type), Some(aggregate_id), Some(event_type), None) => {
                Some((aggregate_type, aggregate_id, event_type))
            }
            _ => None,
        }
    }

    /// A durable consumer name owned by this installation.
    pub fn consumer_name(&self, purpose: &str) -> String {
        format!("{}_{purpose}", self.0)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Namespace({})", self.0)
    }
}

/// True when `s` may be used as one token of a NATS subject.
pub fn is_subject_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The body of every message in the log: one committed event with its place in history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoggedEvent {
    pub event_id: Uuid,
    /// Identity value taken at insert time in the `events` table (not dense).
    pub global_position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// Per-aggregate sequence, from 1.
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    /// The event as the aggregate's event enum serialised it, byte for byte as stored.
    pub payload: Box<RawValue>,
    pub metadata: HashMap<String, String>,
    pub recorded_at: DateTime<Utc>,
    /// Hex sha256 of this event chained to the one before it in commit order.
    pub hash: String,
}

impl LoggedEvent {
    /// Decodes the payload as an aggregate's event enum, through its upcasters when the
    /// event was written by an older version.
    pub fn decode<E: crate::upcast::Upcast>(&self) -> Result<E, serde_json::Error> {
        crate::upcast::decode(&self.event_type, &self.event_version, self.payload.get())
    }

    /// The correlation id of the command that wrote it (empty when it had none), for the
    /// commands that follow from it.
    pub fn correlation_id(&self) -> String {
        self.metadata.get(crate::metadata::CORRELATION_ID).cloned().unwrap_or_default()
    }
}

/// The stored metadata as string pairs, as the log carries them. Our commands write an
/// object of strings; a row written by hand may hold any JSON: other values are kept as
/// their JSON text, and anything but an object under the key `metadata`, so that no
/// stored row stops the log.
pub fn metadata_map(stored: &str) -> BTreeMap<String, String> {
    use serde_json::Value;
    match serde_json::from_str::<Value>(stored) {
        Ok(Value::Object(map)) => map
            .into_iter()
            .map(|(key, value)| match value {
                Value::String(s) => (key, s),
                other => (key, other.to_string()),
            })
            .collect(),
        Ok(other) => BTreeMap::from([("metadata".to_owned(), other.to_string())]),
        Err(_) => BTreeMap::from([("metadata".to_owned(), stored.to_owned())]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_stored_metadata_makes_string_pairs() {
        let ours = metadata_map(r#"{"actor":"user:1","correlation_id":"c"}"#);
        assert_eq!(ours.get("actor").map(String::as_str), Some("user:1"));
        let by_hand = metadata_map(r#"{"n":5,"nested":{"a":[1]},"none":null}"#);
        assert_eq!(by_hand.get("n").map(String::as_str), Some("5"));
        assert_eq!(by_hand.get("nested").map(String::as_str), Some(r#"{"a":[1]}"#));
        assert_eq!(by_hand.get("none").map(String::as_str), Some("null"));
        assert_eq!(metadata_map("[1,2]").get("metadata").map(String::as_str), Some("[1,2]"));
        assert_eq!(metadata_map("not json").get("metadata").map(String::as_str), Some("not json"));
    }

    #[test]
    fn names_follow_the_namespace() {
        let ns = Namespace::parse("framecart").expect("valid");
        assert_eq!(ns.stream_name(), "FRAMECART_EVENTS");
        assert_eq!(ns.all_events_subject(), "framecart.events.>");
        let subject = ns.event_subject("click", "5d1f", "ClickRecorded");
        assert_eq!(ns.subject_parts(&subject), Some(("click", "5d1f", "ClickRecorded")));
        assert_eq!(ns.subject_parts("framecart.events.click.5d1f"), None);
        assert_eq!(ns.subject_parts("framecart.events.click.a.b.c"), None);
        assert_eq!(ns.subject_parts("other.events.click.5d1f.ClickRecorded"), None);
        assert_eq!(ns.subject_parts("framecart2.events.click.5d1f.ClickRecorded"), None);
        assert_eq!(ns.event_subject("click", "0190", "ClickRecorded"), "framecart.events.click.0190.ClickRecorded");
        assert_eq!(ns.consumer_name("proj_clicks"), "framecart_proj_clicks");
        assert_eq!(ns.event_type_subject("click", "ClickRecorded"), "framecart.events.click.*.ClickRecorded");
    }

    #[test]
    fn namespaces_are_single_tokens() {
        for bad in ["", "Framecart", "a.b", "a b", "a*", ">", "1abc", &"a".repeat(33)] {
            assert!(Namespace::parse(bad).is_err(), "{bad:?}");
        }
        assert!(is_subject_token("VESeA6leQuk"));
        assert!(!is_subject_token("1.2.3.4"));
    }
}
