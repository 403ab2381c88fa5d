//! The Redis side of a refresh: for every (stream, group) the service consumes, the group's lag
//! (with `runtime::inspect`'s counted fallback, as `meshctl groups` shows it), pending entries,
//! the age of the oldest pending entry and consumers, and the dead letters per pair.

use std::{
    collections::{BTreeSet, HashSet},
    time::{SystemTime, UNIX_EPOCH},
};

use crate::connection::Conn;
use redis::RedisResult;

use super::{dead_letters::DeadLetterTally, exposition::Family};
use crate::{
    keys::Keys,
    runtime::{inspect, redis_io},
};

pub const LAG: &str = "mesh_stream_group_lag";
pub const PENDING: &str = "mesh_stream_group_pending";
pub const OLDEST_PENDING_AGE: &str = "mesh_stream_group_oldest_pending_age_seconds";
pub const CONSUMERS: &str = "mesh_stream_group_consumers";
pub const DEAD_LETTERS: &str = "mesh_dead_letter_entries";

/// The families of one refresh of `pairs` (stream, group), in this order: lag, pending, oldest
/// pending age, consumers, dead letters. A stream or group that does not exist yet has no
/// samples (the worker creates both when it starts).
pub(crate) async fn collect(
    conn: &mut Conn,
    keys: &Keys,
    pairs: &BTreeSet<(String, String)>,
    tally: &mut DeadLetterTally,
) -> RedisResult<Vec<Family>> {
    let mut lag = Family::gauge(
        LAG,
        "Entries of the stream not yet delivered to the group (XINFO GROUPS lag; counted after \
         the group's last-delivered id when Redis reports it unknown).",
    );
    let mut pending = Family::gauge(
        PENDING,
        "Entries delivered to the group and not acknowledged yet.",
    );
    let mut oldest = Family::gauge(
        OLDEST_PENDING_AGE,
        "Age of the group's oldest pending entry (since it was added to the stream); 0 when \
         nothing is pending.",
    );
    let mut consumers = Family::gauge(CONSUMERS, "Consumers of the group.");
    let streams: BTreeSet<&String> = pairs.iter().map(|(s, _)| s).collect();
    for stream in streams {
        let key = keys.stream(stream);
        let exists: bool = redis::cmd("EXISTS").arg(&key).query_async(conn).await?;
        if !exists {
            continue;
        }
        for (group, state) in inspect::group_states(conn, &key).await? {
            if !pairs.contains(&(stream.clone(), group.clone())) {
                continue;
            }
            let labels = vec![("stream", stream.clone()), ("group", group.clone())];
            let (n, _source) = inspect::group_lag(conn, &key, &state).await?;
            lag.push(labels.clone(), n as f64);
            pending.push(labels.clone(), state.pending.max(0) as f64);
            let age = if state.pending > 0 {
                inspect::oldest_pending(conn, &key, &group)
                    .await?
                    .as_deref()
                    .map_or(0.0, id_age_seconds)
            } else {
                0.0
            };
            oldest.push(labels.clone(), age);
            consumers.push(labels, state.consumers.max(0) as f64);
        }
    }
    let mut dead = Family::gauge(
        DEAD_LETTERS,
        "Dead-letter entries from the stream and group, not replayed yet.",
    );
    let watched: HashSet<(String, String)> = pairs.iter().cloned().collect();
    let counts = tally.count(conn, keys, &watched).await?;
    for (stream, group) in pairs {
        let n = counts
            .get(&(stream.clone(), group.clone()))
            .copied()
            .unwrap_or(0);
        dead.push(
            vec![("stream", stream.clone()), ("group", group.clone())],
            n as f64,
        );
    }
    Ok(vec![lag, pending, oldest, consumers, dead])
}

/// Seconds since the entry `id` was added (its millisecond part); 0 for an id from the future.
fn id_age_seconds(id: &str) -> f64 {
    let Some((ms, _)) = redis_io::parse_id(id) else {
        return 0.0;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    now.saturating_sub(ms) as f64 / 1000.0
}
