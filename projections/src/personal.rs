//! Opening personal data for the views (see `framecart_domain::personal`).
//!
//! A view holds a personal value in clear only while its subject's key exists, and keeps
//! the value's subject beside it: the subject's `PersonalDataErased` blanks it. A value
//! whose key is destroyed is read as erased (`None`), so a rebuild after an erasure brings
//! nothing back. Keys are read in the applying transaction (`data_keys`, written by the
//! command side) and kept for [`CACHE_FOR`]; a projection forgets a subject's key when it
//! applies the subject's erasure.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use framecart_domain::data_subject::{self, DataSubjectEvent};
use framecart_domain::log::{LoggedEvent, Namespace};
use framecart_domain::personal::{DataKey, MasterKey, Personal, Subject};
use serde::de::DeserializeOwned;
use sqlx::PgConnection;

use crate::runner::{ProjectionError, decode};

/// How long a key read from the table is used without reading it again.
pub const CACHE_FOR: Duration = Duration::from_secs(60);

/// Reads, unwraps and caches data keys.
pub struct KeyReader {
    master: MasterKey,
    cache: Mutex<HashMap<Subject, (Instant, Option<DataKey>)>>,
}

impl std::fmt::Debug for KeyReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyReader(..)")
    }
}

/// The keys of one batch's subjects.
#[derive(Default)]
pub struct Keys(HashMap<Subject, Option<DataKey>>);

impl Keys {
    /// The value of `personal`: in clear, or opened with its subject's key; `None` when
    /// its subject is erased.
    pub fn reveal<T: DeserializeOwned + Clone>(&self, personal: &Personal<T>) -> Option<T> {
        match personal {
            Personal::Clear(value) => Some(value.clone()),
            Personal::Sealed(sealed) => self.0.get(&sealed.subject)?.as_ref()?.open(sealed).ok(),
        }
    }
}

impl KeyReader {
    pub fn new(master: MasterKey) -> Self {
        Self { master, cache: Mutex::new(HashMap::new()) }
    }

    /// The keys of `subjects`, from the cache or read in `tx`. A destroyed, unknown or
    /// unreadable key is `None`.
    pub async fn keys<'s>(
        &self,
        tx: &mut PgConnection,
        subjects: impl IntoIterator<Item = &'s Subject>,
    ) -> Result<Keys, sqlx::Error> {
        let mut keys = HashMap::new();
        let mut missing = HashSet::new();
        // A batch of thousands of clicks has a handful of subjects (mostly the day's).
        let subjects: HashSet<&Subject> = subjects.into_iter().collect();
        {
            let cache = self.cache.lock().expect("the key cache is never poisoned");
            for subject in subjects {
                match cache.get(subject).filter(|(at, _)| at.elapsed() < CACHE_FOR) {
                    Some((_, key)) => {
                        keys.insert(subject.clone(), key.clone());
                    }
                    None => {
                        missing.insert(subject.as_str());
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(Keys(keys));
        }
        let asked: Vec<&str> = missing.into_iter().collect();
        let rows: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT subject, wrapped FROM data_keys WHERE subject = ANY($1)")
                .bind(&asked)
                .fetch_all(&mut *tx)
                .await?;
        let mut read: HashMap<Subject, Option<DataKey>> = HashMap::new();
        for asked in &asked {
            if let Ok(subject) = Subject::parse(asked) {
                read.insert(subject, None);
            }
        }
        for (subject, wrapped) in rows {
            let Ok(subject) = Subject::parse(&subject) else { continue };
            let key = wrapped.and_then(|w| self.master.unwrap(&subject, &w).ok());
            if key.is_none() {
                tracing::debug!(%subject, "personal data of an erased subject (or a key that does not unwrap)");
            }
            read.insert(subject, key);
        }
        let mut cache = self.cache.lock().expect("the key cache is never poisoned");
        cache.retain(|_, (at, _)| at.elapsed() < CACHE_FOR);
        for (subject, key) in read {
            cache.insert(subject.clone(), (Instant::now(), key.clone()));
            keys.insert(subject, key);
        }
        Ok(Keys(keys))
    }

    /// Forgets `subject`'s key (its erasure was applied).
    pub fn forget(&self, subject: &Subject) {
        self.cache.lock().expect("the key cache is never poisoned").remove(subject);
    }
}

/// `subjects`, and the subject of every erasure: what a view that holds personal data
/// reads on NATS 2.10 and later.
pub fn with_erasures(ns: &Namespace, mut subjects: Vec<String>) -> Vec<String> {
    subjects.push(ns.event_type_subject(data_subject::AGGREGATE_TYPE, data_subject::PERSONAL_DATA_ERASED));
    subjects
}

/// Whether an event (by its subject's parts) is an erasure.
pub fn is_erasure(aggregate_type: &str, event_type: &str) -> bool {
    aggregate_type == data_subject::AGGREGATE_TYPE && event_type == data_subject::PERSONAL_DATA_ERASED
}

/// The subject `event` erases, when it is an erasure.
pub fn erased_subject(event: &LoggedEvent, log_position: i64) -> Result<Option<Subject>, ProjectionError> {
    if !is_erasure(&event.aggregate_type, &event.event_type) {
        return Ok(None);
    }
    let DataSubjectEvent::PersonalDataErased(erased) = decode(event, log_position)?;
    Ok(Some(erased.subject))
}
