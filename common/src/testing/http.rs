//! HTTP helpers of [`TestApp`], one naming for every service: `get`, `get_as(path, token)`,
//! `post(path, body)`, `send(method, path, token, body)` and `send_with_headers`; asserts of the ops
//! routes and the OpenAPI document every service serves, and [`assert_problem`] for the problem+json answers of every error.

use std::time::Duration;

use serde_json::Value;

use super::app::TestApp;

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        self.service.url(path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, None, None).await
    }

    /// A GET with a bearer token.
    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    /// A POST of a JSON body, without a token.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, None, Some(body.clone()))
            .await
    }

    /// Asserts what every service serves besides its own API — `/healthz`, `/readyz` and
    /// `/metrics` answer 200, and `/` names `service` at `version` — then that `run` returns `Ok`
    /// within 5 s of cancellation.
    pub async fn assert_ops_routes_then_clean_stop(self, service: &str, version: &str) {
        for path in ["/healthz", "/readyz", "/metrics"] {
            assert_eq!(self.get(path).await.status(), 200, "GET {path}");
        }
        let index: Value = self.get("/").await.json().await.expect("JSON body");
        assert_eq!(index["service"], service);
        assert_eq!(index["version"], version);

        // The client still holds a keep-alive connection: shutdown must not wait for it.
        let result = self.stop(Duration::from_secs(5)).await;
        assert!(result.is_ok(), "run returned {result:?}");
    }

    /// The service's OpenAPI document, after asserting that it documents every path of `paths`
    /// and that the vendored Swagger UI answers at `/docs/`.
    pub async fn assert_openapi(&self, paths: &[&str]) -> Value {
        let doc: Value = self.get("/openapi.json").await.json().await.expect("JSON");
        let documented = doc["paths"].as_object().expect("paths");
        for path in paths {
            assert!(documented.contains_key(*path), "{path} documented");
        }
        let docs = self.get("/docs/").await;
        assert_eq!(docs.status(), 200);
        assert!(docs.text().await.unwrap().contains("swagger"));
        doc
    }

    /// A request with an optional bearer token and JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        self.send_with_headers(method, path, token, body, &[]).await
    }

    /// [`send`](Self::send) with extra headers (`Idempotency-Key`, `X-Request-Id`, …).
    pub async fn send_with_headers(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.http.request(method.clone(), self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }
}

/// Asserts a problem+json answer with `status`; returns its body.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status of {}", response.url());
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem JSON");
    assert_eq!(body["status"], status);
    assert!(body["type"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(body["title"].is_string() && body["detail"].is_string());
    body
}
