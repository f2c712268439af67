//! Commands to the product aggregate.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Article;
use crate::money::Money;

#[derive(Debug, Clone, PartialEq)]
pub enum ProductCommand {
    CreateProduct(CreateProduct),
    /// Several changes at once; each becomes its own event.
    ChangeProduct(ChangeProduct),
    /// Hold units for an order (refused if it would oversell). A hold for an order that
    /// is not placed by `expires_at` is given back.
    ReserveStock {
        order_id: Uuid,
        quantity: u32,
        expires_at: Option<DateTime<Utc>>,
    },
    /// Give an order's units back (the order was cancelled or never placed).
    ReleaseStock {
        order_id: Uuid,
    },
    /// The order's units left the shop (it shipped).
    CommitStock {
        order_id: Uuid,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateProduct {
    pub article: Article,
    pub name: String,
    pub description: String,
    pub price: Money,
    pub stock: u32,
    pub image_url: Option<String>,
}

/// `None` leaves a field as it is; `image_url: Some(None)` removes the picture.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChangeProduct {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price: Option<Money>,
    pub stock: Option<u32>,
    pub image_url: Option<Option<String>>,
    pub active: Option<bool>,
}
