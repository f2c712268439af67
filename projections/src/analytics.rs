//! Projection `analytics`: per video, the funnel click → match → order → paid, orders and
//! revenue per product, and a heatmap of clicks on a grid of normalized frame coordinates.

use async_trait::async_trait;
use framecart_domain::click::{self, ClickEvent};
use framecart_domain::log::{LoggedEvent, Namespace};
use framecart_domain::order::{self, OrderEvent};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;

use crate::runner::{Projection, ProjectionError, decode};

pub const NAME: &str = "analytics";
/// Heatmap cells per side.
pub const GRID: i32 = 20;
/// The width of a bin of the clicks' timeline, in seconds of the video.
pub const TIMELINE_BIN_SECONDS: f64 = 1.0;

pub struct AnalyticsProjection;

#[async_trait]
impl Projection for AnalyticsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter_subject(&self, ns: &Namespace) -> String {
        ns.all_events_subject()
    }

    fn filter_subjects(&self, ns: &Namespace) -> Vec<String> {
        vec![ns.aggregate_subject(click::AGGREGATE_TYPE), ns.aggregate_subject(order::AGGREGATE_TYPE)]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["analytics_clicks", "analytics_heatmap", "analytics_orders"]
    }

    /// Read by the reports only.
    fn deferrable_indexes(&self) -> &'static [&'static str] {
        &["analytics_clicks_by_video", "analytics_orders_by_video"]
    }

    fn wants(&self, aggregate_type: &str, _event_type: &str) -> bool {
        aggregate_type == click::AGGREGATE_TYPE || aggregate_type == order::AGGREGATE_TYPE
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &LoggedEvent,
        log_position: i64,
    ) -> Result<(), ProjectionError> {
        match event.aggregate_type.as_str() {
            click::AGGREGATE_TYPE => apply_click(tx, decode(event, log_position)?).await,
            order::AGGREGATE_TYPE => apply_order(tx, decode(event, log_position)?).await,
            _ => Ok(()),
        }
    }

    /// Clicks arrive by the thousand: a batch's recorded clicks are inserted in one
    /// statement, its heatmap counts added in another, and its verdicts (a click's last in
    /// the batch) written in a third. Orders are rare; what came before one is written
    /// first, since an order reads its click's video.
    async fn apply_all(&self, tx: &mut PgConnection, events: &[(LoggedEvent, i64)]) -> Result<(), ProjectionError> {
        let mut clicks = ClickBatch::default();
        for (event, log_position) in events {
            match event.aggregate_type.as_str() {
                click::AGGREGATE_TYPE => clicks.push(decode(event, *log_position)?),
                order::AGGREGATE_TYPE => {
                    clicks.flush(tx).await?;
                    apply_order(tx, decode(event, *log_position)?).await?;
                }
                _ => {}
            }
        }
        clicks.flush(tx).await
    }
}

/// A batch of click events, as columns.
#[derive(Default)]
struct ClickBatch {
    click_id: Vec<uuid::Uuid>,
    video_id: Vec<String>,
    media_time: Vec<f64>,
    /// (video, gx, gy) → clicks.
    cells: std::collections::BTreeMap<(String, i32, i32), i64>,
    /// click → (status, article), the last verdict of the batch.
    verdicts: std::collections::HashMap<uuid::Uuid, (&'static str, Option<String>)>,
}

impl ClickBatch {
    fn push(&mut self, event: ClickEvent) {
        match event {
            ClickEvent::ClickRecorded(c) => {
                if let Some(frame) = c.frame.filter(|f| f.on_frame) {
                    *self.cells.entry((c.video_id.to_string(), cell(frame.u), cell(frame.v))).or_default() += 1;
                }
                self.click_id.push(c.click_id);
                self.video_id.push(c.video_id.to_string());
                self.media_time.push(c.timestamp);
            }
            ClickEvent::ClickMatched(m) => {
                self.verdicts.insert(m.click_id, ("matched", m.best.product.map(|p| p.article.to_string())));
            }
            ClickEvent::ClickUnmatched(u) => {
                self.verdicts.insert(u.click_id, ("unmatched", None));
            }
        }
    }

    async fn flush(&mut self, tx: &mut PgConnection) -> Result<(), ProjectionError> {
        if !self.click_id.is_empty() {
            sqlx::query(
                "INSERT INTO analytics_clicks (click_id, video_id, media_time)
                 SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::float8[]) ON CONFLICT DO NOTHING",
            )
            .bind(&self.click_id)
            .bind(&self.video_id)
            .bind(&self.media_time)
            .execute(&mut *tx)
            .await?;
        }
        if !self.cells.is_empty() {
            let (mut videos, mut gx, mut gy, mut counts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for ((video, x, y), n) in &self.cells {
                videos.push(video.as_str());
                gx.push(*x);
                gy.push(*y);
                counts.push(*n);
            }
            sqlx::query(
                "INSERT INTO analytics_heatmap (video_id, gx, gy, clicks)
                 SELECT * FROM UNNEST($1::text[], $2::int4[], $3::int4[], $4::int8[])
                 ON CONFLICT (video_id, gx, gy) DO UPDATE SET clicks = analytics_heatmap.clicks + EXCLUDED.clicks",
            )
            .bind(&videos)
            .bind(&gx)
            .bind(&gy)
            .bind(&counts)
            .execute(&mut *tx)
            .await?;
        }
        if !self.verdicts.is_empty() {
            let (mut ids, mut statuses, mut articles) = (Vec::new(), Vec::new(), Vec::new());
            for (id, (status, article)) in &self.verdicts {
                ids.push(*id);
                statuses.push(*status);
                articles.push(article.as_deref());
            }
            sqlx::query(
                "UPDATE analytics_clicks c SET status = v.status, article = v.article
                 FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS v(click_id, status, article)
                 WHERE c.click_id = v.click_id",
            )
            .bind(&ids)
            .bind(&statuses)
            .bind(&articles)
            .execute(&mut *tx)
            .await?;
        }
        *self = Self::default();
        Ok(())
    }
}

fn cell(p: f64) -> i32 {
    ((p * f64::from(GRID)).floor() as i32).clamp(0, GRID - 1)
}

async fn apply_click(tx: &mut PgConnection, event: ClickEvent) -> Result<(), ProjectionError> {
    match event {
        ClickEvent::ClickRecorded(c) => {
            sqlx::query(
                "INSERT INTO analytics_clicks (click_id, video_id, media_time) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(c.click_id)
            .bind(c.video_id.as_str())
            .bind(c.timestamp)
            .execute(&mut *tx)
            .await?;
            if let Some(frame) = c.frame.filter(|f| f.on_frame) {
                sqlx::query(
                    "INSERT INTO analytics_heatmap (video_id, gx, gy, clicks) VALUES ($1, $2, $3, 1)
                     ON CONFLICT (video_id, gx, gy) DO UPDATE SET clicks = analytics_heatmap.clicks + 1",
                )
                .bind(c.video_id.as_str())
                .bind(cell(frame.u))
                .bind(cell(frame.v))
                .execute(tx)
                .await?;
            }
        }
        ClickEvent::ClickMatched(m) => {
            let article = m.best.product.map(|p| p.article);
            sqlx::query("UPDATE analytics_clicks SET status = 'matched', article = $2 WHERE click_id = $1")
                .bind(m.click_id)
                .bind(article)
                .execute(tx)
                .await?;
        }
        ClickEvent::ClickUnmatched(u) => {
            sqlx::query("UPDATE analytics_clicks SET status = 'unmatched', article = NULL WHERE click_id = $1")
                .bind(u.click_id)
                .execute(tx)
                .await?;
        }
    }
    Ok(())
}

async fn apply_order(tx: &mut PgConnection, event: OrderEvent) -> Result<(), ProjectionError> {
    let (order_id, status) = match event {
        OrderEvent::OrderPlaced(e) => {
            let lines: Vec<serde_json::Value> = e
                .lines
                .iter()
                .map(|l| serde_json::json!({"article": l.article, "quantity": l.quantity, "unit_price_minor": l.unit_price.minor}))
                .collect();
            sqlx::query(
                "INSERT INTO analytics_orders (order_id, video_id, click_id, status, lines, currency)
                 VALUES ($1, (SELECT video_id FROM analytics_clicks WHERE click_id = $2), $2, 'awaiting_payment', $3, $4)
                 ON CONFLICT DO NOTHING",
            )
            .bind(e.order_id)
            .bind(e.click_id)
            .bind(serde_json::Value::Array(lines))
            .bind(e.total.currency.as_str())
            .execute(tx)
            .await?;
            return Ok(());
        }
        OrderEvent::OrderRefunded(e) => {
            sqlx::query("UPDATE analytics_orders SET status = 'refunded', refunded = $2 WHERE order_id = $1")
                .bind(e.order_id)
                .bind(e.amount.minor)
                .execute(tx)
                .await?;
            return Ok(());
        }
        OrderEvent::OrderPaid(e) => (e.order_id, "paid"),
        OrderEvent::OrderShipped(e) => (e.order_id, "shipped"),
        OrderEvent::OrderCompleted(e) => (e.order_id, "completed"),
        OrderEvent::OrderCancelled(e) => (e.order_id, "cancelled"),
        // Payment attempts, surpluses given back, order ids never placed: not in the funnel.
        OrderEvent::OrderPaymentStarted(_)
        | OrderEvent::OrderPaymentEnded(_)
        | OrderEvent::OrderSurplusCaptured(_)
        | OrderEvent::OrderSurplusRefunded(_)
        | OrderEvent::OrderVoided(_) => return Ok(()),
    };
    sqlx::query("UPDATE analytics_orders SET status = $2 WHERE order_id = $1")
        .bind(order_id)
        .bind(status)
        .execute(tx)
        .await?;
    Ok(())
}

/// One product's part of a video's funnel.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct ProductFunnel {
    pub article: String,
    /// Clicks matched to this product.
    pub matched_clicks: i64,
    /// Orders from this video's clicks with a line of this product.
    pub orders: i64,
    /// Of those, the ones paid (then maybe shipped, completed).
    pub paid_orders: i64,
    /// Paid revenue of this product's lines, in minor units of `currency`. Summed exactly
    /// (Postgres `numeric`) and saturated at the bounds of a 64-bit integer, so no total is
    /// ever too large to answer.
    pub revenue_minor: i64,
    pub currency: Option<String>,
}

/// A video's analytics.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VideoAnalytics {
    pub video_id: String,
    pub clicks: i64,
    pub matched: i64,
    pub unmatched: i64,
    pub pending: i64,
    pub orders: i64,
    pub paid_orders: i64,
    /// Paid revenue (the paid orders' lines), one total per currency.
    pub revenue: Vec<Revenue>,
    pub products: Vec<ProductFunnel>,
    pub heatmap: Heatmap,
    /// Clicks over the video's time, in bins of one second.
    pub timeline: ClickTimeline,
}

/// Paid revenue in one currency.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Revenue {
    pub currency: String,
    /// Minor units, summed exactly and saturated at the bounds of a 64-bit integer.
    pub revenue_minor: i64,
}

/// Clicks counted per bin of the video's media time: bin `i` covers `[i, i + 1)` times
/// `bin_seconds`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClickTimeline {
    pub bin_seconds: f64,
    /// `[bin, clicks]` for every bin clicked at least once, in time order.
    pub bins: Vec<[i64; 2]>,
}

/// Clicks on the picture counted per cell of a `grid` × `grid` split of the frame
/// (normalized coordinates: cell `gx` covers `u` in `[gx/grid, (gx+1)/grid)`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Heatmap {
    pub grid: i32,
    /// `[gx, gy, clicks]` for every cell clicked at least once.
    pub cells: Vec<[i64; 3]>,
}

/// The orders whose money came in (and was not refunded).
const PAID: &str = "status IN ('paid', 'shipped', 'completed')";
/// Every line of the video's orders, with its amount in minor units, exactly (`numeric`).
const LINES: &str = "lines AS (
    SELECT o.order_id, o.status, o.currency, l->>'article' AS article,
           (l->>'quantity')::numeric * (l->>'unit_price_minor')::numeric AS amount
    FROM analytics_orders o, jsonb_array_elements(o.lines) l
    WHERE o.video_id = $1
)";

/// A `numeric` sum as a `bigint`, saturated at its bounds, so no total is too large to answer.
fn saturated(sum: &str) -> String {
    format!("least(greatest({sum}, -9223372036854775808), 9223372036854775807)::bigint")
}

pub async fn video(pool: &PgPool, video_id: &str) -> Result<VideoAnalytics, sqlx::Error> {
    let (clicks, matched, unmatched, pending): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE status = 'matched'), count(*) FILTER (WHERE status = 'unmatched'),
                count(*) FILTER (WHERE status = 'pending')
         FROM analytics_clicks WHERE video_id = $1",
    )
    .bind(video_id)
    .fetch_one(pool)
    .await?;
    let (orders, paid_orders): (i64, i64) = sqlx::query_as(&format!(
        "SELECT count(*), count(*) FILTER (WHERE {PAID}) FROM analytics_orders WHERE video_id = $1"
    ))
    .bind(video_id)
    .fetch_one(pool)
    .await?;
    let products: Vec<ProductFunnel> = sqlx::query_as(&format!(
        "WITH {LINES},
         sold AS (
             SELECT article, count(DISTINCT order_id) AS orders,
                    count(DISTINCT order_id) FILTER (WHERE {PAID}) AS paid_orders,
                    {} AS revenue_minor,
                    min(currency) AS currency
             FROM lines GROUP BY article
         ),
         clicked AS (
             SELECT article, count(*) AS matched_clicks FROM analytics_clicks
             WHERE video_id = $1 AND status = 'matched' AND article IS NOT NULL GROUP BY article
         )
         SELECT coalesce(c.article, s.article) AS article, coalesce(c.matched_clicks, 0) AS matched_clicks,
                coalesce(s.orders, 0) AS orders, coalesce(s.paid_orders, 0) AS paid_orders,
                coalesce(s.revenue_minor, 0) AS revenue_minor, s.currency
         FROM clicked c FULL JOIN sold s ON s.article = c.article
         ORDER BY 1",
        saturated(&format!("coalesce(sum(amount) FILTER (WHERE {PAID}), 0)"))
    ))
    .bind(video_id)
    .fetch_all(pool)
    .await?;
    let revenue: Vec<Revenue> = sqlx::query_as(&format!(
        "WITH {LINES}
         SELECT currency, {} AS revenue_minor FROM lines WHERE {PAID} GROUP BY currency ORDER BY currency",
        saturated("sum(amount)")
    ))
    .bind(video_id)
    .fetch_all(pool)
    .await?;
    // Clicks recorded before the view kept their time (it is rebuilt with them) are left out.
    let bins: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT floor(media_time / $2)::bigint AS bin, count(*) FROM analytics_clicks
         WHERE video_id = $1 AND media_time IS NOT NULL GROUP BY 1 ORDER BY 1",
    )
    .bind(video_id)
    .bind(TIMELINE_BIN_SECONDS)
    .fetch_all(pool)
    .await?;
    let cells: Vec<(i32, i32, i64)> =
        sqlx::query_as("SELECT gx, gy, clicks FROM analytics_heatmap WHERE video_id = $1 ORDER BY gy, gx")
            .bind(video_id)
            .fetch_all(pool)
            .await?;
    Ok(VideoAnalytics {
        video_id: video_id.to_owned(),
        clicks,
        matched,
        unmatched,
        pending,
        orders,
        paid_orders,
        revenue,
        products,
        heatmap: Heatmap {
            grid: GRID,
            cells: cells.into_iter().map(|(x, y, n)| [i64::from(x), i64::from(y), n]).collect(),
        },
        timeline: ClickTimeline {
            bin_seconds: TIMELINE_BIN_SECONDS,
            bins: bins.into_iter().map(|(bin, n)| [bin, n]).collect(),
        },
    })
}
