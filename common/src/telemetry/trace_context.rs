//! W3C trace context (`traceparent`, `tracestate`): validating what arrives in an envelope or an
//! HTTP header, taking the current span's context for an event about to be published, and
//! making a span a child of a received context.
//!
//! Validation is strict and bounded: what fails it is dropped (never a reason to reject a request
//! or dead-letter an event), so a malformed value never reaches a span or a log line.

use std::collections::HashMap;

use opentelemetry::{
    propagation::TextMapPropagator as _,
    trace::{TraceContextExt as _, TraceId},
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The header and envelope field names.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// Longest `traceparent` accepted. Version `00` is exactly 55 characters; a later version may
/// append fields after a `-`, which is kept up to this bound.
pub const MAX_TRACEPARENT_LEN: usize = 128;
/// Longest `tracestate` accepted: the 512 characters the W3C text asks every vendor to propagate.
/// A longer one is dropped (the `traceparent` is kept).
pub const MAX_TRACESTATE_LEN: usize = 512;

/// A valid W3C trace context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    traceparent: String,
    tracestate: Option<String>,
}

impl TraceContext {
    /// The context given by a `traceparent` and an optional `tracestate`; `None` when the
    /// `traceparent` is missing or malformed. A malformed `tracestate` alone is dropped.
    pub fn parse(traceparent: Option<&[u8]>, tracestate: Option<&[u8]>) -> Option<Self> {
        let traceparent = std::str::from_utf8(traceparent?).ok()?;
        if !is_valid_traceparent(traceparent) {
            return None;
        }
        let tracestate = tracestate
            .and_then(|raw| std::str::from_utf8(raw).ok())
            .filter(|state| is_valid_tracestate(state))
            .map(str::to_owned);
        Some(Self {
            traceparent: traceparent.to_owned(),
            tracestate,
        })
    }

    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// The trace id, 32 lowercase hex digits.
    pub fn trace_id(&self) -> &str {
        &self.traceparent[3..35]
    }

    /// The context of the current span, when traces are exported ([`super::tracing_enabled`](crate::telemetry::tracing_enabled))
    /// and the current span belongs to a trace; `None` otherwise (nothing is computed).
    pub fn current() -> Option<Self> {
        if !super::switch::tracing_enabled() {
            return None;
        }
        let cx = tracing::Span::current().context();
        if !cx.span().span_context().is_valid() {
            return None;
        }
        let mut carrier = HashMap::with_capacity(2);
        TraceContextPropagator::new().inject_context(&cx, &mut carrier);
        Self::parse(
            carrier.get(TRACEPARENT).map(|v| v.as_bytes()),
            carrier.get(TRACESTATE).map(|v| v.as_bytes()),
        )
    }
}

/// Makes `span` (not yet entered) a child of `parent` when traces are exported, and records its
/// `trace_id` field: the trace the span belongs to once exported, else the trace of `parent`.
/// Without either, `trace_id` stays empty.
pub fn adopt(span: &tracing::Span, parent: Option<&TraceContext>) {
    if !super::switch::tracing_enabled() {
        if let Some(parent) = parent {
            span.record("trace_id", parent.trace_id());
        }
        return;
    }
    if let Some(parent) = parent {
        let mut carrier = HashMap::with_capacity(2);
        carrier.insert(TRACEPARENT.to_owned(), parent.traceparent.clone());
        if let Some(state) = &parent.tracestate {
            carrier.insert(TRACESTATE.to_owned(), state.clone());
        }
        let cx = TraceContextPropagator::new().extract(&carrier);
        // Fails only when the span is disabled by the filter: it is not exported then.
        let _ = span.set_parent(cx);
    }
    let trace_id = span.context().span().span_context().trace_id();
    if trace_id != TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

/// `version-traceid-parentid-flags`, lowercase hex, neither id all zeros, version not `ff`;
/// version `00` exactly 55 characters, a later one longer only after a `-`.
fn is_valid_traceparent(value: &str) -> bool {
    let b = value.as_bytes();
    if b.len() < 55 || b.len() > MAX_TRACEPARENT_LEN {
        return false;
    }
    let hex = |range: std::ops::Range<usize>| {
        b[range]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    };
    let zeros = |range: std::ops::Range<usize>| b[range].iter().all(|c| *c == b'0');
    let version_ok = hex(0..2) && &b[0..2] != b"ff";
    let shape_ok = b[2] == b'-' && b[35] == b'-' && b[52] == b'-';
    let length_ok = if &b[0..2] == b"00" {
        b.len() == 55
    } else {
        b.len() == 55 || (b[55] == b'-' && b[56..].iter().all(|c| c.is_ascii_graphic()))
    };
    version_ok
        && shape_ok
        && length_ok
        && hex(3..35)
        && !zeros(3..35)
        && hex(36..52)
        && !zeros(36..52)
        && hex(53..55)
}

/// Printable ASCII (spaces and tabs around members allowed), bounded; the members themselves are
/// not checked further: the value is only passed on.
fn is_valid_tracestate(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_TRACESTATE_LEN
        && value
            .bytes()
            .all(|c| c == b' ' || c == b'\t' || c.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn parse(tp: &str) -> Option<TraceContext> {
        TraceContext::parse(Some(tp.as_bytes()), None)
    }

    #[test]
    fn a_valid_traceparent_is_kept_with_its_tracestate() {
        let cx = TraceContext::parse(Some(VALID.as_bytes()), Some(b"congo=t61rcWkgMzE")).unwrap();
        assert_eq!(cx.traceparent(), VALID);
        assert_eq!(cx.tracestate(), Some("congo=t61rcWkgMzE"));
        assert_eq!(cx.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(TraceContext::parse(None, Some(b"a=b")), None);
        assert_eq!(TraceContext::parse(Some(&[0xff; 55]), None), None);
    }

    #[test]
    fn a_later_version_may_carry_more_fields_up_to_the_bound() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever";
        assert!(parse(later).is_some());
        assert!(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x").is_none());
        let long = format!("{}-{}", &later[..55], "a".repeat(MAX_TRACEPARENT_LEN - 56));
        assert!(parse(&long).is_some());
        let too_long = format!("{long}a");
        assert!(parse(&too_long).is_none());
    }

    #[test]
    fn an_invalid_tracestate_is_dropped_and_the_traceparent_kept() {
        let huge = "a=".to_owned() + &"b".repeat(MAX_TRACESTATE_LEN);
        for bad in [&b"k=v\nx=y"[..], b"", huge.as_bytes(), &[0xc3, 0x28]] {
            let cx = TraceContext::parse(Some(VALID.as_bytes()), Some(bad)).unwrap();
            assert_eq!(cx.tracestate(), None);
        }
    }

    #[test]
    fn without_export_current_is_none_and_adopt_records_the_parents_trace() {
        use tracing_subscriber::prelude::*;
        let parent = parse(VALID).unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = lines.clone();
        let writer = move || Sink(sink.clone());
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().json().with_writer(writer));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("event", trace_id = tracing::field::Empty);
            adopt(&span, Some(&parent));
            let _entered = span.enter();
            assert_eq!(TraceContext::current(), None);
            tracing::info!("inside");
        });
        let text = String::from_utf8(lines.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains(r#""trace_id":"4bf92f3577b34da6a3ce929d0e0e4736""#),
            "{text}"
        );
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
