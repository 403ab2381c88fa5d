//! `/wallet` and `/wallet/deposit`: the caller's own wallet (404 until `user-registered` has
//! opened it) and deposits into it, each bounded and recorded in the deposit ledger. A deposit is
//! one single-statement credit plus its ledger row, in one transaction; `/wallet/deposits` lists
//! the ledger a page at a time.

use axum::{
    Json, Router,
    extract::{State, rejection::JsonRejection},
    http::StatusCode,
    routing::{get, post},
};
use common::{
    auth::AuthUser,
    http::pagination::{Page, PageQuery, Paged},
    problem::ApiError,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use crate::{
    entity::{deposit, wallet},
    ledger,
};

/// Smallest deposit, in cents.
pub const MIN_DEPOSIT_CENTS: i64 = 1;
/// Largest single deposit, in cents (10,000.00).
pub const MAX_DEPOSIT_CENTS: i64 = 1_000_000;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/wallet", get(show))
        .route("/wallet/deposit", post(deposit))
        .route("/wallet/deposits", get(deposits))
}

/// `POST /wallet/deposit`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDeposit {
    /// Cents to add, 1 to 1,000,000.
    pub amount_cents: i64,
}

/// A deposit and the wallet after it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DepositReceipt {
    pub deposit: deposit::Model,
    pub wallet: wallet::Model,
}

fn not_open() -> ApiError {
    ApiError::NotFound("your wallet is not open yet".into())
}

/// Your wallet.
#[utoipa::path(get, path = "/wallet", tag = "wallet", security(("bearer" = [])),
    responses((status = 200, body = wallet::Model), (status = 401, description = "no valid access token"),
              (status = 404, description = "the wallet is not open yet")))]
pub(crate) async fn show(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<Json<wallet::Model>, ApiError> {
    let wallet = ledger::wallet(&state.db, claims.sub)
        .await?
        .ok_or_else(not_open)?;
    Ok(Json(wallet))
}

/// Adds money to your wallet.
#[utoipa::path(post, path = "/wallet/deposit", tag = "wallet", request_body = NewDeposit,
    security(("bearer" = [])),
    responses((status = 201, body = DepositReceipt), (status = 400, description = "malformed body"),
              (status = 401, description = "no valid access token"),
              (status = 404, description = "the wallet is not open yet"),
              (status = 422, description = "amount out of bounds")))]
pub(crate) async fn deposit(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    body: Result<Json<NewDeposit>, JsonRejection>,
) -> Result<(StatusCode, Json<DepositReceipt>), ApiError> {
    let Json(body) = body?;
    if !(MIN_DEPOSIT_CENTS..=MAX_DEPOSIT_CENTS).contains(&body.amount_cents) {
        return Err(ApiError::validation(format!(
            "`amount_cents` must be between {MIN_DEPOSIT_CENTS} and {MAX_DEPOSIT_CENTS}"
        )));
    }
    let txn = common::db::begin(&state.db).await?;
    let Some(deposit) = ledger::deposit(&txn, claims.sub, body.amount_cents).await? else {
        return Err(not_open());
    };
    let wallet = ledger::wallet(&txn, claims.sub)
        .await?
        .ok_or_else(not_open)?;
    txn.commit().await?;
    metrics::counter!("payment_deposits_total").increment(1);
    tracing::info!(
        user.id = %claims.sub,
        amount_cents = body.amount_cents,
        balance_cents = wallet.balance_cents,
        "deposit"
    );
    Ok((
        StatusCode::CREATED,
        Json(DepositReceipt { deposit, wallet }),
    ))
}

/// Your deposits, newest first.
#[utoipa::path(get, path = "/wallet/deposits", tag = "wallet", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Paged<deposit::Model>), (status = 401, description = "no valid access token"),
              (status = 400, description = "the query string does not parse"),
              (status = 404, description = "the wallet is not open yet"),
              (status = 422, description = "page or per_page out of range")))]
pub(crate) async fn deposits(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    page: Page,
) -> Result<Json<Paged<deposit::Model>>, ApiError> {
    ledger::wallet(&state.db, claims.sub)
        .await?
        .ok_or_else(not_open)?;
    let select = deposit::Entity::find()
        .filter(deposit::Column::UserId.eq(claims.sub))
        .order_by_desc(deposit::Column::Id);
    Ok(Json(page.fetch(select, &state.db).await?))
}
