//! What every service's OpenAPI document shares, so that no document lies about the error answers
//! the shared plumbing gives: the `bearer` security scheme ([`BearerAuth`]), the
//! `application/problem+json` body of every error answer and the error statuses any operation
//! can give whatever its handler says ([`ProblemResponses`]), and the `/openapi.json` + Swagger
//! UI routes ([`docs_router`]).
//!
//! Schemathesis (`scripts/fuzz-api.sh`, `docs/fuzzing.md`) checks every answer against these
//! documents: an undeclared status or content type fails the fuzz run.

use axum::Router;
use utoipa::{
    Modify, PartialSchema, ToSchema,
    openapi::{
        Content, OpenApi, RefOr, Response,
        path::{Operation, ParameterIn},
        schema::Ref,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};
use utoipa_swagger_ui::SwaggerUi;

use crate::problem::Problem;

/// The content type of every error answer (`crate::problem::ApiError`).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Declares the `bearer` scheme (an EdDSA JWT in `Authorization: Bearer`) that operations name
/// with `security(("bearer" = []))`.
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

/// Documents the error answers of every operation:
///
/// - the statuses the shared plumbing gives on any operation of that shape, unless the operation
///   already declares them: 408 (the server's request time limit) everywhere; 400, 413, 415 and
///   422 where there is a JSON body (`ApiError: From<JsonRejection>`); 400 where there are query
///   parameters; 401 and 503 where a token is needed (the auth extractors refuse every token with
///   503 until the revocations have been read);
/// - an `application/problem+json` body ([`Problem`]) on every 4xx/5xx answer that declares none.
///
/// Apply it after the operations' own annotations (it only adds).
pub struct ProblemResponses;

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .schemas
            .insert(Problem::name().into_owned(), Problem::schema());
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                document_errors(operation);
            }
        }
    }
}

fn document_errors(operation: &mut Operation) {
    let has_body = operation.request_body.is_some();
    let has_query = operation
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p, RefOr::T(p) if matches!(p.parameter_in, ParameterIn::Query)));
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut add = |status: u16, description: &str, when: bool| {
        if when {
            operation
                .responses
                .responses
                .entry(status.to_string())
                .or_insert_with(|| RefOr::T(Response::new(description)));
        }
    };
    add(
        400,
        "the body or query string does not parse",
        has_body || has_query,
    );
    add(401, "no valid access token", secured);
    add(408, "the request did not complete in time", true);
    add(413, "the body is too large", has_body);
    add(415, "the body is not `application/json`", has_body);
    add(422, "the body does not match the schema", has_body);
    add(
        503,
        "a dependency is unavailable, or the revocations are not read yet",
        secured,
    );
    for (status, response) in &mut operation.responses.responses {
        if let RefOr::T(response) = response
            && status.starts_with(['4', '5'])
            && response.content.is_empty()
        {
            response.content.insert(
                PROBLEM_JSON.to_owned(),
                RefOr::T(Content::new(Some(Ref::from_schema_name(Problem::name())))),
            );
        }
    }
}

/// `/openapi.json` (the document) and `/docs` (Swagger UI, its assets compiled in through
/// `utoipa-swagger-ui`'s `vendored` feature: nothing is fetched at build or run time).
pub fn docs_router(document: OpenApi) -> Router {
    SwaggerUi::new("/docs")
        .url("/openapi.json", document)
        .into()
}
