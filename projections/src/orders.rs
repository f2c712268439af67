//! Projections `orders` and `payments`: each order with its lines and status, and each
//! payment attempt in the states of the provider.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

use framecart_domain::log::{LoggedEvent, Namespace};
use framecart_domain::order::{self, OrderEvent, OrderStatus};
use framecart_domain::payment::{self, PaymentEvent, PaymentStatus};
use framecart_domain::personal::SubjectKind;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::personal::{KeyReader, erased_subject, is_erasure, with_erasures};
use crate::runner::{Projection, ProjectionError, decode};

pub struct OrdersProjection {
    keys: Arc<KeyReader>,
}

impl OrdersProjection {
    pub fn new(keys: Arc<KeyReader>) -> Self {
        Self { keys }
    }
}

#[async_trait]
impl Projection for OrdersProjection {
    fn name(&self) -> &'static str {
        "orders"
    }

    /// On NATS 2.9 (one filter), every event: erasures are data subjects' events.
    fn filter_subject(&self, ns: &Namespace) -> String {
        ns.all_events_subject()
    }

    fn filter_subjects(&self, ns: &Namespace) -> Vec<String> {
        with_erasures(ns, vec![ns.aggregate_subject(order::AGGREGATE_TYPE)])
    }

    fn wants(&self, aggregate_type: &str, event_type: &str) -> bool {
        aggregate_type == order::AGGREGATE_TYPE || is_erasure(aggregate_type, event_type)
    }

    fn tables(&self) -> &'static [&'static str] {
        &["orders_view"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &LoggedEvent,
        log_position: i64,
    ) -> Result<(), ProjectionError> {
        let status = |s: OrderStatus| s.as_str();
        if let Some(subject) = erased_subject(event, log_position)? {
            // The buyer's contact and address go; lines, totals and payments stay.
            if let SubjectKind::User(user_id) = subject.kind() {
                sqlx::query("UPDATE orders_view SET contact = 'null', shipping_address = 'null' WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            self.keys.forget(&subject);
            return Ok(());
        }
        match decode::<OrderEvent>(event, log_position)? {
            OrderEvent::OrderPlaced(e) => {
                let keys = self
                    .keys
                    .keys(&mut *tx, e.contact.subject().into_iter().chain(e.shipping_address.subject()))
                    .await?;
                let (contact, address) = (keys.reveal(&e.contact), keys.reveal(&e.shipping_address));
                let lines: Vec<serde_json::Value> = e
                    .lines
                    .iter()
                    .map(|l| {
                        serde_json::json!({
                            "article": l.article, "name": l.name, "quantity": l.quantity,
                            "unit_price_minor": l.unit_price.minor,
                            "line_total_minor": l.unit_price.minor.saturating_mul(i64::from(l.quantity)),
                        })
                    })
                    .collect();
                sqlx::query(
                    "INSERT INTO orders_view (order_id, user_id, status, lines, total_minor, currency, click_id, contact,
                         shipping_address, placed_at, updated_at, log_position)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11) ON CONFLICT DO NOTHING",
                )
                .bind(e.order_id)
                .bind(e.user_id)
                .bind(status(OrderStatus::AwaitingPayment))
                .bind(serde_json::Value::Array(lines))
                .bind(e.total.minor)
                .bind(e.total.currency.as_str())
                .bind(e.click_id)
                .bind(serde_json::to_value(&contact).unwrap_or_default())
                .bind(serde_json::to_value(&address).unwrap_or_default())
                .bind(e.placed_at)
                .bind(log_position)
                .execute(tx)
                .await?;
            }
            OrderEvent::OrderPaid(e) => {
                sqlx::query("UPDATE orders_view SET status = $2, payment_id = $3, updated_at = $4 WHERE order_id = $1")
                    .bind(e.order_id)
                    .bind(status(OrderStatus::Paid))
                    .bind(e.payment_id)
                    .bind(e.paid_at)
                    .execute(tx)
                    .await?;
            }
            OrderEvent::OrderRefunded(e) => {
                sqlx::query(
                    "UPDATE orders_view SET status = $2, refunded_minor = $3, updated_at = $4 WHERE order_id = $1",
                )
                .bind(e.order_id)
                .bind(status(OrderStatus::Refunded))
                .bind(e.amount.minor)
                .bind(e.at)
                .execute(tx)
                .await?;
            }
            OrderEvent::OrderSurplusCaptured(e) => {
                sqlx::query(
                    "UPDATE orders_view SET surplus_captured_minor = surplus_captured_minor + $2, updated_at = $3
                     WHERE order_id = $1",
                )
                .bind(e.order_id)
                .bind(e.amount.minor)
                .bind(e.at)
                .execute(tx)
                .await?;
            }
            OrderEvent::OrderSurplusRefunded(e) => {
                sqlx::query(
                    "UPDATE orders_view SET surplus_refunded_minor = surplus_refunded_minor + $2, updated_at = $3
                     WHERE order_id = $1",
                )
                .bind(e.order_id)
                .bind(e.amount.minor)
                .bind(e.at)
                .execute(tx)
                .await?;
            }
            other => {
                let (order_id, new, at) = match &other {
                    OrderEvent::OrderCancelled(e) => (e.order_id, OrderStatus::Cancelled, e.at),
                    OrderEvent::OrderShipped(e) => (e.order_id, OrderStatus::Shipped, e.at),
                    OrderEvent::OrderCompleted(e) => (e.order_id, OrderStatus::Completed, e.at),
                    _ => return Ok(()),
                };
                sqlx::query("UPDATE orders_view SET status = $2, updated_at = $3 WHERE order_id = $1")
                    .bind(order_id)
                    .bind(status(new))
                    .bind(at)
                    .execute(tx)
                    .await?;
            }
        }
        Ok(())
    }
}

/// One order.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct OrderView {
    #[serde(rename = "id")]
    pub order_id: Uuid,
    pub user_id: Uuid,
    /// `awaiting_payment`, `paid`, `shipped`, `completed`, `cancelled`, `refunded`.
    pub status: String,
    /// `[{"article", "name", "quantity", "unit_price_minor", "line_total_minor"}]`.
    #[schema(value_type = Vec<Object>)]
    pub lines: serde_json::Value,
    pub total_minor: i64,
    pub currency: String,
    /// The click the order came from.
    pub click_id: Option<Uuid>,
    /// Null once the buyer's personal data is erased.
    #[schema(value_type = Object)]
    pub contact: serde_json::Value,
    /// Null once the buyer's personal data is erased.
    #[schema(value_type = Object)]
    pub shipping_address: serde_json::Value,
    /// The payment that paid it.
    pub payment_id: Option<Uuid>,
    pub refunded_minor: Option<i64>,
    /// Minor units a payment captured beyond what paid the order (a second capture, or
    /// one after the order was cancelled), which are refunded automatically.
    pub surplus_captured_minor: i64,
    /// Of those, what was refunded so far.
    pub surplus_refunded_minor: i64,
    #[serde(rename = "created_at")]
    pub placed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const ORDER_COLUMNS: &str =
    "order_id, user_id, status, lines, total_minor, currency, click_id, contact, shipping_address,
    payment_id, refunded_minor, surplus_captured_minor, surplus_refunded_minor, placed_at, updated_at";

pub async fn get(pool: &PgPool, order_id: Uuid) -> Result<Option<OrderView>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {ORDER_COLUMNS} FROM orders_view WHERE order_id = $1"))
        .bind(order_id)
        .fetch_optional(pool)
        .await
}

/// Orders, newest first; only one user's when `user_id` is given.
pub async fn list(pool: &PgPool, user_id: Option<Uuid>, limit: i64) -> Result<Vec<OrderView>, sqlx::Error> {
    list_in(pool, user_id, None, limit).await
}

/// Orders newest first: a buyer's (or everyone's), in one status (or any).
pub async fn list_in(
    pool: &PgPool,
    user_id: Option<Uuid>,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<OrderView>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders_view
         WHERE ($1::uuid IS NULL OR user_id = $1) AND ($3::text IS NULL OR status = $3)
         ORDER BY placed_at DESC, order_id LIMIT $2"
    ))
    .bind(user_id)
    .bind(limit)
    .bind(status)
    .fetch_all(pool)
    .await
}

/// The states an order can be in, as the view names them.
pub const ORDER_STATUSES: [&str; 6] = ["awaiting_payment", "paid", "shipped", "completed", "cancelled", "refunded"];

pub struct PaymentsProjection;

#[async_trait]
impl Projection for PaymentsProjection {
    fn name(&self) -> &'static str {
        "payments"
    }

    fn filter_subject(&self, ns: &Namespace) -> String {
        ns.aggregate_subject(payment::AGGREGATE_TYPE)
    }

    fn tables(&self) -> &'static [&'static str] {
        &["payments_view"]
    }

    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &LoggedEvent,
        log_position: i64,
    ) -> Result<(), ProjectionError> {
        match decode::<PaymentEvent>(event, log_position)? {
            PaymentEvent::PaymentCreated(e) => {
                sqlx::query(
                    "INSERT INTO payments_view (payment_id, order_id, user_id, provider, intent_id, amount_minor, currency,
                         status, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT DO NOTHING",
                )
                .bind(e.payment_id)
                .bind(e.order_id)
                .bind(e.user_id)
                .bind(&e.provider)
                .bind(&e.intent_id)
                .bind(e.amount.minor)
                .bind(e.amount.currency.as_str())
                .bind(PaymentStatus::RequiresPaymentMethod.as_str())
                .bind(e.created_at)
                .execute(tx)
                .await?;
            }
            PaymentEvent::PaymentStatusChanged(e) => {
                sqlx::query("UPDATE payments_view SET status = $2, updated_at = $3 WHERE payment_id = $1")
                    .bind(e.payment_id)
                    .bind(e.to.as_str())
                    .bind(e.at)
                    .execute(tx)
                    .await?;
            }
            PaymentEvent::PaymentFailed(e) => {
                sqlx::query(
                    "UPDATE payments_view SET status = $2, failure_code = $3, failure_message = $4, updated_at = $5
                     WHERE payment_id = $1",
                )
                .bind(e.payment_id)
                .bind(PaymentStatus::RequiresPaymentMethod.as_str())
                .bind(&e.code)
                .bind(&e.message)
                .bind(e.at)
                .execute(tx)
                .await?;
            }
            PaymentEvent::PaymentRefunded(e) => {
                sqlx::query("UPDATE payments_view SET refunded = true, updated_at = $2 WHERE payment_id = $1")
                    .bind(e.payment_id)
                    .bind(e.at)
                    .execute(tx)
                    .await?;
            }
            // Kept in the log for operators; the payment did not change.
            PaymentEvent::PaymentReportIgnored(_) => {}
        }
        Ok(())
    }
}

/// One payment attempt.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct PaymentView {
    #[serde(rename = "id")]
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub provider: String,
    pub amount_minor: i64,
    pub currency: String,
    /// A PaymentIntent status: `requires_payment_method`, `requires_confirmation`,
    /// `requires_action`, `processing`, `requires_capture`, `succeeded`, `canceled`.
    pub status: String,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub refunded: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The payment attempts of these orders, oldest first (one query for any number).
pub async fn payments_of(pool: &PgPool, order_ids: &[Uuid]) -> Result<Vec<PaymentView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT payment_id, order_id, provider, amount_minor, currency, status, failure_code, failure_message,
                refunded, created_at, updated_at
         FROM payments_view WHERE order_id = ANY($1) ORDER BY created_at",
    )
    .bind(order_ids)
    .fetch_all(pool)
    .await
}
