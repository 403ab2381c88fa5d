//! Stream helpers over a Redis connection: wait until a group has handled everything, until
//! readers are blocked, count a group's consumers, count and decode the entries of a stream.

use std::time::Duration;

use crate::connection::Conn;

use super::wait::wait_until;
use crate::{Envelope, Keys, events::Event, runtime::redis_io};

pub use crate::runtime::inspect::{GroupState, group_state};

/// Waits until `group` has read everything on `stream_key` and nothing is pending.
pub async fn wait_drained(conn: &mut Conn, stream_key: &str, group: &str, timeout: Duration) {
    let what = format!("group {group} drained on {stream_key}");
    wait_until(timeout, &what, || {
        let mut conn = conn.clone();
        async move {
            matches!(
                group_state(&mut conn, stream_key, group).await,
                Some(GroupState {
                    pending: 0,
                    lag: Some(0),
                    ..
                })
            )
        }
    })
    .await;
}

/// Waits until at least `n` clients are blocked in `XREADGROUP` on this server (`CLIENT LIST`).
///
/// A replica joins a group only when a read first hands it entries (Redis 7.0 creates the
/// consumer then), and its `/readyz` may answer a moment before its first read. Tests that assert
/// replicas shared the work wait for every replica's reader to block before publishing: each
/// `XADD` then wakes a waiting reader, so every replica gets entries.
pub async fn wait_blocked_readers(conn: &mut Conn, n: usize, timeout: Duration) {
    let what = format!("{n} readers blocked in XREADGROUP");
    wait_until(timeout, &what, || {
        let mut conn = conn.clone();
        async move {
            let clients: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            let blocked = clients
                .lines()
                .filter(|line| {
                    let mut fields = line.split(' ');
                    let flags_blocked = fields
                        .clone()
                        .any(|f| f.strip_prefix("flags=").is_some_and(|v| v.contains('b')));
                    flags_blocked && fields.any(|f| f == "cmd=xreadgroup")
                })
                .count();
            blocked >= n
        }
    })
    .await;
}

/// The number of consumers `group` has on `stream_key` (`XINFO CONSUMERS`).
pub async fn consumer_count(conn: &mut Conn, stream_key: &str, group: &str) -> usize {
    let consumers: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream_key)
        .arg(group)
        .query_async(conn)
        .await
        .expect("XINFO CONSUMERS");
    consumers.len()
}

/// Length of a stream.
pub async fn xlen(conn: &mut Conn, stream_key: &str) -> u64 {
    redis::cmd("XLEN")
        .arg(stream_key)
        .query_async(conn)
        .await
        .unwrap_or(0)
}

/// Every event on stream `T::TYPE`, oldest first, decoded; panics on an entry that is not a valid
/// `T` (a test reading a stream expects only what the services write).
pub async fn read_events<T: Event>(conn: &mut Conn, keys: &Keys) -> Vec<(Envelope, T)> {
    let key = keys.stream(T::TYPE);
    let reply: redis::Value = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .expect("XRANGE");
    redis_io::parse_entries(&key, reply)
        .into_iter()
        .map(|entry| {
            let envelope = Envelope::from_fields(&entry.fields.expect("entry fields"))
                .expect("a valid envelope");
            let payload = envelope.payload::<T>().expect("a valid payload");
            (envelope, payload)
        })
        .collect()
}

/// The number of entries on every dead-letter stream of `keys`'s prefix.
pub async fn dead_letter_total(
    redis: &dyn super::redis_cluster::TestRedis,
    keys: &crate::Keys,
) -> u64 {
    let mut conn = redis.connection();
    let origins = crate::runtime::dead_letter::origins(&redis.target(), &mut conn, keys)
        .await
        .expect("SCAN for dead-letter streams");
    let mut total = 0;
    for origin in origins {
        total += xlen(&mut conn, &keys.dead_letter(&origin)).await;
    }
    total
}
