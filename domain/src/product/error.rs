//! Why a product command was refused.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    #[error("a product with this article number exists already")]
    AlreadyExists,
    #[error("no product has this article number")]
    NotFound,
    #[error("a product name is 1 to 200 printable characters")]
    InvalidName,
    #[error("a text is at most {max} characters")]
    TextTooLong { max: usize },
    #[error("a price is between 0 and {max} minor units")]
    InvalidPrice { max: i64 },
    #[error("a text holds no control characters (line breaks and tabs are allowed)")]
    InvalidText,
    #[error("an image URL is an http or https URL of at most 2048 characters")]
    InvalidImageUrl,
    #[error("only {available} left in stock")]
    InsufficientStock { available: u32 },
    #[error("this product is not for sale")]
    NotForSale,
    #[error("a quantity is at least 1")]
    InvalidQuantity,
}
