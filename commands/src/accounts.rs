//! Accounts outside the log (`accounts`): an email address → its account, and the
//! password hash. Neither is in an event, so erasing an account (blanking its row and
//! destroying its key) leaves neither anywhere.
//!
//! A registration first claims the address here, then records `UserRegistered` on a new
//! random id, then marks the claim registered. An address is claimed once: a second
//! registration is refused, unless the first claim is older than [`STALE_CLAIM`] and was
//! never registered (a crash between the two steps), which it then takes over.

use framecart_domain::user::Email;
use sqlx::PgPool;
use uuid::Uuid;

/// How old an unregistered claim must be before another registration may take it over.
pub const STALE_CLAIM: std::time::Duration = std::time::Duration::from_secs(60);

/// An account's row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Account {
    pub user_id: Uuid,
    /// The user aggregate's id.
    pub aggregate_id: String,
    /// `None` once erased.
    pub email: Option<String>,
    /// `None` once erased: the account can no longer sign in.
    pub password_hash: Option<String>,
    pub registered: bool,
}

const COLUMNS: &str = "user_id, aggregate_id, email, password_hash, registered";

/// A row whose registration is committed: marked so, or (a crash before the mark) with
/// the account's events in the store.
const REGISTERED: &str = "(accounts.registered OR EXISTS (SELECT 1 FROM events e
    WHERE e.aggregate_type = 'user' AND e.aggregate_id = accounts.aggregate_id))";

/// Claims `email` for a new account `user_id`; false when another account has it.
pub async fn claim(pool: &PgPool, user_id: Uuid, email: &Email, password_hash: &str) -> Result<bool, sqlx::Error> {
    let claimed: Option<Uuid> = sqlx::query_scalar(&format!(
        "INSERT INTO accounts (user_id, aggregate_id, email, password_hash) VALUES ($1, $1::text, $2, $3)
         ON CONFLICT (email) DO UPDATE
             SET user_id = EXCLUDED.user_id, aggregate_id = EXCLUDED.aggregate_id,
                 password_hash = EXCLUDED.password_hash, created_at = clock_timestamp()
             WHERE accounts.created_at < clock_timestamp() - $4 * interval '1 second' AND NOT {REGISTERED}
         RETURNING user_id"
    ))
    .bind(user_id)
    .bind(email.as_str())
    .bind(password_hash)
    .bind(STALE_CLAIM.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    Ok(claimed == Some(user_id))
}

/// Gives the address back after `user_id`'s registration failed (unless it was recorded
/// after all).
pub async fn release(pool: &PgPool, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("DELETE FROM accounts WHERE user_id = $1 AND NOT {REGISTERED}"))
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// The registration of `user_id` is committed.
pub async fn registered(pool: &PgPool, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE accounts SET registered = true WHERE user_id = $1").bind(user_id).execute(pool).await?;
    Ok(())
}

/// The registered account with this address.
pub async fn by_email(pool: &PgPool, email: &Email) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM accounts WHERE email = $1 AND {REGISTERED}"))
        .bind(email.as_str())
        .fetch_optional(pool)
        .await
}

/// The registered account `user_id`, erased or not.
pub async fn by_user(pool: &PgPool, user_id: Uuid) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM accounts WHERE user_id = $1 AND {REGISTERED}"))
        .bind(user_id)
        .fetch_optional(pool)
        .await
}

/// Blanks the account's address and password hash (its erasure).
pub async fn erase(pool: &PgPool, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE accounts SET email = NULL, password_hash = NULL WHERE user_id = $1")
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(())
}
