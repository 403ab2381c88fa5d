//! Integration tests of the store service, against a real `redis-server` and a real database
//! (a SQLite file, or a fresh PostgreSQL database when `TEST_DATABASE_URL` is set). One test
//! binary per crate; `support::spawn_app` runs the library's `run` in process, like `main` does.
//!
//! - [`orders`]: placing, validating, idempotent retries, listing and ownership;
//! - [`placing`]: orders placed at the same time (written in groups), and with the database's
//!   write lock held elsewhere;
//! - [`cancel`]: cancelling in every status;
//! - [`worker`]: the status machine under every arrival order, duplicates, the catalog
//!   projection.

mod cancel;
mod metrics;
mod orders;
mod placing;
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

/// Redis away degrades the service, it does not take it out: `/readyz` stays 200 (a balancer
/// keeps sending orders) and says `degraded`; the database away is not ready (503 problem).
#[tokio::test]
async fn readyz_reports_redis_down_as_degraded_and_recovers_without_a_restart() {
    let mut app = spawn_app().await;
    let up: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(up["degraded"], false);

    app.redis_server.stop();
    let down = app.get("/readyz").await;
    assert_eq!(down.status(), 200);
    let body: serde_json::Value = down.json().await.expect("JSON body");
    assert_eq!(body["redis"], false);
    assert_eq!(body["database"], true);
    assert_eq!(body["degraded"], true);
    // Alive all the same, and the service did not stop.
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert!(!app.service.task.is_finished());

    app.redis_server.start_again();
    common::testing::wait_until(Duration::from_secs(15), "readyz not degraded", || async {
        let body: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
        body["degraded"] == false
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
