//! A payment provider we own, for development and tests, in the manner of Saleor's dummy
//! gateway: it behaves by card number (the familiar test numbers), and it sends its own
//! signed webhooks for every change, some of them twice and some out of order, as real
//! providers may.
//!
//! | card | outcome |
//! |---|---|
//! | `4242424242424242` | authorized, captured: succeeded |
//! | `4000000000000002` | declined |
//! | `4000000000009995` | authorized, then the capture fails (insufficient funds) |
//! | `4000002500003155` | needs an extra step (3-D Secure) before it can be captured |
//! | other numbers | succeed when they pass the Luhn check, else `incorrect_number` |
//!
//! Its intents live in Postgres (`fake_payment_intents`), shared by every process of the
//! installation as a real provider's state is: a payment started through one `api`
//! process is confirmed through another, and a surplus is refunded by whichever process
//! runs the follow-ups. Each change happens under the intent's row lock. A process sends
//! the webhooks of the changes it made, to its `webhook_url`.

use std::time::Duration;

use super::{GatewayError, GatewayEvent, GatewayOutcome, PaymentGateway, WebhookError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use framecart_domain::money::{Currency, Money};
use framecart_domain::payment::PaymentStatus;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sqlx::PgPool;
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;
use uuid::Uuid;

pub const NAME: &str = "fake";
/// The header carrying a webhook's signature: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`.
pub const SIGNATURE_HEADER: &str = "framecart-signature";
/// Webhooks older than this are refused (replays).
const TOLERANCE: i64 = 300;

struct Intent {
    payment_id: Uuid,
    amount: Money,
    status: PaymentStatus,
    card: Option<String>,
    /// Minor units given back so far, and the idempotency keys of the refunds.
    refunded: i64,
    refund_keys: Vec<String>,
    /// The time of the last change: each change is later than the one before.
    last: DateTime<Utc>,
}

type IntentRow = (Uuid, i64, String, String, Option<String>, i64, Vec<String>, DateTime<Utc>);

impl Intent {
    fn from_row(row: IntentRow) -> Result<Self, GatewayError> {
        let (payment_id, minor, currency, status, card, refunded, refund_keys, last) = row;
        let currency = Currency::parse(&currency).map_err(|e| GatewayError::Unavailable(e.to_string()))?;
        let status = PaymentStatus::parse(&status)
            .ok_or_else(|| GatewayError::Unavailable(format!("an intent with the status {status:?}")))?;
        Ok(Self { payment_id, amount: Money::new(minor, currency), status, card, refunded, refund_keys, last })
    }
}

pub struct FakeGateway {
    secret: Vec<u8>,
    pool: PgPool,
    outbox: mpsc::UnboundedSender<Webhook>,
}

/// A webhook as the provider sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    /// `payment_intent.<status>` or `payment_intent.payment_failed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened (RFC 3339, microseconds).
    pub created: DateTime<Utc>,
    pub data: WebhookData,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookData {
    pub intent_id: String,
    pub payment_id: Uuid,
    pub status: String,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
}

impl FakeGateway {
    /// A provider keeping its intents in `pool`'s database and posting the webhooks of the
    /// changes it makes to `webhook_url`. With `chaos`, some are sent twice and they may
    /// overtake each other.
    pub fn new(secret: Vec<u8>, webhook_url: String, chaos: bool, pool: PgPool) -> Self {
        let (outbox, inbox) = mpsc::unbounded_channel();
        let key = secret.clone();
        tokio::spawn(deliver(inbox, key, webhook_url, chaos));
        Self { secret, pool, outbox }
    }

    /// Signs a body as this provider does (tests send their own webhooks with it).
    pub fn sign(secret: &[u8], body: &[u8], at: i64) -> String {
        format!("t={at},v1={}", hex::encode(mac(secret, at, body)))
    }

    /// Moves an intent and queues the webhook saying so.
    async fn change(&self, intent_id: &str, outcome: GatewayOutcome) -> Result<GatewayEvent, GatewayError> {
        let status = match &outcome {
            GatewayOutcome::Status(s) => *s,
            GatewayOutcome::Failed { .. } => PaymentStatus::RequiresPaymentMethod,
        };
        let (payment_id, at) = self
            .with_intent(intent_id, |intent| {
                let at = Utc::now().max(intent.last + chrono::Duration::microseconds(1));
                intent.last = at;
                intent.status = status;
                (intent.payment_id, at)
            })
            .await?;
        let event = GatewayEvent {
            id: format!("evt_{}", Uuid::new_v4().simple()),
            intent_id: intent_id.to_owned(),
            payment_id,
            outcome,
            at,
        };
        let _ = self.outbox.send(webhook(&event));
        Ok(event)
    }

    /// The money this provider moved: minor units captured and refunded, over all intents
    /// (tests check that an order's money moved once).
    pub async fn money_moved(&self) -> Result<(i64, i64), GatewayError> {
        let (captured, refunded): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(sum(amount_minor) FILTER (WHERE status = 'succeeded'), 0)::bigint,
                    COALESCE(sum(refunded), 0)::bigint
             FROM fake_payment_intents",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok((captured, refunded))
    }

    /// The intent as it is (`FOR UPDATE` locks its row until `conn`'s transaction ends).
    async fn load(conn: &mut sqlx::PgConnection, intent_id: &str, for_update: bool) -> Result<Intent, GatewayError> {
        let lock = if for_update { " FOR UPDATE" } else { "" };
        let row: Option<IntentRow> = sqlx::query_as(&format!(
            "SELECT payment_id, amount_minor, currency, status, card, refunded, refund_keys, last_change
             FROM fake_payment_intents WHERE intent_id = $1{lock}"
        ))
        .bind(intent_id)
        .fetch_optional(conn)
        .await
        .map_err(unavailable)?;
        Intent::from_row(row.ok_or_else(|| GatewayError::UnknownIntent(intent_id.to_owned()))?)
    }

    /// What `f` reads of the intent, without changing it.
    async fn read_intent<T>(&self, intent_id: &str, f: impl FnOnce(&Intent) -> T) -> Result<T, GatewayError> {
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        Ok(f(&Self::load(&mut conn, intent_id, false).await?))
    }

    /// Applies `f` to the intent under its row lock, and saves what it changed.
    async fn with_intent<T>(&self, intent_id: &str, f: impl FnOnce(&mut Intent) -> T) -> Result<T, GatewayError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let mut intent = Self::load(&mut tx, intent_id, true).await?;
        let out = f(&mut intent);
        sqlx::query(
            "UPDATE fake_payment_intents
             SET status = $2, card = $3, refunded = $4, refund_keys = $5, last_change = $6
             WHERE intent_id = $1",
        )
        .bind(intent_id)
        .bind(intent.status.as_str())
        .bind(&intent.card)
        .bind(intent.refunded)
        .bind(&intent.refund_keys)
        .bind(intent.last)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(out)
    }
}

fn unavailable(e: sqlx::Error) -> GatewayError {
    GatewayError::Unavailable(e.to_string())
}

fn mac(secret: &[u8], at: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC accepts any key"));
    mac.update(at.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

fn webhook(event: &GatewayEvent) -> Webhook {
    let (kind, status, code, message) = match &event.outcome {
        GatewayOutcome::Status(s) => (format!("payment_intent.{}", s.as_str()), s.as_str().to_owned(), None, None),
        GatewayOutcome::Failed { code, message } => (
            "payment_intent.payment_failed".to_owned(),
            PaymentStatus::RequiresPaymentMethod.as_str().to_owned(),
            Some(code.clone()),
            Some(message.clone()),
        ),
    };
    Webhook {
        id: event.id.clone(),
        kind,
        created: event.at,
        data: WebhookData {
            intent_id: event.intent_id.clone(),
            payment_id: event.payment_id,
            status,
            failure_code: code,
            failure_message: message,
        },
    }
}

/// Sends the webhooks: each after a short random delay (so they may overtake each other),
/// some twice, retrying failures with backoff as a provider would.
async fn deliver(mut inbox: mpsc::UnboundedReceiver<Webhook>, secret: Vec<u8>, url: String, chaos: bool) {
    let client = reqwest::Client::new();
    let mut n: u64 = 0;
    while let Some(hook) = inbox.recv().await {
        n += 1;
        let copies = if chaos && n.is_multiple_of(3) { 2 } else { 1 };
        for copy in 0..copies {
            let delay = if chaos {
                Duration::from_millis((Uuid::new_v4().as_u128() % 120) as u64 + 40 * copy)
            } else {
                Duration::ZERO
            };
            let (client, secret, url, hook) = (client.clone(), secret.clone(), url.clone(), hook.clone());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let body = serde_json::to_vec(&hook).unwrap_or_default();
                for attempt in 0..6u32 {
                    let signature = FakeGateway::sign(&secret, &body, Utc::now().timestamp());
                    let sent = client
                        .post(&url)
                        .header(SIGNATURE_HEADER, signature)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    if sent.is_ok_and(|r| r.status().is_success()) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
                }
                tracing::warn!(webhook = %hook.id, "the fake provider gave up delivering a webhook");
            });
        }
    }
}

fn luhn(number: &str) -> bool {
    let digits: Vec<u32> = number.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() < 12 || digits.len() != number.len() {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                *d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn failed(code: &str, message: &str) -> GatewayOutcome {
    GatewayOutcome::Failed { code: code.to_owned(), message: message.to_owned() }
}

#[async_trait]
impl PaymentGateway for FakeGateway {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn initiate(&self, payment_id: Uuid, amount: Money) -> Result<String, GatewayError> {
        let intent_id = format!("pi_{}", Uuid::new_v4().simple());
        sqlx::query(
            "INSERT INTO fake_payment_intents (intent_id, payment_id, amount_minor, currency, status, last_change)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&intent_id)
        .bind(payment_id)
        .bind(amount.minor)
        .bind(amount.currency.as_str())
        .bind(PaymentStatus::RequiresPaymentMethod.as_str())
        .bind(Utc::now())
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(intent_id)
    }

    async fn authorize(&self, intent_id: &str, card_number: &str) -> Result<GatewayEvent, GatewayError> {
        let card: String = card_number.chars().filter(|c| !c.is_whitespace()).collect();
        let with_card = card.clone();
        self.with_intent(intent_id, move |i| i.card = Some(with_card)).await?;
        self.change(intent_id, GatewayOutcome::Status(PaymentStatus::RequiresConfirmation)).await?;
        if !luhn(&card) {
            return self.change(intent_id, failed("incorrect_number", "The card number is incorrect.")).await;
        }
        match card.as_str() {
            "4000000000000002" => self.change(intent_id, failed("card_declined", "Your card was declined.")).await,
            "4000002500003155" => self.change(intent_id, GatewayOutcome::Status(PaymentStatus::RequiresAction)).await,
            _ => {
                self.change(intent_id, GatewayOutcome::Status(PaymentStatus::Processing)).await?;
                self.change(intent_id, GatewayOutcome::Status(PaymentStatus::RequiresCapture)).await
            }
        }
    }

    async fn complete_action(&self, intent_id: &str) -> Result<GatewayEvent, GatewayError> {
        let status = self.read_intent(intent_id, |i| i.status).await?;
        if status != PaymentStatus::RequiresAction {
            return Err(GatewayError::Refused(format!("the payment is {}, not requires_action", status.as_str())));
        }
        self.change(intent_id, GatewayOutcome::Status(PaymentStatus::Processing)).await?;
        self.change(intent_id, GatewayOutcome::Status(PaymentStatus::RequiresCapture)).await
    }

    async fn capture(&self, intent_id: &str) -> Result<GatewayEvent, GatewayError> {
        let (status, card) = self.read_intent(intent_id, |i| (i.status, i.card.clone())).await?;
        if status != PaymentStatus::RequiresCapture {
            return Err(GatewayError::Refused(format!("the payment is {}, not requires_capture", status.as_str())));
        }
        if card.as_deref() == Some("4000000000009995") {
            return self
                .change(intent_id, failed("insufficient_funds", "The capture failed: insufficient funds."))
                .await;
        }
        self.change(intent_id, GatewayOutcome::Status(PaymentStatus::Succeeded)).await
    }

    async fn refund(&self, intent_id: &str, amount: Money, idempotency_key: &str) -> Result<(), GatewayError> {
        self.with_intent(intent_id, |i| {
            if i.refund_keys.iter().any(|k| k == idempotency_key) {
                return Ok(()); // the same refund asked again
            }
            let left = i.amount.minor - i.refunded;
            if i.status != PaymentStatus::Succeeded
                || amount.currency != i.amount.currency
                || amount.minor <= 0
                || amount.minor > left
            {
                return Err(GatewayError::Refused(
                    "only a succeeded payment is refunded, by at most what is left of it".into(),
                ));
            }
            i.refunded += amount.minor;
            i.refund_keys.push(idempotency_key.to_owned());
            Ok(())
        })
        .await?
    }

    async fn cancel(&self, intent_id: &str) -> Result<GatewayEvent, GatewayError> {
        let status = self.read_intent(intent_id, |i| i.status).await?;
        if status.is_final() {
            return Err(GatewayError::Refused(format!("the payment is {}", status.as_str())));
        }
        self.change(intent_id, GatewayOutcome::Status(PaymentStatus::Canceled)).await
    }

    async fn status(&self, intent_id: &str) -> Result<PaymentStatus, GatewayError> {
        self.read_intent(intent_id, |i| i.status).await
    }

    fn verify_webhook(
        &self,
        signature: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<GatewayEvent, WebhookError> {
        let signature = signature.ok_or(WebhookError::BadSignature)?;
        let mut at = None;
        let mut given = None;
        for part in signature.split(',') {
            match part.trim().split_once('=') {
                Some(("t", t)) => at = t.parse::<i64>().ok(),
                Some(("v1", v)) => given = hex::decode(v).ok(),
                _ => {}
            }
        }
        let (Some(at), Some(given)) = (at, given) else { return Err(WebhookError::BadSignature) };
        if !bool::from(mac(&self.secret, at, body).ct_eq(&given)) {
            return Err(WebhookError::BadSignature);
        }
        if (now.timestamp() - at).abs() > TOLERANCE {
            return Err(WebhookError::Expired);
        }
        let hook: Webhook = serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let outcome = match (hook.data.failure_code, hook.data.failure_message) {
            (Some(code), message) => GatewayOutcome::Failed { message: message.unwrap_or_else(|| code.clone()), code },
            (None, _) => GatewayOutcome::Status(
                PaymentStatus::parse(&hook.data.status)
                    .ok_or_else(|| WebhookError::Malformed(format!("unknown status {:?}", hook.data.status)))?,
            ),
        };
        Ok(GatewayEvent {
            id: hook.id,
            intent_id: hook.data.intent_id,
            payment_id: hook.data.payment_id,
            outcome,
            at: hook.created,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_cards_pass_the_luhn_check() {
        for card in ["4242424242424242", "4000000000000002", "4000000000009995", "4000002500003155"] {
            assert!(luhn(card), "{card}");
        }
        assert!(!luhn("4242424242424241"));
        assert!(!luhn("4242 4242"));
    }
}
