//! HTTP errors as `application/problem+json` (RFC 9457) with a stable `type`, `title`, `status` and
//! `detail`. Every service returns [`ApiError`]; a 5xx is logged once here and its detail hidden.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::db::outage;

/// `Retry-After` (seconds) of a 503 `unavailable`: Redis or the database is away, and the
/// runtime's own waits (connection acquire, reconnect backoff) are of this order.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;

/// Base of the `type` URIs.
pub const PROBLEM_BASE: &str = "https://mesh.example/problems/";

/// An error answer of the API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400/422: the request is malformed or fails validation.
    #[error("{detail}")]
    Invalid {
        status: StatusCode,
        kind: &'static str,
        detail: String,
    },
    /// 401: no or bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such resource (or not yours).
    #[error("{0}")]
    NotFound(String),
    /// 409: conflicts with the current state (duplicate, wrong status).
    #[error("{0}")]
    Conflict(String),
    /// 408: the request did not arrive and complete within the server's time limit.
    #[error("{0}")]
    RequestTimeout(String),
    /// 429: slow down; `retry_after` in seconds.
    #[error("{detail}")]
    TooManyRequests { detail: String, retry_after: u64 },
    /// 503 with `Retry-After` (seconds): this service is at a capacity limit right now.
    #[error("{detail}")]
    Overloaded { detail: String, retry_after: u64 },
    /// 503 with `Retry-After` ([`UNAVAILABLE_RETRY_AFTER_SECS`]): a dependency (Redis, the
    /// database) is unavailable. The text is the cause, logged and never shown: the client gets
    /// a fixed detail. A database outage (`db::outage`) becomes this, also when it arrives as
    /// [`ApiError::Internal`].
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected failure; the detail is logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// 422 with a problem `type` suffix such as `validation`.
    pub fn validation(detail: impl Into<String>) -> Self {
        Self::Invalid {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            kind: "validation",
            detail: detail.into(),
        }
    }

    /// 400 for a body or query that cannot be parsed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::Invalid {
            status: StatusCode::BAD_REQUEST,
            kind: "bad-request",
            detail: detail.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::Invalid { status, kind, .. } => (*status, kind, "Invalid request"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::RequestTimeout(_) => (
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request timeout",
            ),
            Self::TooManyRequests { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                "Too many requests",
            ),
            Self::Overloaded { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "Service overloaded",
            ),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }
}

/// The body of a problem answer (`application/problem+json`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI under `https://mesh.example/problems/` naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let this = match self {
            // However a handler passed it on: the database being away is no bug of ours.
            Self::Internal(error) if outage::is_outage(&error) => {
                Self::Unavailable(format!("database: {error:#}"))
            }
            other => other,
        };
        let (status, kind, title) = this.parts();
        let detail = match &this {
            Self::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "request failed");
                "the server could not complete the request".to_owned()
            }
            // The cause (a Redis or database error text: addresses, key names) is for the log.
            Self::Unavailable(cause) => {
                tracing::warn!(cause, "dependency unavailable");
                "a service this one depends on is unavailable; try again shortly".to_owned()
            }
            other => other.to_string(),
        };
        let body = Problem {
            kind: format!("{PROBLEM_BASE}{kind}"),
            title,
            status: status.as_u16(),
            detail,
        };
        let mut response = (status, Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        let retry_after = match this {
            Self::TooManyRequests { retry_after, .. } | Self::Overloaded { retry_after, .. } => {
                Some(retry_after)
            }
            Self::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER_SECS),
            _ => None,
        };
        if let Some(retry_after) = retry_after
            && let Ok(v) = HeaderValue::from_str(&retry_after.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

/// A unique-constraint violation is a 409, an outage (`db::outage`) a 503; any other database
/// error is internal.
impl From<sea_orm::DbErr> for ApiError {
    fn from(error: sea_orm::DbErr) -> Self {
        if outage::is_outage_db(&error) {
            return Self::Unavailable(format!("database: {error}"));
        }
        match error.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(detail)) => {
                tracing::debug!(detail, "unique constraint violated");
                Self::Conflict("a resource with these values already exists".into())
            }
            _ => Self::Internal(error.into()),
        }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(error: redis::RedisError) -> Self {
        Self::Unavailable(format!("redis: {error}"))
    }
}

/// JSON bodies that fail to parse are 400/422 problems, not axum's plain-text rejections.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        Self::Invalid {
            status: rejection.status(),
            kind: "bad-request",
            detail: rejection.body_text(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Redis error's text (addresses, key names) is logged, never sent to the client.
    #[tokio::test]
    async fn an_unavailable_dependency_hides_its_error_text() {
        let cause = redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connect to 10.1.2.3:6379 refused",
        ));
        let response = ApiError::from(cause).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let detail = body["detail"].as_str().unwrap();
        assert!(
            !detail.contains("10.1.2.3") && !detail.contains("redis"),
            "{detail}"
        );
    }

    /// A database that is away is a 503 with `Retry-After`, however the handler passed the
    /// error on; any other database error stays a 500.
    #[tokio::test]
    async fn a_database_outage_is_a_503_with_retry_after() {
        let refused = || sea_orm::DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout);
        let as_anyhow = ApiError::Internal(anyhow::Error::from(refused()).context("listing"));
        for error in [ApiError::from(refused()), as_anyhow] {
            let response = error.into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                response.headers()[header::RETRY_AFTER],
                UNAVAILABLE_RETRY_AFTER_SECS.to_string().as_str()
            );
        }
        let other = ApiError::from(sea_orm::DbErr::RecordNotFound("x".into())).into_response();
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(other.headers().get(header::RETRY_AFTER).is_none());
    }
}
