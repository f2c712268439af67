//! Projection `clicks`: one row per click, queryable by video, by user and by viewer.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use framecart_domain::click::{self, ClickEvent};
use framecart_domain::log::{LoggedEvent, Namespace};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::runner::{Projection, ProjectionError, decode};

pub struct ClicksProjection;

pub const NAME: &str = "clicks";

#[async_trait]
impl Projection for ClicksProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter_subject(&self, ns: &Namespace) -> String {
        ns.aggregate_subject(click::AGGREGATE_TYPE)
    }

    fn tables(&self) -> &'static [&'static str] {
        &["clicks_view"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &LoggedEvent,
        log_position: i64,
    ) -> Result<(), ProjectionError> {
        let c = match decode(event, log_position)? {
            ClickEvent::ClickRecorded(c) => c,
            ClickEvent::ClickMatched(m) => {
                let b = &m.best;
                let product = b.product.as_ref();
                return record_verdict(
                    tx,
                    m.click_id,
                    Verdict {
                        status: "matched",
                        reason: None,
                        article: product.map(|p| p.article.as_str()),
                        identifier: product.map(|p| p.additional_identifier.as_str()),
                        label: Some(&b.label),
                        track_id: Some(&b.track_id),
                        bbox: Some(serde_json::json!([b.bbox.xmin, b.bbox.ymin, b.bbox.xmax, b.bbox.ymax])),
                        score: Some(b.distance),
                        explanation: &m.reason,
                        candidates: serde_json::to_value(&m.candidates).unwrap_or_default(),
                        run_id: m.run_id,
                        at: m.evaluated_at,
                    },
                )
                .await;
            }
            ClickEvent::ClickUnmatched(u) => {
                return record_verdict(
                    tx,
                    u.click_id,
                    Verdict {
                        status: "unmatched",
                        reason: Some(u.reason.as_str()),
                        article: None,
                        identifier: None,
                        label: None,
                        track_id: None,
                        bbox: None,
                        score: None,
                        explanation: &u.explanation,
                        candidates: serde_json::to_value(&u.candidates).unwrap_or_default(),
                        run_id: u.run_id,
                        at: u.evaluated_at,
                    },
                )
                .await;
            }
        };
        let frame = c.frame.as_ref();
        sqlx::query(
            "INSERT INTO clicks_view (click_id, log_position, event_id, video_id, video_id_reported,
                 user_id, viewer, client_ip, viewer_cookie, x, y, media_time,
                 player_width, player_height, video_width, video_height,
                 frame_x, frame_y, frame_u, frame_v, on_black_band, during_ad, received_at, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                     $17, $18, $19, $20, $21, $22, $23, $24)
             ON CONFLICT (click_id) DO NOTHING",
        )
        .bind(c.click_id)
        .bind(log_position)
        .bind(event.event_id)
        .bind(c.video_id.as_str())
        .bind(&c.video_id_reported)
        .bind(c.user_id.as_ref().map(|u| u.as_str()))
        .bind(viewer(c.viewer_cookie.as_deref(), &c.client_ip.to_string()))
        .bind(c.client_ip.to_string())
        .bind(c.viewer_cookie.as_deref())
        .bind(c.x)
        .bind(c.y)
        .bind(c.timestamp)
        .bind(c.player.map(|s| s.width()))
        .bind(c.player.map(|s| s.height()))
        .bind(c.video.map(|s| s.width()))
        .bind(c.video.map(|s| s.height()))
        .bind(frame.map(|f| f.x))
        .bind(frame.map(|f| f.y))
        .bind(frame.map(|f| f.u))
        .bind(frame.map(|f| f.v))
        .bind(c.on_black_band)
        .bind(c.during_ad)
        .bind(c.received_at)
        .bind(event.recorded_at)
        .execute(tx)
        .await?;
        Ok(())
    }
}

struct Verdict<'a> {
    status: &'static str,
    reason: Option<&'static str>,
    article: Option<&'a str>,
    identifier: Option<&'a str>,
    label: Option<&'a str>,
    track_id: Option<&'a str>,
    bbox: Option<serde_json::Value>,
    score: Option<f64>,
    explanation: &'a str,
    candidates: serde_json::Value,
    run_id: Uuid,
    at: DateTime<Utc>,
}

async fn record_verdict(tx: &mut PgConnection, click_id: Uuid, v: Verdict<'_>) -> Result<(), ProjectionError> {
    sqlx::query(
        "UPDATE clicks_view SET match_status = $2, match_reason = $3, match_article = $4, match_identifier = $5,
             match_label = $6, match_track_id = $7, match_box = $8, match_score = $9, match_explanation = $10,
             match_candidates = $11, match_run_id = $12, matched_at = $13, match_projected_at = clock_timestamp()
         WHERE click_id = $1",
    )
    .bind(click_id)
    .bind(v.status)
    .bind(v.reason)
    .bind(v.article)
    .bind(v.identifier)
    .bind(v.label)
    .bind(v.track_id)
    .bind(v.bbox)
    .bind(v.score)
    .bind(v.explanation)
    .bind(v.candidates)
    .bind(v.run_id)
    .bind(v.at)
    .execute(tx)
    .await?;
    Ok(())
}

/// What the matcher made of a click.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct MatchView {
    pub click_id: Uuid,
    pub video_id: String,
    pub user_id: Option<String>,
    /// Media time of the click, in seconds.
    pub timestamp: f64,
    /// `matched`, `unmatched`, or `pending` (the video has no completed detection run yet).
    pub status: String,
    /// The linked product's article, when matched.
    pub article: Option<String>,
    pub additional_identifier: Option<String>,
    /// The clicked object's label and track.
    pub label: Option<String>,
    pub track_id: Option<String>,
    /// The clicked object's box at the click's time, normalized `[xmin, ymin, xmax, ymax]`.
    #[schema(value_type = Option<Vec<f64>>)]
    pub bbox: Option<serde_json::Value>,
    /// Signed distance in CSS pixels from the click to the box (negative inside).
    pub score: Option<f64>,
    /// Why unmatched: `black_band`, `no_object_near`, `not_linked`, `during_ad`.
    pub reason: Option<String>,
    /// The verdict in words.
    pub explanation: Option<String>,
    /// Every object near the click, best first, each with why it ranks there.
    #[schema(value_type = Vec<Object>)]
    pub candidates: serde_json::Value,
    pub run_id: Option<Uuid>,
    pub matched_at: Option<DateTime<Utc>>,
    pub log_position: i64,
}

const MATCH_COLUMNS: &str = "click_id, video_id, user_id, media_time AS timestamp, match_status AS status,
    match_article AS article, match_identifier AS additional_identifier, match_label AS label,
    match_track_id AS track_id, match_box AS bbox, match_score AS score, match_reason AS reason,
    match_explanation AS explanation, coalesce(match_candidates, '[]'::jsonb) AS candidates,
    match_run_id AS run_id, matched_at, log_position";

pub async fn match_of(pool: &PgPool, click_id: Uuid) -> Result<Option<MatchView>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {MATCH_COLUMNS} FROM clicks_view WHERE click_id = $1"))
        .bind(click_id)
        .fetch_optional(pool)
        .await
}

/// Verdicts on clicks in log order, filtered like [`list`].
pub async fn matches(pool: &PgPool, filter: &ClickFilter) -> Result<Vec<MatchView>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {MATCH_COLUMNS} FROM clicks_view
         WHERE ($1::text IS NULL OR video_id = $1)
           AND ($2::text IS NULL OR user_id = $2)
           AND ($3::text IS NULL OR viewer = $3)
           AND log_position > $4
         ORDER BY log_position
         LIMIT $5"
    ))
    .bind(filter.video_id.as_deref())
    .bind(filter.user_id.as_deref())
    .bind(filter.viewer.as_deref())
    .bind(filter.after.unwrap_or(0))
    .bind(filter.limit)
    .fetch_all(pool)
    .await
}

/// Who the viewer is: the configured cookie's value when the client sent one (it survives
/// address changes), else the client address.
pub fn viewer(cookie: Option<&str>, client_ip: &str) -> String {
    match cookie {
        Some(cookie) => format!("cookie:{cookie}"),
        None => format!("ip:{client_ip}"),
    }
}

/// A size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct SizeView {
    pub width: f64,
    pub height: f64,
}

/// Where the click landed in the played frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct FrameView {
    /// Frame pixel column in the played resolution.
    pub x: f64,
    /// Frame pixel row in the played resolution.
    pub y: f64,
    /// `x / frame width`.
    pub u: f64,
    /// `y / frame height`.
    pub v: f64,
}

/// One click as the `clicks` view holds it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ClickView {
    pub click_id: Uuid,
    /// Position in the event log; `after` pages by it.
    pub log_position: i64,
    /// Canonical YouTube id.
    pub video_id: String,
    /// The video id as the client reported it.
    pub video_id_reported: String,
    pub user_id: Option<String>,
    /// `cookie:<value>` or `ip:<address>`.
    pub viewer: String,
    pub client_ip: String,
    /// CSS pixels from the video element's top-left corner.
    pub x: f64,
    pub y: f64,
    /// Media time in seconds.
    pub timestamp: f64,
    pub player: Option<SizeView>,
    pub video: Option<SizeView>,
    pub frame: Option<FrameView>,
    pub on_black_band: bool,
    pub during_ad: bool,
    pub received_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    click_id: Uuid,
    log_position: i64,
    video_id: String,
    video_id_reported: String,
    user_id: Option<String>,
    viewer: String,
    client_ip: String,
    x: f64,
    y: f64,
    media_time: f64,
    player_width: Option<f64>,
    player_height: Option<f64>,
    video_width: Option<f64>,
    video_height: Option<f64>,
    frame_x: Option<f64>,
    frame_y: Option<f64>,
    frame_u: Option<f64>,
    frame_v: Option<f64>,
    on_black_band: bool,
    during_ad: bool,
    received_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
}

fn size(w: Option<f64>, h: Option<f64>) -> Option<SizeView> {
    Some(SizeView { width: w?, height: h? })
}

impl From<Row> for ClickView {
    fn from(r: Row) -> Self {
        let frame = match (r.frame_x, r.frame_y, r.frame_u, r.frame_v) {
            (Some(x), Some(y), Some(u), Some(v)) => Some(FrameView { x, y, u, v }),
            _ => None,
        };
        Self {
            click_id: r.click_id,
            log_position: r.log_position,
            video_id: r.video_id,
            video_id_reported: r.video_id_reported,
            user_id: r.user_id,
            viewer: r.viewer,
            client_ip: r.client_ip,
            x: r.x,
            y: r.y,
            timestamp: r.media_time,
            player: size(r.player_width, r.player_height),
            video: size(r.video_width, r.video_height),
            frame,
            on_black_band: r.on_black_band,
            during_ad: r.during_ad,
            received_at: r.received_at,
            recorded_at: r.recorded_at,
        }
    }
}

const COLUMNS: &str = "click_id, log_position, video_id, video_id_reported, user_id, viewer, client_ip,
    x, y, media_time, player_width, player_height, video_width, video_height,
    frame_x, frame_y, frame_u, frame_v, on_black_band, during_ad, received_at, recorded_at";

/// Which clicks to list; every filter is optional and they combine.
#[derive(Debug, Clone, Default)]
pub struct ClickFilter {
    pub video_id: Option<String>,
    pub user_id: Option<String>,
    pub viewer: Option<String>,
    /// Only clicks after this log position.
    pub after: Option<i64>,
    pub limit: i64,
}

/// Clicks in log order.
pub async fn list(pool: &PgPool, filter: &ClickFilter) -> Result<Vec<ClickView>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM clicks_view
         WHERE ($1::text IS NULL OR video_id = $1)
           AND ($2::text IS NULL OR user_id = $2)
           AND ($3::text IS NULL OR viewer = $3)
           AND log_position > $4
         ORDER BY log_position
         LIMIT $5"
    ))
    .bind(filter.video_id.as_deref())
    .bind(filter.user_id.as_deref())
    .bind(filter.viewer.as_deref())
    .bind(filter.after.unwrap_or(0))
    .bind(filter.limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(ClickView::from).collect())
}

pub async fn get(pool: &PgPool, click_id: Uuid) -> Result<Option<ClickView>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM clicks_view WHERE click_id = $1"))
        .bind(click_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(ClickView::from))
}
