//! Given/when/then tests of every order rule.

use chrono::TimeZone;
use cqrs_es::test::TestFramework;

use super::*;
use crate::money::Currency;
use crate::personal::{DataKey, KEY_LEN, NONCE_LEN, Sealed, Subject};

type OrderTest = TestFramework<Order>;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).single().expect("time")
}

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").expect("EUR"))
}

fn line(article: &str, quantity: u32, price: i64) -> OrderLine {
    OrderLine {
        article: Article::parse(article).expect("article"),
        name: article.into(),
        quantity,
        unit_price: eur(price),
    }
}

fn place() -> PlaceOrder {
    PlaceOrder {
        order_id: Uuid::from_u128(1),
        user_id: Uuid::from_u128(2),
        lines: vec![line("SKU-1", 2, 1999), line("SKU-2", 1, 500)],
        click_id: Some(Uuid::from_u128(3)),
        contact: sealed(&contact()),
        shipping_address: sealed(&address()),
        placed_at: at(),
    }
}

fn contact() -> Contact {
    Contact { name: "Ann".into(), email: Email::parse("ann@example.com").expect("email"), phone: None }
}

fn address() -> Address {
    Address {
        line1: "1 Main St".into(),
        line2: None,
        city: "Berlin".into(),
        postal_code: "10115".into(),
        country: "DE".into(),
    }
}

/// Sealed under the buyer's key, as a command carries it.
fn sealed<T: serde::Serialize>(value: &T) -> Sealed<T> {
    DataKey::from_bytes([5; KEY_LEN]).seal(&Subject::user(Uuid::from_u128(2)), value, [6; NONCE_LEN])
}

fn placed() -> OrderEvent {
    let p = place();
    OrderEvent::OrderPlaced(OrderPlaced {
        order_id: p.order_id,
        user_id: p.user_id,
        lines: p.lines,
        total: eur(4498),
        click_id: p.click_id,
        contact: Personal::Sealed(p.contact),
        shipping_address: Personal::Sealed(p.shipping_address),
        placed_at: at(),
    })
}

fn paid() -> OrderEvent {
    OrderEvent::OrderPaid(OrderPaid {
        order_id: Uuid::from_u128(1),
        payment_id: Uuid::from_u128(9),
        amount: eur(4498),
        paid_at: at(),
    })
}

fn shipped() -> OrderEvent {
    OrderEvent::OrderShipped(OrderShipped { order_id: Uuid::from_u128(1), tracking: None, at: at() })
}

fn cancelled() -> OrderEvent {
    OrderEvent::OrderCancelled(OrderClosed { order_id: Uuid::from_u128(1), reason: "changed my mind".into(), at: at() })
}

fn pay(amount: i64) -> OrderCommand {
    OrderCommand::MarkPaid { payment_id: Uuid::from_u128(9), amount: eur(amount), at: at() }
}

#[test]
fn an_order_is_placed_with_its_total_and_its_click() {
    OrderTest::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(place()))
        .then_expect_events(vec![placed()]);
}

#[test]
fn placing_again_is_a_no_op_but_another_order_under_the_id_is_refused() {
    OrderTest::with(()).given(vec![placed()]).when(OrderCommand::PlaceOrder(place())).then_expect_events(vec![]);
    // A retry seals its contact afresh (another nonce): still the same order.
    let contact =
        DataKey::from_bytes([5; KEY_LEN]).seal(&Subject::user(Uuid::from_u128(2)), &contact(), [8; NONCE_LEN]);
    assert_ne!(contact, place().contact);
    let retry = PlaceOrder { contact, ..place() };
    OrderTest::with(()).given(vec![placed()]).when(OrderCommand::PlaceOrder(retry)).then_expect_events(vec![]);
    let other = PlaceOrder { lines: vec![line("SKU-1", 1, 1999)], ..place() };
    OrderTest::with(())
        .given(vec![placed()])
        .when(OrderCommand::PlaceOrder(other))
        .then_expect_error(OrderError::AlreadyPlaced);
}

#[test]
fn bad_orders_are_refused() {
    let cases = [
        (PlaceOrder { lines: vec![], ..place() }, OrderError::InvalidLines),
        (PlaceOrder { lines: vec![line("SKU-1", 0, 1)], ..place() }, OrderError::InvalidLines),
        (PlaceOrder { lines: vec![line("SKU-1", 101, 1)], ..place() }, OrderError::InvalidLines),
        (PlaceOrder { lines: vec![line("SKU-1", 1, 1), line("SKU-1", 1, 1)], ..place() }, OrderError::InvalidLines),
        (
            PlaceOrder {
                lines: vec![
                    line("SKU-1", 1, 1),
                    OrderLine {
                        unit_price: Money::new(1, Currency::parse("USD").expect("USD")),
                        ..line("SKU-2", 1, 1)
                    },
                ],
                ..place()
            },
            OrderError::MixedCurrencies,
        ),
        (PlaceOrder { lines: vec![line("SKU-1", 100, i64::MAX / 10)], ..place() }, OrderError::TotalOverflow),
    ];
    assert_eq!(Contact { name: " ".into(), ..contact() }.check(), Err(OrderError::InvalidContact));
    assert_eq!(Contact { phone: Some("1\n2".into()), ..contact() }.check(), Err(OrderError::InvalidContact));
    assert_eq!(Address { country: "Germany".into(), ..address() }.check(), Err(OrderError::InvalidAddress));
    assert_eq!((contact().check(), address().check()), (Ok(()), Ok(())));
    for (command, error) in cases {
        OrderTest::with(()).given_no_previous_events().when(OrderCommand::PlaceOrder(command)).then_expect_error(error);
    }
}

#[test]
fn an_order_is_paid_once_with_its_exact_total() {
    OrderTest::with(()).given(vec![placed()]).when(pay(4498)).then_expect_events(vec![paid()]);
    // The same payment reported twice (a duplicate webhook): nothing more happens.
    OrderTest::with(()).given(vec![placed(), paid()]).when(pay(4498)).then_expect_events(vec![]);
}

fn surplus(payment: u128, minor: i64) -> OrderSurplus {
    OrderSurplus { order_id: Uuid::from_u128(1), payment_id: Uuid::from_u128(payment), amount: eur(minor), at: at() }
}

#[test]
fn a_capture_that_pays_nothing_is_a_surplus_recorded_once() {
    let other = OrderCommand::MarkPaid { payment_id: Uuid::from_u128(10), amount: eur(4498), at: at() };
    // Paid already by another payment.
    OrderTest::with(())
        .given(vec![placed(), paid()])
        .when(other.clone())
        .then_expect_events(vec![OrderEvent::OrderSurplusCaptured(surplus(10, 4498))]);
    // Reported again: recorded once.
    OrderTest::with(())
        .given(vec![placed(), paid(), OrderEvent::OrderSurplusCaptured(surplus(10, 4498))])
        .when(other.clone())
        .then_expect_events(vec![]);
    // Captured after the order was cancelled.
    OrderTest::with(())
        .given(vec![placed(), cancelled()])
        .when(other)
        .then_expect_events(vec![OrderEvent::OrderSurplusCaptured(surplus(10, 4498))]);
    // Not the order's total: it pays nothing.
    OrderTest::with(())
        .given(vec![placed()])
        .when(pay(100))
        .then_expect_events(vec![OrderEvent::OrderSurplusCaptured(surplus(9, 100))]);
}

#[test]
fn a_surplus_refund_is_recorded_and_the_order_stays_paid() {
    let refund = |payment: u128| OrderCommand::Refund {
        payment_id: Uuid::from_u128(payment),
        amount: eur(4498),
        reason: "surplus".into(),
        at: at(),
    };
    let given = vec![placed(), paid(), OrderEvent::OrderSurplusCaptured(surplus(10, 4498))];
    OrderTest::with(())
        .given(given.clone())
        .when(refund(10))
        .then_expect_events(vec![OrderEvent::OrderSurplusRefunded(surplus(10, 4498))]);
    let mut refunded = given;
    refunded.push(OrderEvent::OrderSurplusRefunded(surplus(10, 4498)));
    OrderTest::with(()).given(refunded.clone()).when(refund(10)).then_expect_events(vec![]);
    // A payment that neither paid the order nor was a surplus refunds nothing of it.
    OrderTest::with(()).given(refunded).when(refund(11)).then_expect_error(OrderError::InvalidRefund);
}

fn started(payment: u128, at: DateTime<Utc>) -> OrderEvent {
    OrderEvent::OrderPaymentStarted(OrderPaymentStarted {
        order_id: Uuid::from_u128(1),
        payment_id: Uuid::from_u128(payment),
        at,
    })
}

fn ended(payment: u128, reason: &str, at: DateTime<Utc>) -> OrderEvent {
    OrderEvent::OrderPaymentEnded(OrderPaymentEnded {
        order_id: Uuid::from_u128(1),
        payment_id: Uuid::from_u128(payment),
        reason: reason.into(),
        at,
    })
}

fn start(payment: u128, at: DateTime<Utc>) -> OrderCommand {
    OrderCommand::StartPayment { payment_id: Uuid::from_u128(payment), at }
}

#[test]
fn one_payment_at_a_time_claims_the_order() {
    OrderTest::with(()).given(vec![placed()]).when(start(20, at())).then_expect_events(vec![started(20, at())]);
    // The same attempt again changes nothing; another is refused while it is under way.
    OrderTest::with(()).given(vec![placed(), started(20, at())]).when(start(20, at())).then_expect_events(vec![]);
    OrderTest::with(())
        .given(vec![placed(), started(20, at())])
        .when(start(21, at() + chrono::Duration::seconds(60)))
        .then_expect_error(OrderError::PaymentInProgress(Uuid::from_u128(20)));
    // Once it ends (declined, cancelled), another may start.
    OrderTest::with(())
        .given(vec![placed(), started(20, at()), ended(20, "failed", at())])
        .when(start(21, at()))
        .then_expect_events(vec![started(21, at())]);
    // A paid or cancelled order takes no payment.
    OrderTest::with(())
        .given(vec![placed(), started(9, at()), paid()])
        .when(start(21, at()))
        .then_expect_error(OrderError::WrongStatus("paid"));
    OrderTest::with(())
        .given(vec![placed(), cancelled()])
        .when(start(21, at()))
        .then_expect_error(OrderError::WrongStatus("cancelled"));
}

#[test]
fn an_attempt_left_too_long_is_taken_over() {
    let later = at() + chrono::Duration::seconds(PAYMENT_ATTEMPT_TIMEOUT_SECS);
    OrderTest::with(())
        .given(vec![placed(), started(20, at())])
        .when(start(21, later))
        .then_expect_events(vec![ended(20, "timed_out", later), started(21, later)]);
}

#[test]
fn only_the_attempt_under_way_is_ended() {
    let end = |payment: u128| OrderCommand::EndPayment {
        payment_id: Uuid::from_u128(payment),
        reason: "failed".into(),
        at: at(),
    };
    OrderTest::with(()).given(vec![placed(), started(20, at())]).when(end(20)).then_expect_events(vec![ended(
        20,
        "failed",
        at(),
    )]);
    OrderTest::with(()).given(vec![placed(), started(20, at())]).when(end(19)).then_expect_events(vec![]);
    OrderTest::with(())
        .given(vec![placed(), started(20, at()), ended(20, "failed", at())])
        .when(end(20))
        .then_expect_events(vec![]);
}

#[test]
fn an_order_id_voided_before_it_was_placed_is_never_placed() {
    let void = || OrderCommand::Void { order_id: Uuid::from_u128(1), reason: "expired".into(), at: at() };
    let voided =
        OrderEvent::OrderVoided(OrderClosed { order_id: Uuid::from_u128(1), reason: "expired".into(), at: at() });
    OrderTest::with(()).given_no_previous_events().when(void()).then_expect_events(vec![voided.clone()]);
    OrderTest::with(()).given(vec![voided.clone()]).when(void()).then_expect_events(vec![]);
    OrderTest::with(())
        .given(vec![voided])
        .when(OrderCommand::PlaceOrder(place()))
        .then_expect_error(OrderError::Voided);
    // A placed order is not voided: it holds its stock.
    OrderTest::with(()).given(vec![placed()]).when(void()).then_expect_error(OrderError::AlreadyPlaced);
}

#[test]
fn only_an_unpaid_order_is_cancelled() {
    let cancel = || OrderCommand::Cancel { reason: "changed my mind".into(), at: at() };
    OrderTest::with(()).given(vec![placed()]).when(cancel()).then_expect_events(vec![OrderEvent::OrderCancelled(
        OrderClosed { order_id: Uuid::from_u128(1), reason: "changed my mind".into(), at: at() },
    )]);
    OrderTest::with(())
        .given(vec![placed(), paid()])
        .when(cancel())
        .then_expect_error(OrderError::PaidOrdersAreRefunded);
    OrderTest::with(())
        .given(vec![placed(), paid(), shipped()])
        .when(cancel())
        .then_expect_error(OrderError::PaidOrdersAreRefunded);
}

#[test]
fn only_a_paid_order_ships_and_only_a_shipped_one_completes() {
    let ship = || OrderCommand::Ship { tracking: None, at: at() };
    OrderTest::with(())
        .given(vec![placed()])
        .when(ship())
        .then_expect_error(OrderError::WrongStatus("awaiting_payment"));
    OrderTest::with(()).given(vec![placed(), paid()]).when(ship()).then_expect_events(vec![shipped()]);
    OrderTest::with(())
        .given(vec![placed(), paid()])
        .when(OrderCommand::Complete { at: at() })
        .then_expect_error(OrderError::WrongStatus("paid"));
    OrderTest::with(())
        .given(vec![placed(), paid(), shipped()])
        .when(OrderCommand::Complete { at: at() })
        .then_expect_events(vec![OrderEvent::OrderCompleted(OrderClosed {
            order_id: Uuid::from_u128(1),
            reason: "delivered".into(),
            at: at(),
        })]);
}

#[test]
fn refunds_follow_payment_and_never_exceed_it() {
    let refund = |minor| OrderCommand::Refund {
        payment_id: Uuid::from_u128(9),
        amount: eur(minor),
        reason: "damaged".into(),
        at: at(),
    };
    OrderTest::with(())
        .given(vec![placed()])
        .when(refund(100))
        .then_expect_error(OrderError::WrongStatus("awaiting_payment"));
    OrderTest::with(()).given(vec![placed(), paid()]).when(refund(5000)).then_expect_error(OrderError::InvalidRefund);
    OrderTest::with(()).given(vec![placed(), paid(), shipped()]).when(refund(4498)).then_expect_events(vec![
        OrderEvent::OrderRefunded(OrderRefunded {
            order_id: Uuid::from_u128(1),
            amount: eur(4498),
            reason: "damaged".into(),
            at: at(),
        }),
    ]);
}
