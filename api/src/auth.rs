//! Who is calling: Argon2 password hashes, signed bearer tokens, and the [`Caller`]
//! extractor with its role checks.
//!
//! A token is `fc2.<user_id>.<issued>.<expires>.<mac>`: `issued` in microseconds and
//! `expires` in seconds since the epoch, and HMAC-SHA256 over the rest with the
//! installation's secret. Roles are not in the token but read per request from the
//! `users` view, so a granted or revoked role counts at once, and a log-out everywhere
//! (`DELETE /api/v1/sessions`) refuses every token issued before it, to the microsecond
//! (the precision the view keeps), so a sign-in just after a sign-out works.
//!
//! Tokens of the first form, `fc1`, carry `issued` in whole seconds; they are still
//! accepted until they expire. Read as the start of their second, they are refused by a
//! sign-out in the second they were issued, as they always were.

use std::collections::BTreeSet;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::Utc;
use framecart_domain::user::{Email, Role};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// Shortest and longest password accepted (long inputs would make hashing a weapon).
pub use framecart_domain::user::PASSWORD_LENGTH;

pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal(anyhow::anyhow!("hashing a password: {e}")))
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// A hash to verify against when no account exists, so that a wrong email costs the same
/// time as a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not a real password").unwrap_or_default())
}

/// The sha256 of an address: what the sign-in limits count failures by, in memory (an
/// address without an account included). (It was the user aggregate's id of accounts
/// registered before ids were random.)
pub fn account_digest(email: &Email) -> [u8; 32] {
    Sha256::digest(email.as_str().as_bytes()).into()
}

/// The caller of a request.
#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous,
    User { user_id: Uuid, roles: BTreeSet<Role> },
}

impl Caller {
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Self::Anonymous => None,
            Self::User { user_id, .. } => Some(*user_id),
        }
    }

    /// True for an admin, or for a user with any of `roles`.
    pub fn has_any(&self, roles: &[Role]) -> bool {
        match self {
            Self::Anonymous => false,
            Self::User { roles: mine, .. } => mine.contains(&Role::Admin) || roles.iter().any(|r| mine.contains(r)),
        }
    }

    /// The signed-in user (401 otherwise).
    pub fn user(&self) -> Result<Uuid, ApiError> {
        self.user_id().ok_or(ApiError::Unauthenticated)
    }

    /// The signed-in user, if they have one of `roles` (401 without a user, 403 without
    /// the role). Admins may do everything.
    pub fn require(&self, roles: &[Role]) -> Result<Uuid, ApiError> {
        let user_id = self.user()?;
        if self.has_any(roles) {
            Ok(user_id)
        } else {
            let names: Vec<&str> = roles.iter().map(Role::as_str).collect();
            Err(ApiError::Forbidden(format!("this needs the role {}", names.join(" or "))))
        }
    }

    /// Staff see everything; a viewer only what is theirs.
    pub fn is_staff(&self) -> bool {
        self.has_any(&[Role::Merchant, Role::Auditor])
    }

    pub fn actor(&self) -> String {
        match self {
            Self::Anonymous => "anonymous".to_owned(),
            Self::User { user_id, .. } => format!("user:{user_id}"),
        }
    }
}

/// The account as the users view has it, once `ready` holds for it: the view may trail a
/// change the caller just made (a registration, a role, a sign-out) by moments, so this
/// waits up to two seconds for it. `None` when the view has no such account by then.
pub async fn user_view(
    app: &crate::state::App,
    user_id: Uuid,
    ready: impl Fn(&framecart_projections::users::UserView) -> bool,
) -> Result<Option<framecart_projections::users::UserView>, ApiError> {
    let mut found = None;
    for _ in 0..100 {
        found = framecart_projections::users::get(&app.pool, user_id).await.map_err(ApiError::unavailable)?;
        if found.as_ref().is_some_and(&ready) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(found)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return Ok(Self::Anonymous);
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(ApiError::Unauthenticated)?;
        Self::of_token(app, token).await
    }
}

impl Caller {
    /// The account a bearer token was issued to, checked as every request's is (also for
    /// a media route that takes the token as a query parameter: `<video>` cannot send a
    /// header).
    pub async fn of_token(app: &crate::state::App, token: &str) -> Result<Self, ApiError> {
        let (user_id, issued) = app.token_key.verify(token, Utc::now()).ok_or(ApiError::Unauthenticated)?;
        // Tokens are issued to accounts only: a missing one is a view that trails a
        // registration by moments, or an account of another installation's key.
        let user = user_view(app, user_id, |_| true).await?.ok_or(ApiError::Unauthenticated)?;
        // Both are microseconds (an `fc1` token's issue time is the start of its second).
        if user.sessions_valid_after.is_some_and(|after| issued <= after) {
            return Err(ApiError::Unauthenticated);
        }
        let roles = user.roles.iter().filter_map(|r| Role::parse(r)).collect();
        Ok(Self::User { user_id, roles })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse battery").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "wrong horse"));
        assert!(!verify_password("not a hash", "x"));
    }
}
