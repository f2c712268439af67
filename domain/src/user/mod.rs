//! The user aggregate: an account, identified by a digest of its email address (so one
//! address is one account, whatever the order of concurrent registrations). Passwords are
//! hashed before the command is built; the aggregate only keeps the hash.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
    pub email: Email,
    /// An Argon2 PHC string; never the password.
    pub password_hash: String,
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
    pub email: Email,
    pub password_hash: String,
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

/// No stored shape has changed yet: see [`crate::upcast`] for how one would.
impl crate::upcast::Upcast for UserEvent {}

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
        "1.0".to_owned()
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

    pub fn password_hash(&self) -> Option<&str> {
        self.registered.as_ref().map(|r| r.password_hash.as_str())
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
                email: r.email,
                password_hash: r.password_hash,
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
    const STATE_VERSION: u32 = 1;
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
    use chrono::TimeZone;
    use cqrs_es::test::TestFramework;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).single().expect("time")
    }

    fn registered() -> UserEvent {
        UserEvent::UserRegistered(UserRegistered {
            user_id: Uuid::from_u128(1),
            email: Email::parse("Ann@Example.com").expect("email"),
            password_hash: "$argon2id$…".into(),
            roles: BTreeSet::from([Role::Viewer]),
            registered_at: at(),
        })
    }

    fn register() -> UserCommand {
        UserCommand::Register(Register {
            user_id: Uuid::from_u128(1),
            email: Email::parse("ann@example.com").expect("email"),
            password_hash: "$argon2id$…".into(),
            roles: BTreeSet::from([Role::Viewer]),
            registered_at: at(),
        })
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
