//! Accounts and sessions: `/api/v1/users`, `/api/v1/sessions`.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use framecart_commands::execute::execute;
use framecart_commands::{CommandError, accounts};
use framecart_domain::EventMetadata;
use framecart_domain::personal::Subject;
use framecart_domain::user::{Email, Password, PasswordError, Register, Role, User, UserCommand, UserError};
use framecart_projections::users::{self, UserView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Caller, PASSWORD_LENGTH, account_digest, dummy_hash, hash_password, verify_password};
use crate::error::{ApiError, ErrorBody, key_error};
use crate::extract::{ClientAddr, Json, Path, Query, RequestMetadata};
use crate::state::{App, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register, list_users))
        .routes(routes!(me))
        .routes(routes!(login, logout))
        .routes(routes!(grant_role))
        .routes(routes!(revoke_role))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Credentials {
    pub email: String,
    /// 8 to 128 characters, at least 4 of them different, and not one of the common
    /// passwords (a registration's is refused with 422 `weak_password` otherwise).
    pub password: String,
}

fn user_error(e: CommandError<UserError>) -> ApiError {
    match e {
        CommandError::Refused(UserError::AlreadyRegistered) => {
            ApiError::Conflict { code: "email_taken", message: UserError::AlreadyRegistered.to_string() }
        }
        CommandError::Refused(UserError::NotRegistered) => ApiError::NotFound(UserError::NotRegistered.to_string()),
        CommandError::Refused(other) => ApiError::invalid("invalid_user", other),
        CommandError::Conflict(_) => ApiError::Conflict { code: "concurrent_update", message: e.to_string() },
        CommandError::Store(_) => ApiError::unavailable(anyhow::anyhow!(e.to_string())),
    }
}

fn email(raw: &str) -> Result<Email, ApiError> {
    Email::parse(raw).map_err(|e| ApiError::invalid("invalid_email", e))
}

/// Registers an account as a viewer. Registrations are limited per email address and per
/// client address (`FRAMECART_RATE_SIGNIN`): over it, 429 with `Retry-After`.
#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "users",
    request_body = Credentials,
    responses(
        (status = 201, body = UserView),
        (status = 409, body = ErrorBody),
        (status = 422, description = "A bad email address, or a password too short, too long or too weak", body = ErrorBody),
        (status = 429, description = "Too many registrations; see Retry-After", body = ErrorBody),
    )
)]
async fn register(
    State(app): State<AppState>,
    ClientAddr(address): ClientAddr,
    request: RequestMetadata,
    Json(body): Json<Credentials>,
) -> Result<(StatusCode, axum::Json<UserView>), ApiError> {
    let email = email(&body.email)?;
    let password = password(&body.password)?;
    // Counted once it is well-formed: from here on it costs a password hash.
    app.limits.register(account_digest(&email), address)?;
    let view = create_account(&app, email, password, BTreeSet::from([Role::Viewer]), request.0).await?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

/// 422 `invalid_password` for a length out of bounds, 422 `weak_password` for a common
/// password or one of fewer than 4 different characters.
fn password(raw: &str) -> Result<Password, ApiError> {
    Password::parse(raw).map_err(|e| match e {
        PasswordError::Length => ApiError::invalid("invalid_password", e),
        PasswordError::Common | PasswordError::TooFewDistinct => ApiError::invalid("weak_password", e),
    })
}

/// Claims the address (the `accounts` table), then records the registration on a new
/// random id, with the address sealed under the account's own key.
async fn create_account(
    app: &App,
    email: Email,
    password: Password,
    roles: BTreeSet<Role>,
    metadata: EventMetadata,
) -> Result<UserView, ApiError> {
    let password_hash =
        tokio::task::spawn_blocking(move || hash_password(password.as_str())).await.map_err(ApiError::internal)??;
    let user_id = Uuid::now_v7();
    if !accounts::claim(&app.pool, user_id, &email, &password_hash).await.map_err(ApiError::unavailable)? {
        return Err(user_error(CommandError::Refused(UserError::AlreadyRegistered)));
    }
    let registered_at = Utc::now();
    let recorded = async {
        let sealed = app.keys.seal(&Subject::user(user_id), &email).await.map_err(key_error)?;
        let command = UserCommand::Register(Register { user_id, email: sealed, roles: roles.clone(), registered_at });
        execute(&app.commands.users, &user_id.to_string(), command, metadata).await.map_err(user_error)
    };
    if let Err(e) = recorded.await {
        // The address is free again at once (a crash here leaves it to the stale claim).
        if let Err(release) = accounts::release(&app.pool, user_id).await {
            tracing::warn!(error = %release, "a failed registration's claim stays until it is stale");
        }
        return Err(e);
    }
    accounts::registered(&app.pool, user_id).await.map_err(ApiError::unavailable)?;
    Ok(UserView {
        user_id,
        email: Some(email.as_str().to_owned()),
        roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
        sessions_valid_after: None,
        registered_at,
    })
}

/// Creates the configured first admin when no account has that address.
pub async fn bootstrap_admin(app: &App) -> anyhow::Result<()> {
    let (Some(address), Some(password)) = (&app.auth.admin_email, &app.auth.admin_password) else { return Ok(()) };
    let address =
        Email::parse(address).map_err(|_| anyhow::anyhow!("FRAMECART_ADMIN_EMAIL is not an email address"))?;
    // The same rule as every account's, so the most powerful one is not the weakest.
    let password =
        Password::parse(password).map_err(|e| anyhow::anyhow!("FRAMECART_ADMIN_PASSWORD is refused: {e}"))?;
    if let Some(existing) = accounts::by_email(&app.pool, &address).await? {
        let account: User = app.commands.load(&existing.aggregate_id).await?;
        if !account.roles().contains(&Role::Admin) {
            tracing::warn!(email = %address.as_str(), "the configured admin's account exists without the admin role; not changing it");
        }
        return Ok(());
    }
    let metadata = EventMetadata::for_request(&Uuid::now_v7().to_string(), None, "system:bootstrap".into());
    match create_account(app, address, password, BTreeSet::from([Role::Admin]), metadata).await {
        Ok(_) | Err(ApiError::Conflict { .. }) => Ok(()), // another instance made it first
        Err(e) => Err(anyhow::anyhow!("creating the first admin: {e}")),
    }
}

/// The user aggregate's id of an account (404 for none).
async fn aggregate_of(app: &App, user_id: Uuid) -> Result<String, ApiError> {
    accounts::by_user(&app.pool, user_id)
        .await
        .map_err(ApiError::unavailable)?
        .map(|account| account.aggregate_id)
        .ok_or_else(|| ApiError::NotFound(format!("no user {user_id}")))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub user_id: Uuid,
    pub roles: Vec<String>,
    pub expires_at: DateTime<Utc>,
}

/// Signs in: a bearer token for the account. Failures are limited per account and per
/// client address (`FRAMECART_RATE_SIGNIN`): over either, every sign-in is refused with
/// 429 and `Retry-After`, a right password included, until the window has passed.
#[utoipa::path(
    post,
    path = "/api/v1/sessions",
    tag = "users",
    request_body = Credentials,
    responses(
        (status = 200, body = Session),
        (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "Too many failed sign-ins; see Retry-After", body = ErrorBody),
    )
)]
async fn login(
    State(app): State<AppState>,
    ClientAddr(address): ClientAddr,
    Json(body): Json<Credentials>,
) -> Result<axum::Json<Session>, ApiError> {
    let email = email(&body.email)?;
    // Counted as a failure from here, so concurrent guesses cannot all get past the limit;
    // a refused one costs no password hash.
    let attempt = app.limits.begin_sign_in(account_digest(&email), address)?;
    let outcome = sign_in(&app, &email, &body.password).await;
    if !matches!(outcome, Err(ApiError::InvalidCredentials)) {
        app.limits.forgive(attempt);
    }
    outcome.map(axum::Json)
}

async fn sign_in(app: &App, email: &Email, password: &str) -> Result<Session, ApiError> {
    // The account itself (not a view): signing in right after registering works. An
    // erased account has no hash: it signs in no more.
    let found = accounts::by_email(&app.pool, email).await.map_err(ApiError::unavailable)?;
    let hash = found.as_ref().and_then(|a| a.password_hash.clone()).unwrap_or_else(|| dummy_hash().to_owned());
    let password = password.chars().take(*PASSWORD_LENGTH.end()).collect::<String>();
    let matches =
        tokio::task::spawn_blocking(move || verify_password(&hash, &password)).await.map_err(ApiError::internal)?;
    let (true, Some(found)) = (matches, found) else {
        return Err(ApiError::InvalidCredentials);
    };
    let account: User = app.load(&found.aggregate_id).await?;
    let Some(user_id) = account.user_id() else { return Err(ApiError::InvalidCredentials) };
    let now = Utc::now();
    let ttl = chrono::Duration::hours(i64::try_from(app.auth.token_ttl_hours).unwrap_or(24 * 7));
    let (token, expires_at) = app.token_key.issue(user_id, now, ttl);
    let roles = account.roles().iter().map(|r| r.as_str().to_owned()).collect();
    Ok(Session { token, user_id, roles, expires_at })
}

/// Signs out everywhere: every token issued so far stops working.
#[utoipa::path(delete, path = "/api/v1/sessions", tag = "users", responses((status = 204), (status = 401, body = ErrorBody)))]
async fn logout(State(app): State<AppState>, caller: Caller, request: RequestMetadata) -> Result<StatusCode, ApiError> {
    let user_id = caller.user()?;
    let at = Utc::now();
    let command = UserCommand::RevokeSessions { at };
    execute(&app.commands.users, &aggregate_of(&app, user_id).await?, command, request.by(caller.actor()))
        .await
        .map_err(user_error)?;
    // Answer once the old tokens no longer work.
    // The view keeps microseconds.
    crate::auth::user_view(&app, user_id, |v| {
        v.sessions_valid_after.is_some_and(|a| a.timestamp_micros() >= at.timestamp_micros())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The account, once the users view has it (it may trail a registration by moments).
async fn view_of(app: &App, user_id: Uuid) -> Result<UserView, ApiError> {
    crate::auth::user_view(app, user_id, |_| true)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user {user_id}")))
}

/// The caller's own account.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
async fn me(State(app): State<AppState>, caller: Caller) -> Result<axum::Json<UserView>, ApiError> {
    Ok(axum::Json(view_of(&app, caller.user()?).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// At most this many (1–1000, default 100).
    pub limit: Option<i64>,
    /// Only users after this id.
    pub after: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub items: Vec<UserView>,
}

/// Every account (admins only).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserQuery),
    responses((status = 200, body = UserList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_users(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<UserQuery>,
) -> Result<axum::Json<UserList>, ApiError> {
    caller.require(&[Role::Admin])?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let items = users::list(&app.pool, limit, q.after).await.map_err(ApiError::unavailable)?;
    Ok(axum::Json(UserList { items }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RoleGrant {
    /// `viewer`, `merchant`, `auditor` or `admin`.
    pub role: String,
}

fn role(raw: &str) -> Result<Role, ApiError> {
    Role::parse(raw).ok_or_else(|| ApiError::invalid("invalid_role", "a role is viewer, merchant, auditor or admin"))
}

/// Grants a role (admins only).
#[utoipa::path(post, path = "/api/v1/users/{user_id}/roles", tag = "users",
    params(("user_id" = Uuid, Path, description = "The user")), request_body = RoleGrant,
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn grant_role(
    State(app): State<AppState>,
    caller: Caller,
    request: RequestMetadata,
    Path(user_id): Path<Uuid>,
    Json(body): Json<RoleGrant>,
) -> Result<axum::Json<UserView>, ApiError> {
    caller.require(&[Role::Admin])?;
    let role = role(&body.role)?;
    change_role(&app, &caller, request, user_id, UserCommand::GrantRole { role, by: caller.actor() }).await
}

/// Revokes a role (admins only).
#[utoipa::path(delete, path = "/api/v1/users/{user_id}/roles/{role}", tag = "users",
    params(("user_id" = Uuid, Path, description = "The user"), ("role" = String, Path, description = "The role")),
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_role(
    State(app): State<AppState>,
    caller: Caller,
    request: RequestMetadata,
    Path((user_id, raw)): Path<(Uuid, String)>,
) -> Result<axum::Json<UserView>, ApiError> {
    caller.require(&[Role::Admin])?;
    let role = role(&raw)?;
    change_role(&app, &caller, request, user_id, UserCommand::RevokeRole { role, by: caller.actor() }).await
}

async fn change_role(
    app: &App,
    caller: &Caller,
    request: RequestMetadata,
    user_id: Uuid,
    command: UserCommand,
) -> Result<axum::Json<UserView>, ApiError> {
    let view = view_of(app, user_id).await?;
    let key = aggregate_of(app, user_id).await?;
    execute(&app.commands.users, &key, command, request.by(caller.actor())).await.map_err(user_error)?;
    // Answer with the roles as the account has them now.
    let account: User = app.load(&key).await?;
    let roles: Vec<String> = account.roles().iter().map(|r| r.as_str().to_owned()).collect();
    // Answer once the change is in effect for the account's requests.
    let same = |v: &UserView| v.roles.len() == roles.len() && roles.iter().all(|r| v.roles.contains(r));
    crate::auth::user_view(app, user_id, same).await?;
    Ok(axum::Json(UserView { roles, ..view }))
}
