//! Integration tests of the payment service, against a real `redis-server` and a real database
//! (a SQLite file, or a fresh PostgreSQL database when `TEST_DATABASE_URL` is set). One test
//! binary per crate; `support::spawn_app` runs the library's `run_with` in process, like `main`
//! does.

mod crash;
mod http;
mod support;
mod worker;

use std::time::Duration;

use support::spawn_app;

#[tokio::test]
async fn serves_ops_routes_then_stops_cleanly_when_cancelled() {
    let app = spawn_app().await;

    app.assert_ops_routes(payment::SERVICE, env!("CARGO_PKG_VERSION"))
        .await;

    // The client still holds a keep-alive connection: shutdown must not wait for it.
    let result = app.stop(Duration::from_secs(5)).await;
    assert!(result.is_ok(), "run returned {result:?}");
}

#[tokio::test]
async fn serves_its_openapi_document_and_vendored_swagger_ui() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app.get("/openapi.json").await.json().await.expect("JSON");
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/wallet",
        "/wallet/deposit",
        "/wallet/deposits",
        "/payments",
    ] {
        assert!(paths.contains_key(path), "{path} documented");
    }
    for schema in [
        "Wallet",
        "Payment",
        "Deposit",
        "NewDeposit",
        "DepositReceipt",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} documented"
        );
    }
    let docs = app.get("/docs/").await;
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
}
