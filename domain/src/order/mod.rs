//! The order aggregate, with the lifecycle of eShop: placed and awaiting payment, then
//! paid, shipped, completed; or cancelled before payment; or refunded after it. Only a
//! paid order ships; a paid order is never cancelled, only refunded. Prices are the
//! catalogue's at the moment of placing, carried in the command.
//!
//! Money moves once. An order has at most one payment attempt under way: an attempt
//! claims the order (`StartPayment`) before it asks the provider for anything, and a
//! second claim is refused until the first ends. The claim is a fact of this aggregate,
//! so two concurrent attempts are decided one after the other (optimistic concurrency
//! on the order's stream), never both allowed. Whatever a provider captures beyond what
//! pays the order (a capture after another payment paid it, or after it was cancelled)
//! is recorded as a surplus, which the follow-ups give back, and the refund is recorded
//! too: the order's history shows both.
//!
//! An order id whose stock reservations expired before it was placed is voided: it can
//! never be placed afterwards, so expiring a reservation never races with placing.

mod command;
mod error;
mod event;

pub use command::{OrderCommand, PlaceOrder};
pub use error::OrderError;
pub use event::*;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::Money;
use crate::personal::Personal;
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

/// How long a payment attempt holds the order before a new attempt may take it over
/// (a customer who left during the extra step, or a server that crashed midway). A late
/// capture of the old attempt is then a surplus, given back.
pub const PAYMENT_ATTEMPT_TIMEOUT_SECS: i64 = 15 * 60;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    placed: Option<OrderPlaced>,
    status: Option<OrderStatus>,
    paid_by: Option<Uuid>,
    /// The payment attempt under way, and when it started.
    #[serde(default)]
    in_progress: Option<(Uuid, DateTime<Utc>)>,
    /// Payments whose capture did not pay the order: minor units captured, and given
    /// back once refunded.
    #[serde(default)]
    surplus: BTreeMap<Uuid, (i64, Option<i64>)>,
    /// Never placed, and never will be.
    #[serde(default)]
    voided: bool,
}

impl Contact {
    /// A name, and a phone number if any: one line each, not blank, bounded. Checked
    /// before the contact is sealed, since the aggregate only sees it sealed.
    pub fn check(&self) -> Result<(), OrderError> {
        if !text_ok(&self.name, 200) || self.phone.as_deref().is_some_and(|p| !text_ok(p, 40)) {
            return Err(OrderError::InvalidContact);
        }
        Ok(())
    }
}

impl Address {
    /// Lines, city and postal code as one line each, and an ISO country code. Checked
    /// before the address is sealed.
    pub fn check(&self) -> Result<(), OrderError> {
        let country_ok = self.country.len() == 2 && self.country.bytes().all(|b| b.is_ascii_uppercase());
        if !text_ok(&self.line1, 200)
            || self.line2.as_deref().is_some_and(|l| !text_ok(l, 200))
            || !text_ok(&self.city, 200)
            || !text_ok(&self.postal_code, 20)
            || !country_ok
        {
            return Err(OrderError::InvalidAddress);
        }
        Ok(())
    }
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

    /// The payment that paid the order.
    pub fn paid_by(&self) -> Option<Uuid> {
        self.paid_by
    }

    /// The payment attempt that holds the order now.
    pub fn payment_in_progress(&self) -> Option<Uuid> {
        self.in_progress.map(|(payment_id, _)| payment_id)
    }

    pub fn is_voided(&self) -> bool {
        self.voided
    }

    /// Minor units captured beyond what paid the order, and of those, refunded.
    pub fn surplus_minor(&self) -> (i64, i64) {
        self.surplus.values().fold((0, 0), |(captured, refunded), (c, r)| {
            (captured.saturating_add(*c), refunded.saturating_add(r.unwrap_or(0)))
        })
    }

    pub fn decide(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        match command {
            OrderCommand::PlaceOrder(place) => self.place(place),
            OrderCommand::Void { order_id, reason, at } => {
                if self.placed.is_some() {
                    return Err(OrderError::AlreadyPlaced);
                }
                if self.voided {
                    return Ok(vec![]);
                }
                Ok(vec![OrderEvent::OrderVoided(OrderClosed { order_id, reason, at })])
            }
            command => self.change(command),
        }
    }

    fn place(&self, place: PlaceOrder) -> Result<Vec<OrderEvent>, OrderError> {
        if self.voided {
            return Err(OrderError::Voided);
        }
        if let Some(placed) = &self.placed {
            // A retry of the same order changes nothing; another under its id is refused.
            // The contact and address are sealed afresh on every attempt, so they are not
            // compared here: an attempt with others under the same key is refused before,
            // by the request's hash (`routes::orders`).
            let same =
                placed.user_id == place.user_id && placed.lines == place.lines && placed.click_id == place.click_id;
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
        Ok(vec![OrderEvent::OrderPlaced(OrderPlaced {
            order_id: place.order_id,
            user_id: place.user_id,
            lines: place.lines,
            total,
            click_id: place.click_id,
            contact: Personal::Sealed(place.contact),
            shipping_address: Personal::Sealed(place.shipping_address),
            placed_at: place.placed_at,
        })])
    }

    fn change(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        let placed = self.placed.as_ref().ok_or(OrderError::NotFound)?;
        let status = self.status.unwrap_or(OrderStatus::AwaitingPayment);
        let order_id = placed.order_id;
        let wrong = || Err(OrderError::WrongStatus(status.as_str()));
        match command {
            OrderCommand::PlaceOrder(_) | OrderCommand::Void { .. } => Ok(vec![]),
            OrderCommand::StartPayment { payment_id, at } => {
                if status != OrderStatus::AwaitingPayment {
                    return wrong();
                }
                let started = || OrderEvent::OrderPaymentStarted(OrderPaymentStarted { order_id, payment_id, at });
                match self.in_progress {
                    None => Ok(vec![started()]),
                    Some((current, _)) if current == payment_id => Ok(vec![]),
                    Some((current, since)) if (at - since).num_seconds() < PAYMENT_ATTEMPT_TIMEOUT_SECS => {
                        Err(OrderError::PaymentInProgress(current))
                    }
                    Some((current, _)) => Ok(vec![
                        OrderEvent::OrderPaymentEnded(OrderPaymentEnded {
                            order_id,
                            payment_id: current,
                            reason: "timed_out".into(),
                            at,
                        }),
                        started(),
                    ]),
                }
            }
            OrderCommand::EndPayment { payment_id, reason, at } => {
                if self.payment_in_progress() != Some(payment_id) {
                    return Ok(vec![]); // ended already, or never the order's attempt
                }
                Ok(vec![OrderEvent::OrderPaymentEnded(OrderPaymentEnded { order_id, payment_id, reason, at })])
            }
            OrderCommand::MarkPaid { payment_id, amount, at } => {
                // The same capture reported again (a duplicate webhook): nothing more happens.
                if self.paid_by == Some(payment_id) || self.surplus.contains_key(&payment_id) {
                    return Ok(vec![]);
                }
                if status == OrderStatus::AwaitingPayment && amount == placed.total {
                    return Ok(vec![OrderEvent::OrderPaid(OrderPaid { order_id, payment_id, amount, paid_at: at })]);
                }
                // Captured, but it pays nothing: the money goes back.
                Ok(vec![OrderEvent::OrderSurplusCaptured(OrderSurplus { order_id, payment_id, amount, at })])
            }
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
            OrderCommand::Refund { payment_id, amount, reason, at } => {
                match self.surplus.get(&payment_id) {
                    Some((_, Some(_))) => return Ok(vec![]),
                    Some((_, None)) => {
                        return Ok(vec![OrderEvent::OrderSurplusRefunded(OrderSurplus {
                            order_id,
                            payment_id,
                            amount,
                            at,
                        })]);
                    }
                    None => {}
                }
                match status {
                    OrderStatus::Paid | OrderStatus::Shipped | OrderStatus::Completed => {
                        if self.paid_by != Some(payment_id)
                            || amount.currency != placed.total.currency
                            || amount.minor <= 0
                            || amount.minor > placed.total.minor
                        {
                            return Err(OrderError::InvalidRefund);
                        }
                        Ok(vec![OrderEvent::OrderRefunded(OrderRefunded { order_id, amount, reason, at })])
                    }
                    _ => wrong(),
                }
            }
        }
    }
}

impl crate::snapshot::Snapshot for Order {
    /// 2: the contact and address are sealed.
    const STATE_VERSION: u32 = 2;
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
                self.in_progress = None;
            }
            OrderEvent::OrderCancelled(_) => {
                self.status = Some(OrderStatus::Cancelled);
                self.in_progress = None;
            }
            OrderEvent::OrderShipped(_) => self.status = Some(OrderStatus::Shipped),
            OrderEvent::OrderCompleted(_) => self.status = Some(OrderStatus::Completed),
            OrderEvent::OrderRefunded(_) => self.status = Some(OrderStatus::Refunded),
            OrderEvent::OrderPaymentStarted(e) => self.in_progress = Some((e.payment_id, e.at)),
            OrderEvent::OrderPaymentEnded(e) => {
                if self.payment_in_progress() == Some(e.payment_id) {
                    self.in_progress = None;
                }
            }
            OrderEvent::OrderSurplusCaptured(e) => {
                self.surplus.insert(e.payment_id, (e.amount.minor, None));
            }
            OrderEvent::OrderSurplusRefunded(e) => {
                self.surplus.entry(e.payment_id).or_insert((0, None)).1 = Some(e.amount.minor);
            }
            OrderEvent::OrderVoided(_) => self.voided = true,
        }
    }
}

#[cfg(test)]
mod tests;
