//! Helpers shared by the runtime tests: publishing test events, in-process handlers, and spawning
//! the `mesh-testworker` binary.

use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
};

use common::{
    Envelope, Keys,
    runtime::{HandleError, Handler, Message, Publisher, redis_io},
    testing::{Proc, RedisServer},
};
use redis::aio::ConnectionManager;

/// Publishes `n` envelopes of type `stream` with payload `{"n": i}`; returns their event ids in order.
pub async fn publish_n(redis: &RedisServer, keys: &Keys, stream: &str, n: usize) -> Vec<String> {
    let publisher = Publisher::new(redis.connection(), keys.clone());
    let mut ids = Vec::with_capacity(n);
    let mut chunk = Vec::new();
    for i in 0..n {
        let env =
            Envelope::new(stream, "test", "corr", "", &serde_json::json!({ "n": i })).unwrap();
        ids.push(env.event_id.to_string());
        chunk.push((stream.to_owned(), env));
        if chunk.len() == 1000 {
            publisher.publish_many(&chunk).await.unwrap();
            chunk.clear();
        }
    }
    publisher.publish_many(&chunk).await.unwrap();
    ids
}

/// Records every event id it handled, in process.
#[derive(Clone, Default)]
pub struct Recorder {
    pub seen: Arc<Mutex<HashMap<String, u64>>>,
}

impl Recorder {
    pub fn counts(&self) -> HashMap<String, u64> {
        self.seen.lock().unwrap().clone()
    }
}

impl Handler for Recorder {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        *self
            .seen
            .lock()
            .unwrap()
            .entry(message.envelope.event_id.to_string())
            .or_default() += 1;
        Ok(())
    }
}

/// Spawns `mesh-testworker` with the given arguments (plus the server and prefix).
pub fn spawn_testworker(redis: &RedisServer, keys: &Keys, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mesh-testworker"))
        .args(["--redis-url", &redis.url(), "--prefix", keys.prefix()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn mesh-testworker")
}

/// `HGETALL <prefix>effects` as event id → count.
pub async fn redis_effects(conn: &mut ConnectionManager, keys: &Keys) -> HashMap<String, i64> {
    redis::cmd("HGETALL")
        .arg(format!("{}effects", keys.prefix()))
        .query_async(conn)
        .await
        .unwrap()
}

/// Pending entries of a group: (id, consumer, idle ms, deliveries).
pub async fn pending(
    conn: &mut ConnectionManager,
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
        .unwrap();
    redis_io::parse_pending_range(v)
}

/// `spawn_testworker`, guarded by [`Proc`].
pub fn testworker(redis: &RedisServer, keys: &Keys, args: &[&str]) -> Proc {
    Proc(spawn_testworker(redis, keys, args))
}

/// An integer counter key under the test's prefix (`GET <prefix><name>`), 0 when missing.
pub async fn counter(conn: &mut ConnectionManager, keys: &Keys, name: &str) -> i64 {
    let v: Option<i64> = redis::cmd("GET")
        .arg(format!("{}{name}", keys.prefix()))
        .query_async(conn)
        .await
        .unwrap();
    v.unwrap_or(0)
}

/// A worker running in this test's process, with its counters and its stop token.
pub struct InProcessWorker {
    pub stats: std::sync::Arc<common::runtime::WorkerStats>,
    pub shutdown: tokio_util::sync::CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcessWorker {
    /// Starts `handler` as a worker of `cfg` on `redis`.
    pub fn start<H: Handler>(
        redis: &RedisServer,
        cfg: common::runtime::WorkerConfig,
        handler: H,
    ) -> Self {
        let worker = common::runtime::Worker::new(redis.client(), cfg, handler);
        let stats = worker.stats();
        let shutdown = tokio_util::sync::CancellationToken::new();
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
    conn: &mut ConnectionManager,
    stream_key: &str,
) -> Vec<(String, HashMap<String, String>)> {
    let v: redis::Value = redis::cmd("XRANGE")
        .arg(stream_key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .unwrap();
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

/// `calls` and `failed_calls` of one command (lower case, e.g. `xautoclaim`) from
/// `INFO commandstats`, since the server started.
pub async fn command_calls(conn: &mut ConnectionManager, command: &str) -> (u64, u64) {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    let prefix = format!("cmdstat_{command}:");
    let Some(line) = info.lines().find(|l| l.starts_with(&prefix)) else {
        return (0, 0);
    };
    let field = |name: &str| {
        line[prefix.len()..]
            .split(',')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("calls"), field("failed_calls"))
}

/// Rows per `event_id` in `table` (an effect table without a unique key, so a double effect
/// shows as a count of 2).
pub async fn effect_counts(db: &sea_orm::DatabaseConnection, table: &str) -> HashMap<String, i64> {
    use sea_orm::ConnectionTrait as _;
    db.query_all_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        format!("SELECT event_id, COUNT(*) FROM {table} GROUP BY event_id"),
    ))
    .await
    .unwrap()
    .iter()
    .map(|row| {
        (
            row.try_get_by_index::<String>(0).unwrap(),
            row.try_get_by_index::<i64>(1).unwrap(),
        )
    })
    .collect()
}
