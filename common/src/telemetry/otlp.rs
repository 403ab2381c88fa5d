//! The OTLP exporter: HTTP/protobuf to `OTEL_EXPORTER_OTLP_ENDPOINT` (the exporter appends
//! `/v1/traces`; the other `OTEL_EXPORTER_OTLP_*` and `OTEL_BSP_*` variables apply as the
//! OpenTelemetry SDK reads them), batched on the SDK's own thread so a slow or absent collector
//! never holds up a request or a handler.

use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};

/// The tracer provider of `service`: `service.name` is `service` unless `OTEL_SERVICE_NAME` is
/// set (the SDK's resource detectors read it).
pub(super) fn provider(
    service: &'static str,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()?;
    let named_by_env = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty());
    let resource = if named_by_env {
        Resource::builder().build()
    } else {
        Resource::builder().with_service_name(service).build()
    };
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}
