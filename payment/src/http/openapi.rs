//! The OpenAPI document (`/openapi.json`) and Swagger UI (`/docs`). The bearer scheme and the
//! problem+json error answers every operation shares come from `common::http::openapi`.

use axum::Router;
use common::http::openapi::{BearerAuth, ProblemResponses, docs_router};
use utoipa::OpenApi;

use super::{payments, wallet};

#[derive(OpenApi)]
#[openapi(
    info(title = "payment", description = "Wallets, payments and refunds of the mesh."),
    paths(wallet::show, wallet::deposit, wallet::deposits, payments::list),
    modifiers(&BearerAuth, &ProblemResponses),
    tags((name = "wallet"), (name = "payments"))
)]
pub struct ApiDoc;

/// `/openapi.json` and `/docs`.
pub fn router() -> Router {
    docs_router(ApiDoc::openapi())
}
