//! Extractors that answer like the rest of the API, in problem+json, with one rule for the parts
//! of a URL (docs/architecture.md, "HTTP"):
//!
//! - a query string or path segment that cannot be parsed into its type (not a number, not a
//!   UUID, an unknown enum value, a number too large for its type) is a **400** `bad-request`;
//! - a value that parses but is out of range (`page=0`, `per_page` above the maximum) is a
//!   **422** `validation`, decided by the handler or by `super::pagination::Page`.
//!
//! [`Query`] and [`Path`] wrap axum's own and turn their rejections into 400 problems; [`Id`] is
//! the UUID of a `/{id}` route.

use axum::{
    extract::{FromRequestParts, rejection::PathRejection},
    http::request::Parts,
};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::problem::ApiError;

/// The query string deserialised into `T`; 400 when it does not parse.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection| {
                ApiError::bad_request(format!("bad query string: {}", rejection.body_text()))
            })
    }
}

/// The path parameters deserialised into `T`; 400 when they do not parse.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(path_rejection)
    }
}

/// The `{id}` of a route with one path parameter, a UUID: 400 when it is not one. A well-formed
/// id that names nothing is the handler's 404.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(path_rejection)?;
        Uuid::parse_str(&raw)
            .map(Self)
            .map_err(|_| ApiError::bad_request(format!("`{}` is not a UUID", bounded(&raw))))
    }
}

/// A path that does not deserialise is the client's 400; a route whose parameters do not match
/// its extractor is our bug.
fn path_rejection(rejection: PathRejection) -> ApiError {
    match rejection {
        PathRejection::FailedToDeserializePathParams(e) => {
            ApiError::bad_request(format!("bad path: {}", e.body_text()))
        }
        other => ApiError::Internal(anyhow::anyhow!("path extraction: {}", other.body_text())),
    }
}

/// At most 64 characters of client input echoed back in a problem's detail.
fn bounded(raw: &str) -> String {
    const MAX: usize = 64;
    match raw.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &raw[..end]),
        None => raw.to_owned(),
    }
}
