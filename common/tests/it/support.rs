//! Helpers shared by the runtime tests: spawning the `mesh-testworker` binary, reading its effects
//! and counters, and Redis's command statistics. Publishing, in-process workers and reading
//! streams come from `common::stream_testing` (meshctl's tests use them too).

use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
};

use common::connection::Conn;
use common::{
    Keys,
    testing::{Proc, TestRedis},
};

pub use common::stream_testing::{InProcessWorker, Recorder, pending, publish_n, stream_entries};

/// Spawns `mesh-testworker` with the given arguments (plus the server and prefix).
pub fn spawn_testworker(redis: &dyn TestRedis, keys: &Keys, args: &[&str]) -> Child {
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
pub async fn redis_effects(conn: &mut Conn, keys: &Keys) -> HashMap<String, i64> {
    redis::cmd("HGETALL")
        .arg(format!("{}effects", keys.prefix()))
        .query_async(conn)
        .await
        .unwrap()
}

/// `spawn_testworker`, guarded by [`Proc`].
pub fn testworker(redis: &dyn TestRedis, keys: &Keys, args: &[&str]) -> Proc {
    Proc(spawn_testworker(redis, keys, args))
}

/// An integer counter key under the test's prefix (`GET <prefix><name>`), 0 when missing.
pub async fn counter(conn: &mut Conn, keys: &Keys, name: &str) -> i64 {
    let v: Option<i64> = redis::cmd("GET")
        .arg(format!("{}{name}", keys.prefix()))
        .query_async(conn)
        .await
        .unwrap();
    v.unwrap_or(0)
}

/// `calls` and `failed_calls` of one command (lower case, e.g. `xautoclaim`) from
/// `INFO commandstats`, since the server started.
pub async fn command_calls(conn: &mut Conn, command: &str) -> (u64, u64) {
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

pub(crate) use common::on_one_server_and_a_cluster;
