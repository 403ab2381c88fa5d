//! The request id header's name: below both the layers that set it (`super`) and the request
//! span that records it (`super::request_span`).

use axum::http::HeaderName;

/// The request id header, accepted from the client or generated.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
