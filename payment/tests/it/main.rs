//! Integration tests of the payment service, against a real `redis-server` and a real database
//! (a SQLite file, or a fresh PostgreSQL database when `TEST_DATABASE_URL` is set). One test
//! binary per crate; `support::spawn_app` runs the library's `run_with` in process, like `main`
//! does.

mod crash;
mod http;
mod outage;
mod support;
mod worker;

use support::spawn_app;

#[tokio::test]
async fn serves_ops_routes_then_stops_cleanly_when_cancelled() {
    let app = spawn_app().await;

    app.assert_ops_routes_then_clean_stop(payment::SERVICE, env!("CARGO_PKG_VERSION"))
        .await;
}

#[tokio::test]
async fn serves_its_openapi_document_and_vendored_swagger_ui() {
    let app = spawn_app().await;
    let doc = app
        .assert_openapi(&[
            "/wallet",
            "/wallet/deposit",
            "/wallet/deposits",
            "/payments",
        ])
        .await;
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
}
