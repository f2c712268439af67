//! Why an order command was refused.

use uuid::Uuid;

use super::MAX_QUANTITY;

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
    #[error("a refund is more than 0 and at most what was paid, of the payment that paid the order")]
    InvalidRefund,
    #[error("the payment {0} of this order is under way; complete it or wait for it to end")]
    PaymentInProgress(Uuid),
    #[error("the stock held for this order attempt expired before it was placed; place the order again")]
    Voided,
}
