//! The span of one handled event: opened by the runtime for every entry that reaches a handler
//! (both the concurrent and the batch-transaction paths), entered while its handler runs and while
//! its outcome is disposed of, so every log line about the event carries its `event_id`,
//! `correlation_id` and `trace_id`. When traces are exported it is an OpenTelemetry span of kind
//! consumer whose parent is the trace context the envelope carries, and the events the handler
//! publishes carry its context on (`Envelope::follow_up`).

use tracing::field::Empty;

use super::handler::{HandleError, Message};
use crate::telemetry::{self, trace_context};

/// The span of `message` handled by `group`. A root span for `tracing` (whatever task opens it);
/// its OpenTelemetry parent is the envelope's trace context.
pub(crate) fn open(group: &str, message: &Message) -> tracing::Span {
    let envelope = &message.envelope;
    let span = tracing::info_span!(
        parent: None,
        "event",
        stream = %message.stream,
        group,
        entry_id = %message.id,
        event_id = %envelope.event_id,
        event_type = %envelope.event_type,
        correlation_id = %envelope.correlation_id,
        trace_id = Empty,
        outcome = Empty,
        otel.name = Empty,
        otel.kind = Empty,
        otel.status_code = Empty,
    );
    if telemetry::tracing_enabled() {
        // OpenTelemetry messaging conventions: "process <destination>", a consumer span.
        span.record("otel.name", format!("process {}", message.stream));
        span.record("otel.kind", "consumer");
    }
    trace_context::adopt(&span, envelope.trace.as_ref());
    span
}

/// Records how handling ended: `ok`, `retry` or `dead_letter` (an error status for the last two).
pub(crate) fn record_outcome(span: &tracing::Span, outcome: &Result<(), HandleError>) {
    let name = match outcome {
        Ok(()) => "ok",
        Err(HandleError::Retry(_)) => "retry",
        Err(HandleError::DeadLetter(_)) => "dead_letter",
    };
    span.record("outcome", name);
    if outcome.is_err() && telemetry::tracing_enabled() {
        span.record("otel.status_code", "ERROR");
    }
}

/// Runs `handling` (the handler on the span's event) inside `span`, and records its outcome.
pub(crate) async fn within<F>(span: &tracing::Span, handling: F) -> Result<(), HandleError>
where
    F: Future<Output = Result<(), HandleError>>,
{
    use tracing::Instrument as _;
    let outcome = handling.instrument(span.clone()).await;
    record_outcome(span, &outcome);
    outcome
}
