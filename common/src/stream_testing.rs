//! Stream helpers for tests of code that runs on the stream runtime (feature `testing`): publish
//! test events, record what a handler saw, run a worker in the test's process, and read a stream's
//! entries and a group's pending entries. The runtime's own tests and meshctl's use them.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use crate::connection::Conn;
use tokio_util::sync::CancellationToken;

use crate::{
    Envelope, Keys,
    runtime::{
        HandleError, Handler, Message, Publisher, Worker, WorkerConfig, WorkerStats, redis_io,
    },
    testing::TestRedis,
};

/// Publishes `n` envelopes of type `stream` with payload `{"n": i}`; returns their event ids in order.
pub async fn publish_n(redis: &dyn TestRedis, keys: &Keys, stream: &str, n: usize) -> Vec<String> {
    let publisher = Publisher::new(redis.connection(), keys.clone());
    let mut ids = Vec::with_capacity(n);
    let mut chunk = Vec::new();
    for i in 0..n {
        let env = Envelope::new(stream, "test", "corr", "", &serde_json::json!({ "n": i }))
            .expect("envelope");
        ids.push(env.event_id.to_string());
        chunk.push((stream.to_owned(), env));
        if chunk.len() == 1000 {
            publisher.publish_many(&chunk).await.expect("publish");
            chunk.clear();
        }
    }
    publisher.publish_many(&chunk).await.expect("publish");
    ids
}

/// Records every event id it handled, in process.
#[derive(Clone, Default)]
pub struct Recorder {
    pub seen: Arc<Mutex<HashMap<String, u64>>>,
}

impl Recorder {
    /// Event id → times handled.
    pub fn counts(&self) -> HashMap<String, u64> {
        self.seen.lock().expect("recorder lock").clone()
    }
}

impl Handler for Recorder {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        *self
            .seen
            .lock()
            .expect("recorder lock")
            .entry(message.envelope.event_id.to_string())
            .or_default() += 1;
        Ok(())
    }
}

/// Pending entries of a group: (id, consumer, idle ms, deliveries).
pub async fn pending(
    conn: &mut Conn,
    stream_key: &str,
    group: &str,
) -> Vec<(String, String, u64, u64)> {
    let v: redis::Value = redis::cmd("XPENDING")
        .arg(stream_key)
        .arg(group)
        .arg("-")
        .arg("+")
        .arg(100_000)
        .query_async(conn)
        .await
        .expect("XPENDING");
    redis_io::parse_pending_range(v)
}

/// A worker running in this test's process, with its counters and its stop token.
pub struct InProcessWorker {
    pub stats: Arc<WorkerStats>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcessWorker {
    /// Starts `handler` as a worker of `cfg` on `redis`.
    pub fn start<H: Handler>(redis: &dyn TestRedis, cfg: WorkerConfig, handler: H) -> Self {
        let worker = Worker::new(redis.target(), cfg, handler);
        let stats = worker.stats();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(worker.run(shutdown.clone()));
        Self {
            stats,
            shutdown,
            task,
        }
    }

    /// Graceful shutdown; asserts the worker returned `Ok`.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .expect("worker task panicked")
            .expect("worker returned an error");
    }
}

/// Every entry of a stream (`XRANGE - +`): id and fields as text.
pub async fn stream_entries(
    conn: &mut Conn,
    stream_key: &str,
) -> Vec<(String, HashMap<String, String>)> {
    let v: redis::Value = redis::cmd("XRANGE")
        .arg(stream_key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .expect("XRANGE");
    redis_io::parse_entries(stream_key, v)
        .into_iter()
        .map(|e| {
            let fields = e
                .fields
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                .collect();
            (e.id, fields)
        })
        .collect()
}
