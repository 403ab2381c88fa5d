//! The OpenAPI document (`/openapi.json`) and Swagger UI (`/docs`). The bearer scheme and the
//! problem+json error answers every operation shares come from `common::http::openapi`.

use axum::Router;
use common::http::openapi::{BearerAuth, ProblemResponses, docs_router};
use utoipa::OpenApi;

use super::shipments;

#[derive(OpenApi)]
#[openapi(
    info(title = "warehouse", description = "Shipments of the mesh."),
    paths(shipments::list, shipments::show, shipments::ship, shipments::fail),
    modifiers(&BearerAuth, &ProblemResponses),
    tags((name = "shipments"))
)]
pub struct ApiDoc;

/// `/openapi.json` and `/docs`.
pub fn router() -> Router {
    docs_router(ApiDoc::openapi())
}
