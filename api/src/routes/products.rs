//! The catalogue: `/api/v1/products`.

use axum::extract::State;
use axum::http::StatusCode;
use framecart_commands::CommandError;
use framecart_commands::execute::execute;
use framecart_domain::money::{Currency, Money};
use framecart_domain::product::{Article, ChangeProduct, CreateProduct, ProductCommand, ProductError};
use framecart_domain::user::Role;
use framecart_projections::products::{self, ProductView};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path, Query, RequestMetadata};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_product, list_products)).routes(routes!(get_product, change_product))
}

pub fn article(raw: &str) -> Result<Article, ApiError> {
    Article::parse(raw).map_err(|e| ApiError::invalid("invalid_article", e))
}

fn currency(raw: &str) -> Result<Currency, ApiError> {
    Currency::parse(raw).map_err(|e| ApiError::invalid("invalid_currency", e))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewProduct {
    /// Unique article number: letters, digits, `-`, `_`.
    #[schema(example = "SKU-1")]
    pub article: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Price in minor units (1999 is 19.99).
    pub price_minor: i64,
    /// ISO 4217, e.g. `EUR`.
    pub currency: String,
    pub stock: u32,
    pub image_url: Option<String>,
}

/// Creates a product (201 with the product).
#[utoipa::path(
    post,
    path = "/api/v1/products",
    tag = "products",
    request_body = NewProduct,
    responses(
        (status = 201, body = ProductView),
        (status = 409, description = "The article number is taken", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
async fn create_product(
    State(app): State<AppState>,
    request: RequestMetadata,
    caller: Caller,
    Json(body): Json<NewProduct>,
) -> Result<(StatusCode, axum::Json<ProductView>), ApiError> {
    caller.require(&[Role::Merchant])?;
    let article = article(&body.article)?;
    let command = ProductCommand::CreateProduct(CreateProduct {
        article: article.clone(),
        name: body.name.trim().to_owned(),
        description: body.description,
        price: Money::new(body.price_minor, currency(&body.currency)?),
        stock: body.stock,
        image_url: body.image_url,
    });
    let metadata = request.by(caller.actor());
    execute(&app.commands.products, article.as_str(), command, metadata).await.map_err(product_error)?;
    Ok((StatusCode::CREATED, axum::Json(written(&app, &article).await?)))
}

/// The product as the view has it once it has applied the write just made (read your
/// writes): the write is committed, so this waits for the view, briefly.
async fn written(app: &AppState, article: &Article) -> Result<ProductView, ApiError> {
    let stored: Option<i64> =
        sqlx::query_scalar("SELECT max(sequence) FROM events WHERE aggregate_type = 'product' AND aggregate_id = $1")
            .bind(article.as_str())
            .fetch_one(&app.pool)
            .await
            .map_err(ApiError::unavailable)?;
    let stored = stored.unwrap_or(0);
    for _ in 0..250 {
        if let Some(product) = products::get(&app.pool, article.as_str()).await.map_err(ApiError::unavailable)?
            && product.version >= stored
        {
            return Ok(product);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Err(ApiError::unavailable(anyhow::anyhow!("the change is stored but the products view is behind")))
}

pub fn product_error(e: CommandError<ProductError>) -> ApiError {
    match e {
        CommandError::Refused(ProductError::AlreadyExists) => {
            ApiError::Conflict { code: "article_taken", message: ProductError::AlreadyExists.to_string() }
        }
        CommandError::Refused(ProductError::NotFound) => ApiError::NotFound(ProductError::NotFound.to_string()),
        CommandError::Refused(refused) => {
            let code = match refused {
                ProductError::InvalidName => "invalid_name",
                ProductError::TextTooLong { .. } => "text_too_long",
                ProductError::InvalidPrice { .. } => "invalid_price",
                ProductError::InvalidText => "invalid_text",
                ProductError::InvalidImageUrl => "invalid_image_url",
                ProductError::AlreadyExists
                | ProductError::NotFound
                | ProductError::InsufficientStock { .. }
                | ProductError::NotForSale
                | ProductError::InvalidQuantity => "invalid_product",
            };
            ApiError::invalid(code, refused)
        }
        CommandError::Conflict(_) => ApiError::Conflict { code: "concurrent_update", message: e.to_string() },
        CommandError::Store(_) => ApiError::unavailable(anyhow::anyhow!(e.to_string())),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductQuery {
    /// A fragment of the article number (or of the name), case-insensitive.
    pub q: Option<String>,
    /// Only active (`true`) or retired (`false`) products.
    pub active: Option<bool>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductList {
    pub items: Vec<ProductView>,
}

/// Searches the catalogue by a fragment of the article number.
#[utoipa::path(
    get,
    path = "/api/v1/products",
    tag = "products",
    params(ProductQuery),
    responses((status = 200, body = ProductList), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody))
)]
async fn list_products(
    State(app): State<AppState>,
    Query(q): Query<ProductQuery>,
) -> Result<axum::Json<ProductList>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("invalid_limit", "limit must be between 1 and 1000"));
    }
    let fragment = q.q.as_deref().map(str::trim).filter(|f| !f.is_empty());
    if fragment.is_some_and(|f| f.chars().count() > 64) {
        return Err(ApiError::invalid("invalid_query", "q is at most 64 characters"));
    }
    let items = products::search(&app.pool, fragment, q.active, limit).await.map_err(ApiError::unavailable)?;
    Ok(axum::Json(ProductList { items }))
}

/// One product.
#[utoipa::path(
    get,
    path = "/api/v1/products/{article}",
    tag = "products",
    params(("article" = String, Path, description = "The article number")),
    responses((status = 200, body = ProductView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody))
)]
async fn get_product(
    State(app): State<AppState>,
    Path(raw): Path<String>,
) -> Result<axum::Json<ProductView>, ApiError> {
    let article = article(&raw)?;
    products::get(&app.pool, article.as_str())
        .await
        .map_err(ApiError::unavailable)?
        .map(axum::Json)
        .ok_or_else(|| ApiError::NotFound(format!("no product {article}")))
}

/// Changes to a product; absent fields stay as they are, `"image_url": null` removes the
/// picture, `"active": false` retires it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProductChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price_minor: Option<i64>,
    /// Required with `price_minor`.
    pub currency: Option<String>,
    pub stock: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub image_url: Option<Option<String>>,
    pub active: Option<bool>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Changes a product; each change is its own event.
#[utoipa::path(
    patch,
    path = "/api/v1/products/{article}",
    tag = "products",
    params(("article" = String, Path, description = "The article number")),
    request_body = ProductChanges,
    responses((status = 200, body = ProductView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody))
)]
async fn change_product(
    State(app): State<AppState>,
    request: RequestMetadata,
    caller: Caller,
    Path(raw): Path<String>,
    Json(body): Json<ProductChanges>,
) -> Result<axum::Json<ProductView>, ApiError> {
    caller.require(&[Role::Merchant])?;
    let article = article(&raw)?;
    let price = match (body.price_minor, body.currency.as_deref()) {
        (Some(minor), Some(c)) => Some(Money::new(minor, currency(c)?)),
        (None, None) => None,
        _ => return Err(ApiError::invalid("incomplete_price", "send price_minor and currency together")),
    };
    let command = ProductCommand::ChangeProduct(ChangeProduct {
        name: body.name.map(|n| n.trim().to_owned()),
        description: body.description,
        price,
        stock: body.stock,
        image_url: body.image_url,
        active: body.active,
    });
    let metadata = request.by(caller.actor());
    execute(&app.commands.products, article.as_str(), command, metadata).await.map_err(product_error)?;
    Ok(axum::Json(written(&app, &article).await?))
}
