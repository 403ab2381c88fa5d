//! The OpenAPI document (`/openapi.json`) and Swagger UI (`/docs`). The bearer scheme and the
//! problem+json error answers every operation shares come from `common::http::openapi`.

use axum::Router;
use common::http::openapi::{BearerAuth, ProblemResponses, docs_router};
use utoipa::OpenApi;

use super::{auth, password_reset, users};

#[derive(OpenApi)]
#[openapi(
    info(title = "user", description = "Accounts, log-in and JWTs of the mesh."),
    paths(
        auth::register, auth::login, auth::refresh, auth::logout, auth::jwks,
        users::me, users::list, users::set_role,
        password_reset::request_reset, password_reset::confirm_reset, password_reset::confirm_page,
    ),
    modifiers(&BearerAuth, &ProblemResponses),
    tags((name = "auth"), (name = "users"))
)]
pub struct ApiDoc;

/// `/openapi.json` and `/docs`.
pub fn router() -> Router {
    docs_router(ApiDoc::openapi())
}
