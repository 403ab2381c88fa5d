//! Integration tests of the inventory service, against a real `redis-server` and a real database
//! (a SQLite file, or a fresh PostgreSQL database when `TEST_DATABASE_URL` is set). One test
//! binary per crate; `support::spawn_app` runs the library's `run` in process, like `main` does;
//! `oversell` and `keys` run the real binary, and `logout` runs the user service next to it.

mod auth;
mod keys;
mod listing;
mod logout;
mod oversell;
mod products;
mod stock;
mod support;
mod worker;

use support::{InventoryApp, spawn_app};

#[tokio::test]
async fn serves_ops_routes_then_stops_cleanly_when_cancelled() {
    let app = spawn_app().await;

    app.assert_ops_routes_then_clean_stop(inventory::SERVICE, env!("CARGO_PKG_VERSION"))
        .await;
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_services_counters() {
    let app = spawn_app().await;
    app.create_product("Gauge", 100, 1).await;
    app.get("/products").await;
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
    assert!(
        text.contains("# TYPE inventory_product_cache_misses_total counter"),
        "{text}"
    );
}

#[tokio::test]
async fn readyz_stays_ready_but_degraded_while_redis_is_down() {
    let mut app = spawn_app().await;
    app.redis_server.stop();
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["degraded"], true);
    assert_eq!(body["database"], true);
    // Every problem of the service has the common base.
    let unknown = app
        .get(&format!("/products/{}", uuid::Uuid::now_v7()))
        .await;
    let other = support::assert_problem(unknown, 404).await;
    assert!(
        other["type"]
            .as_str()
            .unwrap()
            .starts_with(common::problem::PROBLEM_BASE)
    );
}

#[tokio::test]
async fn serves_its_openapi_document_and_vendored_swagger_ui() {
    let app = spawn_app().await;
    let doc = app
        .assert_openapi(&[
            "/products",
            "/products/{id}",
            "/products/{id}/stock",
            "/products/{id}/movements",
        ])
        .await;
    assert!(doc["components"]["schemas"]["Product"].is_object());
}
