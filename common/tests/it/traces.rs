//! The runtime's event span (docs/observability.md): every handled event, on the concurrent and
//! on the batch-transaction path, runs in a span whose fields put `event_id`, `correlation_id` and
//! `trace_id` on each JSON log line about it; the trace id is the one its envelope carries. And a
//! request's `traceparent` header, valid or not, never fails the request.

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::Router;
use common::{
    Envelope, Keys,
    db::{migration::RuntimeMigrator, outbox::OutboxNotifier},
    runtime::{BatchTransactions, HandleError, Handler, Message, Publisher, WorkerConfig},
    telemetry::TraceContext,
    testing::{RedisServer, TestDb, unique_prefix, wait_drained},
};
use serde_json::Value;
use tracing_subscriber::prelude::*;

use crate::support::InProcessWorker;

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

/// JSON log lines written by the subscriber of [`capture`].
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn parsed(&self) -> Vec<Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// The services' JSON format, for this thread (a current-thread runtime runs every task here).
fn capture() -> (Lines, tracing::subscriber::DefaultGuard) {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(move || writer.clone()),
    );
    (lines, tracing::subscriber::set_default(subscriber))
}

/// Logs one line per event it handles.
#[derive(Clone)]
struct Logs;

impl Handler for Logs {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        tracing::warn!(n = %message.envelope.data.get(), "handled");
        Ok(())
    }
}

async fn publish_traced(redis: &RedisServer, keys: &Keys, stream: &str, n: usize) -> Vec<String> {
    let publisher = Publisher::new(redis.connection(), keys.clone());
    let mut ids = Vec::new();
    for i in 0..n {
        let mut envelope = Envelope::new(
            stream,
            "test",
            &format!("corr-{i}"),
            "",
            &serde_json::json!({"n": i}),
        )
        .unwrap();
        envelope.trace = TraceContext::parse(Some(TRACEPARENT.as_bytes()), None);
        publisher.publish(stream, &envelope).await.unwrap();
        ids.push(envelope.event_id.to_string());
    }
    ids
}

/// Handles `n` traced events (in batch transactions when `batched`) and checks each one's line.
async fn handled_lines_carry_the_event_ids(batched: bool) {
    let (lines, _guard) = capture();
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let test_db = TestDb::new().await;
    let ids = publish_traced(&redis, &keys, "traced", 5).await;
    let mut cfg = WorkerConfig::new(keys.clone(), "g", &["traced"]);
    if batched {
        let db = test_db.connect::<RuntimeMigrator>().await;
        cfg.batch_transactions = Some(BatchTransactions {
            db,
            notifier: OutboxNotifier::default(),
        });
    }
    let worker = InProcessWorker::start(&redis, cfg, Logs);
    let mut conn = redis.connection();
    wait_drained(
        &mut conn,
        &keys.stream("traced"),
        "g",
        Duration::from_secs(20),
    )
    .await;
    worker.stop().await;

    let handled: Vec<Value> = lines
        .parsed()
        .into_iter()
        .filter(|l| l["message"] == "handled")
        .collect();
    assert_eq!(handled.len(), ids.len(), "{handled:#?}");
    for line in &handled {
        let span = line["spans"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == "event"))
            .unwrap_or_else(|| panic!("no event span: {line}"));
        let n = line["n"].as_str().unwrap();
        let i: usize = serde_json::from_str::<Value>(n).unwrap()["n"]
            .as_u64()
            .unwrap() as usize;
        assert_eq!(span["event_id"], ids[i].as_str(), "{line}");
        assert_eq!(span["correlation_id"], format!("corr-{i}"), "{line}");
        assert_eq!(span["trace_id"], TRACE_ID, "{line}");
        assert_eq!(span["stream"], "traced");
        assert_eq!(span["group"], "g");
    }
}

#[tokio::test]
async fn handled_events_log_their_ids_on_the_concurrent_path() {
    handled_lines_carry_the_event_ids(false).await;
}

#[tokio::test]
async fn handled_events_log_their_ids_on_the_batch_path() {
    handled_lines_carry_the_event_ids(true).await;
}

#[tokio::test]
async fn a_request_span_takes_a_valid_traceparent_and_ignores_a_malformed_one() {
    let (lines, _guard) = capture();
    let router = common::http::with_common_layers(Router::new().route(
        "/things/{id}",
        axum::routing::get(|| async {
            tracing::warn!("in handler");
            "ok"
        }),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(common::http::serve(
        listener,
        router,
        Default::default(),
        shutdown.clone(),
    ));
    let client = reqwest::Client::new();
    let huge = "0".repeat(8_000);
    for traceparent in [TRACEPARENT, "garbage", huge.as_str(), ""] {
        let response = client
            .get(format!("http://{addr}/things/42"))
            .header("traceparent", traceparent)
            .header("tracestate", "k=v")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "traceparent {traceparent:?}");
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();

    let spans: Vec<Value> = lines
        .parsed()
        .into_iter()
        .filter(|l| l["message"] == "in handler")
        .map(|l| l["span"].clone())
        .collect();
    assert_eq!(spans.len(), 4, "{spans:#?}");
    for span in &spans {
        assert_eq!(span["name"], "request");
        assert_eq!(span["http.route"], "/things/{id}");
        assert_eq!(span["http.request.method"], "GET");
    }
    assert_eq!(spans[0]["trace_id"], TRACE_ID);
    for span in &spans[1..] {
        assert_eq!(span.get("trace_id"), None, "{span}");
    }
}
