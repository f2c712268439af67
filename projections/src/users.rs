//! Projection `users`: accounts and their roles, for token checks and listings.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use framecart_domain::log::{LoggedEvent, Namespace};
use std::sync::Arc;

use framecart_domain::personal::SubjectKind;
use framecart_domain::user::{self, UserEvent};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::personal::{KeyReader, erased_subject, is_erasure, with_erasures};
use crate::runner::{Projection, ProjectionError, decode};

pub const NAME: &str = "users";

pub struct UsersProjection {
    keys: Arc<KeyReader>,
}

impl UsersProjection {
    pub fn new(keys: Arc<KeyReader>) -> Self {
        Self { keys }
    }
}

#[async_trait]
impl Projection for UsersProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    /// On NATS 2.9 (one filter), every event: erasures are data subjects' events.
    fn filter_subject(&self, ns: &Namespace) -> String {
        ns.all_events_subject()
    }

    fn filter_subjects(&self, ns: &Namespace) -> Vec<String> {
        with_erasures(ns, vec![ns.aggregate_subject(user::AGGREGATE_TYPE)])
    }

    fn wants(&self, aggregate_type: &str, event_type: &str) -> bool {
        aggregate_type == user::AGGREGATE_TYPE || is_erasure(aggregate_type, event_type)
    }

    fn tables(&self) -> &'static [&'static str] {
        &["users_view"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &LoggedEvent,
        log_position: i64,
    ) -> Result<(), ProjectionError> {
        if let Some(subject) = erased_subject(event, log_position)? {
            if let SubjectKind::User(user_id) = subject.kind() {
                sqlx::query("UPDATE users_view SET email = NULL WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            self.keys.forget(&subject);
            return Ok(());
        }
        match decode::<UserEvent>(event, log_position)? {
            UserEvent::UserRegistered(e) => {
                let roles: Vec<&str> = e.roles.iter().map(|r| r.as_str()).collect();
                let keys = self.keys.keys(&mut *tx, e.email.subject()).await?;
                let email = keys.reveal(&e.email);
                sqlx::query(
                    "INSERT INTO users_view (user_id, email, roles, registered_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT DO NOTHING",
                )
                .bind(e.user_id)
                .bind(email.as_ref().map(|e| e.as_str()))
                .bind(&roles)
                .bind(e.registered_at)
                .execute(tx)
                .await?;
            }
            UserEvent::RoleGranted(e) => {
                sqlx::query(
                    "UPDATE users_view SET roles = array_append(array_remove(roles, $2), $2) WHERE user_id = $1",
                )
                .bind(e.user_id)
                .bind(e.role.as_str())
                .execute(tx)
                .await?;
            }
            UserEvent::RoleRevoked(e) => {
                sqlx::query("UPDATE users_view SET roles = array_remove(roles, $2) WHERE user_id = $1")
                    .bind(e.user_id)
                    .bind(e.role.as_str())
                    .execute(tx)
                    .await?;
            }
            UserEvent::SessionsRevoked(e) => {
                sqlx::query("UPDATE users_view SET sessions_valid_after = $2 WHERE user_id = $1")
                    .bind(e.user_id)
                    .bind(e.at)
                    .execute(tx)
                    .await?;
            }
        }
        Ok(())
    }
}

/// An account, without its password hash.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct UserView {
    pub user_id: Uuid,
    /// Null once the account's personal data is erased.
    pub email: Option<String>,
    /// `viewer`, `merchant`, `auditor`, `admin`.
    pub roles: Vec<String>,
    #[serde(skip)]
    pub sessions_valid_after: Option<DateTime<Utc>>,
    pub registered_at: DateTime<Utc>,
}

pub async fn get(pool: &PgPool, user_id: Uuid) -> Result<Option<UserView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, email, roles, sessions_valid_after, registered_at FROM users_view WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await
}

pub async fn list(pool: &PgPool, limit: i64, after: Option<Uuid>) -> Result<Vec<UserView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, email, roles, sessions_valid_after, registered_at FROM users_view
         WHERE ($2::uuid IS NULL OR user_id > $2) ORDER BY user_id LIMIT $1",
    )
    .bind(limit)
    .bind(after)
    .fetch_all(pool)
    .await
}
