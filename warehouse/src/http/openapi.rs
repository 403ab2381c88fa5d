//! The OpenAPI document of this service, served with Swagger UI by `common::http::openapi`.

use axum::Router;
use common::http::openapi::{BearerAuth, docs_router};
use utoipa::OpenApi;

use super::shipments;

#[derive(OpenApi)]
#[openapi(
    info(title = "warehouse", description = "Shipments of the mesh."),
    paths(shipments::list, shipments::show, shipments::ship, shipments::fail),
    modifiers(&BearerAuth),
    tags((name = "shipments"))
)]
pub struct ApiDoc;

/// `/openapi.json` and `/docs`.
pub fn router() -> Router {
    docs_router(ApiDoc::openapi())
}
