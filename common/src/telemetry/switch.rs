//! Whether spans are exported: set by `super` once the OTLP layer is installed, read by
//! `super::trace_context` and by the spans' openers, which compute OpenTelemetry contexts only then.

use std::sync::atomic::{AtomicBool, Ordering};

static TRACING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (the OTLP layer is installed in this process).
pub fn tracing_enabled() -> bool {
    TRACING.load(Ordering::Relaxed)
}

pub(super) fn set(enabled: bool) {
    TRACING.store(enabled, Ordering::Relaxed);
}
