//! Safe trimming: never delete an entry some group has not acknowledged. The trim point is the
//! oldest point every group is past — its oldest pending entry, or else the entry after its last
//! delivered id — further limited by a retention floor (keep at least this much recent history).

use std::time::Duration;

use crate::connection::Conn;
use redis::{RedisResult, Value};

use super::redis_io;

/// What a safe trim would do, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrimPlan {
    /// Entries with ids below this are removed (`XTRIM MINID`); `None`: nothing can be trimmed.
    pub min_id: Option<String>,
    /// Which constraint set `min_id`: `group <name> pending`, `group <name> delivered`,
    /// `retention floor`, or why nothing can be trimmed.
    pub reason: String,
    /// Entries that would be removed.
    pub would_remove: u64,
}

/// Computes the trim point of `stream_key` without changing anything.
pub async fn plan(conn: &mut Conn, stream_key: &str, retention: Duration) -> RedisResult<TrimPlan> {
    let groups: Vec<Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream_key)
        .query_async(conn)
        .await?;
    if groups.is_empty() {
        return Ok(TrimPlan {
            min_id: None,
            reason: "no consumer group reads this stream; nothing is known to be processed".into(),
            would_remove: 0,
        });
    }
    let mut best: Option<((u64, u64), String, String)> = None;
    for group in groups {
        let info = redis_io::flat_map(group);
        let name = redis_io::value_str(info.get("name")).unwrap_or_default();
        let pending = redis_io::value_int(info.get("pending")).unwrap_or(0);
        let (point, why) = if pending > 0 {
            // The oldest pending entry of the group.
            let summary: Value = redis::cmd("XPENDING")
                .arg(stream_key)
                .arg(&name)
                .query_async(conn)
                .await?;
            let oldest = match summary {
                Value::Array(ref parts) if parts.len() >= 2 => redis_io::value_str(parts.get(1)),
                _ => None,
            };
            match oldest {
                Some(id) => (id, format!("group {name} has entries pending from")),
                None => continue,
            }
        } else {
            let last =
                redis_io::value_str(info.get("last-delivered-id")).unwrap_or_else(|| "0-0".into());
            let next = redis_io::next_id(&last).unwrap_or_else(|| "0-1".into());
            (next, format!("group {name} has read up to {last}"))
        };
        let Some(parsed) = redis_io::parse_id(&point) else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _, _)| parsed < *b) {
            best = Some((parsed, point, why));
        }
    }
    let Some((mut parsed, mut point, mut why)) = best else {
        return Ok(TrimPlan {
            min_id: None,
            reason: "no readable group state".into(),
            would_remove: 0,
        });
    };
    // Retention floor: keep everything newer than now - retention.
    let floor_ms =
        (chrono::Utc::now().timestamp_millis() - retention.as_millis() as i64).max(0) as u64;
    if floor_ms < parsed.0 || (floor_ms == parsed.0 && parsed.1 > 0) {
        parsed = (floor_ms, 0);
        point = format!("{floor_ms}-0");
        why = format!("retention floor keeps the last {}s", retention.as_secs());
    }
    let _ = parsed;
    // Count what would go: entries strictly below `point`.
    let below: Vec<Value> = redis::cmd("XRANGE")
        .arg(stream_key)
        .arg("-")
        .arg(format!("({point}"))
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await
        .unwrap_or_default();
    let would_remove = if below.is_empty() {
        0
    } else {
        count_below(conn, stream_key, &point).await?
    };
    Ok(TrimPlan {
        min_id: Some(point),
        reason: why,
        would_remove,
    })
}

async fn count_below(conn: &mut Conn, stream_key: &str, point: &str) -> RedisResult<u64> {
    let mut n = 0u64;
    let mut start = "-".to_owned();
    loop {
        let page: Value = redis::cmd("XRANGE")
            .arg(stream_key)
            .arg(&start)
            .arg(format!("({point}"))
            .arg("COUNT")
            .arg(10_000)
            .query_async(conn)
            .await?;
        let entries = redis_io::parse_entries(stream_key, page);
        let Some(last) = entries.last() else {
            return Ok(n);
        };
        n += entries.len() as u64;
        start = format!("({}", last.id);
    }
}

/// Trims `stream_key` to the safe point; returns the plan it applied and how many entries went.
pub async fn trim(
    conn: &mut Conn,
    stream_key: &str,
    retention: Duration,
) -> RedisResult<(TrimPlan, u64)> {
    let plan = plan(conn, stream_key, retention).await?;
    let removed = match &plan.min_id {
        Some(min_id) if plan.would_remove > 0 => {
            redis::cmd("XTRIM")
                .arg(stream_key)
                .arg("MINID")
                .arg("=")
                .arg(min_id)
                .query_async::<u64>(conn)
                .await?
        }
        _ => 0,
    };
    Ok((plan, removed))
}
