//! Process managers of the shop: what follows from payments and orders.
//!
//! - A payment that succeeded marks its order paid, or, when it pays nothing (the order
//!   was paid by another payment, or cancelled), records a surplus on the order.
//! - A payment that failed or was cancelled ends its claim on the order, so that the
//!   order can be paid by a new attempt.
//! - A surplus is refunded through the payment's provider, with an idempotency key
//!   derived from the event that recorded it (`surplus-<event id>`); the refund of the
//!   payment then records the surplus as given back on the order.
//! - A refunded payment refunds its order (or its surplus).
//! - A cancelled order gives its stock back; a shipped order's stock leaves the shop.
//!
//! Each reads its events like a projection and records the commands it owes in the same
//! transaction as its checkpoint; it sends them after the commit and forgets each once it
//! is carried out. Every command is idempotent (the order is paid by one payment once; a
//! surplus is recorded and refunded once; a reservation is released or committed once),
//! so sending one again after a crash changes nothing. One that is refused for good is
//! kept, with the reason and the time (`refused_at`), for an operator: money owed is never
//! dropped silently.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use framecart_commands::execute::execute;
use framecart_commands::payments::{GatewayError, Gateways};
use framecart_commands::{CommandError, Commands};
use framecart_domain::EventMetadata;
use framecart_domain::log::{LoggedEvent, Namespace};
use framecart_domain::money::Money;
use framecart_domain::order::{self, Order, OrderCommand, OrderEvent};
use framecart_domain::payment::{self, Payment, PaymentCommand, PaymentEvent, PaymentStatus};
use framecart_domain::product::ProductCommand;
use framecart_projections::runner::{Projection, ProjectionError, decode};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub struct Followups {
    name: &'static str,
    aggregate_type: &'static str,
    commands: Arc<Commands>,
    /// Where surpluses are refunded.
    gateways: Gateways,
}

impl Followups {
    /// Payments → orders.
    pub fn of_payments(commands: Arc<Commands>) -> Self {
        Self { name: "payment_followups", aggregate_type: payment::AGGREGATE_TYPE, commands, gateways: Gateways::new() }
    }

    /// Orders → stock, and surpluses → refunds.
    pub fn of_orders(commands: Arc<Commands>, gateways: Gateways) -> Self {
        Self { name: "order_followups", aggregate_type: order::AGGREGATE_TYPE, commands, gateways }
    }
}

/// A command owed because of an event.
struct Owing<'a> {
    kind: &'a str,
    order_id: Uuid,
    payment_id: Option<Uuid>,
    amount: Option<Money>,
    reason: Option<&'a str>,
    at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Owed {
    event_id: Uuid,
    kind: String,
    order_id: Uuid,
    payment_id: Option<Uuid>,
    amount: Option<sqlx::types::Json<Money>>,
    reason: Option<String>,
    at: DateTime<Utc>,
    correlation_id: String,
}

/// Follow-ups that move money: a refusal of one of these is an error for an operator.
const MONEY: [&str; 3] = ["mark_paid", "refund", "refund_surplus"];

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
        let owing =
            |kind, order_id, payment_id, amount, reason, at| Owing { kind, order_id, payment_id, amount, reason, at };
        let owed: Option<Owing<'_>> = match event.aggregate_type.as_str() {
            payment::AGGREGATE_TYPE => match decode(event, position)? {
                PaymentEvent::PaymentStatusChanged(e) if e.to == PaymentStatus::Succeeded => {
                    Some(owing("mark_paid", e.order_id, Some(e.payment_id), Some(e.amount), None, e.at))
                }
                PaymentEvent::PaymentStatusChanged(e) if e.to == PaymentStatus::Canceled => {
                    Some(owing("end_payment", e.order_id, Some(e.payment_id), None, Some("canceled"), e.at))
                }
                PaymentEvent::PaymentFailed(e) => {
                    Some(owing("end_payment", e.order_id, Some(e.payment_id), None, Some("failed"), e.at))
                }
                PaymentEvent::PaymentRefunded(e) => {
                    Some(owing("refund", e.order_id, Some(e.payment_id), Some(e.amount), None, e.at))
                }
                _ => None,
            },
            order::AGGREGATE_TYPE => match decode(event, position)? {
                OrderEvent::OrderCancelled(e) => Some(owing("release_stock", e.order_id, None, None, None, e.at)),
                OrderEvent::OrderShipped(e) => Some(owing("commit_stock", e.order_id, None, None, None, e.at)),
                OrderEvent::OrderSurplusCaptured(e) => {
                    Some(owing("refund_surplus", e.order_id, Some(e.payment_id), Some(e.amount), None, e.at))
                }
                _ => None,
            },
            _ => None,
        };
        let Some(o) = owed else { return Ok(()) };
        sqlx::query(
            "INSERT INTO order_followups (event_id, position, kind, order_id, payment_id, amount, reason, at, correlation_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .bind(event.event_id)
        .bind(position)
        .bind(o.kind)
        .bind(o.order_id)
        .bind(o.payment_id)
        .bind(o.amount.map(sqlx::types::Json))
        .bind(o.reason)
        .bind(o.at)
        .bind(event.correlation_id())
        .execute(tx)
        .await?;
        Ok(())
    }

    async fn after_commit(&self, pool: &PgPool) -> Result<(), ProjectionError> {
        let kinds: &[&str] = if self.aggregate_type == payment::AGGREGATE_TYPE {
            &["mark_paid", "refund", "end_payment"]
        } else {
            &["release_stock", "commit_stock", "refund_surplus"]
        };
        let owed: Vec<Owed> = sqlx::query_as(
            "SELECT event_id, kind, order_id, payment_id, amount, reason, at, correlation_id FROM order_followups
             WHERE kind = ANY($1) AND refused_at IS NULL ORDER BY position LIMIT 100",
        )
        .bind(kinds)
        .fetch_all(pool)
        .await?;
        for o in owed {
            let metadata = EventMetadata::caused_by_event(&o.event_id.to_string(), &o.correlation_id, self.name);
            match self.send(&o, metadata).await {
                Ok(()) => {
                    sqlx::query("DELETE FROM order_followups WHERE event_id = $1")
                        .bind(o.event_id)
                        .execute(pool)
                        .await?;
                }
                Err(FollowupError::Refused(reason)) => {
                    if MONEY.contains(&o.kind.as_str()) {
                        tracing::error!(order_id = %o.order_id, kind = %o.kind, %reason, "a follow-up that moves money was refused; kept for an operator");
                    } else {
                        tracing::warn!(order_id = %o.order_id, kind = %o.kind, %reason, "a follow-up was refused");
                    }
                    sqlx::query(
                        "UPDATE order_followups SET refused_at = now(), refused_reason = $2 WHERE event_id = $1",
                    )
                    .bind(o.event_id)
                    .bind(&reason)
                    .execute(pool)
                    .await?;
                }
                Err(FollowupError::Store(reason)) => {
                    return Err(ProjectionError::Internal(format!("{} for order {}: {reason}", o.kind, o.order_id)));
                }
            }
        }
        Ok(())
    }
}

enum FollowupError {
    /// Refused for good: retrying cannot help.
    Refused(String),
    /// The store or the provider failed: try again later.
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
        let payment = || o.payment_id.ok_or_else(|| FollowupError::Refused("no payment".into()));
        let amount = || o.amount.as_ref().map(|a| a.0).ok_or_else(|| FollowupError::Refused("no amount".into()));
        match o.kind.as_str() {
            "mark_paid" => {
                order_command(OrderCommand::MarkPaid { payment_id: payment()?, amount: amount()?, at: o.at })
                    .await
                    .map_err(classify)
            }
            "end_payment" => {
                let reason = o.reason.clone().unwrap_or_else(|| "ended".into());
                order_command(OrderCommand::EndPayment { payment_id: payment()?, reason, at: o.at })
                    .await
                    .map_err(classify)
            }
            "refund" => order_command(OrderCommand::Refund {
                payment_id: payment()?,
                amount: amount()?,
                reason: "payment refunded".into(),
                at: o.at,
            })
            .await
            .map_err(classify),
            "refund_surplus" => self.refund_surplus(o.event_id, payment()?, amount()?, metadata).await,
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

    /// Gives a surplus back: the provider refunds it (once per key, however often this
    /// runs), then the payment records the refund, which the payments' follow-ups carry
    /// to the order.
    async fn refund_surplus(
        &self,
        event_id: Uuid,
        payment_id: Uuid,
        amount: Money,
        metadata: EventMetadata,
    ) -> Result<(), FollowupError> {
        let id = payment_id.to_string();
        let payment: Payment = self.commands.load(&id).await.map_err(|e| FollowupError::Store(e.to_string()))?;
        let Some(created) = payment.created() else { return Err(FollowupError::Refused("no such payment".into())) };
        if payment.is_refunded() {
            return Ok(()); // done before a crash, or by a merchant
        }
        let gateway = self.gateways.get(created.provider.as_str()).ok_or_else(|| {
            FollowupError::Refused(format!("the payment provider {:?} is not configured here", created.provider))
        })?;
        let key = format!("surplus-{event_id}");
        gateway.refund(&created.intent_id, amount, &key).await.map_err(|e| match e {
            GatewayError::Unavailable(_) => FollowupError::Store(e.to_string()),
            GatewayError::Refused(_) | GatewayError::UnknownIntent(_) => FollowupError::Refused(e.to_string()),
        })?;
        let refund = PaymentCommand::Refund { amount, at: Utc::now() };
        execute(&self.commands.payments, &id, refund, metadata).await.map_err(classify)
    }
}
