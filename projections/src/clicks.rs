//! Projection `clicks`: one row per click, queryable by video, by user and by viewer.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

use framecart_domain::click::{self, ClickEvent};
use framecart_domain::log::{LoggedEvent, Namespace};
use framecart_domain::personal::Subject;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::copy::CopyRows;
use crate::personal::{KeyReader, Keys, erased_subject, is_erasure, with_erasures};
use crate::runner::{Projection, ProjectionError, decode};

pub struct ClicksProjection {
    keys: Arc<KeyReader>,
}

impl ClicksProjection {
    pub fn new(keys: Arc<KeyReader>) -> Self {
        Self { keys }
    }
}

pub const NAME: &str = "clicks";

/// What a forgotten viewer is shown as.
pub const ERASED: &str = "erased";

#[async_trait]
impl Projection for ClicksProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    /// On NATS 2.9 (one filter), every event: erasures are data subjects' events.
    fn filter_subject(&self, ns: &Namespace) -> String {
        ns.all_events_subject()
    }

    fn filter_subjects(&self, ns: &Namespace) -> Vec<String> {
        with_erasures(ns, vec![ns.aggregate_subject(click::AGGREGATE_TYPE)])
    }

    fn wants(&self, aggregate_type: &str, event_type: &str) -> bool {
        aggregate_type == click::AGGREGATE_TYPE || is_erasure(aggregate_type, event_type)
    }

    fn tables(&self) -> &'static [&'static str] {
        &["clicks_view"]
    }

    /// Read by the API only. (`clicks_view_by_subject` stays: an erasure applied during
    /// the replay looks its clicks up by it.)
    fn deferrable_indexes(&self) -> &'static [&'static str] {
        &["clicks_view_by_video", "clicks_view_by_user", "clicks_view_by_viewer"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &LoggedEvent,
        log_position: i64,
    ) -> Result<(), ProjectionError> {
        self.apply_all(tx, &[(event.clone(), log_position)]).await
    }

    /// Clicks and verdicts come by the thousand: each kind is written with one statement
    /// per [`INSERT_CHUNK`] events. Verdicts follow the inserts (a click and its verdict
    /// can share a batch), and only a click's last verdict in the batch is written.
    /// Erasures come last, so a click and its subject's erasure in one batch end erased.
    ///
    /// While the database inserts one chunk, the next is decoded: a rebuild otherwise
    /// alternates between the two, each waiting for the other.
    async fn apply_all(&self, tx: &mut PgConnection, events: &[(LoggedEvent, i64)]) -> Result<(), ProjectionError> {
        let mut verdicts = Verdicts::default();
        let mut erased = Vec::new();
        let mut chunks = events.chunks(INSERT_CHUNK);
        let first = decode_chunk(chunks.next().unwrap_or_default(), &mut verdicts, &mut erased)?;
        let mut rows = self.rows(tx, first).await?;
        for chunk in chunks {
            let (inserted, next) =
                tokio::join!(rows.insert(&mut *tx), async { decode_chunk(chunk, &mut verdicts, &mut erased) });
            inserted?;
            rows = self.rows(tx, next?).await?;
        }
        rows.insert(tx).await?;
        verdicts.update(tx).await?;
        for subject in erased {
            sqlx::query(
                "UPDATE clicks_view SET client_ip = NULL, viewer_cookie = NULL, viewer = $2 WHERE subject = $1",
            )
            .bind(subject.as_str())
            .bind(ERASED)
            .execute(&mut *tx)
            .await?;
            self.keys.forget(&subject);
        }
        Ok(())
    }
}

impl ClicksProjection {
    /// The decoded clicks as rows, their personal data opened with their subjects' keys.
    async fn rows(&self, tx: &mut PgConnection, clicks: Vec<Recorded<'_>>) -> Result<NewRows, ProjectionError> {
        let subjects = clicks.iter().filter_map(|(c, _, _)| c.client_ip.subject());
        let keys = self.keys.keys(tx, subjects).await?;
        let mut rows = NewRows::default();
        for (c, event, log_position) in &clicks {
            rows.push(c, &keys, event, *log_position);
        }
        Ok(rows)
    }
}

/// Events decoded and inserted together (a batch holds up to a few thousand).
const INSERT_CHUNK: usize = 1000;

/// A recorded click, with its event and log position.
type Recorded<'e> = (click::ClickRecorded, &'e LoggedEvent, i64);

/// The recorded clicks of `events`; their verdicts go to `verdicts`, the subjects erased
/// to `erased`.
fn decode_chunk<'e>(
    events: &'e [(LoggedEvent, i64)],
    verdicts: &mut Verdicts,
    erased: &mut Vec<Subject>,
) -> Result<Vec<Recorded<'e>>, ProjectionError> {
    let mut clicks = Vec::with_capacity(events.len());
    for (event, log_position) in events {
        if let Some(subject) = erased_subject(event, *log_position)? {
            erased.push(subject);
            continue;
        }
        match decode(event, *log_position)? {
            ClickEvent::ClickRecorded(c) => clicks.push((c, event, *log_position)),
            ClickEvent::ClickMatched(m) => verdicts.matched(&m),
            ClickEvent::ClickUnmatched(u) => verdicts.unmatched(&u),
        }
    }
    Ok(clicks)
}

/// The columns of `clicks_view` that a recorded click fills, in the order both
/// [`NewRows::insert`] and [`NewRows::copy`] write them.
macro_rules! new_row_columns {
    () => {
        "click_id, log_position, event_id, video_id, video_id_reported, user_id, viewer, client_ip, viewer_cookie,
         x, y, media_time, player_width, player_height, video_width, video_height,
         frame_x, frame_y, frame_u, frame_v, on_black_band, during_ad, received_at, recorded_at, signed_in, subject"
    };
}

/// Recorded clicks as columns, for one multi-row insert.
#[derive(Default)]
struct NewRows {
    click_id: Vec<Uuid>,
    log_position: Vec<i64>,
    event_id: Vec<Uuid>,
    video_id: Vec<String>,
    video_id_reported: Vec<String>,
    user_id: Vec<Option<String>>,
    signed_in: Vec<bool>,
    viewer: Vec<String>,
    client_ip: Vec<Option<String>>,
    viewer_cookie: Vec<Option<String>>,
    subject: Vec<Option<String>>,
    x: Vec<f64>,
    y: Vec<f64>,
    media_time: Vec<f64>,
    player_width: Vec<Option<f64>>,
    player_height: Vec<Option<f64>>,
    video_width: Vec<Option<f64>>,
    video_height: Vec<Option<f64>>,
    frame_x: Vec<Option<f64>>,
    frame_y: Vec<Option<f64>>,
    frame_u: Vec<Option<f64>>,
    frame_v: Vec<Option<f64>>,
    on_black_band: Vec<bool>,
    during_ad: Vec<bool>,
    received_at: Vec<DateTime<Utc>>,
    recorded_at: Vec<DateTime<Utc>>,
}

impl NewRows {
    fn push(&mut self, c: &click::ClickRecorded, keys: &Keys, event: &LoggedEvent, log_position: i64) {
        let frame = c.frame.as_ref();
        let ip = keys.reveal(&c.client_ip).map(|ip| ip.to_string());
        // A cookie is opened only with the address: both are the same subject's.
        let cookie = c.viewer_cookie.as_ref().and_then(|cookie| ip.as_ref().and(keys.reveal(cookie)));
        self.click_id.push(c.click_id);
        self.log_position.push(log_position);
        self.event_id.push(event.event_id);
        self.video_id.push(c.video_id.to_string());
        self.video_id_reported.push(c.video_id_reported.clone());
        self.user_id.push(c.user_id.as_ref().map(|u| u.to_string()));
        self.signed_in.push(signed_in(c, event));
        self.viewer.push(match &ip {
            Some(ip) => viewer(cookie.as_deref(), ip),
            None => ERASED.to_owned(),
        });
        self.client_ip.push(ip);
        self.viewer_cookie.push(cookie);
        self.subject.push(c.client_ip.subject().map(|s| s.to_string()));
        self.x.push(c.x);
        self.y.push(c.y);
        self.media_time.push(c.timestamp);
        self.player_width.push(c.player.map(|s| s.width()));
        self.player_height.push(c.player.map(|s| s.height()));
        self.video_width.push(c.video.map(|s| s.width()));
        self.video_height.push(c.video.map(|s| s.height()));
        self.frame_x.push(frame.map(|f| f.x));
        self.frame_y.push(frame.map(|f| f.y));
        self.frame_u.push(frame.map(|f| f.u));
        self.frame_v.push(frame.map(|f| f.v));
        self.on_black_band.push(c.on_black_band);
        self.during_ad.push(c.during_ad);
        self.received_at.push(c.received_at);
        self.recorded_at.push(event.recorded_at);
    }

    async fn insert(&self, tx: &mut PgConnection) -> Result<(), ProjectionError> {
        if self.click_id.is_empty() {
            return Ok(());
        }
        if self.click_id.len() >= COPY_FROM {
            return self.copy(tx).await;
        }
        sqlx::query(concat!(
            "INSERT INTO clicks_view (",
            new_row_columns!(),
            ")
             SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                 $7::text[], $8::text[], $9::text[], $10::float8[], $11::float8[], $12::float8[],
                 $13::float8[], $14::float8[], $15::float8[], $16::float8[], $17::float8[], $18::float8[],
                 $19::float8[], $20::float8[], $21::bool[], $22::bool[], $23::timestamptz[], $24::timestamptz[],
                 $25::bool[], $26::text[])
             ON CONFLICT (click_id) DO NOTHING"
        ))
        .bind(&self.click_id)
        .bind(&self.log_position)
        .bind(&self.event_id)
        .bind(&self.video_id)
        .bind(&self.video_id_reported)
        .bind(&self.user_id)
        .bind(&self.viewer)
        .bind(&self.client_ip)
        .bind(&self.viewer_cookie)
        .bind(&self.x)
        .bind(&self.y)
        .bind(&self.media_time)
        .bind(&self.player_width)
        .bind(&self.player_height)
        .bind(&self.video_width)
        .bind(&self.video_height)
        .bind(&self.frame_x)
        .bind(&self.frame_y)
        .bind(&self.frame_u)
        .bind(&self.frame_v)
        .bind(&self.on_black_band)
        .bind(&self.during_ad)
        .bind(&self.received_at)
        .bind(&self.recorded_at)
        .bind(&self.signed_in)
        .bind(&self.subject)
        .execute(tx)
        .await?;
        Ok(())
    }

    /// Copies the rows (`COPY`), each click's columns in the order of `new_row_columns!`. A
    /// click already in the view (a second `ClickRecorded` for one click id, which the
    /// aggregate never writes) fails the copy as a unique violation: the batch is then
    /// applied an event at a time, each inserted with `ON CONFLICT DO NOTHING`.
    async fn copy(&self, tx: &mut PgConnection) -> Result<(), ProjectionError> {
        let mut rows = CopyRows::new(26, self.click_id.len() * 320);
        for i in 0..self.click_id.len() {
            rows.row()
                .uuid(&self.click_id[i])
                .bigint(self.log_position[i])
                .uuid(&self.event_id[i])
                .text(&self.video_id[i])
                .text(&self.video_id_reported[i])
                .text_or_null(self.user_id[i].as_deref())
                .text(&self.viewer[i])
                .text_or_null(self.client_ip[i].as_deref())
                .text_or_null(self.viewer_cookie[i].as_deref())
                .float8(self.x[i])
                .float8(self.y[i])
                .float8(self.media_time[i])
                .float8_or_null(self.player_width[i])
                .float8_or_null(self.player_height[i])
                .float8_or_null(self.video_width[i])
                .float8_or_null(self.video_height[i])
                .float8_or_null(self.frame_x[i])
                .float8_or_null(self.frame_y[i])
                .float8_or_null(self.frame_u[i])
                .float8_or_null(self.frame_v[i])
                .bool(self.on_black_band[i])
                .bool(self.during_ad[i])
                .timestamptz(&self.received_at[i])
                .timestamptz(&self.recorded_at[i])
                .bool(self.signed_in[i])
                .text_or_null(self.subject[i].as_deref());
        }
        rows.copy(tx, concat!("COPY clicks_view (", new_row_columns!(), ") FROM STDIN (FORMAT binary)")).await?;
        Ok(())
    }
}

/// From this many rows, a chunk of clicks is copied rather than inserted: a rebuild or a
/// catch-up, where Postgres writes the rows in about 40 % less time (see [`crate::copy`]). Live
/// batches are smaller, and a copy costs a round trip more.
const COPY_FROM: usize = 100;

/// The matcher's verdicts as columns, the last one per click, for one multi-row update.
#[derive(Default)]
struct Verdicts {
    index: std::collections::HashMap<Uuid, usize>,
    click_id: Vec<Uuid>,
    status: Vec<&'static str>,
    reason: Vec<Option<&'static str>>,
    article: Vec<Option<String>>,
    identifier: Vec<Option<String>>,
    label: Vec<Option<String>>,
    track_id: Vec<Option<String>>,
    bbox: Vec<Option<serde_json::Value>>,
    score: Vec<Option<f64>>,
    explanation: Vec<String>,
    candidates: Vec<serde_json::Value>,
    run_id: Vec<Uuid>,
    at: Vec<DateTime<Utc>>,
}

/// One verdict's columns.
struct VerdictRow {
    status: &'static str,
    reason: Option<&'static str>,
    article: Option<String>,
    identifier: Option<String>,
    label: Option<String>,
    track_id: Option<String>,
    bbox: Option<serde_json::Value>,
    score: Option<f64>,
    explanation: String,
    candidates: serde_json::Value,
    run_id: Uuid,
    at: DateTime<Utc>,
}

impl Verdicts {
    fn matched(&mut self, m: &click::ClickMatched) {
        let b = &m.best;
        let product = b.product.as_ref();
        self.put(
            m.click_id,
            VerdictRow {
                status: "matched",
                reason: None,
                article: product.map(|p| p.article.clone()),
                identifier: product.map(|p| p.additional_identifier.clone()),
                label: Some(b.label.clone()),
                track_id: Some(b.track_id.clone()),
                bbox: Some(serde_json::json!([b.bbox.xmin, b.bbox.ymin, b.bbox.xmax, b.bbox.ymax])),
                score: Some(b.distance),
                explanation: m.reason.clone(),
                candidates: serde_json::to_value(&m.candidates).unwrap_or_default(),
                run_id: m.run_id,
                at: m.evaluated_at,
            },
        );
    }

    fn unmatched(&mut self, u: &click::ClickUnmatched) {
        self.put(
            u.click_id,
            VerdictRow {
                status: "unmatched",
                reason: Some(u.reason.as_str()),
                article: None,
                identifier: None,
                label: None,
                track_id: None,
                bbox: None,
                score: None,
                explanation: u.explanation.clone(),
                candidates: serde_json::to_value(&u.candidates).unwrap_or_default(),
                run_id: u.run_id,
                at: u.evaluated_at,
            },
        );
    }

    fn put(&mut self, click_id: Uuid, v: VerdictRow) {
        if let Some(&i) = self.index.get(&click_id) {
            self.status[i] = v.status;
            self.reason[i] = v.reason;
            self.article[i] = v.article;
            self.identifier[i] = v.identifier;
            self.label[i] = v.label;
            self.track_id[i] = v.track_id;
            self.bbox[i] = v.bbox;
            self.score[i] = v.score;
            self.explanation[i] = v.explanation;
            self.candidates[i] = v.candidates;
            self.run_id[i] = v.run_id;
            self.at[i] = v.at;
            return;
        }
        self.index.insert(click_id, self.click_id.len());
        self.click_id.push(click_id);
        self.status.push(v.status);
        self.reason.push(v.reason);
        self.article.push(v.article);
        self.identifier.push(v.identifier);
        self.label.push(v.label);
        self.track_id.push(v.track_id);
        self.bbox.push(v.bbox);
        self.score.push(v.score);
        self.explanation.push(v.explanation);
        self.candidates.push(v.candidates);
        self.run_id.push(v.run_id);
        self.at.push(v.at);
    }

    async fn update(&self, tx: &mut PgConnection) -> Result<(), ProjectionError> {
        if self.click_id.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE clicks_view c SET match_status = v.status, match_reason = v.reason, match_article = v.article,
                 match_identifier = v.identifier, match_label = v.label, match_track_id = v.track_id,
                 match_box = v.bbox, match_score = v.score, match_explanation = v.explanation,
                 match_candidates = v.candidates, match_run_id = v.run_id, matched_at = v.at,
                 match_projected_at = clock_timestamp()
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::jsonb[], $9::float8[], $10::text[], $11::jsonb[], $12::uuid[], $13::timestamptz[])
                  AS v(click_id, status, reason, article, identifier, label, track_id, bbox, score, explanation,
                       candidates, run_id, at)
             WHERE c.click_id = v.click_id",
        )
        .bind(&self.click_id)
        .bind(&self.status)
        .bind(&self.reason)
        .bind(&self.article)
        .bind(&self.identifier)
        .bind(&self.label)
        .bind(&self.track_id)
        .bind(&self.bbox)
        .bind(&self.score)
        .bind(&self.explanation)
        .bind(&self.candidates)
        .bind(&self.run_id)
        .bind(&self.at)
        .execute(tx)
        .await?;
        Ok(())
    }
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
    /// The click was sent with its user's token (see [`ClickView::signed_in`]).
    #[serde(skip)]
    pub signed_in: bool,
}

const MATCH_COLUMNS: &str = "click_id, video_id, user_id, media_time AS timestamp, match_status AS status,
    match_article AS article, match_identifier AS additional_identifier, match_label AS label,
    match_track_id AS track_id, match_box AS bbox, match_score AS score, match_reason AS reason,
    match_explanation AS explanation, coalesce(match_candidates, '[]'::jsonb) AS candidates,
    match_run_id AS run_id, matched_at, log_position, signed_in";

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
           AND (NOT $6 OR signed_in)
           AND log_position > $4
         ORDER BY log_position
         LIMIT $5"
    ))
    .bind(filter.video_id.as_deref())
    .bind(filter.user_id.as_deref())
    .bind(filter.viewer.as_deref())
    .bind(filter.after.unwrap_or(0))
    .bind(filter.limit)
    .bind(filter.signed_in_only)
    .fetch_all(pool)
    .await
}

/// Whether the click's user is the account whose token sent it. A client without a
/// token may report any user id (as the original system allowed); such a click is
/// anonymous: its user id is a claim, and it is not that account's to read.
fn signed_in(c: &click::ClickRecorded, event: &LoggedEvent) -> bool {
    let actor = event.metadata.get(framecart_domain::metadata::ACTOR).map(String::as_str);
    match (&c.user_id, actor.and_then(|a| a.strip_prefix("user:"))) {
        (Some(user), Some(actor)) => user.as_str() == actor,
        _ => false,
    }
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
    /// `cookie:<value>` or `ip:<address>`; `erased` once the viewer's personal data is.
    pub viewer: String,
    /// Null once the viewer's personal data is erased.
    pub client_ip: Option<String>,
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
    /// The click was sent with its user's token, so it is that account's click; without a
    /// token a reported user id is only a claim.
    #[serde(skip)]
    pub signed_in: bool,
}

#[derive(sqlx::FromRow)]
struct Row {
    click_id: Uuid,
    log_position: i64,
    video_id: String,
    video_id_reported: String,
    user_id: Option<String>,
    viewer: String,
    client_ip: Option<String>,
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
    signed_in: bool,
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
            signed_in: r.signed_in,
        }
    }
}

const COLUMNS: &str = "click_id, log_position, video_id, video_id_reported, user_id, viewer, client_ip,
    x, y, media_time, player_width, player_height, video_width, video_height,
    frame_x, frame_y, frame_u, frame_v, on_black_band, during_ad, received_at, recorded_at, signed_in";

/// Which clicks to list; every filter is optional and they combine.
#[derive(Debug, Clone, Default)]
pub struct ClickFilter {
    pub video_id: Option<String>,
    pub user_id: Option<String>,
    pub viewer: Option<String>,
    /// Only clicks sent with their user's token (a viewer's own clicks).
    pub signed_in_only: bool,
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
           AND (NOT $6 OR signed_in)
           AND log_position > $4
         ORDER BY log_position
         LIMIT $5"
    ))
    .bind(filter.video_id.as_deref())
    .bind(filter.user_id.as_deref())
    .bind(filter.viewer.as_deref())
    .bind(filter.after.unwrap_or(0))
    .bind(filter.limit)
    .bind(filter.signed_in_only)
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
