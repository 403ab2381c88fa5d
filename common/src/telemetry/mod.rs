//! Logging and traces. Logs: JSON or pretty (`MESH_LOG_FORMAT`), filtered by `RUST_LOG` (default
//! `info`). Traces (docs/observability.md): spans exported with OpenTelemetry OTLP over
//! HTTP/protobuf when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (`otlp`), and W3C trace context carried
//! by requests and events (`trace_context`). Without the endpoint no tracing layer is installed.

mod otlp;
mod switch;
pub mod trace_context;

use std::sync::{Mutex, OnceLock};

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt, prelude::*};

use crate::config::LogFormat;

pub use switch::tracing_enabled;
pub use trace_context::TraceContext;

/// The environment variable that turns trace export on.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// The provider to flush and shut down on exit.
static PROVIDER: OnceLock<Mutex<Option<SdkTracerProvider>>> = OnceLock::new();

/// Where the request and event spans are opened: always enabled at `info`.
const SPAN_TARGETS: [&str; 2] = ["common::http::request_span", "common::runtime::event_span"];

/// Installs the global subscriber with logs only (tools, admin subcommands). Safe to call twice
/// (the second call does nothing), which keeps tests that start several services in one process
/// simple.
pub fn init(format: LogFormat) {
    let _ = install(format, None);
}

/// Installs the global subscriber of a service: logs, and the OTLP exporter when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set, with `service` as `service.name` (unless
/// `OTEL_SERVICE_NAME` says otherwise). An exporter that cannot be built is logged and left out:
/// traces are an aid, never a reason not to start. Call [`shutdown`] before exiting.
pub fn init_service(service: &'static str, format: LogFormat) {
    let endpoint = std::env::var(OTLP_ENDPOINT_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty());
    let Some(endpoint) = endpoint else {
        install(format, None);
        return;
    };
    match otlp::provider(service) {
        Ok(provider) => {
            let installed = install(format, Some(provider.clone()));
            if installed {
                *PROVIDER
                    .get_or_init(Default::default)
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(provider);
                tracing::info!(endpoint, "exporting traces with OTLP");
            }
        }
        Err(error) => {
            let _ = install(format, None);
            tracing::warn!(%error, endpoint, "cannot export traces; running without");
        }
    }
}

/// Sends the spans still buffered and stops the exporter (waits for the collector, up to the
/// exporter's timeout). Does nothing when traces are off.
pub fn shutdown() {
    let provider = PROVIDER
        .get()
        .and_then(|p| p.lock().unwrap_or_else(|p| p.into_inner()).take());
    if let Some(provider) = provider {
        switch::set(false);
        if let Err(error) = provider.shutdown() {
            tracing::warn!(%error, "flushing traces failed");
        }
    }
}

/// Installs logs, plus the OpenTelemetry layer over `provider`; `false` if a subscriber was
/// already installed.
fn install(format: LogFormat, provider: Option<SdkTracerProvider>) -> bool {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // The request and event spans are on whatever `RUST_LOG` says: a `warn` line about an event
    // still carries the event's ids, and the trace keeps its links.
    let filter = SPAN_TARGETS
        .iter()
        .filter_map(|target| format!("{target}=info").parse().ok())
        .fold(filter, EnvFilter::add_directive);
    let logs: Box<dyn Layer<Registry> + Send + Sync> = match format {
        // Span fields (`event_id`, `correlation_id`, `trace_id` of the event span) are printed
        // with every line, under `spans`.
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
        LogFormat::Pretty => fmt::layer().with_target(false).boxed(),
    };
    let otel = provider.map(|provider| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer().with_tracer(provider.tracer("mesh"))
    });
    let enabled = otel.is_some();
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(otel)
        .with(filter)
        .try_init()
        .is_ok();
    if installed && enabled {
        switch::set(true);
    }
    installed
}
