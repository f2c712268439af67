//! Events of the product aggregate. Type names and versions are stable strings.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use uuid::Uuid;

use super::Article;
use crate::money::Money;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProductEvent {
    ProductCreated(ProductCreated),
    ProductRenamed(ProductRenamed),
    ProductDescribed(ProductDescribed),
    ProductRepriced(ProductRepriced),
    ProductRestocked(ProductRestocked),
    ProductImageChanged(ProductImageChanged),
    ProductRetired(ProductRetired),
    ProductReactivated(ProductReactivated),
    StockReserved(StockMoved),
    StockReleased(StockMoved),
    StockCommitted(StockMoved),
}

/// Units held for, given back by, or sent to an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockMoved {
    pub article: Article,
    pub order_id: Uuid,
    pub quantity: u32,
    /// Of a reservation: when it is given back unless its order was placed by then.
    /// Absent on releases and commits, and on reservations older than expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductCreated {
    pub article: Article,
    pub name: String,
    pub description: String,
    pub price: Money,
    pub stock: u32,
    pub image_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductRenamed {
    pub article: Article,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductDescribed {
    pub article: Article,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductRepriced {
    pub article: Article,
    pub price: Money,
}

/// The units on hand were counted anew.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductRestocked {
    pub article: Article,
    pub stock: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductImageChanged {
    pub article: Article,
    pub image_url: Option<String>,
}

/// No longer sold; kept for history and old orders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductRetired {
    pub article: Article,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductReactivated {
    pub article: Article,
}

/// No stored shape has changed yet: see [`crate::upcast`] for how one would.
impl crate::upcast::Upcast for ProductEvent {}

impl DomainEvent for ProductEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ProductCreated(_) => "ProductCreated",
            Self::ProductRenamed(_) => "ProductRenamed",
            Self::ProductDescribed(_) => "ProductDescribed",
            Self::ProductRepriced(_) => "ProductRepriced",
            Self::ProductRestocked(_) => "ProductRestocked",
            Self::ProductImageChanged(_) => "ProductImageChanged",
            Self::ProductRetired(_) => "ProductRetired",
            Self::ProductReactivated(_) => "ProductReactivated",
            Self::StockReserved(_) => "StockReserved",
            Self::StockReleased(_) => "StockReleased",
            Self::StockCommitted(_) => "StockCommitted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
