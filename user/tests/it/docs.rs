//! OpenAPI, Swagger UI, ops routes and a clean stop.

use std::time::Duration;

use serde_json::Value;

use crate::{UserApp, spawn_app};

#[tokio::test]
async fn serves_ops_routes_then_stops_cleanly_when_cancelled() {
    let app = spawn_app().await;

    app.assert_ops_routes_then_clean_stop(user::SERVICE, env!("CARGO_PKG_VERSION"))
        .await;
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_services_counters() {
    let app = spawn_app().await;
    app.register("metrics@example.com", crate::PASSWORD).await;
    crate::assert_problem(
        app.login("metrics@example.com", "wrong password").await,
        401,
    )
    .await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    for line in [
        "# TYPE user_registrations_total counter",
        "# TYPE user_logins_total counter",
        "user_logins_total{outcome=\"failure\"}",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
}

#[tokio::test]
async fn readyz_stays_ready_but_degraded_while_redis_is_down() {
    let mut app = spawn_app().await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.redis_server.stop();
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["redis"], false);
    assert_eq!(body["database"], true);
    assert_eq!(body["degraded"], true);
    app.redis_server.start_again();
    common::testing::wait_until(Duration::from_secs(20), "not degraded again", || async {
        let body: Value = app.get("/readyz").await.json().await.unwrap();
        body["degraded"] == false
    })
    .await;
}

#[tokio::test]
async fn openapi_document_lists_every_endpoint() {
    let app = spawn_app().await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/auth/register",
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/auth/password-reset",
        "/auth/password-reset/confirm",
        "/users/me",
        "/users",
        "/users/{id}",
        "/.well-known/jwks.json",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from /openapi.json"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // What Schemathesis found the document lying about (docs/fuzzing.md): the list's parameters
    // were required path parameters, the reset form's GET was missing, error bodies had no type.
    let users = &paths["/users"]["get"];
    let params = users["parameters"].as_array().unwrap();
    assert!(!params.is_empty() && params.iter().all(|p| p["in"] == "query"));
    assert!(paths["/auth/password-reset/confirm"]["get"].is_object());
    for status in ["400", "401", "403", "422"] {
        assert!(
            users["responses"][status]["content"]["application/problem+json"].is_object(),
            "GET /users {status} is not problem+json"
        );
    }
}

#[tokio::test]
async fn swagger_ui_is_served_from_vendored_assets() {
    let app = spawn_app().await;
    let page = app.get("/docs/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger"), "not the Swagger UI page");
    for asset in [
        "/docs/swagger-ui.css",
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-initializer.js",
    ] {
        let response = app.get(asset).await;
        assert_eq!(response.status(), 200, "{asset}");
        assert!(
            !response.bytes().await.unwrap().is_empty(),
            "{asset} is empty"
        );
    }
    let initializer = app
        .get("/docs/swagger-initializer.js")
        .await
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("/openapi.json"));
}

#[tokio::test]
async fn jwks_publishes_the_ed25519_key() {
    let app = spawn_app().await;
    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    // Other services verify with it: a token of the service checks out with the JWKS alone.
    let verifier = common::auth::JwtVerifier::from_jwks_json(&jwks.to_string()).unwrap();
    let session = app.session("jwks@example.com").await;
    let claims = verifier.verify(&session.access).unwrap();
    assert_eq!(claims.role, common::auth::Role::User);
}

#[tokio::test]
async fn another_service_verifies_through_the_jwks_url_and_follows_the_revocations() {
    let app = spawn_app().await;
    let auth = common::auth::AuthArgs {
        jwks_url: Some(app.url("/.well-known/jwks.json")),
        ..Default::default()
    };
    let elsewhere = tempfile::tempdir().unwrap();
    // What every other service's process runs: its own revocation set, following the stream.
    let revocations = common::auth::Revocations::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let follower = tokio::spawn(common::auth::revocations::follow(
        app.redis_server.target(),
        common::Keys::new(app.keys.prefix().to_owned()),
        revocations.clone(),
        stop.clone(),
    ));
    let verifier = common::auth::JwtVerifier::load(&auth, elsewhere.path(), revocations.clone())
        .await
        .unwrap();
    let session = app.session("uma@example.com").await;
    common::testing::wait_until(Duration::from_secs(10), "revocations read", || async {
        revocations.is_synced()
    })
    .await;
    assert!(verifier.authenticate(&session.access).await.is_ok());
    let response = app
        .http
        .post(app.url("/auth/logout"))
        .bearer_auth(&session.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    common::testing::wait_until(
        Duration::from_secs(10),
        "logout reached the follower",
        || async { verifier.authenticate(&session.access).await.is_err() },
    )
    .await;
    let error = verifier.authenticate(&session.access).await.unwrap_err();
    assert!(
        matches!(error, common::problem::ApiError::Unauthorized(_)),
        "{error:?}"
    );
    stop.cancel();
    follower.await.unwrap();
    // It did not fall back to generating a key pair of its own.
    assert!(!elsewhere.path().join("jwt-ed25519.key.pem").exists());
}
