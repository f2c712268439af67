//! Stock held for an order that was never placed is given back.
//!
//! Placing an order reserves each line's stock, then records the order
//! (`routes::orders`). A crash, or a client that gives up, between the two would leave
//! units held for an order that does not exist. So every reservation says when it
//! expires (`FRAMECART_RESERVATION_TTL_SECS` after it was made), and this process
//! manager reads reservations from the log like a projection: it keeps those not yet
//! released or committed in `stock_reservations`, in the transaction of its checkpoint,
//! and after each batch, and every half second, settles those past their time:
//!
//! 1. it voids the order id (`OrderCommand::Void`). The order aggregate decides between
//!    the placement and the expiry, atomically: a placed order is not voided and keeps
//!    its units (its own follow-ups give them back when it is cancelled, or send them out
//!    when it ships), and a voided order id can never be placed;
//! 2. for a voided order, it releases the units of each article (`StockReleased`).
//!
//! Both steps are idempotent, and a row is forgotten only after both, so a crash midway
//! is finished on the next run.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use framecart_commands::execute::execute;
use framecart_commands::{CommandError, Commands};
use framecart_domain::EventMetadata;
use framecart_domain::log::{LoggedEvent, Namespace};
use framecart_domain::order::{OrderCommand, OrderError};
use framecart_domain::product::{self, ProductCommand, ProductEvent};
use framecart_projections::runner::{Projection, ProjectionError, decode};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub struct Reservations {
    commands: Arc<Commands>,
}

impl Reservations {
    pub fn new(commands: Arc<Commands>) -> Self {
        Self { commands }
    }
}

const NAME: &str = "reservation_followups";

#[async_trait]
impl Projection for Reservations {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter_subject(&self, ns: &Namespace) -> String {
        ns.aggregate_subject(product::AGGREGATE_TYPE)
    }

    fn filter_subjects(&self, ns: &Namespace) -> Vec<String> {
        ["StockReserved", "StockReleased", "StockCommitted"]
            .map(|event_type| ns.event_type_subject(product::AGGREGATE_TYPE, event_type))
            .to_vec()
    }

    /// Rebuilt from the reservations, releases and commits in the log.
    fn tables(&self) -> &'static [&'static str] {
        &["stock_reservations"]
    }

    fn wants(&self, _aggregate_type: &str, event_type: &str) -> bool {
        matches!(event_type, "StockReserved" | "StockReleased" | "StockCommitted")
    }

    async fn apply(&self, tx: &mut PgConnection, event: &LoggedEvent, position: i64) -> Result<(), ProjectionError> {
        match decode(event, position)? {
            ProductEvent::StockReserved(e) => {
                // A reservation made before reservations expired is held until its order ends.
                let Some(expires_at) = e.expires_at else { return Ok(()) };
                sqlx::query(
                    "INSERT INTO stock_reservations (order_id, article, expires_at, event_id, correlation_id)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(e.order_id)
                .bind(e.article.as_str())
                .bind(expires_at)
                .bind(event.event_id)
                .bind(event.correlation_id())
                .execute(tx)
                .await?;
            }
            ProductEvent::StockReleased(e) | ProductEvent::StockCommitted(e) => {
                sqlx::query("DELETE FROM stock_reservations WHERE order_id = $1 AND article = $2")
                    .bind(e.order_id)
                    .bind(e.article.as_str())
                    .execute(tx)
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn after_commit(&self, pool: &PgPool) -> Result<(), ProjectionError> {
        let expired: Vec<(Uuid, Vec<String>, Uuid, String)> = sqlx::query_as(
            "SELECT order_id, array_agg(article ORDER BY article), (array_agg(event_id))[1], (array_agg(correlation_id))[1]
             FROM stock_reservations WHERE expires_at <= now()
             GROUP BY order_id ORDER BY min(expires_at) LIMIT 100",
        )
        .fetch_all(pool)
        .await?;
        for (order_id, articles, event_id, correlation_id) in expired {
            let metadata = EventMetadata::caused_by_event(&event_id.to_string(), &correlation_id, NAME);
            self.settle(order_id, &articles, metadata).await?;
            sqlx::query("DELETE FROM stock_reservations WHERE order_id = $1 AND article = ANY($2)")
                .bind(order_id)
                .bind(&articles)
                .execute(pool)
                .await?;
        }
        Ok(())
    }
}

impl Reservations {
    /// Voids the order id and gives its units back, or leaves them to the placed order.
    async fn settle(
        &self,
        order_id: Uuid,
        articles: &[String],
        metadata: EventMetadata,
    ) -> Result<(), ProjectionError> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            ProjectionError::Internal(format!("expiring the reservations of order {order_id}: {what}: {e}"))
        };
        let void = OrderCommand::Void {
            order_id,
            reason: "its stock reservation expired before the order was placed".into(),
            at: Utc::now(),
        };
        match execute(&self.commands.orders, &order_id.to_string(), void, metadata.clone()).await {
            Ok(()) => {}
            // Placed in time: the order holds its units now.
            Err(CommandError::Refused(OrderError::AlreadyPlaced)) => return Ok(()),
            Err(CommandError::Refused(e)) => {
                tracing::warn!(%order_id, error = %e, "an expired reservation's order could not be voided");
                return Ok(());
            }
            Err(e) => return Err(failed("void", &e)),
        }
        tracing::info!(%order_id, ?articles, "an order was not placed in time: its reserved stock is given back");
        for article in articles {
            let release = ProductCommand::ReleaseStock { order_id };
            match execute(&self.commands.products, article, release, metadata.clone()).await {
                Ok(()) => {}
                Err(CommandError::Refused(e)) => {
                    tracing::warn!(%order_id, %article, error = %e, "an expired reservation could not be released");
                }
                Err(e) => return Err(failed("release", &e)),
            }
        }
        Ok(())
    }
}
