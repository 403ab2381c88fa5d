//! A real OTLP/HTTP trace receiver for tests: `POST /v1/traces` with a protobuf
//! `ExportTraceServiceRequest` (what `opentelemetry-otlp` sends), decoded with
//! `opentelemetry-proto` and kept as [`ReceivedSpan`]s. Point a service at it with
//! `OTEL_EXPORTER_OTLP_ENDPOINT=<url>`.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use axum::{Router, body::Bytes, extract::State, http::StatusCode, routing::post};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    common::v1::{AnyValue, any_value::Value},
};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

/// One span as the receiver got it; ids in lowercase hex (`parent_span_id` empty for a root).
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// The resource's `service.name`.
    pub service: String,
    pub name: String,
    /// `SPAN_KIND_*` number: 2 server, 5 consumer.
    pub kind: i32,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    /// Attributes whose value is a string, bool or integer, as text.
    pub attributes: BTreeMap<String, String>,
}

type Spans = Arc<Mutex<Vec<ReceivedSpan>>>;

/// The receiver; stops when dropped.
pub struct OtlpReceiver {
    /// The base URL (`http://127.0.0.1:<port>`): the exporter appends `/v1/traces`.
    pub url: String,
    spans: Spans,
    stop: CancellationToken,
}

impl OtlpReceiver {
    pub async fn start() -> Self {
        let spans = Spans::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP receiver");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(spans.clone());
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await
                .expect("OTLP receiver");
        });
        Self { url, spans, stop }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap().clone()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Decodes one export; a body that is not a valid request is a 400, as a collector answers.
async fn receive(State(spans): State<Spans>, body: Bytes) -> (StatusCode, Vec<u8>) {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    let mut received = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref().and_then(text))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    kind: span.kind,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes: span
                        .attributes
                        .iter()
                        .filter_map(|kv| Some((kv.key.clone(), text(kv.value.as_ref()?)?)))
                        .collect(),
                });
            }
        }
    }
    spans.lock().unwrap().extend(received);
    (
        StatusCode::OK,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

fn text(value: &AnyValue) -> Option<String> {
    match value.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
