//! Projection `products`: the catalogue, searchable by a fragment of the article number.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use framecart_domain::log::{LoggedEvent, Namespace};
use framecart_domain::product::{self, ProductEvent};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;

use crate::runner::{Projection, ProjectionError, decode};

pub const NAME: &str = "products";

pub struct ProductsProjection;

#[async_trait]
impl Projection for ProductsProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter_subject(&self, ns: &Namespace) -> String {
        ns.aggregate_subject(product::AGGREGATE_TYPE)
    }

    fn tables(&self) -> &'static [&'static str] {
        &["products_view"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &LoggedEvent,
        log_position: i64,
    ) -> Result<(), ProjectionError> {
        let at = event.recorded_at;
        let article = event.aggregate_id.as_str();
        sqlx::query("UPDATE products_view SET version = $2 WHERE article = $1")
            .bind(article)
            .bind(event.sequence)
            .execute(&mut *tx)
            .await?;
        let update = |sql: &'static str| sqlx::query(sql).bind(article).bind(at);
        match decode::<ProductEvent>(event, log_position)? {
            ProductEvent::ProductCreated(e) => {
                sqlx::query(
                    "INSERT INTO products_view (article, name, description, price_minor, currency, stock,
                         image_url, active, created_at, updated_at, version)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, true, $8, $8, $9) ON CONFLICT DO NOTHING",
                )
                .bind(e.article.as_str())
                .bind(&e.name)
                .bind(&e.description)
                .bind(e.price.minor)
                .bind(e.price.currency.as_str())
                .bind(i64::from(e.stock))
                .bind(&e.image_url)
                .bind(at)
                .bind(event.sequence)
                .execute(tx)
                .await?;
            }
            ProductEvent::ProductRenamed(e) => {
                update("UPDATE products_view SET name = $3, updated_at = $2 WHERE article = $1")
                    .bind(e.name)
                    .execute(tx)
                    .await?;
            }
            ProductEvent::ProductDescribed(e) => {
                update("UPDATE products_view SET description = $3, updated_at = $2 WHERE article = $1")
                    .bind(e.description)
                    .execute(tx)
                    .await?;
            }
            ProductEvent::ProductRepriced(e) => {
                update("UPDATE products_view SET price_minor = $3, currency = $4, updated_at = $2 WHERE article = $1")
                    .bind(e.price.minor)
                    .bind(e.price.currency.as_str().to_owned())
                    .execute(tx)
                    .await?;
            }
            ProductEvent::ProductRestocked(e) => {
                update("UPDATE products_view SET stock = $3, updated_at = $2 WHERE article = $1")
                    .bind(i64::from(e.stock))
                    .execute(tx)
                    .await?;
            }
            ProductEvent::ProductImageChanged(e) => {
                update("UPDATE products_view SET image_url = $3, updated_at = $2 WHERE article = $1")
                    .bind(e.image_url)
                    .execute(tx)
                    .await?;
            }
            ProductEvent::ProductRetired(_) => {
                update("UPDATE products_view SET active = false, updated_at = $2 WHERE article = $1")
                    .execute(tx)
                    .await?;
            }
            ProductEvent::ProductReactivated(_) => {
                update("UPDATE products_view SET active = true, updated_at = $2 WHERE article = $1")
                    .execute(tx)
                    .await?;
            }
            ProductEvent::StockReserved(e) => {
                update("UPDATE products_view SET reserved = reserved + $3, updated_at = $2 WHERE article = $1")
                    .bind(i64::from(e.quantity))
                    .execute(tx)
                    .await?;
            }
            ProductEvent::StockReleased(e) => {
                update("UPDATE products_view SET reserved = reserved - $3, updated_at = $2 WHERE article = $1")
                    .bind(i64::from(e.quantity))
                    .execute(tx)
                    .await?;
            }
            ProductEvent::StockCommitted(e) => {
                update(
                    "UPDATE products_view SET reserved = reserved - $3, stock = stock - $3, updated_at = $2
                     WHERE article = $1",
                )
                .bind(i64::from(e.quantity))
                .execute(tx)
                .await?;
            }
        }
        Ok(())
    }
}

/// One product of the catalogue.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct ProductView {
    pub article: String,
    pub name: String,
    pub description: String,
    /// Price in minor units of `currency` (cents for EUR).
    pub price_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Units on hand.
    pub stock: i64,
    /// Units held by open orders.
    pub reserved: i64,
    pub image_url: Option<String>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Changes so far (the aggregate's sequence).
    pub version: i64,
}

const COLUMNS: &str = "article, name, description, price_minor, currency, stock, reserved, image_url, active, created_at, updated_at, version";

/// Products whose article number contains `fragment` (case-insensitive), by article.
pub async fn search(
    pool: &PgPool,
    fragment: Option<&str>,
    active: Option<bool>,
    limit: i64,
) -> Result<Vec<ProductView>, sqlx::Error> {
    // The fragment is matched literally: LIKE's wildcards in it are escaped.
    let pattern = fragment.map(|f| {
        let escaped = f.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        format!("%{escaped}%")
    });
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM products_view
         WHERE ($1::text IS NULL OR lower(article) LIKE $1 OR lower(name) LIKE $1)
           AND ($2::boolean IS NULL OR active = $2)
         ORDER BY article LIMIT $3"
    ))
    .bind(pattern)
    .bind(active)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn get(pool: &PgPool, article: &str) -> Result<Option<ProductView>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM products_view WHERE article = $1"))
        .bind(article)
        .fetch_optional(pool)
        .await
}

/// A product that can be bought in a video, and when.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct VideoProduct {
    pub link_id: uuid::Uuid,
    pub article: String,
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
    pub image_url: Option<String>,
    pub additional_identifier: String,
    /// `label` or `track`.
    pub kind: String,
    pub label: Option<String>,
    pub track_id: Option<String>,
    /// Media seconds when the linked objects can be clicked.
    pub from: Option<f64>,
    pub to: Option<f64>,
}

/// The products linked in a video (active links of active products), with their windows:
/// a label link's own window, a track link's track span.
pub async fn in_video(pool: &PgPool, video_id: &str) -> Result<Vec<VideoProduct>, sqlx::Error> {
    sqlx::query_as(
        "SELECT l.link_id, p.article, p.name, p.price_minor, p.currency, p.image_url, l.additional_identifier,
                    l.kind, coalesce(l.label, t.label) AS label, l.track_id,
                    coalesce(l.t_from, t.t_start) AS \"from\", coalesce(l.t_to, t.t_end) AS \"to\"
             FROM links_view l
             JOIN products_view p ON p.article = l.article AND p.active
             LEFT JOIN tracks_view t ON t.track_id = l.track_id
             WHERE l.video_id = $1 AND l.active
             ORDER BY coalesce(l.t_from, t.t_start) NULLS LAST, l.position",
    )
    .bind(video_id)
    .fetch_all(pool)
    .await
}

/// A link as the merchant made it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct LinkView {
    pub link_id: uuid::Uuid,
    pub video_id: String,
    pub article: String,
    /// `label` or `track`.
    pub kind: String,
    pub label: Option<String>,
    #[serde(rename = "from")]
    pub t_from: Option<f64>,
    #[serde(rename = "to")]
    pub t_to: Option<f64>,
    pub track_id: Option<String>,
    pub additional_identifier: String,
    pub active: bool,
    pub linked_at: DateTime<Utc>,
    pub unlinked_at: Option<DateTime<Utc>>,
}

pub async fn links(pool: &PgPool, video_id: &str, include_removed: bool) -> Result<Vec<LinkView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT link_id, video_id, article, kind, label, t_from, t_to, track_id, additional_identifier,
                active, linked_at, unlinked_at
         FROM links_view WHERE video_id = $1 AND (active OR $2) ORDER BY position",
    )
    .bind(video_id)
    .bind(include_removed)
    .fetch_all(pool)
    .await
}
