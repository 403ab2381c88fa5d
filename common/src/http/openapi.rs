//! What every service's OpenAPI document shares: the [`BearerAuth`] security scheme its routes
//! name (`security(("bearer" = []))`), and [`docs_router`], which serves the document at
//! `/openapi.json` and Swagger UI at `/docs` (its assets compiled in by `utoipa-swagger-ui`'s
//! `vendored` feature: nothing is fetched at build or run time).

use axum::Router;
use utoipa::{
    Modify,
    openapi::{
        OpenApi,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};
use utoipa_swagger_ui::SwaggerUi;

/// Adds the `bearer` security scheme (an access token, a JWT): `modifiers(&BearerAuth)`.
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
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

/// `/openapi.json` (the service's `document`) and Swagger UI at `/docs`.
pub fn docs_router(document: OpenApi) -> Router {
    SwaggerUi::new("/docs")
        .url("/openapi.json", document)
        .into()
}
