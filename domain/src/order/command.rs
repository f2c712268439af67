//! Commands to the order aggregate.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Address, Contact, OrderLine};
use crate::money::Money;
use crate::personal::Sealed;

#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "built once per command or event and moved a few times; boxing would only add an allocation"
)]
pub enum OrderCommand {
    PlaceOrder(PlaceOrder),
    /// Claim the order for one payment attempt (refused while another is under way).
    StartPayment {
        payment_id: Uuid,
        at: DateTime<Utc>,
    },
    /// The attempt is over without paying (failed, cancelled, given up): the claim goes.
    EndPayment {
        payment_id: Uuid,
        reason: String,
        at: DateTime<Utc>,
    },
    /// A payment of this order captured `amount`: it pays the order, or it is a surplus
    /// to give back.
    MarkPaid {
        payment_id: Uuid,
        amount: Money,
        at: DateTime<Utc>,
    },
    Cancel {
        reason: String,
        at: DateTime<Utc>,
    },
    Ship {
        tracking: Option<String>,
        at: DateTime<Utc>,
    },
    Complete {
        at: DateTime<Utc>,
    },
    /// A payment of this order was refunded: the one that paid it, or a surplus one.
    Refund {
        payment_id: Uuid,
        amount: Money,
        reason: String,
        at: DateTime<Utc>,
    },
    /// Close an order id that was never placed, so that it never will be (its stock
    /// reservations expired and are given back).
    Void {
        order_id: Uuid,
        reason: String,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlaceOrder {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub lines: Vec<OrderLine>,
    pub click_id: Option<Uuid>,
    /// Checked ([`Contact::check`]), then sealed under the buyer's key.
    pub contact: Sealed<Contact>,
    /// Checked ([`Address::check`]), then sealed under the buyer's key.
    pub shipping_address: Sealed<Address>,
    pub placed_at: DateTime<Utc>,
}
