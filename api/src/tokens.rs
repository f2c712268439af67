//! Bearer tokens: `fc2.<user>.<issued µs>.<expires s>.<HMAC-SHA256>`, signed with the
//! installation's secret, checked in constant time.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// The secret that signs tokens.
#[derive(Clone)]
pub struct TokenKey(Vec<u8>);

impl TokenKey {
    /// From the configured secret, or a random one (tokens then die with the process).
    pub fn new(secret: Option<&str>) -> Self {
        match secret {
            Some(s) => Self(s.as_bytes().to_vec()),
            None => {
                let mut bytes = Vec::with_capacity(32);
                bytes.extend_from_slice(Uuid::new_v4().as_bytes());
                bytes.extend_from_slice(Uuid::new_v4().as_bytes());
                Self(bytes)
            }
        }
    }

    fn mac(&self, message: &str) -> Vec<u8> {
        // HMAC takes keys of any length.
        let mut mac = HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!("HMAC accepts any key"));
        mac.update(message.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// A token for `user_id`, valid from `issued` for `ttl`.
    pub fn issue(&self, user_id: Uuid, issued: DateTime<Utc>, ttl: chrono::Duration) -> (String, DateTime<Utc>) {
        let expires = issued + ttl;
        let body = format!("fc2.{user_id}.{}.{}", issued.timestamp_micros(), expires.timestamp());
        let mac = hex::encode(self.mac(&body));
        (format!("{body}.{mac}"), expires)
    }

    /// The user and issue time of a well-signed token that has not expired.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Option<(Uuid, DateTime<Utc>)> {
        let (body, mac) = token.rsplit_once('.')?;
        let expected = self.mac(body);
        let given = hex::decode(mac).ok()?;
        if !bool::from(expected.ct_eq(&given)) {
            return None;
        }
        let mut parts = body.split('.');
        let (Some(version), Some(user), Some(issued), Some(expires), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let user_id = Uuid::parse_str(user).ok()?;
        let issued = match version {
            "fc2" => DateTime::from_timestamp_micros(issued.parse().ok()?)?,
            "fc1" => DateTime::from_timestamp(issued.parse().ok()?, 0)?,
            _ => return None,
        };
        let expires = DateTime::from_timestamp(expires.parse().ok()?, 0)?;
        (now < expires).then_some((user_id, issued))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_signed_and_expire() {
        let key = TokenKey::new(Some("a secret of some length, for tests only"));
        let user = Uuid::from_u128(7);
        let now = Utc::now();
        let (token, expires) = key.issue(user, now, chrono::Duration::hours(1));
        assert_eq!(key.verify(&token, now).map(|(u, _)| u), Some(user));
        assert!(key.verify(&token, expires).is_none(), "expired");
        let other = TokenKey::new(Some("another secret"));
        assert!(other.verify(&token, now).is_none(), "another key");
        let forged = token.replacen(&user.to_string(), &Uuid::from_u128(8).to_string(), 1);
        assert!(key.verify(&forged, now).is_none(), "another user");
        assert!(key.verify("fc1.garbage", now).is_none());
    }

    #[test]
    fn a_token_carries_its_issue_time_to_the_microsecond() {
        let key = TokenKey::new(Some("a secret of some length, for tests only"));
        let issued = DateTime::from_timestamp_micros(1_765_000_000_123_456).expect("time");
        let (token, _) = key.issue(Uuid::from_u128(7), issued, chrono::Duration::hours(1));
        assert!(token.starts_with("fc2."));
        assert_eq!(key.verify(&token, issued).map(|(_, at)| at), Some(issued));
    }

    #[test]
    fn first_form_tokens_still_verify_with_their_second() {
        let key = TokenKey::new(Some("a secret of some length, for tests only"));
        let user = Uuid::from_u128(7);
        let body = format!("fc1.{user}.1765000000.{}", i64::MAX / 1_000_000_000);
        let token = format!("{body}.{}", hex::encode(key.mac(&body)));
        let now = DateTime::from_timestamp(1_765_000_001, 0).expect("time");
        assert_eq!(key.verify(&token, now), Some((user, DateTime::from_timestamp(1_765_000_000, 0).expect("time"))));
        let unknown = body.replacen("fc1.", "fc9.", 1);
        let token = format!("{unknown}.{}", hex::encode(key.mac(&unknown)));
        assert!(key.verify(&token, now).is_none(), "an unknown form, however well signed");
    }
}
