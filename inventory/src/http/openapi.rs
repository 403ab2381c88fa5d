//! The OpenAPI document (`/openapi.json`) and Swagger UI (`/docs`). The bearer scheme and the
//! problem+json error answers every operation shares come from `common::http::openapi`.

use axum::Router;
use common::http::openapi::{BearerAuth, ProblemResponses, docs_router};
use utoipa::OpenApi;

use super::{products, stock};

#[derive(OpenApi)]
#[openapi(
    info(title = "inventory", description = "Products, stock and reservations of the mesh."),
    paths(
        products::list, products::show, products::create, products::update, products::remove,
        stock::adjust, stock::movements,
    ),
    modifiers(&BearerAuth, &ProblemResponses),
    tags((name = "products"), (name = "stock"))
)]
pub struct ApiDoc;

/// `/openapi.json` and `/docs`.
pub fn router() -> Router {
    docs_router(ApiDoc::openapi())
}
