//! The payment aggregate: one attempt to pay one order through a payment provider, in
//! the states of Stripe's PaymentIntent. The provider reports progress twice over (its
//! answers and its webhooks), at least once and in any order; the aggregate applies each
//! report once and only moves forward, so a duplicate or a late, stale report changes
//! nothing. A declined card returns the payment to `requires_payment_method`: the order
//! stays awaiting payment and can be paid again, by a new payment.
//!
//! A final state stays final: a payment that succeeded, was cancelled, or failed is never
//! moved again. A report that contradicts it (a signed webhook saying `succeeded` for a
//! cancelled payment) is recorded as ignored, for the operators to see, and changes
//! nothing else. A report must name the payment's own provider intent.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::Money;

pub const AGGREGATE_TYPE: &str = "payment";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    RequiresCapture,
    Succeeded,
    Canceled,
}

impl PaymentStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::RequiresPaymentMethod => "requires_payment_method",
            Self::RequiresConfirmation => "requires_confirmation",
            Self::RequiresAction => "requires_action",
            Self::Processing => "processing",
            Self::RequiresCapture => "requires_capture",
            Self::Succeeded => "succeeded",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::RequiresPaymentMethod,
            Self::RequiresConfirmation,
            Self::RequiresAction,
            Self::Processing,
            Self::RequiresCapture,
            Self::Succeeded,
            Self::Canceled,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }

    /// Final states never change.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Succeeded | Self::Canceled)
    }
}

/// A report from the provider: the state it says the payment is in, or a failure.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderReport {
    /// The provider's event id (webhooks) or `None` (its direct answers).
    pub provider_event_id: Option<String>,
    /// The provider's id of the attempt the report is about: must be the payment's.
    pub intent_id: String,
    pub outcome: ReportedOutcome,
    /// When the provider says it happened; orders reports of one attempt.
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReportedOutcome {
    Status(PaymentStatus),
    /// The attempt failed (declined card, capture failure); the payment needs a new method.
    Failed {
        code: String,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum PaymentCommand {
    Create(CreatePayment),
    Report(ProviderReport),
    Refund { amount: Money, at: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreatePayment {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub provider: String,
    /// The provider's id for this attempt.
    pub intent_id: String,
    pub amount: Money,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PaymentEvent {
    PaymentCreated(PaymentCreated),
    PaymentStatusChanged(PaymentStatusChanged),
    PaymentFailed(PaymentFailed),
    PaymentRefunded(PaymentRefunded),
    PaymentReportIgnored(PaymentReportIgnored),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentCreated {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub provider: String,
    pub intent_id: String,
    pub amount: Money,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentStatusChanged {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub from: PaymentStatus,
    pub to: PaymentStatus,
    pub amount: Money,
    pub provider_event_id: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentFailed {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub code: String,
    pub message: String,
    pub provider_event_id: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentRefunded {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub amount: Money,
    pub at: DateTime<Utc>,
}

/// No stored shape has changed yet: see [`crate::upcast`] for how one would.
impl crate::upcast::Upcast for PaymentEvent {}

/// A report that would have moved a payment out of its final state: kept, not applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentReportIgnored {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub provider_event_id: Option<String>,
    /// What the report said: a status, or `failed`.
    pub reported: String,
    /// The final state the payment stays in: `succeeded`, `canceled` or `failed`.
    pub state: String,
    pub at: DateTime<Utc>,
}

impl DomainEvent for PaymentEvent {
    fn event_type(&self) -> String {
        match self {
            Self::PaymentCreated(_) => "PaymentCreated",
            Self::PaymentStatusChanged(_) => "PaymentStatusChanged",
            Self::PaymentFailed(_) => "PaymentFailed",
            Self::PaymentRefunded(_) => "PaymentRefunded",
            Self::PaymentReportIgnored(_) => "PaymentReportIgnored",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error("this payment exists already")]
    AlreadyCreated,
    #[error("no such payment")]
    NotFound,
    #[error("only a succeeded payment is refunded, by at most its amount, once")]
    InvalidRefund,
    #[error("the report is about the provider's intent {reported}, not this payment's")]
    IntentMismatch { reported: String },
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    created: Option<PaymentCreated>,
    status: Option<PaymentStatus>,
    /// The provider's reports already applied (webhooks arrive at least once).
    seen: BTreeSet<String>,
    /// The time of the failure that ended this attempt: nothing moves it afterwards.
    failed_at: Option<DateTime<Utc>>,
    refunded: bool,
}

impl Payment {
    pub fn status(&self) -> Option<PaymentStatus> {
        self.status
    }

    pub fn created(&self) -> Option<&PaymentCreated> {
        self.created.as_ref()
    }

    pub fn is_refunded(&self) -> bool {
        self.refunded
    }

    /// The state this attempt ended in, if it ended: `succeeded`, `canceled` or `failed`.
    pub fn final_state(&self) -> Option<&'static str> {
        match self.status {
            _ if self.failed_at.is_some() => Some("failed"),
            Some(status) if status.is_final() => Some(status.as_str()),
            _ => None,
        }
    }

    pub fn decide(&self, command: PaymentCommand) -> Result<Vec<PaymentEvent>, PaymentError> {
        let created = match (&self.created, command) {
            (None, PaymentCommand::Create(c)) => {
                return Ok(vec![PaymentEvent::PaymentCreated(PaymentCreated {
                    payment_id: c.payment_id,
                    order_id: c.order_id,
                    user_id: c.user_id,
                    provider: c.provider,
                    intent_id: c.intent_id,
                    amount: c.amount,
                    created_at: c.created_at,
                })]);
            }
            (Some(_), PaymentCommand::Create(_)) => return Err(PaymentError::AlreadyCreated),
            (None, _) => return Err(PaymentError::NotFound),
            (Some(created), command) => (created, command),
        };
        let (created, command) = created;
        let status = self.status.unwrap_or(PaymentStatus::RequiresPaymentMethod);
        match command {
            PaymentCommand::Create(_) => Ok(vec![]),
            PaymentCommand::Refund { amount, at } => {
                if status != PaymentStatus::Succeeded || self.refunded || amount.currency != created.amount.currency {
                    return Err(PaymentError::InvalidRefund);
                }
                if amount.minor <= 0 || amount.minor > created.amount.minor {
                    return Err(PaymentError::InvalidRefund);
                }
                Ok(vec![PaymentEvent::PaymentRefunded(PaymentRefunded {
                    payment_id: created.payment_id,
                    order_id: created.order_id,
                    amount,
                    at,
                })])
            }
            PaymentCommand::Report(report) => {
                if report.intent_id != created.intent_id {
                    return Err(PaymentError::IntentMismatch { reported: report.intent_id });
                }
                if report.provider_event_id.as_ref().is_some_and(|id| self.seen.contains(id)) {
                    return Ok(vec![]); // applied once already
                }
                if let Some(state) = self.final_state() {
                    // A late report of progress is expected (reports overtake each other);
                    // one of another ending contradicts what happened, and is kept.
                    let reported = match &report.outcome {
                        ReportedOutcome::Failed { .. } => "failed",
                        ReportedOutcome::Status(s) if s.is_final() => s.as_str(),
                        ReportedOutcome::Status(_) => return Ok(vec![]),
                    };
                    if reported == state {
                        return Ok(vec![]);
                    }
                    return Ok(vec![PaymentEvent::PaymentReportIgnored(PaymentReportIgnored {
                        payment_id: created.payment_id,
                        order_id: created.order_id,
                        provider_event_id: report.provider_event_id,
                        reported: reported.to_owned(),
                        state: state.to_owned(),
                        at: report.at,
                    })]);
                }
                match report.outcome {
                    ReportedOutcome::Failed { code, message } => Ok(vec![PaymentEvent::PaymentFailed(PaymentFailed {
                        payment_id: created.payment_id,
                        order_id: created.order_id,
                        code,
                        message,
                        provider_event_id: report.provider_event_id,
                        at: report.at,
                    })]),
                    // Forward only: a report of an earlier state arrived late.
                    ReportedOutcome::Status(to) if to <= status => Ok(vec![]),
                    ReportedOutcome::Status(to) => Ok(vec![PaymentEvent::PaymentStatusChanged(PaymentStatusChanged {
                        payment_id: created.payment_id,
                        order_id: created.order_id,
                        from: status,
                        to,
                        amount: created.amount,
                        provider_event_id: report.provider_event_id,
                        at: report.at,
                    })]),
                }
            }
        }
    }
}

impl crate::snapshot::Snapshot for Payment {
    const STATE_VERSION: u32 = 1;
}

impl Aggregate for Payment {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = PaymentCommand;
    type Event = PaymentEvent;
    type Error = PaymentError;
    type Services = ();

    async fn handle(&mut self, command: Self::Command, _: &(), sink: &EventSink<Self>) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            PaymentEvent::PaymentCreated(e) => {
                self.created = Some(e);
                self.status = Some(PaymentStatus::RequiresPaymentMethod);
            }
            PaymentEvent::PaymentStatusChanged(e) => {
                self.status = Some(e.to);
                self.seen.extend(e.provider_event_id);
            }
            PaymentEvent::PaymentFailed(e) => {
                self.status = Some(PaymentStatus::RequiresPaymentMethod);
                self.failed_at = Some(e.at);
                self.seen.extend(e.provider_event_id);
            }
            PaymentEvent::PaymentRefunded(_) => self.refunded = true,
            PaymentEvent::PaymentReportIgnored(e) => self.seen.extend(e.provider_event_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use chrono::TimeZone;
    use cqrs_es::test::TestFramework;

    type PaymentTest = TestFramework<Payment>;

    fn t(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, s).single().expect("time")
    }

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").expect("EUR"))
    }

    fn created() -> PaymentEvent {
        PaymentEvent::PaymentCreated(PaymentCreated {
            payment_id: Uuid::from_u128(1),
            order_id: Uuid::from_u128(2),
            user_id: Uuid::from_u128(3),
            provider: "fake".into(),
            intent_id: "pi_1".into(),
            amount: eur(1999),
            created_at: t(0),
        })
    }

    fn report(id: &str, status: PaymentStatus, at: u32) -> PaymentCommand {
        PaymentCommand::Report(ProviderReport {
            provider_event_id: Some(id.into()),
            intent_id: "pi_1".into(),
            outcome: ReportedOutcome::Status(status),
            at: t(at),
        })
    }

    fn changed(id: &str, from: PaymentStatus, to: PaymentStatus, at: u32) -> PaymentEvent {
        PaymentEvent::PaymentStatusChanged(PaymentStatusChanged {
            payment_id: Uuid::from_u128(1),
            order_id: Uuid::from_u128(2),
            from,
            to,
            amount: eur(1999),
            provider_event_id: Some(id.into()),
            at: t(at),
        })
    }

    use PaymentStatus::*;

    #[test]
    fn reports_move_the_payment_forward() {
        PaymentTest::with(())
            .given(vec![created()])
            .when(report("evt_1", Processing, 1))
            .then_expect_events(vec![changed("evt_1", RequiresPaymentMethod, Processing, 1)]);
    }

    #[test]
    fn a_duplicate_report_is_applied_once() {
        PaymentTest::with(())
            .given(vec![created(), changed("evt_1", RequiresPaymentMethod, Processing, 1)])
            .when(report("evt_1", Processing, 1))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_late_report_of_an_earlier_state_changes_nothing() {
        // "succeeded" overtook "processing".
        PaymentTest::with(())
            .given(vec![created(), changed("evt_2", RequiresPaymentMethod, Succeeded, 2)])
            .when(report("evt_1", Processing, 1))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_decline_sends_the_payment_back_for_another_method() {
        let failure = PaymentCommand::Report(ProviderReport {
            provider_event_id: Some("evt_3".into()),
            intent_id: "pi_1".into(),
            outcome: ReportedOutcome::Failed {
                code: "card_declined".into(),
                message: "Your card was declined.".into(),
            },
            at: t(3),
        });
        let failed = PaymentEvent::PaymentFailed(PaymentFailed {
            payment_id: Uuid::from_u128(1),
            order_id: Uuid::from_u128(2),
            code: "card_declined".into(),
            message: "Your card was declined.".into(),
            provider_event_id: Some("evt_3".into()),
            at: t(3),
        });
        PaymentTest::with(())
            .given(vec![created(), changed("evt_1", RequiresPaymentMethod, RequiresConfirmation, 1)])
            .when(failure)
            .then_expect_events(vec![failed.clone()]);
        // A progress report from before the failure arrives late: stale.
        PaymentTest::with(())
            .given(vec![created(), failed.clone()])
            .when(report("evt_2", Processing, 2))
            .then_expect_events(vec![]);
        // A failed attempt is over: a later report of success does not revive it.
        PaymentTest::with(())
            .given(vec![created(), failed])
            .when(report("evt_4", Succeeded, 4))
            .then_expect_events(vec![ignored("evt_4", "succeeded", "failed", 4)]);
    }

    fn ignored(id: &str, reported: &str, state: &str, at: u32) -> PaymentEvent {
        PaymentEvent::PaymentReportIgnored(PaymentReportIgnored {
            payment_id: Uuid::from_u128(1),
            order_id: Uuid::from_u128(2),
            provider_event_id: Some(id.into()),
            reported: reported.into(),
            state: state.into(),
            at: t(at),
        })
    }

    #[test]
    fn a_cancelled_payment_is_never_revived() {
        let cancelled = vec![created(), changed("evt_1", RequiresPaymentMethod, Canceled, 1)];
        PaymentTest::with(())
            .given(cancelled.clone())
            .when(report("evt_9", Succeeded, 9))
            .then_expect_events(vec![ignored("evt_9", "succeeded", "canceled", 9)]);
        // The ignored report, delivered again, is kept once.
        let mut kept = cancelled;
        kept.push(ignored("evt_9", "succeeded", "canceled", 9));
        PaymentTest::with(()).given(kept.clone()).when(report("evt_9", Succeeded, 9)).then_expect_events(vec![]);
        // Late progress reports are expected and change nothing.
        PaymentTest::with(()).given(kept).when(report("evt_0", RequiresCapture, 10)).then_expect_events(vec![]);
    }

    #[test]
    fn a_report_about_another_intent_is_refused() {
        let other = PaymentCommand::Report(ProviderReport {
            provider_event_id: Some("evt_1".into()),
            intent_id: "pi_someone_else".into(),
            outcome: ReportedOutcome::Status(Succeeded),
            at: t(1),
        });
        PaymentTest::with(())
            .given(vec![created()])
            .when(other)
            .then_expect_error(PaymentError::IntentMismatch { reported: "pi_someone_else".into() });
    }

    #[test]
    fn a_succeeded_payment_is_final_and_refunded_once() {
        let done = vec![created(), changed("evt_1", RequiresPaymentMethod, Succeeded, 1)];
        PaymentTest::with(()).given(done.clone()).when(report("evt_9", Canceled, 9)).then_expect_events(vec![ignored(
            "evt_9",
            "canceled",
            "succeeded",
            9,
        )]);
        let refund = PaymentCommand::Refund { amount: eur(1999), at: t(5) };
        let refunded = PaymentEvent::PaymentRefunded(PaymentRefunded {
            payment_id: Uuid::from_u128(1),
            order_id: Uuid::from_u128(2),
            amount: eur(1999),
            at: t(5),
        });
        PaymentTest::with(()).given(done.clone()).when(refund.clone()).then_expect_events(vec![refunded.clone()]);
        let mut twice = done;
        twice.push(refunded);
        PaymentTest::with(()).given(twice).when(refund).then_expect_error(PaymentError::InvalidRefund);
        PaymentTest::with(())
            .given(vec![created()])
            .when(PaymentCommand::Refund { amount: eur(1), at: t(1) })
            .then_expect_error(PaymentError::InvalidRefund);
    }
}
