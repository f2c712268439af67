//! Payments: starting one for an order, the extra step, refunds, and the providers'
//! webhooks.
//!
//! The provider's direct answers and its webhooks report the same facts under the same
//! provider event ids; the payment aggregate applies each once and only moves forward, so
//! it does not matter which arrives first, or twice. A payment that succeeds marks its
//! order paid (through the payments process manager).
//!
//! Money moves once: a payment attempt first claims its order (`StartPayment` on the
//! order aggregate), before the provider is asked for anything; a concurrent attempt is
//! refused there with `409 payment_in_progress`. The claim ends when the attempt fails or
//! is cancelled (here at once, and durably through the follow-ups for what webhooks
//! report), or when the order is paid. Whatever is captured anyway beyond the order's
//! total is refunded by the follow-ups.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use framecart_commands::CommandError;
use framecart_commands::execute::execute;
use framecart_commands::payments::{GatewayError, GatewayEvent, PaymentGateway, WebhookError};
use framecart_domain::EventMetadata;
use framecart_domain::money::Money;
use framecart_domain::order::{Order, OrderCommand};
use framecart_domain::payment::{CreatePayment, Payment, PaymentCommand, PaymentError, PaymentStatus};
use framecart_domain::user::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::order_error;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path, RawBody, RequestMetadata};
use crate::state::{App, AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_payment))
        .routes(routes!(confirm_payment))
        .routes(routes!(refund_order))
        .routes(routes!(webhook))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PaymentRequest {
    /// The provider: `fake`.
    pub provider: String,
    #[schema(example = "4242424242424242")]
    pub card_number: String,
}

/// Where a payment stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentState {
    pub id: Uuid,
    pub order_id: Uuid,
    /// A PaymentIntent status.
    pub status: String,
    pub amount_minor: i64,
    pub currency: String,
    /// Why the last attempt failed (`card_declined`, `insufficient_funds`, …).
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    /// `confirm` when the customer must complete an extra step
    /// (`POST /api/v1/payments/{id}/confirm`).
    pub next_action: Option<String>,
}

fn gateway(app: &App, name: &str) -> Result<Arc<dyn PaymentGateway>, ApiError> {
    app.gateways
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::invalid("unknown_provider", format!("no payment provider {name:?}")))
}

fn gateway_error(e: GatewayError) -> ApiError {
    match e {
        GatewayError::Unavailable(_) => ApiError::unavailable(e),
        GatewayError::Refused(m) => ApiError::Conflict { code: "payment_refused", message: m },
        GatewayError::UnknownIntent(m) => ApiError::NotFound(format!("the provider knows no payment {m}")),
    }
}

fn payment_error(e: CommandError<PaymentError>) -> ApiError {
    match e {
        CommandError::Refused(PaymentError::NotFound) => ApiError::NotFound("no such payment".into()),
        CommandError::Refused(e @ PaymentError::IntentMismatch { .. }) => ApiError::bad_request("intent_mismatch", e),
        CommandError::Refused(e) => ApiError::Conflict { code: "payment_state", message: e.to_string() },
        other => ApiError::unavailable(anyhow::anyhow!(other.to_string())),
    }
}

/// Records what the provider reported.
async fn report(app: &App, event: &GatewayEvent, metadata: EventMetadata) -> Result<(), ApiError> {
    let command = PaymentCommand::Report(event.report());
    execute(&app.commands.payments, &event.payment_id.to_string(), command, metadata).await.map_err(payment_error)
}

async fn state(app: &App, payment_id: Uuid, failure: Option<(&str, &str)>) -> Result<PaymentState, ApiError> {
    let payment: Payment = app.load(&payment_id.to_string()).await?;
    state_of(&payment, payment_id, failure)
}

fn state_of(payment: &Payment, payment_id: Uuid, failure: Option<(&str, &str)>) -> Result<PaymentState, ApiError> {
    let created = payment.created().ok_or_else(|| ApiError::NotFound(format!("no payment {payment_id}")))?;
    let status = payment.status().unwrap_or(PaymentStatus::RequiresPaymentMethod);
    Ok(PaymentState {
        id: payment_id,
        order_id: created.order_id,
        status: status.as_str().to_owned(),
        amount_minor: created.amount.minor,
        currency: created.amount.currency.to_string(),
        failure_code: failure.map(|f| f.0.to_owned()),
        failure_message: failure.map(|f| f.1.to_owned()),
        next_action: (status == PaymentStatus::RequiresAction).then(|| "confirm".to_owned()),
    })
}

/// Ends a payment attempt's claim on its order, so that another may start.
async fn end_payment(
    app: &App,
    order_id: Uuid,
    payment_id: Uuid,
    reason: &str,
    metadata: &EventMetadata,
) -> Result<(), ApiError> {
    let end = OrderCommand::EndPayment { payment_id, reason: reason.to_owned(), at: Utc::now() };
    execute(&app.commands.orders, &order_id.to_string(), end, metadata.clone()).await.map_err(order_error)
}

/// Captures an authorized payment and returns its state, with the failure if any. An
/// attempt that failed or was cancelled ends its claim on the order.
async fn settle(
    app: &App,
    gateway: &dyn PaymentGateway,
    intent: &str,
    mut last: GatewayEvent,
    metadata: &EventMetadata,
) -> Result<PaymentState, ApiError> {
    use framecart_commands::payments::GatewayOutcome;
    if last.outcome == GatewayOutcome::Status(PaymentStatus::RequiresCapture) {
        last = gateway.capture(intent).await.map_err(gateway_error)?;
        report(app, &last, metadata.clone()).await?;
    }
    let failure = match &last.outcome {
        GatewayOutcome::Failed { code, message } => Some((code.clone(), message.clone())),
        GatewayOutcome::Status(_) => None,
    };
    let payment: Payment = app.load(&last.payment_id.to_string()).await?;
    if let (Some(ended @ ("failed" | "canceled")), Some(created)) = (payment.final_state(), payment.created()) {
        end_payment(app, created.order_id, last.payment_id, ended, metadata).await?;
    }
    state_of(&payment, last.payment_id, failure.as_ref().map(|(c, m)| (c.as_str(), m.as_str())))
}

/// Pays an order awaiting payment (its buyer). A declined or failed card leaves the order
/// awaiting payment; pay again with another.
#[utoipa::path(post, path = "/api/v1/orders/{order_id}/payments", tag = "payments",
    params(("order_id" = Uuid, Path, description = "The order")), request_body = PaymentRequest,
    responses((status = 201, body = PaymentState), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The order is not awaiting payment (`order_state`), or another payment of it is under way (`payment_in_progress`)", body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn start_payment(
    State(app): State<AppState>,
    request: RequestMetadata,
    caller: Caller,
    Path(order_id): Path<Uuid>,
    Json(body): Json<PaymentRequest>,
) -> Result<(StatusCode, axum::Json<PaymentState>), ApiError> {
    // Decided on the order itself, not on the view (which may trail a placement).
    let user_id = caller.user()?;
    let order: Order = app.load(&order_id.to_string()).await?;
    let placed = order.placed().filter(|p| p.user_id == user_id || caller.is_staff());
    let placed = placed.ok_or_else(|| ApiError::NotFound(format!("no order {order_id}")))?;
    if placed.user_id != user_id && !caller.has_any(&[Role::Admin]) {
        return Err(ApiError::Forbidden("only the buyer pays an order".into()));
    }
    let gateway = gateway(&app, &body.provider)?;
    let metadata = request.by(caller.actor());
    let payment_id = Uuid::now_v7();
    // The claim comes first: of concurrent attempts, the order lets one through.
    let claim = OrderCommand::StartPayment { payment_id, at: Utc::now() };
    execute(&app.commands.orders, &order_id.to_string(), claim, metadata.clone()).await.map_err(order_error)?;
    let attempt = async {
        let intent = gateway.initiate(payment_id, placed.total).await.map_err(gateway_error)?;
        let create = CreatePayment {
            payment_id,
            order_id,
            user_id: placed.user_id,
            provider: gateway.name().to_owned(),
            intent_id: intent.clone(),
            amount: placed.total,
            created_at: Utc::now(),
        };
        execute(&app.commands.payments, &payment_id.to_string(), PaymentCommand::Create(create), metadata.clone())
            .await
            .map_err(payment_error)?;
        let authorized = gateway.authorize(&intent, &body.card_number).await.map_err(gateway_error)?;
        report(&app, &authorized, metadata.clone()).await?;
        settle(&app, gateway.as_ref(), &intent, authorized, &metadata).await
    };
    match attempt.await {
        Ok(state) => Ok((StatusCode::CREATED, axum::Json(state))),
        Err(e) => {
            // The attempt stopped midway: let the order be paid another way. Should the
            // provider capture it all the same, the capture is a surplus and is refunded.
            if let Err(end) = end_payment(&app, order_id, payment_id, "abandoned", &metadata).await {
                tracing::warn!(%order_id, %payment_id, error = %end, "an abandoned payment still holds its order");
            }
            Err(e)
        }
    }
}

/// Cancels the payments of an order that are still under way (waiting for an extra step,
/// or authorized and not captured), so that nothing is charged for a cancelled order:
/// `in_progress`, the attempt that held the order as the aggregate says, and any the
/// payments view shows open. A payment the provider will not cancel any more is logged:
/// should it be captured all the same, the capture is a surplus and is refunded.
pub async fn cancel_open_payments(
    app: &App,
    order_id: Uuid,
    in_progress: Option<Uuid>,
    metadata: &EventMetadata,
) -> Result<(), ApiError> {
    let mut open: Vec<(String, String)> = sqlx::query_as(
        "SELECT provider, intent_id FROM payments_view
         WHERE order_id = $1 AND status IN ('requires_confirmation', 'requires_action', 'processing', 'requires_capture')",
    )
    .bind(order_id)
    .fetch_all(&app.pool)
    .await
    .map_err(ApiError::unavailable)?;
    if let Some(payment_id) = in_progress {
        let payment: Payment = app.load(&payment_id.to_string()).await?;
        if let (Some(created), None) = (payment.created(), payment.final_state()) {
            let intent = (created.provider.clone(), created.intent_id.clone());
            if !open.contains(&intent) {
                open.push(intent);
            }
        }
    }
    for (provider, intent) in open {
        match gateway(app, &provider)?.cancel(&intent).await {
            Ok(event) => report(app, &event, metadata.clone()).await?,
            Err(e) => {
                tracing::warn!(%order_id, %intent, error = %e, "a payment of a cancelled order was not cancelled")
            }
        }
    }
    Ok(())
}

/// Completes the extra step a payment asked for (its buyer), then captures it.
#[utoipa::path(post, path = "/api/v1/payments/{payment_id}/confirm", tag = "payments",
    params(("payment_id" = Uuid, Path, description = "The payment")),
    responses((status = 200, body = PaymentState), (status = 404, body = ErrorBody),
        (status = 409, description = "The payment is no longer under way for its order, or the provider refused", body = ErrorBody)))]
async fn confirm_payment(
    State(app): State<AppState>,
    request: RequestMetadata,
    caller: Caller,
    Path(payment_id): Path<Uuid>,
) -> Result<axum::Json<PaymentState>, ApiError> {
    let user_id = caller.user()?;
    let payment: Payment = app.load(&payment_id.to_string()).await?;
    let created = payment.created().filter(|c| c.user_id == user_id || caller.has_any(&[Role::Admin]));
    let created = created.ok_or_else(|| ApiError::NotFound(format!("no payment {payment_id}")))?;
    let gateway = gateway(&app, &created.provider)?;
    // Only the attempt that holds its order goes on (not one taken over after it was left).
    let order: Order = app.load(&created.order_id.to_string()).await?;
    if order.payment_in_progress() != Some(payment_id) {
        return Err(ApiError::Conflict {
            code: "payment_state",
            message: "this payment is no longer under way for its order".into(),
        });
    }
    let metadata = request.by(caller.actor());
    let done = gateway.complete_action(&created.intent_id).await.map_err(gateway_error)?;
    report(&app, &done, metadata.clone()).await?;
    Ok(axum::Json(settle(&app, gateway.as_ref(), &created.intent_id, done, &metadata).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefundRequest {
    /// Minor units; the whole payment when absent.
    pub amount_minor: Option<i64>,
}

/// Refunds a paid order's payment (merchants); the order becomes refunded.
#[utoipa::path(post, path = "/api/v1/orders/{order_id}/refund", tag = "payments",
    params(("order_id" = Uuid, Path, description = "The order")), request_body = RefundRequest,
    responses((status = 200, body = PaymentState), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn refund_order(
    State(app): State<AppState>,
    request: RequestMetadata,
    caller: Caller,
    Path(order_id): Path<Uuid>,
    Json(body): Json<RefundRequest>,
) -> Result<axum::Json<PaymentState>, ApiError> {
    caller.require(&[Role::Merchant])?;
    // The payment that paid the order, not a surplus one (those are refunded already).
    let order: Order = app.load(&order_id.to_string()).await?;
    let no_payment =
        || ApiError::Conflict { code: "order_state", message: "the order has no payment to refund".into() };
    let payment_id = order.paid_by().ok_or_else(no_payment)?;
    let payment: Payment = app.load(&payment_id.to_string()).await?;
    let created = payment.created().filter(|_| !payment.is_refunded()).ok_or_else(no_payment)?;
    let amount = Money::new(body.amount_minor.unwrap_or(created.amount.minor), created.amount.currency);
    let key = format!("refund-{payment_id}-{}", amount.minor);
    gateway(&app, &created.provider)?.refund(&created.intent_id, amount, &key).await.map_err(gateway_error)?;
    let metadata = request.by(caller.actor());
    execute(
        &app.commands.payments,
        &payment_id.to_string(),
        PaymentCommand::Refund { amount, at: Utc::now() },
        metadata,
    )
    .await
    .map_err(payment_error)?;
    Ok(axum::Json(state(&app, payment_id, None).await?))
}

/// A provider's webhook: verified on its raw body, applied once.
#[utoipa::path(post, path = "/api/v1/payments/webhooks/{provider}", tag = "payments",
    params(("provider" = String, Path, description = "The provider: `fake`")),
    request_body(content = String, description = "The provider's signed event", content_type = "application/json"),
    responses((status = 200, description = "Applied, or kept as ignored when it contradicts a final state"),
        (status = 400, description = "Bad or missing signature, or an intent that is not the payment's (`intent_mismatch`)", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn webhook(
    State(app): State<AppState>,
    request: RequestMetadata,
    Path(provider): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<StatusCode, ApiError> {
    let gateway = app
        .gateways
        .get(provider.as_str())
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("no payment provider {provider:?}")))?;
    let signature = headers.get(framecart_commands::payments::fake::SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let event = gateway.verify_webhook(signature, &body, Utc::now()).map_err(|e| match e {
        WebhookError::BadSignature | WebhookError::Expired => ApiError::bad_request("invalid_signature", e),
        WebhookError::Malformed(_) => ApiError::bad_request("malformed_webhook", e),
    })?;
    let metadata = EventMetadata { causation_id: event.id.clone(), ..request.by(format!("provider:{provider}")) };
    report(&app, &event, metadata).await?;
    Ok(StatusCode::OK)
}
