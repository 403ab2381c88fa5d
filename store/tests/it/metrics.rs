//! `/metrics` of the real store binary (a process of its own, so its counters are this test's
//! alone): every stream the `store` group consumes has its lag, pending, oldest pending age and
//! dead-letter gauges, refreshed in the background (`MESH_METRICS_REFRESH`); a handled event and
//! a poison entry show in the worker's counters and histograms; requests are labelled by route
//! template.

use std::{process::Stdio, time::Duration};

use common::{
    Envelope, Keys,
    events::{Event, ProductChanged},
    runtime::Publisher,
    testing::{
        Exposition, Proc, RedisServer, TestDb, free_port, service_command, unique_prefix,
        wait_ready, wait_until,
    },
};
use uuid::Uuid;

#[tokio::test]
async fn the_store_binary_exports_group_gauges_worker_counters_and_route_templates() {
    let redis = RedisServer::start();
    let test_db = TestDb::new().await;
    let keys = Keys::new(unique_prefix());
    let data = tempfile::tempdir().expect("data dir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _store = Proc(
        service_command(
            env!("CARGO_BIN_EXE_store"),
            &redis.url(),
            &test_db.url,
            data.path(),
            keys.prefix(),
        )
        .env("MESH_LISTEN", format!("127.0.0.1:{port}"))
        .env("MESH_METRICS_REFRESH", "200ms")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the store binary"),
    );
    wait_ready(&reqwest::Client::new(), &base, Duration::from_secs(30)).await;

    let store = |stream: &'static str| [("stream", stream), ("group", "store")];
    let streams = store::worker::routes().streams();
    wait_until(
        Duration::from_secs(10),
        "gauges of every stream",
        || async {
            let page = Exposition::scrape(&base).await;
            streams.iter().all(|s| {
                page.value("mesh_stream_group_lag", &store(s)) == Some(0.0)
                    && page.value("mesh_stream_group_pending", &store(s)) == Some(0.0)
                    && page.value("mesh_stream_group_oldest_pending_age_seconds", &store(s))
                        == Some(0.0)
                    && page.value("mesh_dead_letter_entries", &store(s)) == Some(0.0)
            }) && page.value("mesh_outbox_backlog_rows", &[]) == Some(0.0)
        },
    )
    .await;

    let publisher = Publisher::new(redis.connection(), keys.clone());
    let product = ProductChanged {
        product_id: Uuid::now_v7(),
        name: "Mug".into(),
        price_cents: 1200,
        active: true,
        revision: 1,
    };
    let envelope = Envelope::new(ProductChanged::TYPE, "inventory", "c", "", &product).unwrap();
    publisher
        .publish(ProductChanged::TYPE, &envelope)
        .await
        .unwrap();
    let mut conn = redis.connection();
    let _: String = redis::cmd("XADD")
        .arg(keys.stream("payment-failed"))
        .arg("*")
        .arg("junk")
        .arg("1")
        .query_async(&mut conn)
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        "the poison entry counted",
        || async {
            Exposition::scrape(&base)
                .await
                .value("mesh_dead_letter_entries", &store("payment-failed"))
                == Some(1.0)
        },
    )
    .await;

    let order = Uuid::now_v7();
    let shown = reqwest::get(format!("{base}/orders/{order}"))
        .await
        .unwrap();
    assert_eq!(shown.status(), 401);
    let page = Exposition::scrape(&base).await;
    assert_eq!(
        page.value("mesh_stream_deliveries_total", &store("product-changed")),
        Some(1.0)
    );
    assert_eq!(
        page.value(
            "mesh_stream_handler_duration_seconds_count",
            &[
                ("stream", "product-changed"),
                ("group", "store"),
                ("type", "product-changed")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        page.value("mesh_stream_dead_lettered_total", &store("payment-failed")),
        Some(1.0)
    );
    assert_eq!(
        page.value("mesh_stream_retries_total", &store("payment-failed")),
        Some(0.0)
    );
    assert_eq!(
        page.value(
            "mesh_http_request_duration_seconds_count",
            &[
                ("method", "GET"),
                ("route", "/orders/{id}"),
                ("status", "401")
            ]
        ),
        Some(1.0)
    );
    assert!(
        !page.text.contains(&order.to_string()),
        "a raw path in a label"
    );
    // Readiness probes are requests too, on their own route.
    assert!(
        page.value(
            "mesh_http_request_duration_seconds_count",
            &[("method", "GET"), ("route", "/readyz"), ("status", "200")]
        )
        .is_some_and(|n| n >= 1.0)
    );
}
