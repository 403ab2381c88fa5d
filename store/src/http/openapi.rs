//! The OpenAPI document (`/openapi.json`) and Swagger UI (`/docs`). The bearer scheme and the
//! problem+json error answers every operation shares come from `common::http::openapi`.

use axum::Router;
use common::http::openapi::{BearerAuth, ProblemResponses, docs_router};
use utoipa::OpenApi;

use super::{cancel, orders};

#[derive(OpenApi)]
#[openapi(
    info(title = "store", description = "Orders, their status history and the catalog projection of the mesh."),
    paths(orders::create, orders::list, orders::show, cancel::cancel),
    modifiers(&BearerAuth, &ProblemResponses),
    tags((name = "orders"))
)]
pub struct ApiDoc;

/// `/openapi.json` and `/docs`.
pub fn router() -> Router {
    docs_router(ApiDoc::openapi())
}
