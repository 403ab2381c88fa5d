//! What is recorded as it happens: the worker's counters and handler histograms, and HTTP
//! request durations by route template.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, routing::get};
use common::{
    Envelope, Keys,
    monitoring::Monitor,
    runtime::{HandleError, Handler, Message, WorkerConfig},
    testing::{Exposition, RedisServer, unique_prefix, wait_drained},
};
use tokio_util::sync::CancellationToken;

use super::serve_with;
use crate::support::InProcessWorker;

/// Fails the first delivery of every event whose payload says `flaky`, dead-letters those that
/// say `broken`, handles the rest.
#[derive(Clone, Default)]
struct Picky {
    attempts: Arc<Mutex<HashMap<uuid::Uuid, u32>>>,
}

impl Handler for Picky {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(message.envelope.event_id).or_default();
            *n += 1;
            *n
        };
        let data = message.envelope.data.get();
        if data.contains("flaky") && attempt == 1 {
            Err(HandleError::retry(anyhow::anyhow!("busy")))
        } else if data.contains("broken") {
            Err(HandleError::dead_letter(anyhow::anyhow!("broken")))
        } else {
            Ok(())
        }
    }
}

#[tokio::test]
async fn worker_counts_deliveries_retries_dead_letters_and_times_handlers_per_event_type() {
    // Before the worker makes its handles (a service does this when it connects).
    let recorder = common::recorder::handle();
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    // The recorder is the process's: a stream name of its own keeps these series this test's.
    let stream = format!("metered-{}", uuid::Uuid::new_v4().simple());
    let key = keys.stream(&stream);
    let publisher = common::runtime::Publisher::new(conn.clone(), keys.clone());
    for (event_type, data) in [
        ("order-placed", "fine"),
        ("order-placed", "fine"),
        ("order-placed", "flaky"),
        ("gizmo-made", "broken"),
    ] {
        let envelope = Envelope::new(
            event_type,
            "test",
            "c",
            "",
            &serde_json::json!({ "mode": data }),
        )
        .unwrap();
        publisher.publish(&stream, &envelope).await.unwrap();
    }
    // Poison: not an envelope.
    let _: String = redis::cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg("junk")
        .arg("1")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut cfg = WorkerConfig::new(keys.clone(), "metered", &[stream.as_str()]);
    cfg.retry_base = Duration::from_millis(20);
    cfg.retry_max = Duration::from_millis(50);
    let worker = InProcessWorker::start(&redis, cfg, Picky::default());
    wait_drained(&mut conn, &key, "metered", Duration::from_secs(20)).await;
    worker.stop().await;

    let page = Exposition::parse(&recorder.render());
    let labels = [("stream", stream.as_str()), ("group", "metered")];
    // Five entries, the flaky one delivered twice.
    assert_eq!(
        page.value("mesh_stream_deliveries_total", &labels),
        Some(6.0)
    );
    assert_eq!(page.value("mesh_stream_retries_total", &labels), Some(1.0));
    assert_eq!(
        page.value("mesh_stream_dead_lettered_total", &labels),
        Some(2.0)
    );
    let count = |event_type: &str| {
        page.value(
            "mesh_stream_handler_duration_seconds_count",
            &[
                ("stream", stream.as_str()),
                ("group", "metered"),
                ("type", event_type),
            ],
        )
    };
    // Every handler run, whatever its outcome; a type outside the catalog is `other`.
    assert_eq!(count("order-placed"), Some(4.0));
    assert_eq!(count("other"), Some(1.0));
    assert_eq!(count("gizmo-made"), None);
    let buckets: Vec<_> = page
        .samples("mesh_stream_handler_duration_seconds_bucket")
        .into_iter()
        .filter(|(l, _)| l["stream"] == stream && l["type"] == "order-placed")
        .collect();
    assert_eq!(buckets.len(), common::recorder::BUCKETS_SECONDS.len() + 1);
    assert!(buckets.iter().any(|(l, v)| l["le"] == "+Inf" && *v == 4.0));
}

#[tokio::test]
async fn http_request_durations_are_labelled_by_route_template_and_status() {
    common::recorder::handle();
    let redis = RedisServer::start();
    let monitor = Monitor::new(
        redis.connection(),
        None,
        Keys::new(unique_prefix()),
        Duration::from_secs(3600),
    );
    let shutdown = CancellationToken::new();
    let api = Router::new()
        .route(
            "/metrics-test/items/{id}",
            get(
                |axum::extract::Path(id): axum::extract::Path<String>| async move {
                    if id == "missing" {
                        (axum::http::StatusCode::NOT_FOUND, "no such item")
                    } else {
                        (axum::http::StatusCode::OK, "an item")
                    }
                },
            ),
        )
        .route(
            "/metrics-test/slow/{id}",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "too late"
            }),
        );
    let base = serve_with(1, api, &redis, None, monitor, &shutdown).await;
    let client = reqwest::Client::new();
    for id in ["7f3c-one", "8a1d-two", "missing"] {
        client
            .get(format!("{base}/metrics-test/items/{id}"))
            .send()
            .await
            .unwrap();
    }
    let unmatched = client
        .get(format!("{base}/metrics-test/nowhere-9c2e"))
        .send()
        .await
        .unwrap();
    assert_eq!(unmatched.status(), 404);
    // Cut off by the server's time limit: counted, with its route.
    let slow = client
        .get(format!("{base}/metrics-test/slow/41b7"))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), 408);

    let page = Exposition::scrape(&base).await;
    let count = |route: &str, status: &str| {
        page.value(
            "mesh_http_request_duration_seconds_count",
            &[("method", "GET"), ("route", route), ("status", status)],
        )
    };
    assert_eq!(count("/metrics-test/items/{id}", "200"), Some(2.0));
    assert_eq!(count("/metrics-test/items/{id}", "404"), Some(1.0));
    assert!(count("unmatched", "404").is_some_and(|n| n >= 1.0));
    assert_eq!(count("/metrics-test/slow/{id}", "408"), Some(1.0));
    for raw in ["7f3c-one", "8a1d-two", "nowhere-9c2e", "41b7"] {
        assert!(!page.text.contains(raw), "raw path `{raw}` in a label");
    }
    shutdown.cancel();
}
