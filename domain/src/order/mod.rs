//! The order aggregate, with the lifecycle of eShop: placed and awaiting payment, then
//! paid, shipped, completed; or cancelled before payment; or refunded after it. Only a
//! paid order ships; a paid order is never cancelled, only refunded. Prices are the
//! catalogue's at the moment of placing, carried in the command.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::Money;
use crate::product::Article;
use crate::user::Email;

pub const AGGREGATE_TYPE: &str = "order";
/// Most units of one article in one order.
pub const MAX_QUANTITY: u32 = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderLine {
    pub article: Article,
    /// The product's name when the order was placed.
    pub name: String,
    pub quantity: u32,
    pub unit_price: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub name: String,
    pub email: Email,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    AwaitingPayment,
    Paid,
    Shipped,
    Completed,
    Cancelled,
    Refunded,
}

impl OrderStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::AwaitingPayment => "awaiting_payment",
            Self::Paid => "paid",
            Self::Shipped => "shipped",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Refunded => "refunded",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "built once per command or event and moved a few times; boxing would only add an allocation"
)]
pub enum OrderCommand {
    PlaceOrder(PlaceOrder),
    MarkPaid { payment_id: Uuid, amount: Money, at: DateTime<Utc> },
    Cancel { reason: String, at: DateTime<Utc> },
    Ship { tracking: Option<String>, at: DateTime<Utc> },
    Complete { at: DateTime<Utc> },
    Refund { amount: Money, reason: String, at: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlaceOrder {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub lines: Vec<OrderLine>,
    pub click_id: Option<Uuid>,
    pub contact: Contact,
    pub shipping_address: Address,
    pub placed_at: DateTime<Utc>,
}

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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    /// The click the order came from: the funnel click → match → order → paid.
    pub click_id: Option<Uuid>,
    pub contact: Contact,
    pub shipping_address: Address,
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

/// No stored shape has changed yet: see [`crate::upcast`] for how one would.
impl crate::upcast::Upcast for OrderEvent {}

impl DomainEvent for OrderEvent {
    fn event_type(&self) -> String {
        match self {
            Self::OrderPlaced(_) => "OrderPlaced",
            Self::OrderPaid(_) => "OrderPaid",
            Self::OrderCancelled(_) => "OrderCancelled",
            Self::OrderShipped(_) => "OrderShipped",
            Self::OrderCompleted(_) => "OrderCompleted",
            Self::OrderRefunded(_) => "OrderRefunded",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("this order id is taken by another order")]
    AlreadyPlaced,
    #[error("no such order")]
    NotFound,
    #[error("an order has 1 to 50 lines, each of 1 to {MAX_QUANTITY} units of a distinct article")]
    InvalidLines,
    #[error("all lines of an order must be in one currency")]
    MixedCurrencies,
    #[error("the order total is too large")]
    TotalOverflow,
    #[error("the contact needs a name (1 to 200 characters)")]
    InvalidContact,
    #[error(
        "the shipping address needs line1, city, postal code (each 1 to 200 characters) and a two-letter country code"
    )]
    InvalidAddress,
    #[error("the order is {0}; this is not allowed now")]
    WrongStatus(&'static str),
    #[error("a paid order cannot be cancelled, only refunded")]
    PaidOrdersAreRefunded,
    #[error("the payment of {paid} does not match the order total {total}")]
    AmountMismatch { paid: i64, total: i64 },
    #[error("a refund is more than 0 and at most what was paid")]
    InvalidRefund,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    placed: Option<OrderPlaced>,
    status: Option<OrderStatus>,
    paid_by: Option<Uuid>,
}

fn text_ok(s: &str, max: usize) -> bool {
    let n = s.trim().chars().count();
    (1..=max).contains(&n) && !s.chars().any(char::is_control)
}

impl Order {
    pub fn status(&self) -> Option<OrderStatus> {
        self.status
    }

    pub fn placed(&self) -> Option<&OrderPlaced> {
        self.placed.as_ref()
    }

    pub fn decide(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        let OrderCommand::PlaceOrder(place) = command else {
            return self.change(command);
        };
        if let Some(placed) = &self.placed {
            // A retry of the same order changes nothing; another under its id is refused.
            let same = placed.user_id == place.user_id
                && placed.lines == place.lines
                && placed.click_id == place.click_id
                && placed.contact == place.contact
                && placed.shipping_address == place.shipping_address;
            return if same { Ok(vec![]) } else { Err(OrderError::AlreadyPlaced) };
        }
        let distinct: std::collections::BTreeSet<&Article> = place.lines.iter().map(|l| &l.article).collect();
        if place.lines.is_empty()
            || place.lines.len() > 50
            || distinct.len() != place.lines.len()
            || place.lines.iter().any(|l| l.quantity == 0 || l.quantity > MAX_QUANTITY)
        {
            return Err(OrderError::InvalidLines);
        }
        let currency = place.lines[0].unit_price.currency;
        let mut total = Money::new(0, currency);
        for line in &place.lines {
            if line.unit_price.currency != currency {
                return Err(OrderError::MixedCurrencies);
            }
            let amount = line.unit_price.times(line.quantity).ok_or(OrderError::TotalOverflow)?;
            total = total.plus(&amount).ok_or(OrderError::TotalOverflow)?;
        }
        let c = &place.contact;
        if !text_ok(&c.name, 200) || c.phone.as_deref().is_some_and(|p| !text_ok(p, 40)) {
            return Err(OrderError::InvalidContact);
        }
        let a = &place.shipping_address;
        let country_ok = a.country.len() == 2 && a.country.bytes().all(|b| b.is_ascii_uppercase());
        if !text_ok(&a.line1, 200)
            || a.line2.as_deref().is_some_and(|l| !text_ok(l, 200))
            || !text_ok(&a.city, 200)
            || !text_ok(&a.postal_code, 20)
            || !country_ok
        {
            return Err(OrderError::InvalidAddress);
        }
        Ok(vec![OrderEvent::OrderPlaced(OrderPlaced {
            order_id: place.order_id,
            user_id: place.user_id,
            lines: place.lines,
            total,
            click_id: place.click_id,
            contact: place.contact,
            shipping_address: place.shipping_address,
            placed_at: place.placed_at,
        })])
    }

    fn change(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        let placed = self.placed.as_ref().ok_or(OrderError::NotFound)?;
        let status = self.status.unwrap_or(OrderStatus::AwaitingPayment);
        let order_id = placed.order_id;
        let wrong = || Err(OrderError::WrongStatus(status.as_str()));
        match command {
            OrderCommand::PlaceOrder(_) => Ok(vec![]),
            OrderCommand::MarkPaid { payment_id, amount, at } => match status {
                OrderStatus::AwaitingPayment if amount == placed.total => {
                    Ok(vec![OrderEvent::OrderPaid(OrderPaid { order_id, payment_id, amount, paid_at: at })])
                }
                OrderStatus::AwaitingPayment => {
                    Err(OrderError::AmountMismatch { paid: amount.minor, total: placed.total.minor })
                }
                // The same payment reported again.
                _ if self.paid_by == Some(payment_id) => Ok(vec![]),
                _ => wrong(),
            },
            OrderCommand::Cancel { reason, at } => match status {
                OrderStatus::AwaitingPayment => {
                    Ok(vec![OrderEvent::OrderCancelled(OrderClosed { order_id, reason, at })])
                }
                OrderStatus::Cancelled => Ok(vec![]),
                OrderStatus::Paid | OrderStatus::Shipped | OrderStatus::Completed => {
                    Err(OrderError::PaidOrdersAreRefunded)
                }
                OrderStatus::Refunded => wrong(),
            },
            OrderCommand::Ship { tracking, at } => match status {
                OrderStatus::Paid => Ok(vec![OrderEvent::OrderShipped(OrderShipped { order_id, tracking, at })]),
                _ => wrong(),
            },
            OrderCommand::Complete { at } => match status {
                OrderStatus::Shipped => {
                    Ok(vec![OrderEvent::OrderCompleted(OrderClosed { order_id, reason: "delivered".into(), at })])
                }
                _ => wrong(),
            },
            OrderCommand::Refund { amount, reason, at } => match status {
                OrderStatus::Paid | OrderStatus::Shipped | OrderStatus::Completed => {
                    if amount.currency != placed.total.currency
                        || amount.minor <= 0
                        || amount.minor > placed.total.minor
                    {
                        return Err(OrderError::InvalidRefund);
                    }
                    Ok(vec![OrderEvent::OrderRefunded(OrderRefunded { order_id, amount, reason, at })])
                }
                _ => wrong(),
            },
        }
    }
}

impl Aggregate for Order {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;
    type Services = ();

    async fn handle(&mut self, command: Self::Command, _: &(), sink: &EventSink<Self>) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            OrderEvent::OrderPlaced(e) => {
                self.placed = Some(e);
                self.status = Some(OrderStatus::AwaitingPayment);
            }
            OrderEvent::OrderPaid(e) => {
                self.paid_by = Some(e.payment_id);
                self.status = Some(OrderStatus::Paid);
            }
            OrderEvent::OrderCancelled(_) => self.status = Some(OrderStatus::Cancelled),
            OrderEvent::OrderShipped(_) => self.status = Some(OrderStatus::Shipped),
            OrderEvent::OrderCompleted(_) => self.status = Some(OrderStatus::Completed),
            OrderEvent::OrderRefunded(_) => self.status = Some(OrderStatus::Refunded),
        }
    }
}

#[cfg(test)]
mod tests;
