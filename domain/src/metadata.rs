//! What every event carries besides its payload: who caused it and as part of what.
//!
//! cqrs-es stores metadata as a string map; this type is its typed form. The
//! correlation id follows one piece of work across commands (a click and the match it
//! leads to); the causation id names what directly caused this command (an HTTP request
//! or an earlier event); the request id is the HTTP request's own id.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub const CORRELATION_ID: &str = "correlation_id";
pub const CAUSATION_ID: &str = "causation_id";
pub const ACTOR: &str = "actor";
pub const REQUEST_ID: &str = "request_id";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    pub correlation_id: String,
    pub causation_id: String,
    /// `anonymous`, `user:<id>` or `system:<component>`.
    pub actor: String,
    /// Empty when the command did not come from an HTTP request.
    pub request_id: String,
}

impl EventMetadata {
    /// Metadata of a command sent by an HTTP request: the request caused it.
    pub fn for_request(request_id: &str, correlation_id: Option<&str>, actor: String) -> Self {
        Self {
            correlation_id: correlation_id.unwrap_or(request_id).to_owned(),
            causation_id: request_id.to_owned(),
            actor,
            request_id: request_id.to_owned(),
        }
    }

    /// Metadata of a command a worker sends because of an event it consumed.
    pub fn caused_by_event(event_id: &str, correlation_id: &str, component: &str) -> Self {
        Self {
            correlation_id: correlation_id.to_owned(),
            causation_id: event_id.to_owned(),
            actor: format!("system:{component}"),
            request_id: String::new(),
        }
    }

    pub fn into_map(self) -> HashMap<String, String> {
        HashMap::from([
            (CORRELATION_ID.to_owned(), self.correlation_id),
            (CAUSATION_ID.to_owned(), self.causation_id),
            (ACTOR.to_owned(), self.actor),
            (REQUEST_ID.to_owned(), self.request_id),
        ])
    }

    pub fn from_map(map: &HashMap<String, String>) -> Self {
        let get = |k: &str| map.get(k).cloned().unwrap_or_default();
        Self {
            correlation_id: get(CORRELATION_ID),
            causation_id: get(CAUSATION_ID),
            actor: get(ACTOR),
            request_id: get(REQUEST_ID),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_its_own_cause_and_correlation_by_default() {
        let m = EventMetadata::for_request("r1", None, "anonymous".into());
        assert_eq!((m.correlation_id.as_str(), m.causation_id.as_str()), ("r1", "r1"));
        let m = EventMetadata::for_request("r1", Some("c9"), "anonymous".into());
        assert_eq!(m.correlation_id, "c9");
        assert_eq!(EventMetadata::from_map(&m.clone().into_map()), m);
    }
}
