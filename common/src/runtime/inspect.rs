//! Read-only views of stream and group state, shared by tests, the benchmark, `meshctl` and the
//! services' metrics (`crate::monitoring`): a group's state from `XINFO GROUPS`, its lag with the
//! counted fallback when Redis cannot tell, and its oldest pending entry.

use crate::connection::Conn;
use redis::{RedisResult, Value};

use super::redis_io;

/// State of one group on one stream, from `XINFO GROUPS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupState {
    pub pending: i64,
    /// `None` when Redis cannot tell.
    pub lag: Option<i64>,
    pub last_delivered_id: String,
    /// Entries the group has read (`None` when Redis does not know).
    pub entries_read: Option<i64>,
    pub consumers: i64,
}

impl GroupState {
    /// Everything read and acknowledged.
    pub fn is_drained(&self) -> bool {
        self.pending == 0 && self.lag == Some(0)
    }

    /// The state of one `XINFO GROUPS` element, with its group name.
    fn parse(raw: Value) -> Option<(String, Self)> {
        let info = redis_io::flat_map(raw);
        let name = redis_io::value_str(info.get("name"))?;
        Some((
            name,
            Self {
                pending: redis_io::value_int(info.get("pending")).unwrap_or(0),
                lag: redis_io::value_int(info.get("lag")),
                last_delivered_id: redis_io::value_str(info.get("last-delivered-id"))
                    .unwrap_or_else(|| "0-0".into()),
                entries_read: redis_io::value_int(info.get("entries-read")),
                consumers: redis_io::value_int(info.get("consumers")).unwrap_or(0),
            },
        ))
    }
}

/// `XINFO GROUPS` of `stream_key`: every group with its state (an error if the stream does not
/// exist).
pub async fn group_states(
    conn: &mut Conn,
    stream_key: &str,
) -> RedisResult<Vec<(String, GroupState)>> {
    let groups: Vec<Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream_key)
        .query_async(conn)
        .await?;
    Ok(groups.into_iter().filter_map(GroupState::parse).collect())
}

/// `XINFO GROUPS` of `stream_key`, for `group`; `None` if the group does not exist.
pub async fn group_state(conn: &mut Conn, stream_key: &str, group: &str) -> Option<GroupState> {
    group_states(conn, stream_key)
        .await
        .ok()?
        .into_iter()
        .find_map(|(name, state)| (name == group).then_some(state))
}

/// Where a group's lag came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LagSource {
    /// `XINFO GROUPS` reported it.
    Redis,
    /// Redis reported it unknown (entries after the group's position were deleted, or the group
    /// was created or moved without an entries-read count): the entries after the group's
    /// last-delivered id were counted.
    Counted,
}

/// Entries not yet delivered to a group: Redis's `lag` when it knows it, else counted after the
/// group's last-delivered id (which costs an `XRANGE` walk over those entries). A group whose
/// last-delivered id is the stream's last entry has no lag whatever Redis says: after a
/// replica of a Redis Cluster was promoted by a `kill -9` of its master, the group's entries-read
/// count can lag behind the stream's entries-added for good, and Redis keeps reporting the
/// difference (seen with Redis 7.0 in the failover test).
pub async fn group_lag(
    conn: &mut Conn,
    stream_key: &str,
    state: &GroupState,
) -> RedisResult<(u64, LagSource)> {
    Ok(match state.lag {
        Some(lag)
            if lag > 0
                && last_id(conn, stream_key).await? == Some(state.last_delivered_id.clone()) =>
        {
            (0, LagSource::Counted)
        }
        Some(lag) => (lag.max(0) as u64, LagSource::Redis),
        None => (
            count_after(conn, stream_key, &state.last_delivered_id).await?,
            LagSource::Counted,
        ),
    })
}

/// The oldest pending id of a group (`XPENDING` summary); `None` when nothing is pending.
pub async fn oldest_pending(
    conn: &mut Conn,
    stream_key: &str,
    group: &str,
) -> RedisResult<Option<String>> {
    let summary: Value = redis::cmd("XPENDING")
        .arg(stream_key)
        .arg(group)
        .query_async(conn)
        .await?;
    Ok(match summary {
        Value::Array(parts) => redis_io::value_str(parts.get(1)),
        _ => None,
    })
}

/// The id of the stream's last entry; `None` when it has none.
pub async fn last_id(conn: &mut Conn, stream_key: &str) -> RedisResult<Option<String>> {
    let last: Value = redis::cmd("XREVRANGE")
        .arg(stream_key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await?;
    Ok(redis_io::parse_entries(stream_key, last)
        .pop()
        .map(|e| e.id))
}

/// Entries with an id strictly greater than `after`.
pub async fn count_after(conn: &mut Conn, stream_key: &str, after: &str) -> RedisResult<u64> {
    count_range(conn, stream_key, &format!("({after}"), "+").await
}

/// Entries between `start` and `end` (XRANGE syntax), counted page by page.
pub async fn count_range(
    conn: &mut Conn,
    stream_key: &str,
    start: &str,
    end: &str,
) -> RedisResult<u64> {
    let mut n = 0u64;
    let mut start = start.to_owned();
    loop {
        let page: Value = redis::cmd("XRANGE")
            .arg(stream_key)
            .arg(&start)
            .arg(end)
            .arg("COUNT")
            .arg(10_000)
            .query_async(conn)
            .await?;
        let entries = redis_io::parse_entries(stream_key, page);
        let Some(last) = entries.last() else {
            return Ok(n);
        };
        n = n.saturating_add(entries.len() as u64);
        start = format!("({}", last.id);
    }
}
