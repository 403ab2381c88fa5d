//! Traces across the saga: five real services export to a real OTLP receiver, and one order
//! yields one trace whose spans link store's `POST /orders` → payment → inventory → warehouse →
//! store, each a child of the one before; the JSON log lines about its events carry the ids.

use std::{collections::HashMap, time::Duration};

use common::testing::{OtlpReceiver, ReceivedSpan};
use serde_json::{Value, json};

use crate::mesh::{Mesh, Options};

const SERVER: i32 = 2;
const CONSUMER: i32 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_order_is_one_trace_from_the_request_through_every_service() {
    let receiver = OtlpReceiver::start().await;
    let env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.clone()),
        // Export every 100 ms instead of every 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        // Warnings only, except payment's own lines: the request and event spans are on anyway.
        ("RUST_LOG", "warn,payment=info".to_owned()),
    ];
    let mesh = Mesh::start_with_env(Options::default(), env).await;
    let shopper = mesh.shopper().await;
    let mug = mesh.product("mug", 1_000, 10).await;
    mesh.wait_catalog(&shopper, &mug).await;

    // The client's own trace: the request's span is its child.
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let client_span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let correlation_id = format!("trace-test-{}", uuid::Uuid::new_v4().simple());
    let response = mesh
        .http
        .post(mesh.url("store", "/orders"))
        .bearer_auth(&shopper.token)
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .header("x-request-id", &correlation_id)
        .json(&json!({"items": [{"product_id": mug, "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let order: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_str().unwrap();
    mesh.wait_status(&shopper, id, "shipped").await;

    // Store's span of the `order-shipped` it consumed ends the chain.
    let last = |spans: &[ReceivedSpan]| {
        spans
            .iter()
            .find(|s| {
                s.service == "store"
                    && s.attributes.get("stream").map(String::as_str) == Some("order-shipped")
                    && s.attributes.get("correlation_id") == Some(&correlation_id)
            })
            .cloned()
    };
    // Each service exports on its own clock: wait until store's last span is in AND every parent
    // up to the client's span has arrived too (a missing parent after that is a broken link).
    let complete = |spans: &[ReceivedSpan]| {
        let Some(mut at) = last(spans) else {
            return false;
        };
        for _ in 0..64 {
            if at.parent_span_id == client_span {
                return true;
            }
            match spans.iter().find(|s| s.span_id == at.parent_span_id) {
                Some(parent) => at = parent.clone(),
                None => return false,
            }
        }
        false
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !complete(&receiver.spans()) {
        if std::time::Instant::now() > deadline {
            let summary: Vec<_> = receiver
                .spans()
                .into_iter()
                .map(|s| (s.service, s.name, s.kind, s.attributes))
                .collect();
            let logs = std::fs::read_to_string(mesh.data.path().join("logs/store.log"))
                .unwrap_or_default();
            let logs = &logs[..logs.len().min(4000)];
            panic!(
                "no complete chain to store's order-shipped; received {summary:#?}; store logged {logs}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let spans = receiver.spans();

    // One trace: every span about the order's events, and the request's, is in the client's.
    let of_order: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| {
            s.attributes.get("correlation_id") == Some(&correlation_id)
                || s.attributes.get("request.id") == Some(&correlation_id)
        })
        .collect();
    assert!(of_order.len() >= 5, "{of_order:#?}");
    for span in &of_order {
        assert_eq!(span.trace_id, trace_id, "{span:#?}");
        if span.kind == CONSUMER {
            assert_eq!(
                span.attributes.get("trace_id"),
                Some(&trace_id),
                "{span:#?}"
            );
        }
    }

    // Walk up from the last span to the root, through parent links that all resolve.
    let by_id: HashMap<&str, &ReceivedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == trace_id)
        .map(|s| (s.span_id.as_str(), s))
        .collect();
    let mut chain = Vec::new();
    let mut at = by_id[last(&spans).unwrap().span_id.as_str()];
    loop {
        chain.push(at);
        if at.parent_span_id == client_span {
            break;
        }
        at = by_id.get(at.parent_span_id.as_str()).unwrap_or_else(|| {
            panic!("parent of {at:#?} was not exported; chain so far {chain:#?}")
        });
    }
    // From the root down, one step per service (a service's own inner spans collapse into its
    // step): the request, then each event's consumer.
    let mut steps: Vec<(String, i32, String)> = Vec::new();
    for span in chain.iter().rev() {
        if span.kind != SERVER && span.kind != CONSUMER {
            continue;
        }
        let what = match span.kind {
            SERVER => span
                .attributes
                .get("http.route")
                .cloned()
                .unwrap_or_default(),
            _ => span.attributes.get("stream").cloned().unwrap_or_default(),
        };
        steps.push((span.service.clone(), span.kind, what));
    }
    let expected = [
        ("store", SERVER, "/orders"),
        ("payment", CONSUMER, "order-placed"),
        ("inventory", CONSUMER, "order-completed"),
        ("warehouse", CONSUMER, "stock-reserved"),
        ("store", CONSUMER, "order-shipped"),
    ];
    let steps: Vec<(&str, i32, &str)> = steps
        .iter()
        .map(|(s, k, w)| (s.as_str(), *k, w.as_str()))
        .collect();
    assert_eq!(steps, expected, "chain {chain:#?}");
    assert_eq!(chain.last().unwrap().name, "POST /orders");

    // The JSON log lines about an event carry its ids: payment's line about the capture.
    let lines = mesh.log_lines("payment");
    let captured = lines
        .iter()
        .find(|l| {
            l["message"] == "payment captured" && event_span(l)["correlation_id"] == correlation_id
        })
        .unwrap_or_else(|| panic!("no capture logged for {correlation_id}"));
    let span = event_span(captured);
    assert_eq!(span["trace_id"], trace_id.as_str(), "{captured}");
    let event_id = span["event_id"].as_str().unwrap();
    let consumed = chain
        .iter()
        .find(|s| s.service == "payment" && s.kind == CONSUMER)
        .unwrap();
    assert_eq!(
        consumed.attributes.get("event_id").map(String::as_str),
        Some(event_id)
    );
}

/// The runtime's `event` span among the line's spans (`Null` if the line has none).
fn event_span(line: &Value) -> &Value {
    line["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find(|s| s["name"] == "event"))
        .unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_stopped_with_sigterm_flushes_its_spans_first() {
    let receiver = OtlpReceiver::start().await;
    let env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.clone()),
        // Nothing is sent on the timer during the test: only a flush sends.
        ("OTEL_BSP_SCHEDULE_DELAY", "600000".to_owned()),
    ];
    let mut mesh = Mesh::start_with_env(Options::default(), env).await;
    // Starting the mesh logged the admin in: a request span in user's buffer.
    let user_spans = |receiver: &OtlpReceiver| -> Vec<ReceivedSpan> {
        receiver
            .spans()
            .into_iter()
            .filter(|s| s.service == "user")
            .collect()
    };
    assert!(user_spans(&receiver).is_empty(), "sent before the flush");
    let _stopped = mesh.stop("user").await;
    let spans = user_spans(&receiver);
    assert!(
        spans.iter().any(|s| s.kind == SERVER
            && s.attributes.get("http.route").map(String::as_str) == Some("/auth/login")
            && s.attributes
                .get("http.response.status_code")
                .map(String::as_str)
                == Some("200")),
        "{spans:#?}"
    );
}
