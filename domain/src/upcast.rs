//! Events as they were written: how a stored event of an older version is read today.
//!
//! Every stored event carries its type and version (postgres-es's `event_type` and
//! `event_version` columns, the log's `Framecart-Event-Version` header). When a change to
//! an event would break JSON already stored (a renamed field, a new required one), the
//! event's version goes up and its enum lists an [`Upcaster`] that rewrites the older
//! JSON into today's shape. Aggregates load through the same list (cqrs-es's
//! `with_upcasters`, see [`cqrs_upcasters`]) as projections decode through
//! ([`decode`]), so an old event is read the same way everywhere, and nothing stored is
//! ever rewritten.
//!
//! The golden files under `domain/tests/golden/` pin each event type's stored JSON: a
//! change that would need an upcaster fails there first.

use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Rewrites one event type's stored JSON from every version below `to_version`.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    pub event_type: &'static str,
    /// The version the rewritten JSON has. Upcasters of one type are listed oldest first
    /// and applied in turn, so an event two versions old goes through two of them.
    pub to_version: &'static str,
    /// From the stored payload (the whole externally tagged enum value,
    /// `{"EventType": {...}}`) to the payload of `to_version`.
    pub rewrite: fn(Value) -> Value,
}

impl Upcaster {
    /// True when an event of this type and version is older than this upcaster's output.
    /// A version that is not numeric (written by hand) is read as it is.
    pub fn applies(&self, event_type: &str, event_version: &str) -> bool {
        event_type == self.event_type
            && matches!((version(event_version), version(self.to_version)), (Some(v), Some(to)) if v < to)
    }
}

/// `"1.2"` as `[1, 2, 0]`; `None` when it is not one to three dot-separated numbers.
fn version(s: &str) -> Option<[u64; 3]> {
    let mut parts = [0; 3];
    for (i, part) in s.split('.').enumerate() {
        *parts.get_mut(i)? = part.parse().ok()?;
    }
    Some(parts)
}

/// An aggregate's event enum as it is stored: how to read its older versions.
pub trait Upcast: DeserializeOwned {
    /// Oldest first. Empty while no stored shape has changed.
    const UPCASTERS: &'static [Upcaster] = &[];
}

/// Reads a stored event of `event_type` at `event_version` as today's enum.
pub fn decode<E: Upcast>(event_type: &str, event_version: &str, payload: &str) -> Result<E, serde_json::Error> {
    if !E::UPCASTERS.iter().any(|u| u.applies(event_type, event_version)) {
        return serde_json::from_str(payload); // today's shape: no detour through a Value
    }
    decode_value(event_type, event_version, serde_json::from_str(payload)?)
}

/// [`decode`] for a payload already parsed.
pub fn decode_value<E: Upcast>(event_type: &str, event_version: &str, payload: Value) -> Result<E, serde_json::Error> {
    let value = E::UPCASTERS
        .iter()
        .filter(|u| u.applies(event_type, event_version))
        .fold(payload, |value, upcaster| (upcaster.rewrite)(value));
    serde_json::from_value(value)
}

/// The same upcasters for cqrs-es, which applies them when it loads an aggregate.
pub fn cqrs_upcasters<E: Upcast>() -> Vec<Box<dyn EventUpcaster>> {
    E::UPCASTERS.iter().map(|u| Box::new(ForCqrs(*u)) as Box<dyn EventUpcaster>).collect()
}

struct ForCqrs(Upcaster);

impl EventUpcaster for ForCqrs {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        self.0.applies(event_type, event_version)
    }

    fn upcast(&self, event: SerializedEvent) -> SerializedEvent {
        SerializedEvent {
            payload: (self.0.rewrite)(event.payload),
            event_version: self.0.to_version.to_owned(),
            ..event
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    /// An event whose field `name` was `title` at 1.0, and which gained `stock` at 2.0.
    #[derive(Debug, PartialEq, Deserialize)]
    enum ShelfEvent {
        Shelved { name: String, stock: u32 },
    }

    fn rename_title(mut v: Value) -> Value {
        if let Some(body) = v.get_mut("Shelved").and_then(Value::as_object_mut)
            && let Some(title) = body.remove("title")
        {
            body.insert("name".into(), title);
        }
        v
    }

    fn default_stock(mut v: Value) -> Value {
        if let Some(body) = v.get_mut("Shelved").and_then(Value::as_object_mut) {
            body.entry("stock").or_insert(json!(0));
        }
        v
    }

    impl Upcast for ShelfEvent {
        const UPCASTERS: &'static [Upcaster] = &[
            Upcaster { event_type: "Shelved", to_version: "1.1", rewrite: rename_title },
            Upcaster { event_type: "Shelved", to_version: "2.0", rewrite: default_stock },
        ];
    }

    #[test]
    fn an_old_event_goes_through_every_newer_upcaster_in_turn() {
        let v1 = r#"{"Shelved":{"title":"Scarf"}}"#;
        let v1_1 = r#"{"Shelved":{"name":"Scarf"}}"#;
        let v2 = r#"{"Shelved":{"name":"Scarf","stock":3}}"#;
        let scarf = |stock| ShelfEvent::Shelved { name: "Scarf".into(), stock };
        assert_eq!(decode::<ShelfEvent>("Shelved", "1.0", v1).expect("1.0"), scarf(0));
        assert_eq!(decode::<ShelfEvent>("Shelved", "1.1", v1_1).expect("1.1"), scarf(0));
        assert_eq!(decode::<ShelfEvent>("Shelved", "2.0", v2).expect("2.0"), scarf(3));
        // Without the upcasters, the old JSON does not decode.
        assert!(serde_json::from_str::<ShelfEvent>(v1).is_err());
    }

    #[test]
    fn cqrs_es_loads_through_the_same_upcasters() {
        let stored = SerializedEvent::new(
            "a".into(),
            1,
            "shelf".into(),
            "Shelved".into(),
            "1.0".into(),
            json!({"Shelved": {"title": "Scarf"}}),
            json!({}),
        );
        let event = cqrs_upcasters::<ShelfEvent>().iter().fold(stored, |event, upcaster| {
            if upcaster.can_upcast(&event.event_type, &event.event_version) { upcaster.upcast(event) } else { event }
        });
        assert_eq!(event.event_version, "2.0");
        assert_eq!(event.payload, json!({"Shelved": {"name": "Scarf", "stock": 0}}));
    }

    #[test]
    fn versions_compare_as_numbers_and_hand_written_ones_are_left_alone() {
        let upcaster = Upcaster { event_type: "Shelved", to_version: "1.10", rewrite: |v| v };
        assert!(upcaster.applies("Shelved", "1.9"));
        assert!(!upcaster.applies("Shelved", "1.10"));
        assert!(!upcaster.applies("Shelved", "2"));
        assert!(!upcaster.applies("Other", "1.0"));
        assert!(!upcaster.applies("Shelved", "v1"));
        assert!(!upcaster.applies("Shelved", "1.2.3.4"));
    }
}
