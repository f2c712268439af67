//! The auditor's view: `/api/v1/audit/*` (auditors and admins), and per-video analytics.

use axum::extract::State;
use framecart_commands::audit::{self, AuditedEvent, Verification};
use framecart_domain::personal::{Subject, sealed_fields};
use framecart_domain::user::Role;
use framecart_projections::analytics::{self, VideoAnalytics};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Path, Query};
use crate::routes::videos::video_id;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(events))
        .routes(routes!(stream))
        .routes(routes!(verify))
        .routes(routes!(video_analytics))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only events after this log position (0: from the start).
    pub after: Option<i64>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<i64>,
    /// Only events of this aggregate type (`order`, `click`, …).
    pub aggregate_type: Option<String>,
    /// Only events of the aggregate with this id.
    pub aggregate_id: Option<String>,
    /// Only events of this type (`OrderPlaced`, …).
    pub event_type: Option<String>,
}

/// An event as the audit API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventEntry {
    /// The log position: dense, in commit order.
    pub position: Option<i64>,
    pub event_id: uuid::Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
    /// Hex sha256 chaining this event to the one before it.
    pub hash: Option<String>,
    /// The payload's personal values (sealed, so the payload stays as stored and its hash
    /// checks): where each is, whose it is, and whether it is erased.
    pub personal_data: Vec<PersonalField>,
}

/// A sealed value in an event's payload.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonalField {
    /// JSON pointer into `payload`, e.g. `/ClickRecorded/client_ip`.
    pub field: String,
    /// The data subject it is sealed for.
    pub subject: String,
    /// `sealed`, or `erased` once the subject's key is destroyed (it never opens again).
    pub state: &'static str,
}

/// Entries for `events`, each with its personal values and whether they are erased.
async fn entries(app: &crate::state::App, events: Vec<AuditedEvent>) -> Result<Vec<EventEntry>, ApiError> {
    let fields: Vec<Vec<(String, Subject)>> = events.iter().map(|e| sealed_fields(&e.payload)).collect();
    let subjects: Vec<&Subject> = fields.iter().flatten().map(|(_, s)| s).collect();
    let erased = if subjects.is_empty() {
        Default::default()
    } else {
        app.keys.erased(&subjects).await.map_err(crate::error::key_error)?
    };
    Ok(events
        .into_iter()
        .zip(fields)
        .map(|(event, fields)| {
            let personal_data = fields
                .into_iter()
                .map(|(field, subject)| PersonalField {
                    state: if erased.contains(&subject) { "erased" } else { "sealed" },
                    subject: subject.to_string(),
                    field,
                })
                .collect();
            EventEntry { personal_data, ..EventEntry::from(event) }
        })
        .collect())
}

impl From<AuditedEvent> for EventEntry {
    fn from(e: AuditedEvent) -> Self {
        Self {
            position: e.position,
            event_id: e.event_id,
            aggregate_type: e.aggregate_type,
            aggregate_id: e.aggregate_id,
            sequence: e.sequence,
            event_type: e.event_type,
            event_version: e.event_version,
            payload: e.payload,
            metadata: e.metadata,
            recorded_at: e.recorded_at,
            hash: e.hash,
            personal_data: Vec::new(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventEntry>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// Every event in commit order (auditors), or those of one aggregate type, aggregate or
/// event type.
#[utoipa::path(get, path = "/api/v1/audit/events", tag = "audit", params(EventQuery),
    responses((status = 200, body = EventPage), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn events(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<EventQuery>,
) -> Result<axum::Json<EventPage>, ApiError> {
    caller.require(&[Role::Auditor])?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("invalid_limit", "limit must be between 1 and 1000"));
    }
    let filled = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let filter = audit::EventFilter {
        aggregate_type: filled(q.aggregate_type),
        aggregate_id: filled(q.aggregate_id),
        event_type: filled(q.event_type),
    };
    let events = audit::events_matching(&app.pool, &filter, q.after.unwrap_or(0).max(0), limit)
        .await
        .map_err(ApiError::unavailable)?;
    let items = entries(&app, events).await?;
    let next_after = (items.len() as i64 == limit).then(|| items.last().and_then(|e| e.position)).flatten();
    Ok(axum::Json(EventPage { items, next_after }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Stream {
    pub items: Vec<EventEntry>,
}

/// One aggregate's history (auditors).
#[utoipa::path(get, path = "/api/v1/audit/streams/{aggregate_type}/{aggregate_id}", tag = "audit",
    params(("aggregate_type" = String, Path, description = "e.g. `order`"), ("aggregate_id" = String, Path, description = "Its id")),
    responses((status = 200, body = Stream), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn stream(
    State(app): State<AppState>,
    caller: Caller,
    Path((aggregate_type, aggregate_id)): Path<(String, String)>,
) -> Result<axum::Json<Stream>, ApiError> {
    caller.require(&[Role::Auditor])?;
    let events = audit::stream(&app.pool, &aggregate_type, &aggregate_id).await.map_err(ApiError::unavailable)?;
    let items = entries(&app, events).await?;
    if items.is_empty() {
        return Err(ApiError::NotFound(format!("no {aggregate_type} {aggregate_id}")));
    }
    Ok(axum::Json(Stream { items }))
}

/// The chain's verdict: `{"ok": true, "checked": N}`, `{"ok": false, "first_bad_position": P, "reason"}`,
/// or, when the chain holds but stored events have no log position after the relay's
/// bound, `{"ok": false, "checked", "reason", "unlogged_count", "unlogged": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum VerifyOutcome {
    Intact { ok: bool, checked: i64 },
    Broken { ok: bool, first_bad_position: i64, reason: String },
    Incomplete { ok: bool, checked: i64, reason: String, unlogged_count: i64, unlogged: Vec<UnloggedEvent> },
}

/// A stored event with no log position.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnloggedEvent {
    pub event_id: uuid::Uuid,
    pub global_position: i64,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
}

/// Recomputes the hash chain over the whole log (auditors).
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = VerifyOutcome), (status = 403, body = ErrorBody)))]
async fn verify(State(app): State<AppState>, caller: Caller) -> Result<axum::Json<VerifyOutcome>, ApiError> {
    caller.require(&[Role::Auditor])?;
    let bound = app.settings.relay_lag_bound();
    Ok(axum::Json(match audit::verify(&app.pool, bound).await.map_err(ApiError::unavailable)? {
        Verification::Intact { ok, checked } => VerifyOutcome::Intact { ok, checked },
        Verification::Broken { ok, first_bad_position, reason } => {
            VerifyOutcome::Broken { ok, first_bad_position, reason }
        }
        Verification::Incomplete { ok, checked, reason, unlogged_count, unlogged } => VerifyOutcome::Incomplete {
            ok,
            checked,
            reason,
            unlogged_count,
            unlogged: unlogged
                .into_iter()
                .map(|u| UnloggedEvent {
                    event_id: u.event_id,
                    global_position: u.global_position,
                    recorded_at: u.recorded_at,
                })
                .collect(),
        },
    }))
}

/// A video's funnel (clicks, matches, orders, revenue per product) and click heatmap
/// (merchants and auditors).
#[utoipa::path(get, path = "/api/v1/videos/{video_id}/analytics", tag = "videos",
    params(("video_id" = String, Path, description = "A YouTube id")),
    responses((status = 200, body = VideoAnalytics), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn video_analytics(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<axum::Json<VideoAnalytics>, ApiError> {
    caller.require(&[Role::Merchant, Role::Auditor])?;
    let id = video_id(&raw)?;
    Ok(axum::Json(analytics::video(&app.pool, id.as_str()).await.map_err(ApiError::unavailable)?))
}
