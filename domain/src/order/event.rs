//! Events of the order aggregate. Type names and versions are stable strings.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Address, Contact, OrderLine};
use crate::money::Money;
use crate::personal::{Personal, stored_in_clear};
use crate::upcast::Upcaster;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(
    clippy::large_enum_variant,
    reason = "built once per command or event and moved a few times; boxing would only add an allocation"
)]
pub enum OrderEvent {
    OrderPlaced(OrderPlaced),
    OrderPaid(OrderPaid),
    OrderCancelled(OrderClosed),
    OrderShipped(OrderShipped),
    OrderCompleted(OrderClosed),
    OrderRefunded(OrderRefunded),
    OrderPaymentStarted(OrderPaymentStarted),
    OrderPaymentEnded(OrderPaymentEnded),
    OrderSurplusCaptured(OrderSurplus),
    OrderSurplusRefunded(OrderSurplus),
    OrderVoided(OrderClosed),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    /// The click the order came from: the funnel click → match → order → paid.
    pub click_id: Option<Uuid>,
    /// Personal data: sealed since 2.0, in clear before.
    pub contact: Personal<Contact>,
    pub shipping_address: Personal<Address>,
    pub placed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPaid {
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub amount: Money,
    pub paid_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderClosed {
    pub order_id: Uuid,
    pub reason: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderShipped {
    pub order_id: Uuid,
    pub tracking: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRefunded {
    pub order_id: Uuid,
    pub amount: Money,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// A payment attempt claimed the order: no other may start until it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPaymentStarted {
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub at: DateTime<Utc>,
}

/// A payment attempt ended without paying: `failed`, `canceled`, `abandoned` (the
/// request gave up) or `timed_out` (superseded by a later attempt).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPaymentEnded {
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// Money a payment captured that did not pay the order (the order was paid by another
/// payment, cancelled, or the amount was not its total): captured, then given back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderSurplus {
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub amount: Money,
    pub at: DateTime<Utc>,
}

/// The version of `OrderPlaced` written today; the other events are at 1.0.
pub const ORDER_PLACED_VERSION: &str = "2.0";

impl crate::upcast::Upcast for OrderEvent {
    const UPCASTERS: &'static [Upcaster] =
        &[Upcaster { event_type: "OrderPlaced", to_version: ORDER_PLACED_VERSION, rewrite: personal_in_clear }];
}

/// 1.0 → 2.0: the contact and address were in clear; they are read as
/// [`Personal::Clear`], and such events cannot be shredded.
fn personal_in_clear(v: serde_json::Value) -> serde_json::Value {
    stored_in_clear(v, "OrderPlaced", &["contact", "shipping_address"])
}

impl DomainEvent for OrderEvent {
    fn event_type(&self) -> String {
        match self {
            Self::OrderPlaced(_) => "OrderPlaced",
            Self::OrderPaid(_) => "OrderPaid",
            Self::OrderCancelled(_) => "OrderCancelled",
            Self::OrderShipped(_) => "OrderShipped",
            Self::OrderCompleted(_) => "OrderCompleted",
            Self::OrderRefunded(_) => "OrderRefunded",
            Self::OrderPaymentStarted(_) => "OrderPaymentStarted",
            Self::OrderPaymentEnded(_) => "OrderPaymentEnded",
            Self::OrderSurplusCaptured(_) => "OrderSurplusCaptured",
            Self::OrderSurplusRefunded(_) => "OrderSurplusRefunded",
            Self::OrderVoided(_) => "OrderVoided",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            Self::OrderPlaced(_) => ORDER_PLACED_VERSION,
            _ => "1.0",
        }
        .to_owned()
    }
}
