//! The OpenAPI document (`/openapi.json`) and Swagger UI (`/docs`), whose assets are compiled in
//! (`utoipa-swagger-ui`'s `vendored` feature): nothing is fetched at build or run time.

use axum::Router;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_swagger_ui::SwaggerUi;

use super::{auth, password_reset, users};

#[derive(OpenApi)]
#[openapi(
    info(title = "user", description = "Accounts, log-in and JWTs of the mesh."),
    paths(
        auth::register, auth::login, auth::refresh, auth::logout, auth::jwks,
        users::me, users::list, users::set_role,
        password_reset::request_reset, password_reset::confirm_reset,
    ),
    modifiers(&BearerAuth),
    tags((name = "auth"), (name = "users"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// `/openapi.json` and `/docs`.
pub fn router() -> Router {
    SwaggerUi::new("/docs")
        .url("/openapi.json", ApiDoc::openapi())
        .into()
}
