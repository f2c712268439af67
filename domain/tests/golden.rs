//! Golden files: each event type's stored JSON, pinned under `tests/golden/<aggregate
//! type>/<EventType>.json`, must still be read by today's code.
//!
//! Events are facts already written: renaming a variant or a field, or changing a type,
//! would leave stored history unreadable (a projection would set the events aside; an
//! aggregate would not load). Such a change fails here first; it then needs a new
//! event version and an upcaster (`framecart_domain::upcast`), and the old file stays as
//! it is. Every variant of every event enum must have its file: the variants are read
//! from the enums themselves, so a new event without a golden file fails too.
//!
//! Snapshots are pinned the same way: each aggregate type's state after its golden events,
//! as a snapshot stores it, under its `STATE_VERSION` (`tests/golden/snapshots/`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cqrs_es::DomainEvent;
use framecart_domain::snapshot::Snapshot;
use framecart_domain::upcast::{self, Upcast};
use framecart_domain::{click, data_subject, detection, order, payment, product, user, video};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::Value;

/// One golden file.
#[derive(Deserialize)]
struct Golden {
    event_version: String,
    payload: Value,
}

fn dir(aggregate_type: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(aggregate_type)
}

/// The variant names of an externally tagged enum, as serde knows them.
fn variants<E: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    #[derive(Debug)]
    struct Found(&'static [&'static str]);
    impl std::fmt::Display for Found {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }
    impl std::error::Error for Found {}
    impl de::Error for Found {
        fn custom<T: std::fmt::Display>(_: T) -> Self {
            Self(&[])
        }
    }
    struct Introspect;
    impl<'de> Deserializer<'de> for Introspect {
        type Error = Found;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
            Err(Found(&[]))
        }
        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _: &'static str,
            variants: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Found> {
            Err(Found(variants))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
        }
    }
    match E::deserialize(Introspect) {
        Err(Found(variants)) => variants,
        Ok(_) => unreachable!("nothing to deserialize from"),
    }
}

/// An aggregate type's golden files in file-name order, each with its event type and
/// read or why it could not be. `<EventType>.json` is the first version stored;
/// `<EventType>@<version>.json` a later one (the older files stay as they are).
fn golden_files(aggregate_type: &str) -> Vec<(String, Result<Golden, String>)> {
    let dir = dir(aggregate_type);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut names = names;
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let path = dir.join(format!("{name}.json"));
            let event_type = name.split('@').next().unwrap_or_default().to_owned();
            let golden = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
                .map_err(|e| format!("{}: unreadable golden file: {e}", path.display()));
            (event_type, golden)
        })
        .collect()
}

/// Checks one aggregate's event enum against its golden files; returns what is wrong.
fn check<E: Upcast + DomainEvent + serde::Serialize>(aggregate_type: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let variants: BTreeSet<&str> = variants::<E>().iter().copied().collect();
    assert!(!variants.is_empty(), "{aggregate_type}: no variants found");
    let files = golden_files(aggregate_type);
    let stored: BTreeSet<&str> = files.iter().map(|(event_type, _)| event_type.as_str()).collect();
    for variant in &variants {
        if !stored.contains(variant) {
            problems.push(format!("{aggregate_type}/{variant}.json: missing (a new event needs its golden file)"));
        }
    }
    for (event_type, golden) in &files {
        let golden = match golden {
            Ok(golden) => golden,
            Err(e) => {
                problems.push(e.clone());
                continue;
            }
        };
        let stored = golden.payload.to_string();
        let event: E = match upcast::decode(event_type, &golden.event_version, &stored) {
            Ok(event) => event,
            Err(e) => {
                problems
                    .push(format!("{aggregate_type}/{event_type} {}: no longer decodes: {e}", golden.event_version));
                continue;
            }
        };
        if event.event_type() != *event_type {
            problems.push(format!("{aggregate_type}/{event_type}: decodes as {}", event.event_type()));
        }
        // Written by today's version: it must also be written back the same, so a field
        // that was renamed but is optional (and would silently read as absent) fails.
        if golden.event_version != event.event_version() {
            let today = event.event_version();
            let pinned =
                files.iter().any(|(t, g)| t == event_type && g.as_ref().is_ok_and(|g| g.event_version == today));
            if !pinned {
                problems.push(format!(
                    "{aggregate_type}/{event_type}@{today}.json: missing (a new version needs its golden file)"
                ));
            }
        } else {
            match serde_json::to_value(&event) {
                Ok(again) if again == golden.payload => {}
                Ok(again) => problems.push(format!(
                    "{aggregate_type}/{event_type}: today's code writes it differently:\n  stored: {}\n  now:    {again}",
                    golden.payload
                )),
                Err(e) => problems.push(format!("{aggregate_type}/{event_type}: cannot be written again: {e}")),
            }
        }
    }
    problems
}

#[test]
fn every_stored_event_type_still_decodes_from_its_golden_file() {
    let problems: Vec<String> = [
        check::<click::ClickEvent>(click::AGGREGATE_TYPE),
        check::<video::VideoEvent>(video::AGGREGATE_TYPE),
        check::<detection::DetectionEvent>(detection::AGGREGATE_TYPE),
        check::<product::ProductEvent>(product::AGGREGATE_TYPE),
        check::<user::UserEvent>(user::AGGREGATE_TYPE),
        check::<order::OrderEvent>(order::AGGREGATE_TYPE),
        check::<payment::PaymentEvent>(payment::AGGREGATE_TYPE),
        check::<data_subject::DataSubjectEvent>(data_subject::AGGREGATE_TYPE),
    ]
    .concat();
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn a_renamed_field_or_variant_is_caught() {
    // The check itself must be able to fail: a stored event with a field renamed.
    let stored = r#"{"ProductCreated":{"renamed":1}}"#;
    assert!(upcast::decode::<product::ProductEvent>("ProductCreated", "1.0", stored).is_err());
    let unknown = r#"{"ProductRenamedVariant":{}}"#;
    assert!(upcast::decode::<product::ProductEvent>("ProductRenamedVariant", "1.0", unknown).is_err());
    assert!(variants::<product::ProductEvent>().contains(&"ProductCreated"));
}

/// A snapshot's pinned state: every golden event of an aggregate type folded in file-name
/// order, under the state version that wrote it (`tests/golden/snapshots/<type>.json`).
#[derive(Deserialize, serde::Serialize)]
struct GoldenState {
    state_version: u32,
    state: Value,
}

/// Checks that today's fold of an aggregate type's golden events, as a snapshot stores it,
/// is the pinned state of today's [`Snapshot::STATE_VERSION`]: a change to the state's
/// fields or to an `apply` rule would make stored snapshots read wrong, and must raise the
/// version. `FRAMECART_BLESS_SNAPSHOTS=1` writes the file of a new version (only then).
fn check_state<A>(aggregate_type: &str) -> Vec<String>
where
    A: Snapshot + serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    A::Event: Upcast,
{
    let mut state = A::default();
    for (event_type, golden) in golden_files(aggregate_type) {
        let golden = match golden {
            Ok(golden) => golden,
            Err(e) => return vec![e],
        };
        match upcast::decode::<A::Event>(&event_type, &golden.event_version, &golden.payload.to_string()) {
            Ok(event) => state.apply(event),
            Err(e) => return vec![format!("{aggregate_type}/{event_type}: {e}")],
        }
    }
    let today = serde_json::to_value(&state).expect("a state is JSON");
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/snapshots").join(format!("{aggregate_type}.json"));
    let pinned: Option<GoldenState> =
        std::fs::read_to_string(&path).ok().and_then(|text| serde_json::from_str(&text).ok());
    let bless = std::env::var_os("FRAMECART_BLESS_SNAPSHOTS").is_some();
    match pinned {
        Some(pinned) if pinned.state_version == A::STATE_VERSION => {
            let mut problems = Vec::new();
            if pinned.state != today {
                problems.push(format!(
                    "{aggregate_type}: today's state differs from the pinned state of version {}: raise \
                     STATE_VERSION (stored snapshots would be read wrong), then FRAMECART_BLESS_SNAPSHOTS=1\n  pinned: {}\n  today:  {today}",
                    pinned.state_version, pinned.state
                ));
            }
            match serde_json::from_value::<A>(pinned.state.clone()) {
                Ok(read) if read == state => {}
                Ok(read) => problems.push(format!("{aggregate_type}: the pinned state reads as {read:?}")),
                Err(e) => problems.push(format!("{aggregate_type}: the pinned state does not decode: {e}")),
            }
            problems
        }
        _ if bless => {
            let golden = GoldenState { state_version: A::STATE_VERSION, state: today };
            std::fs::create_dir_all(path.parent().expect("a folder")).expect("mkdir");
            std::fs::write(&path, serde_json::to_string_pretty(&golden).expect("json") + "\n").expect("write");
            Vec::new()
        }
        Some(pinned) => vec![format!(
            "{aggregate_type}: STATE_VERSION is {} but the pinned state is of {}: FRAMECART_BLESS_SNAPSHOTS=1 writes it",
            A::STATE_VERSION,
            pinned.state_version
        )],
        None => vec![format!("{}: missing: FRAMECART_BLESS_SNAPSHOTS=1 writes it", path.display())],
    }
}

#[test]
fn every_aggregate_state_is_pinned_under_its_snapshot_version() {
    let problems: Vec<String> = [
        check_state::<click::Click>(click::AGGREGATE_TYPE),
        check_state::<video::Video>(video::AGGREGATE_TYPE),
        check_state::<detection::DetectionRun>(detection::AGGREGATE_TYPE),
        check_state::<product::Product>(product::AGGREGATE_TYPE),
        check_state::<user::User>(user::AGGREGATE_TYPE),
        check_state::<order::Order>(order::AGGREGATE_TYPE),
        check_state::<payment::Payment>(payment::AGGREGATE_TYPE),
        check_state::<data_subject::DataSubject>(data_subject::AGGREGATE_TYPE),
    ]
    .concat();
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}
