//! Commands to the product aggregate.

use super::Article;
use crate::money::Money;

#[derive(Debug, Clone, PartialEq)]
pub enum ProductCommand {
    CreateProduct(CreateProduct),
    /// Several changes at once; each becomes its own event.
    ChangeProduct(ChangeProduct),
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
