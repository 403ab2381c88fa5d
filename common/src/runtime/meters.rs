//! The worker's Prometheus metrics, per stream it consumes: deliveries, retries and dead letters
//! (counters) and how long its handler takes per event type (histogram). The handles are made
//! once per worker, so the hot path records without looking a metric up by name; without an
//! installed recorder (`crate::recorder`) they are no-ops.

use std::{
    future::Future,
    sync::{Once, OnceLock},
    time::{Duration, Instant},
};

use metrics::{Counter, Histogram};

use super::handler::Message;
use crate::events::ALL_STREAMS;

/// Entries handed to the worker's processing, counting every redelivery (`stream`, `group`).
pub const DELIVERIES: &str = "mesh_stream_deliveries_total";
/// Handler failures left pending for a later delivery (`stream`, `group`).
pub const RETRIES: &str = "mesh_stream_retries_total";
/// Entries written to the dead-letter stream: failures and poison (`stream`, `group`).
pub const DEAD_LETTERED: &str = "mesh_stream_dead_lettered_total";
/// Time a handler took, whatever its outcome (`stream`, `group`, `type`).
pub const HANDLER_DURATION: &str = "mesh_stream_handler_duration_seconds";
/// The `type` label of an event type outside the catalog (a producer's type is input: the label
/// stays bounded).
pub const OTHER_TYPE: &str = "other";

/// The metric handles of one worker.
pub(crate) struct WorkerMeters {
    streams: Vec<StreamMeters>,
}

struct StreamMeters {
    stream: String,
    group: String,
    deliveries: Counter,
    retries: Counter,
    dead_lettered: Counter,
    /// By the catalog index of the event type, then [`OTHER_TYPE`]; made on first use, so only
    /// the types a stream carries are exported.
    handler: [OnceLock<Histogram>; ALL_STREAMS.len() + 1],
}

/// The `# HELP` lines of the worker's metrics, given to the recorder once per process.
fn describe() {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(|| {
        metrics::describe_counter!(
            DELIVERIES,
            "Entries handed to the worker's processing, every redelivery counted."
        );
        metrics::describe_counter!(
            RETRIES,
            "Handler failures left pending for a later delivery."
        );
        metrics::describe_counter!(
            DEAD_LETTERED,
            "Entries written to the dead-letter stream (failures and poison)."
        );
        metrics::describe_histogram!(
            HANDLER_DURATION,
            metrics::Unit::Seconds,
            "Time a handler took, whatever its outcome."
        );
        metrics::describe_counter!("mesh_acked_total", "Entries acknowledged.");
    });
}

impl WorkerMeters {
    /// The handles of `group` on `streams` (unprefixed).
    pub fn new(group: &str, streams: &[String]) -> Self {
        describe();
        let streams = streams
            .iter()
            .map(|stream| {
                let labels = [("stream", stream.clone()), ("group", group.to_owned())];
                StreamMeters {
                    stream: stream.clone(),
                    group: group.to_owned(),
                    deliveries: metrics::counter!(DELIVERIES, &labels),
                    retries: metrics::counter!(RETRIES, &labels),
                    dead_lettered: metrics::counter!(DEAD_LETTERED, &labels),
                    handler: std::array::from_fn(|_| OnceLock::new()),
                }
            })
            .collect();
        Self { streams }
    }

    /// `n` entries of the worker's stream number `stream` delivered.
    pub fn delivered(&self, stream: usize, n: u64) {
        if let Some(m) = self.streams.get(stream) {
            m.deliveries.increment(n);
        }
    }

    pub fn retried(&self, stream: usize) {
        if let Some(m) = self.streams.get(stream) {
            m.retries.increment(1);
        }
    }

    pub fn dead_lettered(&self, stream: usize) {
        if let Some(m) = self.streams.get(stream) {
            m.dead_lettered.increment(1);
        }
    }

    /// Runs `handling` (the handler on `message`) and records how long it took.
    pub async fn time<F: Future>(&self, message: &Message, handling: F) -> F::Output {
        let started = Instant::now();
        let outcome = handling.await;
        self.handled(message, started.elapsed());
        outcome
    }

    /// Records that the handler took `took` on `message`.
    pub fn handled(&self, message: &Message, took: Duration) {
        if let Some(m) = self.streams.iter().find(|m| *m.stream == *message.stream) {
            m.handler_histogram(&message.envelope.event_type)
                .record(took.as_secs_f64());
        }
    }
}

impl StreamMeters {
    fn handler_histogram(&self, event_type: &str) -> &Histogram {
        let index = ALL_STREAMS
            .iter()
            .position(|t| *t == event_type)
            .unwrap_or(ALL_STREAMS.len());
        self.handler[index].get_or_init(|| {
            let event_type = ALL_STREAMS.get(index).copied().unwrap_or(OTHER_TYPE);
            metrics::histogram!(
                HANDLER_DURATION,
                "stream" => self.stream.clone(),
                "group" => self.group.clone(),
                "type" => event_type,
            )
        })
    }
}
