//! Process managers of the shop: what follows from payments and orders.
//!
//! - A payment that succeeded marks its order paid; a refunded payment refunds its order.
//! - A cancelled order gives its stock back; a shipped order's stock leaves the shop.
//!
//! Each reads its events like a projection and records the commands it owes in the same
//! transaction as its checkpoint; it sends them after the commit and forgets each once it
//! is carried out or refused for good. Every command is idempotent (the order is paid by
//! one payment once; a reservation is released or committed once), so sending one again
//! after a crash changes nothing.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use framecart_commands::execute::execute;
use framecart_commands::{CommandError, Commands};
use framecart_domain::EventMetadata;
use framecart_domain::log::{LoggedEvent, Namespace};
use framecart_domain::money::Money;
use framecart_domain::order::{self, Order, OrderCommand, OrderEvent};
use framecart_domain::payment::{self, PaymentEvent, PaymentStatus};
use framecart_domain::product::ProductCommand;
use framecart_projections::runner::{Projection, ProjectionError, decode};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub struct Followups {
    name: &'static str,
    aggregate_type: &'static str,
    commands: Arc<Commands>,
}

impl Followups {
    /// Payments → orders.
    pub fn of_payments(commands: Arc<Commands>) -> Self {
        Self { name: "payment_followups", aggregate_type: payment::AGGREGATE_TYPE, commands }
    }

    /// Orders → stock.
    pub fn of_orders(commands: Arc<Commands>) -> Self {
        Self { name: "order_followups", aggregate_type: order::AGGREGATE_TYPE, commands }
    }
}

#[derive(sqlx::FromRow)]
struct Owed {
    event_id: Uuid,
    kind: String,
    order_id: Uuid,
    payment_id: Option<Uuid>,
    amount: Option<sqlx::types::Json<Money>>,
    at: DateTime<Utc>,
    correlation_id: String,
}

#[async_trait]
impl Projection for Followups {
    fn name(&self) -> &'static str {
        self.name
    }

    fn filter_subject(&self, ns: &Namespace) -> String {
        ns.aggregate_subject(self.aggregate_type)
    }

    /// Nothing is emptied on a rebuild: replayed events owe their commands again, and
    /// sending them again changes nothing.
    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    async fn apply(&self, tx: &mut PgConnection, event: &LoggedEvent, position: i64) -> Result<(), ProjectionError> {
        let owed: Option<(&str, Uuid, Option<Uuid>, Option<Money>, DateTime<Utc>)> = match event.aggregate_type.as_str()
        {
            payment::AGGREGATE_TYPE => match decode(event, position)? {
                PaymentEvent::PaymentStatusChanged(e) if e.to == PaymentStatus::Succeeded => {
                    Some(("mark_paid", e.order_id, Some(e.payment_id), Some(e.amount), e.at))
                }
                PaymentEvent::PaymentRefunded(e) => {
                    Some(("refund", e.order_id, Some(e.payment_id), Some(e.amount), e.at))
                }
                _ => None,
            },
            order::AGGREGATE_TYPE => match decode(event, position)? {
                OrderEvent::OrderCancelled(e) => Some(("release_stock", e.order_id, None, None, e.at)),
                OrderEvent::OrderShipped(e) => Some(("commit_stock", e.order_id, None, None, e.at)),
                _ => None,
            },
            _ => None,
        };
        let Some((kind, order_id, payment_id, amount, at)) = owed else { return Ok(()) };
        sqlx::query(
            "INSERT INTO order_followups (event_id, position, kind, order_id, payment_id, amount, at, correlation_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(event.event_id)
        .bind(position)
        .bind(kind)
        .bind(order_id)
        .bind(payment_id)
        .bind(amount.map(sqlx::types::Json))
        .bind(at)
        .bind(event.metadata.get("correlation_id").cloned().unwrap_or_default())
        .execute(tx)
        .await?;
        Ok(())
    }

    async fn after_commit(&self, pool: &PgPool) -> Result<(), ProjectionError> {
        let kinds: &[&str] = if self.aggregate_type == payment::AGGREGATE_TYPE {
            &["mark_paid", "refund"]
        } else {
            &["release_stock", "commit_stock"]
        };
        let owed: Vec<Owed> = sqlx::query_as(
            "SELECT event_id, kind, order_id, payment_id, amount, at, correlation_id FROM order_followups
             WHERE kind = ANY($1) ORDER BY position LIMIT 100",
        )
        .bind(kinds)
        .fetch_all(pool)
        .await?;
        for o in owed {
            let metadata = EventMetadata::caused_by_event(&o.event_id.to_string(), &o.correlation_id, self.name);
            match self.send(&o, metadata).await {
                Ok(()) => {}
                Err(FollowupError::Refused(reason)) => {
                    tracing::warn!(order_id = %o.order_id, kind = %o.kind, %reason, "a follow-up was refused; dropping it");
                }
                Err(FollowupError::Store(reason)) => {
                    return Err(ProjectionError::Internal(format!("{} for order {}: {reason}", o.kind, o.order_id)));
                }
            }
            sqlx::query("DELETE FROM order_followups WHERE event_id = $1").bind(o.event_id).execute(pool).await?;
        }
        Ok(())
    }
}

enum FollowupError {
    /// Refused for good: retrying cannot help.
    Refused(String),
    /// The store failed: try again later.
    Store(String),
}

fn classify<E: std::error::Error>(e: CommandError<E>) -> FollowupError {
    match e {
        CommandError::Refused(e) => FollowupError::Refused(e.to_string()),
        other => FollowupError::Store(other.to_string()),
    }
}

impl Followups {
    async fn send(&self, o: &Owed, metadata: EventMetadata) -> Result<(), FollowupError> {
        let order_id = o.order_id.to_string();
        let order_command = |command| execute(&self.commands.orders, &order_id, command, metadata.clone());
        match o.kind.as_str() {
            "mark_paid" => {
                let (Some(payment_id), Some(amount)) = (o.payment_id, &o.amount) else {
                    return Err(FollowupError::Refused("no payment".into()));
                };
                order_command(OrderCommand::MarkPaid { payment_id, amount: amount.0, at: o.at }).await.map_err(classify)
            }
            "refund" => {
                let Some(amount) = &o.amount else { return Err(FollowupError::Refused("no amount".into())) };
                order_command(OrderCommand::Refund { amount: amount.0, reason: "payment refunded".into(), at: o.at })
                    .await
                    .map_err(classify)
            }
            "release_stock" | "commit_stock" => {
                let order: Order =
                    self.commands.load(&order_id).await.map_err(|e| FollowupError::Store(e.to_string()))?;
                let Some(placed) = order.placed() else { return Err(FollowupError::Refused("no such order".into())) };
                for line in &placed.lines {
                    let command = if o.kind == "release_stock" {
                        ProductCommand::ReleaseStock { order_id: o.order_id }
                    } else {
                        ProductCommand::CommitStock { order_id: o.order_id }
                    };
                    execute(&self.commands.products, line.article.as_str(), command, metadata.clone())
                        .await
                        .map_err(classify)?;
                }
                Ok(())
            }
            other => Err(FollowupError::Refused(format!("unknown follow-up {other}"))),
        }
    }
}
