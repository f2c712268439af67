//! The product aggregate: one article of the shop's catalogue, identified by its article
//! number. Every change is its own event; stock is reserved by orders and released when
//! they are cancelled, or when the reservation expired before its order was placed.

mod command;
mod error;
mod event;

pub use command::{ChangeProduct, CreateProduct, ProductCommand};
pub use error::ProductError;
pub use event::*;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::text::{self, TextError};

pub const AGGREGATE_TYPE: &str = "product";

/// Highest unit price, in minor units: 10 billion in a two-decimal currency. Far above
/// any product, and low enough that sums over many orders stay exact in every view.
pub const MAX_PRICE_MINOR: i64 = 1_000_000_000_000;

/// An article number: 1 to 64 of letters, digits, `-` and `_` (it is an aggregate id and
/// a NATS subject token).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Article(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an article number is 1 to 64 letters, digits, '-' or '_'")]
pub struct ArticleError;

impl Article {
    pub fn parse(s: &str) -> Result<Self, ArticleError> {
        let ok = (1..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        ok.then(|| Self(s.to_owned())).ok_or(ArticleError)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Article {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Article {
    type Error = ArticleError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Article> for String {
    fn from(a: Article) -> Self {
        a.0
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    created: Option<ProductCreated>,
    active: bool,
    /// Units on hand, held by orders or not.
    on_hand: u32,
    /// Units held by open orders.
    reservations: std::collections::BTreeMap<uuid::Uuid, u32>,
    price: Option<Money>,
}

impl Product {
    pub fn exists(&self) -> bool {
        self.created.is_some()
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    pub fn price(&self) -> Option<Money> {
        self.price
    }

    /// Units on hand that no order holds.
    pub fn available(&self) -> u32 {
        self.on_hand.saturating_sub(self.reservations.values().sum())
    }

    pub fn name(&self) -> Option<&str> {
        self.created.as_ref().map(|c| c.name.as_str())
    }

    pub fn decide(&self, command: ProductCommand) -> Result<Vec<ProductEvent>, ProductError> {
        match command.clone() {
            ProductCommand::CreateProduct(c) => {
                if self.exists() {
                    return Err(ProductError::AlreadyExists);
                }
                check_name(&c.name)?;
                check_price(c.price)?;
                check_text(&c.description, 10_000)?;
                if let Some(url) = &c.image_url {
                    check_url(url)?;
                }
                Ok(vec![ProductEvent::ProductCreated(ProductCreated {
                    article: c.article,
                    name: c.name,
                    description: c.description,
                    price: c.price,
                    stock: c.stock,
                    image_url: c.image_url,
                })])
            }
            ProductCommand::ChangeProduct(c) => {
                let created = self.created.as_ref().ok_or(ProductError::NotFound)?;
                let article = created.article.clone();
                let mut events = Vec::new();
                if let Some(name) = c.name {
                    check_name(&name)?;
                    events.push(ProductEvent::ProductRenamed(ProductRenamed { article: article.clone(), name }));
                }
                if let Some(description) = c.description {
                    check_text(&description, 10_000)?;
                    events.push(ProductEvent::ProductDescribed(ProductDescribed {
                        article: article.clone(),
                        description,
                    }));
                }
                if let Some(price) = c.price {
                    check_price(price)?;
                    events.push(ProductEvent::ProductRepriced(ProductRepriced { article: article.clone(), price }));
                }
                if let Some(stock) = c.stock {
                    events.push(ProductEvent::ProductRestocked(ProductRestocked { article: article.clone(), stock }));
                }
                if let Some(image_url) = c.image_url {
                    if let Some(url) = &image_url {
                        check_url(url)?;
                    }
                    events.push(ProductEvent::ProductImageChanged(ProductImageChanged {
                        article: article.clone(),
                        image_url,
                    }));
                }
                match c.active {
                    Some(false) if self.active => events.push(ProductEvent::ProductRetired(ProductRetired { article })),
                    Some(true) if !self.active => {
                        events.push(ProductEvent::ProductReactivated(ProductReactivated { article }));
                    }
                    _ => {}
                }
                Ok(events)
            }
            ProductCommand::ReserveStock { order_id, quantity, expires_at } => {
                let article = self.created.as_ref().ok_or(ProductError::NotFound)?.article.clone();
                if self.reservations.contains_key(&order_id) {
                    return Ok(vec![]); // a retry of the same order
                }
                if !self.active {
                    return Err(ProductError::NotForSale);
                }
                if quantity == 0 {
                    return Err(ProductError::InvalidQuantity);
                }
                let available = self.available();
                if quantity > available {
                    return Err(ProductError::InsufficientStock { available });
                }
                Ok(vec![ProductEvent::StockReserved(StockMoved { article, order_id, quantity, expires_at })])
            }
            ProductCommand::ReleaseStock { order_id } | ProductCommand::CommitStock { order_id } => {
                let article = self.created.as_ref().ok_or(ProductError::NotFound)?.article.clone();
                let Some(&quantity) = self.reservations.get(&order_id) else { return Ok(vec![]) };
                let moved = StockMoved { article, order_id, quantity, expires_at: None };
                Ok(vec![if matches!(command, ProductCommand::CommitStock { .. }) {
                    ProductEvent::StockCommitted(moved)
                } else {
                    ProductEvent::StockReleased(moved)
                }])
            }
        }
    }
}

fn check_name(name: &str) -> Result<(), ProductError> {
    let len = name.trim().chars().count();
    if len == 0 || len > 200 || name.chars().any(char::is_control) {
        return Err(ProductError::InvalidName);
    }
    Ok(())
}

fn check_text(value: &str, max: usize) -> Result<(), ProductError> {
    text::multiline("description", value, max).map_err(|e| match e {
        TextError::TooLong { max, .. } => ProductError::TextTooLong { max },
        TextError::ControlCharacter { .. } | TextError::Empty { .. } => ProductError::InvalidText,
    })
}

fn check_price(price: Money) -> Result<(), ProductError> {
    if !(0..=MAX_PRICE_MINOR).contains(&price.minor) {
        return Err(ProductError::InvalidPrice { max: MAX_PRICE_MINOR });
    }
    Ok(())
}

fn check_url(url: &str) -> Result<(), ProductError> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && url.len() <= 2048 && text::forbidden_char(url).is_none() => {
            Ok(())
        }
        _ => Err(ProductError::InvalidImageUrl),
    }
}

impl crate::snapshot::Snapshot for Product {
    const STATE_VERSION: u32 = 1;
}

impl Aggregate for Product {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Error = ProductError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ProductEvent::ProductCreated(e) => {
                self.active = true;
                self.on_hand = e.stock;
                self.price = Some(e.price);
                self.created = Some(e);
            }
            ProductEvent::ProductRepriced(e) => self.price = Some(e.price),
            ProductEvent::ProductRestocked(e) => self.on_hand = e.stock,
            ProductEvent::StockReserved(e) => {
                self.reservations.insert(e.order_id, e.quantity);
            }
            ProductEvent::StockReleased(e) => {
                self.reservations.remove(&e.order_id);
            }
            ProductEvent::StockCommitted(e) => {
                self.reservations.remove(&e.order_id);
                self.on_hand = self.on_hand.saturating_sub(e.quantity);
            }
            ProductEvent::ProductRetired(_) => self.active = false,
            ProductEvent::ProductReactivated(_) => self.active = true,
            ProductEvent::ProductRenamed(e) => {
                if let Some(created) = &mut self.created {
                    created.name = e.name;
                }
            }
            ProductEvent::ProductDescribed(_) | ProductEvent::ProductImageChanged(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
