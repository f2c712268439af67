//! Given/when/then tests of the product rules.

use cqrs_es::test::TestFramework;

use super::*;
use crate::money::{Currency, Money};

type ProductTest = TestFramework<Product>;

fn sku() -> Article {
    Article::parse("SKU-1").expect("article")
}

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").expect("EUR"))
}

fn create() -> CreateProduct {
    CreateProduct {
        article: sku(),
        name: "Bicycle".into(),
        description: String::new(),
        price: eur(1999),
        stock: 10,
        image_url: Some("https://shop.example/bike.png".into()),
    }
}

fn created() -> ProductEvent {
    let c = create();
    ProductEvent::ProductCreated(ProductCreated {
        article: c.article,
        name: c.name,
        description: c.description,
        price: c.price,
        stock: c.stock,
        image_url: c.image_url,
    })
}

#[test]
fn a_product_is_created_once() {
    ProductTest::with(())
        .given_no_previous_events()
        .when(ProductCommand::CreateProduct(create()))
        .then_expect_events(vec![created()]);
    ProductTest::with(())
        .given(vec![created()])
        .when(ProductCommand::CreateProduct(create()))
        .then_expect_error(ProductError::AlreadyExists);
}

#[test]
fn each_change_is_its_own_event() {
    let change = ChangeProduct {
        name: Some("Road bike".into()),
        price: Some(eur(2499)),
        active: Some(false),
        ..Default::default()
    };
    ProductTest::with(()).given(vec![created()]).when(ProductCommand::ChangeProduct(change)).then_expect_events(vec![
        ProductEvent::ProductRenamed(ProductRenamed { article: sku(), name: "Road bike".into() }),
        ProductEvent::ProductRepriced(ProductRepriced { article: sku(), price: eur(2499) }),
        ProductEvent::ProductRetired(ProductRetired { article: sku() }),
    ]);
}

#[test]
fn retiring_a_retired_product_changes_nothing() {
    ProductTest::with(())
        .given(vec![created(), ProductEvent::ProductRetired(ProductRetired { article: sku() })])
        .when(ProductCommand::ChangeProduct(ChangeProduct { active: Some(false), ..Default::default() }))
        .then_expect_events(vec![]);
}

#[test]
fn bad_values_are_refused() {
    let cases = [
        (CreateProduct { name: " ".into(), ..create() }, ProductError::InvalidName),
        (CreateProduct { price: eur(-1), ..create() }, ProductError::InvalidPrice { max: MAX_PRICE_MINOR }),
        (CreateProduct { price: eur(i64::MAX), ..create() }, ProductError::InvalidPrice { max: MAX_PRICE_MINOR }),
        (CreateProduct { description: "nul\0".into(), ..create() }, ProductError::InvalidText),
        (CreateProduct { image_url: Some("javascript:alert(1)".into()), ..create() }, ProductError::InvalidImageUrl),
    ];
    for (command, error) in cases {
        ProductTest::with(())
            .given_no_previous_events()
            .when(ProductCommand::CreateProduct(command))
            .then_expect_error(error);
    }
    ProductTest::with(())
        .given_no_previous_events()
        .when(ProductCommand::ChangeProduct(ChangeProduct::default()))
        .then_expect_error(ProductError::NotFound);
}

#[test]
fn article_numbers_are_plain_tokens() {
    assert!(Article::parse("SKU-1_a").is_ok());
    for bad in ["", "a b", "a.b", "a/b", &"x".repeat(65)] {
        assert!(Article::parse(bad).is_err(), "{bad}");
    }
}

fn reserve(order: u128, quantity: u32) -> ProductCommand {
    ProductCommand::ReserveStock { order_id: uuid::Uuid::from_u128(order), quantity, expires_at: Some(expiry()) }
}

fn expiry() -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc.with_ymd_and_hms(2026, 12, 6, 12, 15, 0).single().expect("time")
}

fn reserved(order: u128, quantity: u32) -> ProductEvent {
    ProductEvent::StockReserved(StockMoved {
        article: sku(),
        order_id: uuid::Uuid::from_u128(order),
        quantity,
        expires_at: Some(expiry()),
    })
}

#[test]
fn stock_is_reserved_without_overselling() {
    ProductTest::with(()).given(vec![created()]).when(reserve(1, 4)).then_expect_events(vec![reserved(1, 4)]);
    ProductTest::with(())
        .given(vec![created(), reserved(1, 8)])
        .when(reserve(2, 3))
        .then_expect_error(ProductError::InsufficientStock { available: 2 });
    // The same order again changes nothing.
    ProductTest::with(()).given(vec![created(), reserved(1, 8)]).when(reserve(1, 8)).then_expect_events(vec![]);
    ProductTest::with(())
        .given(vec![created(), ProductEvent::ProductRetired(ProductRetired { article: sku() })])
        .when(reserve(1, 1))
        .then_expect_error(ProductError::NotForSale);
}

#[test]
fn released_stock_can_be_sold_again_and_shipped_stock_is_gone() {
    let released = ProductEvent::StockReleased(StockMoved {
        article: sku(),
        order_id: uuid::Uuid::from_u128(1),
        quantity: 8,
        expires_at: None,
    });
    ProductTest::with(())
        .given(vec![created(), reserved(1, 8)])
        .when(ProductCommand::ReleaseStock { order_id: uuid::Uuid::from_u128(1) })
        .then_expect_events(vec![released.clone()]);
    ProductTest::with(())
        .given(vec![created(), reserved(1, 8), released])
        .when(reserve(2, 10))
        .then_expect_events(vec![reserved(2, 10)]);
    let committed = ProductEvent::StockCommitted(StockMoved {
        article: sku(),
        order_id: uuid::Uuid::from_u128(1),
        quantity: 8,
        expires_at: None,
    });
    ProductTest::with(())
        .given(vec![created(), reserved(1, 8), committed])
        .when(reserve(2, 3))
        .then_expect_error(ProductError::InsufficientStock { available: 2 });
}

#[test]
fn a_reservation_says_when_it_expires_and_old_ones_still_read() {
    let json = serde_json::to_value(reserved(1, 2)).expect("json");
    assert_eq!(json["StockReserved"]["expires_at"], "2026-12-06T12:15:00Z");
    // Stored before reservations expired: no `expires_at`, and releases never carry one.
    let old: ProductEvent = serde_json::from_value(serde_json::json!(
        {"StockReserved": {"article": "SKU-1", "order_id": uuid::Uuid::from_u128(1), "quantity": 2}}
    ))
    .expect("an old reservation reads");
    let ProductEvent::StockReserved(moved) = old else { panic!("a reservation") };
    assert_eq!(moved.expires_at, None);
    let released = ProductEvent::StockReleased(StockMoved { expires_at: None, ..moved });
    assert!(serde_json::to_value(released).expect("json")["StockReleased"].get("expires_at").is_none());
}
