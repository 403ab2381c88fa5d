//! The process-wide Prometheus recorder of the `metrics` crate: installed once (by
//! `service::Service::connect`, before any worker makes its metric handles), with histogram
//! buckets for every `…_seconds` histogram, and its upkeep. Without an installed recorder every
//! metric is a no-op (the benchmark, tools).

use std::{sync::OnceLock, time::Duration};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Bucket bounds of every histogram, in seconds: from a cache hit (1 ms) to a handler or request
/// stuck on a lock (10 s).
pub const BUCKETS_SECONDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often histogram samples are folded into their buckets ([`run_upkeep`]).
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process-wide recorder (installed on first use).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            // Buckets turn histograms into Prometheus histograms (else summaries, which cannot
            // be aggregated across replicas). The bounds are a non-empty constant: this cannot
            // fail, and if it did the histograms would still be exported, as summaries.
            let builder = match builder.set_buckets(&BUCKETS_SECONDS) {
                Ok(b) => b,
                Err(error) => {
                    tracing::error!(%error, "histogram buckets refused; exporting summaries");
                    PrometheusBuilder::new()
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test process that set its own); then
            // this handle renders an empty page, which is harmless.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Folds the histogram samples recorded since the last call into their buckets every
/// [`UPKEEP_EVERY`] until `shutdown`: samples wait in a queue until then, so without it a process
/// that is never scraped would hold every sample.
pub async fn run_upkeep(shutdown: CancellationToken) {
    let handle = handle();
    let mut tick = tokio::time::interval(UPKEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => handle.run_upkeep(),
            _ = shutdown.cancelled() => return,
        }
    }
}
