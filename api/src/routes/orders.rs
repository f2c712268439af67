//! Orders: `/api/v1/orders`.
//!
//! Placing an order reserves each line's stock, then records the order; if a line cannot
//! be reserved the reservations made are given back and nothing is ordered. The order id
//! is derived from the buyer and the `Idempotency-Key`, so a retry after a failure picks
//! the same order up where it stopped (every step is idempotent), and the first answer is
//! kept with the key and replayed on a retry.
//!
//! Each reservation expires (`FRAMECART_RESERVATION_TTL_SECS`): if the order is not placed
//! by then (a crash between the steps, a client that never retried), the reservations
//! process manager voids the order id and gives the stock back (`framecart_processes::reservations`).
//! The order aggregate decides between placing and voiding, so neither a placed order
//! loses its stock nor is a voided one placed later: a retry then answers
//! `409 order_expired`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use framecart_commands::CommandError;
use framecart_commands::execute::execute;
use framecart_domain::EventMetadata;
use framecart_domain::click::Click;
use framecart_domain::order::{Address, Contact, Order, OrderCommand, OrderLine, OrderStatus, PlaceOrder};
use framecart_domain::personal::Subject;
use framecart_domain::product::{Article, Product, ProductCommand, ProductError};
use framecart_domain::user::{Email, Role};
use framecart_projections::orders::{self, OrderView, PaymentView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::error::{key_error, order_error};
use crate::extract::{Json, Path, Query, RequestMetadata, header_token};
use crate::state::{App, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(place_order, list_orders))
        .routes(routes!(get_order))
        .routes(routes!(cancel_order))
        .routes(routes!(ship_order))
        .routes(routes!(complete_order))
        .routes(routes!(list_payments))
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct LineRequest {
    pub article: String,
    pub quantity: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct ContactRequest {
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct AddressRequest {
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, e.g. `DE`.
    pub country: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct NewOrder {
    pub lines: Vec<LineRequest>,
    /// The matched click the order came from.
    pub click_id: Option<Uuid>,
    pub contact: ContactRequest,
    pub shipping_address: AddressRequest,
}

/// Places an order (needs a signed-in user and an `Idempotency-Key` header).
#[utoipa::path(
    post,
    path = "/api/v1/orders",
    tag = "orders",
    request_body = NewOrder,
    params(("Idempotency-Key" = String, Header, description = "Unique per order attempt; a retry with it replays the first answer")),
    responses(
        (status = 201, body = OrderView),
        (status = 400, description = "No Idempotency-Key", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, description = "Out of stock, or the key was used with other parameters", body = ErrorBody),
        (status = 422, description = "An unknown article or click, a bad quantity, contact or address", body = ErrorBody),
    )
)]
async fn place_order(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    request: RequestMetadata,
    Json(body): Json<NewOrder>,
) -> Result<Response, ApiError> {
    let user_id = caller.user()?;
    let key = header_token(&headers, "idempotency-key", 255).ok_or_else(|| {
        ApiError::bad_request(
            "missing_idempotency_key",
            "send an `Idempotency-Key` header (1 to 255 visible characters)",
        )
    })?;
    let request_hash = hex::encode(Sha256::digest(serde_json::to_vec(&body).map_err(ApiError::internal)?));
    if let Some(replay) = claim_key(&app, user_id, &key, &request_hash).await? {
        return Ok(replay);
    }
    let metadata = request.by(caller.actor());
    let outcome = place(&app, user_id, &key, body, metadata).await;
    // The first answer stays with the key, unless it was our failure (then try again).
    let (status, json) = match &outcome {
        Ok(order) => (StatusCode::CREATED, serde_json::to_value(order).map_err(ApiError::internal)?),
        Err(e) => (e.status_and_code().0, serde_json::to_value(e.body()).map_err(ApiError::internal)?),
    };
    if status.is_server_error() {
        sqlx::query("DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2")
            .bind(user_id)
            .bind(&key)
            .execute(&app.pool)
            .await
            .map_err(ApiError::unavailable)?;
    } else {
        sqlx::query("UPDATE idempotency_keys SET status = $3, response = $4 WHERE user_id = $1 AND key = $2")
            .bind(user_id)
            .bind(&key)
            .bind(i32::from(status.as_u16()))
            .bind(&json)
            .execute(&app.pool)
            .await
            .map_err(ApiError::unavailable)?;
    }
    outcome.map(|order| (StatusCode::CREATED, axum::Json(order)).into_response())
}

/// Takes the key for this request, or answers as the first request with it did.
async fn claim_key(app: &App, user_id: Uuid, key: &str, request_hash: &str) -> Result<Option<Response>, ApiError> {
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(user_id)
    .bind(key)
    .bind(request_hash)
    .execute(&app.pool)
    .await
    .map_err(ApiError::unavailable)?
    .rows_affected();
    if claimed == 1 {
        return Ok(None);
    }
    let (hash, status, response, stale): (String, Option<i32>, Option<serde_json::Value>, bool) = sqlx::query_as(
        "SELECT request_hash, status, response, created_at < now() - interval '30 seconds'
         FROM idempotency_keys WHERE user_id = $1 AND key = $2",
    )
    .bind(user_id)
    .bind(key)
    .fetch_one(&app.pool)
    .await
    .map_err(ApiError::unavailable)?;
    if hash != request_hash {
        return Err(ApiError::Conflict {
            code: "idempotency_key_reused",
            message: "this Idempotency-Key was used for a different request".into(),
        });
    }
    match (status, response) {
        (Some(status), Some(response)) => {
            let status =
                StatusCode::from_u16(u16::try_from(status).unwrap_or(500)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Ok(Some((status, axum::Json(response)).into_response()))
        }
        // The first attempt stopped midway (a crash): carry on where it stopped.
        _ if stale => Ok(None),
        _ => Err(ApiError::Conflict {
            code: "request_in_progress",
            message: "a request with this key is being handled".into(),
        }),
    }
}

fn product_error(e: CommandError<ProductError>) -> ApiError {
    match e {
        CommandError::Refused(ProductError::InsufficientStock { available }) => {
            ApiError::Conflict { code: "insufficient_stock", message: format!("only {available} left in stock") }
        }
        CommandError::Refused(ProductError::NotForSale | ProductError::NotFound) => {
            ApiError::invalid("not_for_sale", "a product of the order is not for sale")
        }
        CommandError::Refused(other) => ApiError::invalid("invalid_line", other),
        other => ApiError::unavailable(anyhow::anyhow!(other.to_string())),
    }
}

/// The order id a buyer's key names: the same on every retry.
fn order_id(user_id: Uuid, key: &str) -> Uuid {
    Uuid::new_v5(&user_id, key.as_bytes())
}

async fn place(
    app: &App,
    user_id: Uuid,
    key: &str,
    body: NewOrder,
    metadata: EventMetadata,
) -> Result<OrderView, ApiError> {
    let order_id = order_id(user_id, key);
    let contact = Contact {
        name: body.contact.name.trim().to_owned(),
        email: Email::parse(&body.contact.email)
            .map_err(|_| ApiError::invalid("invalid_contact", "the contact's email is not an email address"))?,
        phone: body.contact.phone.map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()),
    };
    let a = body.shipping_address;
    let shipping_address = Address {
        line1: a.line1.trim().to_owned(),
        line2: a.line2.map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()),
        city: a.city.trim().to_owned(),
        postal_code: a.postal_code.trim().to_owned(),
        country: a.country.trim().to_uppercase(),
    };
    contact.check().map_err(|e| order_error(CommandError::Refused(e)))?;
    shipping_address.check().map_err(|e| order_error(CommandError::Refused(e)))?;
    // Personal data: sealed under the buyer's key before it reaches a command.
    let buyer = Subject::user(user_id);
    let contact = app.keys.seal(&buyer, &contact).await.map_err(key_error)?;
    let shipping_address = app.keys.seal(&buyer, &shipping_address).await.map_err(key_error)?;
    // Outside facts first: the click the order came from, if any, must be one we recorded
    // (the funnel counts the order for the click's video).
    if let Some(click_id) = body.click_id {
        let click: Click = app.load(&click_id.to_string()).await?;
        if click.recorded().is_none() {
            return Err(ApiError::invalid("unknown_click", format!("no click {click_id} was recorded")));
        }
    }
    // Each line's product, with its price and name now.
    let mut lines = Vec::with_capacity(body.lines.len());
    for line in &body.lines {
        let article = Article::parse(&line.article).map_err(|e| ApiError::invalid("invalid_article", e))?;
        let product: Product = app.load(article.as_str()).await?;
        let (Some(price), Some(name), true) = (product.price(), product.name(), product.is_active()) else {
            return Err(ApiError::invalid("not_for_sale", format!("{article} is not for sale")));
        };
        lines.push(OrderLine { article, name: name.to_owned(), quantity: line.quantity, unit_price: price });
    }
    let now = Utc::now();
    let place = PlaceOrder {
        order_id,
        user_id,
        lines: lines.clone(),
        click_id: body.click_id,
        contact,
        shipping_address,
        placed_at: now,
    };
    // Check the order before holding stock for it, against what its id holds already (a
    // retry goes on; an attempt whose reservations expired is not placed any more).
    let existing: Order = app.load(&order_id.to_string()).await?;
    let checked = existing.decide(OrderCommand::PlaceOrder(place.clone()));
    checked.map_err(|e| order_error(CommandError::Refused(e)))?;
    let ttl = chrono::TimeDelta::from_std(app.reservation_ttl).map_err(ApiError::internal)?;
    let expires_at = Some(now + ttl);
    let mut reserved: Vec<&Article> = Vec::new();
    for line in &lines {
        let reserve = ProductCommand::ReserveStock { order_id, quantity: line.quantity, expires_at };
        if let Err(e) = execute(&app.commands.products, line.article.as_str(), reserve, metadata.clone()).await {
            release(app, order_id, &reserved, &metadata).await;
            return Err(product_error(e));
        }
        reserved.push(&line.article);
    }
    if let Err(e) =
        execute(&app.commands.orders, &order_id.to_string(), OrderCommand::PlaceOrder(place), metadata.clone()).await
    {
        release(app, order_id, &reserved, &metadata).await;
        return Err(order_error(e));
    }
    let order: Order = app.load(&order_id.to_string()).await?;
    view(app, &order).await?.ok_or_else(|| ApiError::internal(anyhow::anyhow!("the order vanished")))
}

/// Gives back what was reserved for an order that is not placed.
async fn release(app: &App, order_id: Uuid, articles: &[&Article], metadata: &EventMetadata) {
    for article in articles {
        let command = ProductCommand::ReleaseStock { order_id };
        if let Err(e) = execute(&app.commands.products, article.as_str(), command, metadata.clone()).await {
            tracing::error!(%order_id, %article, error = %e, "a reservation could not be released");
        }
    }
}

/// An order as the aggregate has it (the view may trail a placement by moments), its
/// contact and address opened (`null` once erased).
async fn view(app: &App, order: &Order) -> Result<Option<OrderView>, ApiError> {
    let Some(placed) = order.placed() else { return Ok(None) };
    let contact = app.keys.reveal(&placed.contact).await.map_err(key_error)?;
    let shipping_address = app.keys.reveal(&placed.shipping_address).await.map_err(key_error)?;
    let status = order.status().unwrap_or(OrderStatus::AwaitingPayment);
    let (surplus_captured_minor, surplus_refunded_minor) = order.surplus_minor();
    let lines = placed
        .lines
        .iter()
        .map(|l| {
            serde_json::json!({"article": l.article, "name": l.name, "quantity": l.quantity,
                "unit_price_minor": l.unit_price.minor, "line_total_minor": l.unit_price.minor.saturating_mul(i64::from(l.quantity))})
        })
        .collect();
    Ok(Some(OrderView {
        order_id: placed.order_id,
        user_id: placed.user_id,
        status: status.as_str().to_owned(),
        lines: serde_json::Value::Array(lines),
        total_minor: placed.total.minor,
        currency: placed.total.currency.to_string(),
        click_id: placed.click_id,
        contact: serde_json::to_value(&contact).unwrap_or_default(),
        shipping_address: serde_json::to_value(&shipping_address).unwrap_or_default(),
        payment_id: order.paid_by(),
        refunded_minor: None,
        surplus_captured_minor,
        surplus_refunded_minor,
        placed_at: placed.placed_at,
        updated_at: placed.placed_at,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// At most this many (1–1000, default 100).
    pub limit: Option<i64>,
    /// Only orders in this state: `awaiting_payment`, `paid`, `shipped`, `completed`,
    /// `cancelled` or `refunded`.
    pub status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderList {
    pub items: Vec<OrderView>,
}

/// Orders, newest first: a viewer's own, or every order for staff; all, or those in one
/// state.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", params(OrderQuery),
    responses((status = 200, body = OrderList), (status = 401, body = ErrorBody)))]
async fn list_orders(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<OrderQuery>,
) -> Result<axum::Json<OrderList>, ApiError> {
    let user_id = caller.user()?;
    let only = (!caller.is_staff()).then_some(user_id);
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    if let Some(status) = status.filter(|s| !orders::ORDER_STATUSES.contains(s)) {
        return Err(ApiError::invalid(
            "invalid_status",
            format!("status {status:?} is none of {}", orders::ORDER_STATUSES.join(", ")),
        ));
    }
    let items = orders::list_in(&app.pool, only, status, q.limit.unwrap_or(100).clamp(1, 1000))
        .await
        .map_err(ApiError::unavailable)?;
    Ok(axum::Json(OrderList { items }))
}

/// The order, if the caller may see it (its buyer, or staff).
pub async fn visible_order(app: &App, caller: &Caller, order_id: Uuid) -> Result<OrderView, ApiError> {
    let user_id = caller.user()?;
    let mut found = None;
    // A just-placed order may not be in the view yet.
    for _ in 0..50 {
        found = orders::get(&app.pool, order_id).await.map_err(ApiError::unavailable)?;
        if found.is_some() {
            break;
        }
        let exists: Order = app.load(&order_id.to_string()).await?;
        if exists.placed().is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    match found {
        Some(order) if order.user_id == user_id || caller.is_staff() => Ok(order),
        _ => Err(ApiError::NotFound(format!("no order {order_id}"))),
    }
}

/// One order (its buyer, or staff).
#[utoipa::path(get, path = "/api/v1/orders/{order_id}", tag = "orders",
    params(("order_id" = Uuid, Path, description = "The order")),
    responses((status = 200, body = OrderView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_order(
    State(app): State<AppState>,
    caller: Caller,
    Path(order_id): Path<Uuid>,
) -> Result<axum::Json<OrderView>, ApiError> {
    Ok(axum::Json(visible_order(&app, &caller, order_id).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct Reason {
    pub reason: Option<String>,
    /// For shipping: the parcel's tracking number.
    pub tracking: Option<String>,
}

async fn change(
    app: &App,
    metadata: EventMetadata,
    order_id: Uuid,
    command: OrderCommand,
) -> Result<axum::Json<OrderView>, ApiError> {
    execute(&app.commands.orders, &order_id.to_string(), command, metadata).await.map_err(order_error)?;
    let order: Order = app.load(&order_id.to_string()).await?;
    Ok(axum::Json(view(app, &order).await?.ok_or_else(|| ApiError::NotFound(format!("no order {order_id}")))?))
}

/// Cancels an unpaid order (its buyer, or a merchant or an admin; an auditor only reads);
/// its stock is given back, and its payment under way is cancelled.
#[utoipa::path(post, path = "/api/v1/orders/{order_id}/cancel", tag = "orders",
    params(("order_id" = Uuid, Path, description = "The order")), request_body = Reason,
    responses((status = 200, body = OrderView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn cancel_order(
    State(app): State<AppState>,
    caller: Caller,
    request: RequestMetadata,
    Path(order_id): Path<Uuid>,
    Json(body): Json<Reason>,
) -> Result<axum::Json<OrderView>, ApiError> {
    // Decided on the order itself, not on the view (which may trail a placement).
    let user_id = caller.user()?;
    let before: Order = app.load(&order_id.to_string()).await?;
    let buyer = before.placed().map(|p| p.user_id).filter(|buyer| *buyer == user_id || caller.is_staff());
    let buyer = buyer.ok_or_else(|| ApiError::NotFound(format!("no order {order_id}")))?;
    if buyer != user_id && !caller.has_any(&[Role::Merchant]) {
        return Err(ApiError::Forbidden("only its buyer, a merchant or an admin cancels an order".into()));
    }
    let reason = body.reason.unwrap_or_else(|| "cancelled".into());
    let metadata = request.by(caller.actor());
    let cancelled = change(&app, metadata.clone(), order_id, OrderCommand::Cancel { reason, at: Utc::now() }).await?;
    crate::routes::payments::cancel_open_payments(&app, order_id, before.payment_in_progress(), &metadata).await?;
    Ok(cancelled)
}

/// Ships a paid order (merchants).
#[utoipa::path(post, path = "/api/v1/orders/{order_id}/ship", tag = "orders",
    params(("order_id" = Uuid, Path, description = "The order")), request_body = Reason,
    responses((status = 200, body = OrderView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn ship_order(
    State(app): State<AppState>,
    caller: Caller,
    request: RequestMetadata,
    Path(order_id): Path<Uuid>,
    Json(body): Json<Reason>,
) -> Result<axum::Json<OrderView>, ApiError> {
    caller.require(&[Role::Merchant])?;
    change(&app, request.by(caller.actor()), order_id, OrderCommand::Ship { tracking: body.tracking, at: Utc::now() })
        .await
}

/// Marks a shipped order delivered (merchants).
#[utoipa::path(post, path = "/api/v1/orders/{order_id}/complete", tag = "orders",
    params(("order_id" = Uuid, Path, description = "The order")),
    responses((status = 200, body = OrderView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn complete_order(
    State(app): State<AppState>,
    caller: Caller,
    request: RequestMetadata,
    Path(order_id): Path<Uuid>,
) -> Result<axum::Json<OrderView>, ApiError> {
    caller.require(&[Role::Merchant])?;
    change(&app, request.by(caller.actor()), order_id, OrderCommand::Complete { at: Utc::now() }).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentList {
    pub items: Vec<PaymentView>,
}

/// The order's payment attempts (its buyer, or staff).
#[utoipa::path(get, path = "/api/v1/orders/{order_id}/payments", tag = "payments",
    params(("order_id" = Uuid, Path, description = "The order")),
    responses((status = 200, body = PaymentList), (status = 404, body = ErrorBody)))]
async fn list_payments(
    State(app): State<AppState>,
    caller: Caller,
    Path(order_id): Path<Uuid>,
) -> Result<axum::Json<PaymentList>, ApiError> {
    visible_order(&app, &caller, order_id).await?;
    let items = orders::payments_of(&app.pool, &[order_id]).await.map_err(ApiError::unavailable)?;
    Ok(axum::Json(PaymentList { items }))
}
