//! The payment gateway port: what Framecart asks of a payment provider, in the shape of
//! Medusa's payment provider interface (initiate, authorize, capture, refund, cancel,
//! status), plus the verification of the provider's webhooks on their raw body.
//!
//! Every answer that moves a payment carries the provider's own event id and time, the
//! same ones its webhook for that change carries, so the direct answer and the webhook
//! are one fact, applied once.

pub mod fake;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use framecart_domain::money::Money;
use framecart_domain::payment::{PaymentStatus, ProviderReport, ReportedOutcome};
use uuid::Uuid;

/// Payment providers by name (`fake`, …): where payments are started and surpluses refunded.
pub type Gateways = HashMap<&'static str, Arc<dyn PaymentGateway>>;

/// A change the provider reports.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayEvent {
    /// The provider's event id.
    pub id: String,
    /// The provider's id of the payment attempt.
    pub intent_id: String,
    /// Our payment id, which the provider keeps with the intent.
    pub payment_id: Uuid,
    pub outcome: GatewayOutcome,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GatewayOutcome {
    Status(PaymentStatus),
    Failed { code: String, message: String },
}

impl GatewayEvent {
    /// The report the payment aggregate takes.
    pub fn report(&self) -> ProviderReport {
        ProviderReport {
            provider_event_id: Some(self.id.clone()),
            intent_id: self.intent_id.clone(),
            outcome: match &self.outcome {
                GatewayOutcome::Status(s) => ReportedOutcome::Status(*s),
                GatewayOutcome::Failed { code, message } => {
                    ReportedOutcome::Failed { code: code.clone(), message: message.clone() }
                }
            },
            at: self.at,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the payment provider is unreachable: {0}")]
    Unavailable(String),
    #[error("the payment provider refused the request: {0}")]
    Refused(String),
    #[error("the provider knows no payment {0}")]
    UnknownIntent(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("the webhook has no valid signature")]
    BadSignature,
    #[error("the webhook's signature is too old")]
    Expired,
    #[error("the webhook body is not an event: {0}")]
    Malformed(String),
}

#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// The provider's name in URLs and requests (`fake`).
    fn name(&self) -> &'static str;

    /// Starts an attempt for `amount`; returns the provider's id for it.
    async fn initiate(&self, payment_id: Uuid, amount: Money) -> Result<String, GatewayError>;

    /// Attaches the card and confirms: authorized (to capture), an extra step, or a failure.
    async fn authorize(&self, intent_id: &str, card_number: &str) -> Result<GatewayEvent, GatewayError>;

    /// The extra step (3-D Secure) done by the customer.
    async fn complete_action(&self, intent_id: &str) -> Result<GatewayEvent, GatewayError>;

    async fn capture(&self, intent_id: &str) -> Result<GatewayEvent, GatewayError>;

    /// Gives back `amount` of a captured payment. A retry with the same `idempotency_key`
    /// refunds nothing more (Stripe's `Idempotency-Key`): a refund owed by a durable
    /// follow-up is sent again after a crash without moving money twice.
    async fn refund(&self, intent_id: &str, amount: Money, idempotency_key: &str) -> Result<(), GatewayError>;

    async fn cancel(&self, intent_id: &str) -> Result<GatewayEvent, GatewayError>;

    async fn status(&self, intent_id: &str) -> Result<PaymentStatus, GatewayError>;

    /// Checks a webhook's signature on its raw body and reads it.
    fn verify_webhook(
        &self,
        signature: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<GatewayEvent, WebhookError>;
}
