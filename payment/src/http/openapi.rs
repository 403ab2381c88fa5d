//! The OpenAPI document (`/openapi.json`) and Swagger UI (`/docs`), whose assets are compiled in
//! (`utoipa-swagger-ui`'s `vendored` feature): nothing is fetched at build or run time.

use axum::Router;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_swagger_ui::SwaggerUi;

use super::{payments, wallet};

#[derive(OpenApi)]
#[openapi(
    info(title = "payment", description = "Wallets, payments and refunds of the mesh."),
    paths(wallet::show, wallet::deposit, wallet::deposits, payments::list),
    modifiers(&BearerAuth),
    tags((name = "wallet"), (name = "payments"))
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
pub fn router() -> axum::Router {
    let router: Router = SwaggerUi::new("/docs")
        .url("/openapi.json", ApiDoc::openapi())
        .into();
    router
}
