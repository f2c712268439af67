//! The user aggregate: an account, identified by a random id. Its email address is
//! personal data, sealed under the account's own key (see [`crate::personal`]); the
//! lookup from an address to its account, and the password hash, live outside the log
//! (the command side's `accounts` table), so erasing an account leaves no address or
//! hash in any event. Accounts registered before (event version 1.0) were identified by
//! a digest of their address, and their events hold it and the hash in clear.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::personal::{Personal, Sealed, stored_in_clear};
use crate::upcast::Upcaster;

mod password;
pub use password::{MIN_DISTINCT_CHARS, PASSWORD_LENGTH, Password, PasswordError};

pub const AGGREGATE_TYPE: &str = "user";

/// What a user may do. One installation is one shop: merchants are its staff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Merchant,
    Auditor,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Self::Viewer),
            "merchant" => Some(Self::Merchant),
            "auditor" => Some(Self::Auditor),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Merchant => "merchant",
            Self::Auditor => "auditor",
            Self::Admin => "admin",
        }
    }
}

/// An email address, trimmed and lower-cased.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("that is not an email address")]
pub struct EmailError;

impl Email {
    pub fn parse(s: &str) -> Result<Self, EmailError> {
        let s = s.trim().to_lowercase();
        let (local, domain) = s.split_once('@').ok_or(EmailError)?;
        let ok = !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && s.len() <= 254
            && !domain.contains('@')
            && s.chars().all(|c| c.is_ascii_graphic() || !c.is_ascii());
        ok.then_some(Self(s)).ok_or(EmailError)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

impl TryFrom<String> for Email {
    type Error = EmailError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> Self {
        e.0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    Register(Register),
    GrantRole {
        role: Role,
        by: String,
    },
    RevokeRole {
        role: Role,
        by: String,
    },
    /// Every token issued before `at` stops working (a log-out everywhere).
    RevokeSessions {
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Register {
    pub user_id: Uuid,
    /// Sealed under the account's key.
    pub email: Sealed<Email>,
    pub roles: BTreeSet<Role>,
    pub registered_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UserEvent {
    UserRegistered(UserRegistered),
    RoleGranted(RoleChanged),
    RoleRevoked(RoleChanged),
    SessionsRevoked(SessionsRevoked),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRegistered {
    pub user_id: Uuid,
    /// Sealed since 2.0; in clear before, beside the password hash that 2.0 no longer
    /// carries.
    pub email: Personal<Email>,
    pub roles: BTreeSet<Role>,
    pub registered_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleChanged {
    pub user_id: Uuid,
    pub role: Role,
    /// Who did it: `user:<id>` or `system:<component>`.
    pub by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionsRevoked {
    pub user_id: Uuid,
    pub at: DateTime<Utc>,
}

/// The version of `UserRegistered` written today; the other events are at 1.0.
pub const USER_REGISTERED_VERSION: &str = "2.0";

impl crate::upcast::Upcast for UserEvent {
    const UPCASTERS: &'static [Upcaster] =
        &[Upcaster { event_type: "UserRegistered", to_version: USER_REGISTERED_VERSION, rewrite: email_in_clear }];
}

/// 1.0 → 2.0: the address was in clear (read as [`Personal::Clear`]: such an event cannot
/// be shredded), and the password hash is no longer part of the event.
fn email_in_clear(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(body) = v.get_mut("UserRegistered").and_then(serde_json::Value::as_object_mut) {
        body.remove("password_hash");
    }
    stored_in_clear(v, "UserRegistered", &["email"])
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        match self {
            Self::UserRegistered(_) => "UserRegistered",
            Self::RoleGranted(_) => "RoleGranted",
            Self::RoleRevoked(_) => "RoleRevoked",
            Self::SessionsRevoked(_) => "SessionsRevoked",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            Self::UserRegistered(_) => USER_REGISTERED_VERSION,
            Self::RoleGranted(_) | Self::RoleRevoked(_) | Self::SessionsRevoked(_) => "1.0",
        }
        .to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("an account with this email address exists already")]
    AlreadyRegistered,
    #[error("no such account")]
    NotRegistered,
    #[error("a new account needs at least one role")]
    NoRole,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    registered: Option<UserRegistered>,
    roles: BTreeSet<Role>,
    sessions_valid_after: Option<DateTime<Utc>>,
}

impl User {
    pub fn user_id(&self) -> Option<Uuid> {
        self.registered.as_ref().map(|r| r.user_id)
    }

    pub fn roles(&self) -> &BTreeSet<Role> {
        &self.roles
    }

    pub fn sessions_valid_after(&self) -> Option<DateTime<Utc>> {
        self.sessions_valid_after
    }

    pub fn decide(&self, command: UserCommand) -> Result<Vec<UserEvent>, UserError> {
        if let UserCommand::Register(r) = command {
            if self.registered.is_some() {
                return Err(UserError::AlreadyRegistered);
            }
            if r.roles.is_empty() {
                return Err(UserError::NoRole);
            }
            return Ok(vec![UserEvent::UserRegistered(UserRegistered {
                user_id: r.user_id,
                email: Personal::Sealed(r.email),
                roles: r.roles,
                registered_at: r.registered_at,
            })]);
        }
        let user_id = self.user_id().ok_or(UserError::NotRegistered)?;
        Ok(match command {
            UserCommand::Register(_) => vec![],
            UserCommand::GrantRole { role, by } if !self.roles.contains(&role) => {
                vec![UserEvent::RoleGranted(RoleChanged { user_id, role, by })]
            }
            UserCommand::RevokeRole { role, by } if self.roles.contains(&role) => {
                vec![UserEvent::RoleRevoked(RoleChanged { user_id, role, by })]
            }
            UserCommand::RevokeSessions { at } => vec![UserEvent::SessionsRevoked(SessionsRevoked { user_id, at })],
            UserCommand::GrantRole { .. } | UserCommand::RevokeRole { .. } => vec![],
        })
    }
}

impl crate::snapshot::Snapshot for User {
    /// 2: the address is sealed, and the password hash is not kept.
    const STATE_VERSION: u32 = 2;
}

impl Aggregate for User {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;
    type Services = ();

    async fn handle(&mut self, command: Self::Command, _: &(), sink: &EventSink<Self>) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            UserEvent::UserRegistered(e) => {
                self.roles = e.roles.clone();
                self.registered = Some(e);
            }
            UserEvent::RoleGranted(e) => {
                self.roles.insert(e.role);
            }
            UserEvent::RoleRevoked(e) => {
                self.roles.remove(&e.role);
            }
            UserEvent::SessionsRevoked(e) => self.sessions_valid_after = Some(e.at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::personal::{DataKey, KEY_LEN, NONCE_LEN, Subject};
    use chrono::TimeZone;
    use cqrs_es::test::TestFramework;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).single().expect("time")
    }

    fn email() -> Sealed<Email> {
        let email = Email::parse("Ann@Example.com").expect("email");
        DataKey::from_bytes([3; KEY_LEN]).seal(&Subject::user(Uuid::from_u128(1)), &email, [4; NONCE_LEN])
    }

    fn registered() -> UserEvent {
        UserEvent::UserRegistered(UserRegistered {
            user_id: Uuid::from_u128(1),
            email: Personal::Sealed(email()),
            roles: BTreeSet::from([Role::Viewer]),
            registered_at: at(),
        })
    }

    fn register() -> UserCommand {
        UserCommand::Register(Register {
            user_id: Uuid::from_u128(1),
            email: email(),
            roles: BTreeSet::from([Role::Viewer]),
            registered_at: at(),
        })
    }

    #[test]
    fn a_registration_of_1_0_reads_with_its_address_in_clear_and_without_its_hash() {
        let stored = r#"{"UserRegistered":{"user_id":"00000000-0000-0000-0000-000000000001","email":"ann@example.com",
            "password_hash":"$argon2id$v=19$…","roles":["viewer"],"registered_at":"2026-11-26T12:00:00Z"}}"#;
        let UserEvent::UserRegistered(e) =
            crate::upcast::decode::<UserEvent>("UserRegistered", "1.0", stored).expect("1.0 reads")
        else {
            panic!("a registration")
        };
        assert_eq!(e.email, Personal::Clear(Email::parse("ann@example.com").expect("email")));
        assert!(!serde_json::to_string(&e).expect("json").contains("argon2"));
    }

    #[test]
    fn an_address_registers_once() {
        TestFramework::<User>::with(())
            .given_no_previous_events()
            .when(register())
            .then_expect_events(vec![registered()]);
        TestFramework::<User>::with(())
            .given(vec![registered()])
            .when(register())
            .then_expect_error(UserError::AlreadyRegistered);
    }

    #[test]
    fn roles_are_granted_and_revoked_once() {
        let grant = UserCommand::GrantRole { role: Role::Merchant, by: "user:admin".into() };
        let granted = UserEvent::RoleGranted(RoleChanged {
            user_id: Uuid::from_u128(1),
            role: Role::Merchant,
            by: "user:admin".into(),
        });
        TestFramework::<User>::with(())
            .given(vec![registered()])
            .when(grant.clone())
            .then_expect_events(vec![granted.clone()]);
        TestFramework::<User>::with(()).given(vec![registered(), granted]).when(grant).then_expect_events(vec![]);
        TestFramework::<User>::with(())
            .given_no_previous_events()
            .when(UserCommand::GrantRole { role: Role::Admin, by: "x".into() })
            .then_expect_error(UserError::NotRegistered);
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse("  Ann@Example.COM ").map(String::from), Ok("ann@example.com".into()));
        for bad in ["", "ann", "ann@", "@example.com", "ann@example", "a b@example.com", "ann@@example.com"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
