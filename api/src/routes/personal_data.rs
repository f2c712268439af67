//! A user's personal data: its export (`/api/v1/users/me/export`) and its erasure
//! (`/api/v1/users/{me|id}/personal-data`).
//!
//! Erasing records `PersonalDataErased` on the user's data subject (`user-<id>`); the
//! store destroys the subject's key in the same transaction, so everything sealed under
//! it (the account's address, its clicks' addresses and cookies, its orders' contacts
//! and addresses, in the events, the log, and every copy) is unreadable from then on,
//! and the views forget it as they read the event. With it go the account's row in
//! `accounts` (address and password hash: it signs in no more; sessions already open
//! run out with their tokens) and the stored answers of its idempotency keys (which
//! repeat an order's contact and address). Erasing again answers the erasure recorded.

use axum::extract::State;
use chrono::{DateTime, Utc};
use framecart_commands::execute::execute;
use framecart_commands::{CommandError, accounts};
use framecart_domain::data_subject::{DataSubject, DataSubjectCommand, DataSubjectError, ErasureReason};
use framecart_domain::personal::Subject;
use framecart_domain::user::Role;
use framecart_projections::clicks::{self, ClickFilter, ClickView, MatchView};
use framecart_projections::orders::{self, OrderView, PaymentView};
use framecart_projections::users::UserView;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Path, RequestMetadata};
use crate::state::{App, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(erase_mine)).routes(routes!(erase_theirs)).routes(routes!(export))
}

/// Everything Framecart holds about a signed-in user, as its views have it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Export {
    pub exported_at: DateTime<Utc>,
    pub profile: UserView,
    /// The clicks they sent signed in, with the address and cookie recorded.
    pub clicks: Vec<ClickView>,
    /// The matcher's verdict on each of those clicks that has one.
    pub matches: Vec<MatchView>,
    /// Their orders, with contact and shipping address.
    pub orders: Vec<OrderView>,
    /// The payment attempts of those orders.
    pub payments: Vec<PaymentView>,
}

/// Most of each kind in one export.
const EXPORT_LIMIT: i64 = 10_000;

/// Downloads everything Framecart holds about the caller, as one JSON document (GDPR
/// Article 15 and 20): the account, the clicks sent signed in and their matches, the
/// orders with their contact and address, and their payments.
#[utoipa::path(get, path = "/api/v1/users/me/export", tag = "users",
    responses((status = 200, body = Export), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn export(State(app): State<AppState>, caller: Caller) -> Result<axum::Json<Export>, ApiError> {
    let user_id = caller.user()?;
    let unavailable = ApiError::unavailable;
    let profile = crate::auth::user_view(&app, user_id, |_| true)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user {user_id}")))?;
    let mine = ClickFilter {
        user_id: Some(user_id.to_string()),
        signed_in_only: true,
        limit: EXPORT_LIMIT,
        ..ClickFilter::default()
    };
    let clicks = clicks::list(&app.pool, &mine).await.map_err(unavailable)?;
    let matches = clicks::matches(&app.pool, &mine).await.map_err(unavailable)?;
    let orders = orders::list(&app.pool, Some(user_id), EXPORT_LIMIT).await.map_err(unavailable)?;
    let ids: Vec<Uuid> = orders.iter().map(|o| o.order_id).collect();
    let payments = orders::payments_of(&app.pool, &ids).await.map_err(unavailable)?;
    Ok(axum::Json(Export { exported_at: Utc::now(), profile, clicks, matches, orders, payments }))
}

/// A recorded erasure.
#[derive(Debug, Serialize, ToSchema)]
pub struct Erasure {
    /// The data subject whose key was destroyed: `user-<id>`.
    pub subject: String,
    /// `request` or `retention`.
    #[schema(value_type = String)]
    pub reason: ErasureReason,
    /// Who asked: `user:<id>`.
    pub by: String,
    pub erased_at: DateTime<Utc>,
}

/// Erases the caller's personal data (GDPR Article 17): their key is destroyed, and with
/// it every value sealed under it, wherever it was copied. Orders keep their lines,
/// totals and payments. Asking again answers the erasure already recorded.
#[utoipa::path(delete, path = "/api/v1/users/me/personal-data", tag = "users",
    responses((status = 200, body = Erasure), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn erase_mine(
    State(app): State<AppState>,
    caller: Caller,
    request: RequestMetadata,
) -> Result<axum::Json<Erasure>, ApiError> {
    let user_id = caller.user()?;
    erase(&app, user_id, caller.actor(), request).await.map(axum::Json)
}

/// Erases a user's personal data on their behalf (admins only).
#[utoipa::path(delete, path = "/api/v1/users/{user_id}/personal-data", tag = "users",
    params(("user_id" = Uuid, Path, description = "The user")),
    responses((status = 200, body = Erasure), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn erase_theirs(
    State(app): State<AppState>,
    caller: Caller,
    request: RequestMetadata,
    Path(user_id): Path<Uuid>,
) -> Result<axum::Json<Erasure>, ApiError> {
    caller.require(&[Role::Admin])?;
    erase(&app, user_id, caller.actor(), request).await.map(axum::Json)
}

async fn erase(app: &App, user_id: Uuid, by: String, request: RequestMetadata) -> Result<Erasure, ApiError> {
    let subject = Subject::user(user_id);
    let command = DataSubjectCommand::Erase {
        subject: subject.clone(),
        reason: ErasureReason::Request,
        by: by.clone(),
        at: Utc::now(),
    };
    match execute(&app.commands.data_subjects, subject.as_str(), command, request.by(by)).await {
        Ok(()) | Err(CommandError::Refused(DataSubjectError::AlreadyErased) | CommandError::Conflict(_)) => {}
        Err(e) => return Err(ApiError::unavailable(anyhow::anyhow!(e.to_string()))),
    }
    app.keys.forget(&subject);
    accounts::erase(&app.pool, user_id).await.map_err(ApiError::unavailable)?;
    sqlx::query("DELETE FROM idempotency_keys WHERE user_id = $1")
        .bind(user_id)
        .execute(&app.pool)
        .await
        .map_err(ApiError::unavailable)?;
    let recorded: DataSubject = app.load(subject.as_str()).await?;
    let erased = recorded
        .erased()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("an erasure was recorded but does not load")))?;
    Ok(Erasure { subject: subject.to_string(), reason: erased.reason, by: erased.by.clone(), erased_at: erased.at })
}
