//! Personal data in an append-only history: sealed under a key per data subject, erased by
//! destroying that key (crypto-shredding).
//!
//! Events are never changed or deleted, and they are copied to the log, to views, to
//! files and to backups. So a person's data is never written to an event in clear: it is
//! a [`Personal`] value, sealed with AES-256-GCM under a [`DataKey`] of its
//! [`Subject`]. Erasing a subject destroys its key; every copy of the data, wherever it
//! went, then stays ciphertext for good, and the events and their hash chain are
//! untouched.
//!
//! Promises:
//! - A sealed value opens only with its subject's key and only as that subject's: the
//!   subject is the AEAD's associated data, so a value copied under another subject does
//!   not open.
//! - Ids stay clear and are never derived from personal data: a subject is named by an
//!   account's random id or by a retention period, nothing else.
//! - Data keys are stored wrapped (sealed) by the installation's [`MasterKey`], with the
//!   subject as associated data as well.
//!
//! This module is pure: the nonces and keys it uses come from its callers' random source.

use std::fmt;
use std::marker::PhantomData;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Bytes of an AES-GCM nonce. Nonces are random: at most 2^32 values are sealed under one
/// key before a repeat becomes likelier than 2^-32 (NIST SP 800-38D), far above a day's
/// clicks or one account's data.
pub const NONCE_LEN: usize = 12;
pub const KEY_LEN: usize = 32;

/// Whose personal data this is: the unit that has a key and is erased as a whole.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subject(String);

/// What a subject is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    /// A signed-in user: their account's data, erased on request.
    User(Uuid),
    /// Anonymous viewers on one day (UTC): erased when the retention period has passed.
    Anonymous(NaiveDate),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a data subject is `user-<uuid>` or `anonymous-<YYYY-MM-DD>`")]
pub struct SubjectError;

const USER: &str = "user-";
const ANONYMOUS: &str = "anonymous-";

impl Subject {
    pub fn user(id: Uuid) -> Self {
        Self(format!("{USER}{}", id.hyphenated()))
    }

    pub fn anonymous(day: NaiveDate) -> Self {
        Self(format!("{ANONYMOUS}{}", day.format("%Y-%m-%d")))
    }

    /// Also a valid NATS subject token and aggregate id: no dots, spaces or wildcards.
    pub fn parse(s: &str) -> Result<Self, SubjectError> {
        if let Some(id) = s.strip_prefix(USER) {
            let id = Uuid::try_parse(id).map_err(|_| SubjectError)?;
            return Ok(Self::user(id));
        }
        if let Some(day) = s.strip_prefix(ANONYMOUS) {
            let day = NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| SubjectError)?;
            return Ok(Self::anonymous(day));
        }
        Err(SubjectError)
    }

    pub fn kind(&self) -> SubjectKind {
        if let Some(id) = self.0.strip_prefix(USER).and_then(|id| Uuid::try_parse(id).ok()) {
            return SubjectKind::User(id);
        }
        let day = self.0.strip_prefix(ANONYMOUS).and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        SubjectKind::Anonymous(day.expect("a Subject is parsed"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Subject({})", self.0)
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Subject {
    type Error = SubjectError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Subject> for String {
    fn from(s: Subject) -> Self {
        s.0
    }
}

/// A subject's data key. Never printed, never stored unwrapped.
#[derive(Clone)]
pub struct DataKey([u8; KEY_LEN]);

impl DataKey {
    /// From random bytes of the caller's.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0.into())
    }

    /// Seals `value` (as JSON) for `subject` with this key and a fresh random `nonce`.
    pub fn seal<T: Serialize>(&self, subject: &Subject, value: &T, nonce: [u8; NONCE_LEN]) -> Sealed<T> {
        let plain = serde_json::to_vec(value).expect("a personal value serialises");
        Sealed { subject: subject.clone(), data: seal(&self.cipher(), subject, &plain, nonce), of: PhantomData }
    }

    /// The value, when it was sealed under this key for its subject.
    pub fn open<T: DeserializeOwned>(&self, sealed: &Sealed<T>) -> Result<T, Unreadable> {
        let plain = open(&self.cipher(), &sealed.subject, &sealed.data)?;
        serde_json::from_slice(&plain).map_err(|_| Unreadable)
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// The installation's key: it wraps every data key. From `FRAMECART_MASTER_KEY`.
#[derive(Clone)]
pub struct MasterKey([u8; KEY_LEN]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a master key is 32 bytes, written as 64 hex digits or in standard base64")]
pub struct MasterKeyError;

impl MasterKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// 64 hex digits, or standard base64 (with or without padding).
    pub fn parse(s: &str) -> Result<Self, MasterKeyError> {
        let s = s.trim();
        let bytes = if s.len() == 2 * KEY_LEN && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..KEY_LEN).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16)).collect::<Result<Vec<u8>, _>>().ok()
        } else {
            BASE64.decode(s).ok().or_else(|| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s).ok())
        };
        bytes.and_then(|b| <[u8; KEY_LEN]>::try_from(b).ok()).map(Self).ok_or(MasterKeyError)
    }

    /// `key` sealed for storage beside `subject`.
    pub fn wrap(&self, subject: &Subject, key: &DataKey, nonce: [u8; NONCE_LEN]) -> String {
        seal(&Aes256Gcm::new(&self.0.into()), subject, &key.0, nonce)
    }

    /// The key stored beside `subject`; [`Unreadable`] under another master key.
    pub fn unwrap(&self, subject: &Subject, wrapped: &str) -> Result<DataKey, Unreadable> {
        let plain = open(&Aes256Gcm::new(&self.0.into()), subject, wrapped)?;
        <[u8; KEY_LEN]>::try_from(plain.as_slice()).map(DataKey).map_err(|_| Unreadable)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Sealed data that cannot be read with the key given: another key, another subject, or
/// changed bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the sealed value does not open with this key")]
pub struct Unreadable;

/// base64(nonce ‖ ciphertext ‖ tag), the subject as associated data.
fn seal(cipher: &Aes256Gcm, subject: &Subject, plain: &[u8], nonce: [u8; NONCE_LEN]) -> String {
    let payload = Payload { msg: plain, aad: subject.as_str().as_bytes() };
    let sealed = cipher.encrypt(Nonce::from_slice(&nonce), payload).expect("AES-GCM seals any length we store");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    BASE64.encode(out)
}

fn open(cipher: &Aes256Gcm, subject: &Subject, data: &str) -> Result<Vec<u8>, Unreadable> {
    let bytes = BASE64.decode(data).map_err(|_| Unreadable)?;
    if bytes.len() < NONCE_LEN {
        return Err(Unreadable);
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let payload = Payload { msg: sealed, aad: subject.as_str().as_bytes() };
    cipher.decrypt(Nonce::from_slice(nonce), payload).map_err(|_| Unreadable)
}

/// A personal value in an event: sealed, or in clear in an event written before personal
/// data was sealed (read through the event's upcaster; such a value cannot be shredded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", bound(serialize = "T: Serialize", deserialize = "T: DeserializeOwned"))]
pub enum Personal<T> {
    Clear(T),
    Sealed(Sealed<T>),
}

impl<T> Personal<T> {
    /// The subject whose key opens it; none for a value in clear.
    pub fn subject(&self) -> Option<&Subject> {
        match self {
            Self::Clear(_) => None,
            Self::Sealed(s) => Some(&s.subject),
        }
    }
}

/// A value sealed under its subject's key. `T` is what it opens to.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed<T> {
    pub subject: Subject,
    /// base64(nonce ‖ ciphertext ‖ tag).
    pub data: String,
    #[serde(skip)]
    of: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Sealed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({})", self.subject)
    }
}

/// Every sealed value in a stored event's JSON, as (JSON pointer, subject), in document
/// order: what an auditor is shown beside the payload, which stays as stored (its hash
/// covers it).
pub fn sealed_fields(payload: &serde_json::Value) -> Vec<(String, Subject)> {
    fn walk(value: &serde_json::Value, at: &mut String, found: &mut Vec<(String, Subject)>) {
        match value {
            serde_json::Value::Object(map) => {
                if let (1, Some(sealed)) = (map.len(), map.get("sealed"))
                    && let Some(subject) = sealed.get("subject").and_then(|s| s.as_str())
                    && let Ok(subject) = Subject::parse(subject)
                {
                    found.push((at.clone(), subject));
                    return;
                }
                for (key, value) in map {
                    let len = at.len();
                    at.push('/');
                    at.push_str(&key.replace('~', "~0").replace('/', "~1"));
                    walk(value, at, found);
                    at.truncate(len);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, value) in items.iter().enumerate() {
                    let len = at.len();
                    at.push_str(&format!("/{i}"));
                    walk(value, at, found);
                    at.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(payload, &mut String::new(), &mut found);
    found
}

/// An upcaster's rewrite of an event whose `fields` were stored in clear (before they
/// were sealed): in the body of `event_type`, each value `v` becomes `{"clear": v}`, read
/// as [`Personal::Clear`]; an absent or null one stays as it is.
pub fn stored_in_clear(mut event: serde_json::Value, event_type: &str, fields: &[&str]) -> serde_json::Value {
    if let Some(body) = event.get_mut(event_type).and_then(serde_json::Value::as_object_mut) {
        for field in fields {
            if let Some(value) = body.get_mut(*field).filter(|value| !value.is_null()) {
                *value = serde_json::json!({ "clear": value.take() });
            }
        }
    }
    event
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 6).expect("a date")
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_and_subject_only() {
        let subject = Subject::anonymous(day());
        let key = DataKey::from_bytes([7; KEY_LEN]);
        let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
        let sealed = key.seal(&subject, &ip, [1; NONCE_LEN]);
        assert_eq!(key.open(&sealed), Ok(ip));
        assert!(!sealed.data.contains("203.0.113.9"));
        assert_eq!(DataKey::from_bytes([8; KEY_LEN]).open(&sealed), Err(Unreadable));
        let moved = Sealed::<IpAddr> { subject: Subject::anonymous(day().succ_opt().expect("a day")), ..sealed };
        assert_eq!(key.open(&moved), Err(Unreadable), "copied under another subject, it does not open");
    }

    #[test]
    fn a_data_key_unwraps_only_with_its_master_key_and_subject() {
        let subject = Subject::user(Uuid::from_u128(5));
        let (master, key) = (MasterKey::from_bytes([3; KEY_LEN]), DataKey::from_bytes([9; KEY_LEN]));
        let wrapped = master.wrap(&subject, &key, [2; NONCE_LEN]);
        assert_eq!(master.unwrap(&subject, &wrapped).map(|k| k.0), Ok(key.0));
        assert!(MasterKey::from_bytes([4; KEY_LEN]).unwrap(&subject, &wrapped).is_err());
        assert!(master.unwrap(&Subject::user(Uuid::from_u128(6)), &wrapped).is_err());
    }

    #[test]
    fn a_master_key_is_64_hex_digits_or_base64_of_32_bytes() {
        let hex = "00".repeat(31) + "ff";
        assert_eq!(MasterKey::parse(&hex).map(|k| k.0[31]), Ok(0xff));
        let b64 = BASE64.encode([5u8; KEY_LEN]);
        assert_eq!(MasterKey::parse(&b64).map(|k| k.0), Ok([5; KEY_LEN]));
        assert_eq!(MasterKey::parse(b64.trim_end_matches('=')).map(|k| k.0), Ok([5; KEY_LEN]));
        for bad in ["", "abc", &"0".repeat(63), &BASE64.encode([5u8; 31]), &"g".repeat(64)] {
            assert_eq!(MasterKey::parse(bad).map(|_| ()), Err(MasterKeyError), "{bad:?}");
        }
    }

    #[test]
    fn subjects_parse_and_are_subject_tokens() {
        let user = Subject::user(Uuid::from_u128(1));
        assert_eq!(Subject::parse(user.as_str()), Ok(user.clone()));
        assert_eq!(user.kind(), SubjectKind::User(Uuid::from_u128(1)));
        let anonymous = Subject::anonymous(day());
        assert_eq!(anonymous.as_str(), "anonymous-2026-12-06");
        assert_eq!(anonymous.kind(), SubjectKind::Anonymous(day()));
        for bad in ["user-x", "anonymous-2026-13-01", "1.2.3.4", "", "user-"] {
            assert_eq!(Subject::parse(bad), Err(SubjectError), "{bad:?}");
        }
        for s in [user, anonymous] {
            assert!(!s.as_str().contains(['.', '*', '>', ' ']));
        }
    }

    #[test]
    fn sealed_fields_are_found_by_pointer() {
        let key = DataKey::from_bytes([7; KEY_LEN]);
        let subject = Subject::anonymous(day());
        let sealed =
            serde_json::to_value(Personal::Sealed(key.seal(&subject, &"x".to_owned(), [1; NONCE_LEN]))).expect("json");
        let payload = serde_json::json!({"ClickRecorded": {"client_ip": sealed, "x": 1, "list": [0, sealed]}});
        let found = sealed_fields(&payload);
        let pointers: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(pointers, ["/ClickRecorded/client_ip", "/ClickRecorded/list/1"]);
        assert!(found.iter().all(|(_, s)| *s == subject));
        assert!(sealed_fields(&serde_json::json!({"a": {"sealed": "not a value"}})).is_empty());
    }

    #[test]
    fn personal_values_are_tagged_sealed_or_clear_in_json() {
        let key = DataKey::from_bytes([7; KEY_LEN]);
        let sealed = Personal::Sealed(key.seal(&Subject::anonymous(day()), &"cookie-1".to_owned(), [1; NONCE_LEN]));
        let json = serde_json::to_value(&sealed).expect("json");
        assert_eq!(json["sealed"]["subject"], "anonymous-2026-12-06");
        assert_eq!(serde_json::from_value::<Personal<String>>(json).expect("back"), sealed);
        let old = serde_json::json!({"E": {"a": "c", "b": null}});
        let upcast = stored_in_clear(old, "E", &["a", "b", "missing"]);
        assert_eq!(upcast, serde_json::json!({"E": {"a": {"clear": "c"}, "b": null}}));
        let clear: Personal<String> = serde_json::from_value(upcast["E"]["a"].clone()).expect("clear");
        assert_eq!(clear, Personal::Clear("c".to_owned()));
    }
}
