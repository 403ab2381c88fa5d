//! Read-only views of stream and group state (used by tests, the benchmark and operators).

use redis::{Value, aio::ConnectionManager};

use super::redis_io;

/// State of one group on one stream, from `XINFO GROUPS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupState {
    pub pending: i64,
    /// `None` when Redis cannot tell.
    pub lag: Option<i64>,
    pub last_delivered_id: String,
    pub consumers: i64,
}

impl GroupState {
    /// Everything read and acknowledged.
    pub fn is_drained(&self) -> bool {
        self.pending == 0 && self.lag == Some(0)
    }
}

/// `XINFO GROUPS` of `stream_key`, for `group`; `None` if the group does not exist.
pub async fn group_state(
    conn: &mut ConnectionManager,
    stream_key: &str,
    group: &str,
) -> Option<GroupState> {
    let groups: Vec<Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream_key)
        .query_async(conn)
        .await
        .ok()?;
    groups.into_iter().find_map(|g| {
        let info = redis_io::flat_map(g);
        (redis_io::value_str(info.get("name"))? == group).then(|| GroupState {
            pending: redis_io::value_int(info.get("pending")).unwrap_or(0),
            lag: redis_io::value_int(info.get("lag")),
            last_delivered_id: redis_io::value_str(info.get("last-delivered-id"))
                .unwrap_or_default(),
            consumers: redis_io::value_int(info.get("consumers")).unwrap_or(0),
        })
    })
}
