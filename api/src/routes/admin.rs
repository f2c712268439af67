//! Operators' views: `/api/v1/admin/*` (admins and auditors).

use axum::extract::State;
use framecart_domain::user::Role;
use framecart_projections::quarantine::{self, Quarantined};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Query;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_quarantine))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuarantineQuery {
    /// Only this projection's entries.
    pub projection: Option<String>,
    /// The `next_after` of the previous page.
    pub after: Option<String>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuarantinePage {
    pub items: Vec<Quarantined>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<String>,
}

/// Events a projection could not decode or apply and set aside, so that its view went
/// on (admins and auditors). `framecart projections retry` applies them again.
#[utoipa::path(get, path = "/api/v1/admin/quarantine", tag = "admin", params(QuarantineQuery),
    responses((status = 200, body = QuarantinePage), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_quarantine(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<QuarantineQuery>,
) -> Result<axum::Json<QuarantinePage>, ApiError> {
    caller.require(&[Role::Auditor])?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("invalid_limit", "limit must be between 1 and 1000"));
    }
    // The page cursor is `<projection>:<log position>` of the last entry shown.
    let after = match &q.after {
        None => None,
        Some(cursor) => {
            let parsed = cursor.rsplit_once(':').and_then(|(p, n)| Some((p, n.parse::<i64>().ok()?)));
            Some(
                parsed
                    .ok_or_else(|| ApiError::invalid("invalid_after", "after is the next_after of a previous page"))?,
            )
        }
    };
    let items =
        quarantine::list(&app.pool, q.projection.as_deref(), after, limit).await.map_err(ApiError::unavailable)?;
    let next_after = (items.len() as i64 == limit)
        .then(|| items.last().map(|e| format!("{}:{}", e.projection, e.log_position)))
        .flatten();
    Ok(axum::Json(QuarantinePage { items, next_after }))
}
