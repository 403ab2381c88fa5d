//! Integration tests of the store service, against a real `redis-server` and a real database
//! (a SQLite file, or a fresh PostgreSQL database when `TEST_DATABASE_URL` is set). One test
//! binary per crate; `support::spawn_app` runs the library's `run` in process, like `main` does.
//!
//! - [`orders`]: placing, validating, idempotent retries, listing and ownership;
//! - [`cancel`]: cancelling in every status;
//! - [`worker`]: the status machine under every arrival order, duplicates, the catalog
//!   projection.

mod cancel;
mod orders;
mod support;
mod worker;

use std::time::Duration;

use support::spawn_app;

#[tokio::test]
async fn serves_ops_routes_then_stops_cleanly_when_cancelled() {
    let app = spawn_app().await;

    app.assert_ops_routes_then_clean_stop(store::SERVICE, env!("CARGO_PKG_VERSION"))
        .await;
}

#[tokio::test]
async fn readyz_reports_redis_down_and_recovers_without_a_restart() {
    let mut app = spawn_app().await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    app.redis_server.stop();
    let down = app.get("/readyz").await;
    assert_eq!(down.status(), 503);
    assert_eq!(
        down.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let problem: serde_json::Value = down.json().await.expect("problem body");
    assert_eq!(problem["status"], 503);
    assert_eq!(problem["checks"]["redis"], false);
    assert_eq!(problem["checks"]["database"], true);
    // Alive all the same, and the service did not stop.
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert!(!app.service.task.is_finished());

    app.redis_server.start_again();
    common::testing::wait_until(Duration::from_secs(15), "readyz back to 200", || async {
        app.get("/readyz").await.status() == 200
    })
    .await;
    app.stop(Duration::from_secs(10)).await.expect("clean stop");
}

#[tokio::test]
async fn serves_its_openapi_document_and_vendored_swagger_ui() {
    let app = spawn_app().await;
    let doc = app
        .assert_openapi(&["/orders", "/orders/{id}", "/orders/{id}/cancel"])
        .await;
    assert!(doc["components"]["schemas"]["Order"].is_object());
}
