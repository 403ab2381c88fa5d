//! Low-level Redis plumbing for the runtime: connections with the right timeouts, parsing of
//! stream replies, and error classification.

use std::{collections::HashMap, time::Duration};

use crate::envelope::Fields;

use redis::{RedisError, Value};

use crate::connection::{Conn, RedisTarget};

/// Opens a managed (auto-reconnecting, multiplexed) connection whose commands time out after
/// `response_timeout`. The first connection attempt is lazy, so a service starts while Redis is
/// down and reports not-ready until it comes back.
pub fn managed(target: &RedisTarget, response_timeout: Duration) -> redis::RedisResult<Conn> {
    target.managed(response_timeout)
}

/// A command connection: short response timeout, never used for blocking commands.
pub fn command_connection(target: &RedisTarget) -> redis::RedisResult<Conn> {
    target.command_connection()
}

/// The server error code (`NOGROUP`, `BUSYGROUP`, …) of an error, if it is one.
pub fn error_code(error: &RedisError) -> Option<&str> {
    error.code()
}

pub fn is_nogroup(error: &RedisError) -> bool {
    error_code(error) == Some("NOGROUP")
}

/// One stream entry as read: `fields` is `None` when the payload was trimmed away (pending entry
/// whose data no longer exists).
#[derive(Debug, Clone)]
pub struct RawEntry {
    pub stream_key: String,
    pub id: String,
    pub fields: Option<Fields>,
}

fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

fn into_bytes(v: Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b,
        Value::SimpleString(s) => s.into_bytes(),
        Value::Int(i) => i.to_string().into_bytes(),
        _ => Vec::new(),
    }
}

fn into_string(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        other => as_string(&other),
    }
}

fn field_map(v: Value) -> Option<Fields> {
    let items = match v {
        Value::Array(items) => items,
        Value::Map(pairs) => {
            return Some(
                pairs
                    .into_iter()
                    .filter_map(|(k, v)| Some((into_string(k)?, into_bytes(v))))
                    .collect(),
            );
        }
        _ => return None,
    };
    let mut fields = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        if let Some(k) = into_string(k) {
            fields.push((k, into_bytes(v)));
        }
    }
    Some(fields)
}

/// Parses a list of `[id, [field, value, …]]` entries (XRANGE, XCLAIM, one stream of XREAD).
pub fn parse_entries(stream_key: &str, v: Value) -> Vec<RawEntry> {
    let Value::Array(entries) = v else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter_map(|entry| {
            let Value::Array(mut parts) = entry else {
                return None;
            };
            if parts.is_empty() {
                return None;
            }
            let fields = if parts.len() > 1 {
                field_map(parts.swap_remove(1))
            } else {
                None
            };
            let id = as_string(&parts[0])?;
            Some(RawEntry {
                stream_key: stream_key.to_owned(),
                id,
                fields,
            })
        })
        .collect()
}

/// Parses an `XREAD`/`XREADGROUP` reply (RESP2 array or RESP3 map; nil when the block timed out).
pub fn parse_read_reply(v: Value) -> Vec<RawEntry> {
    let streams: Vec<(Value, Value)> = match v {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(mut kv) if kv.len() == 2 => {
                    let entries = kv.pop()?;
                    let key = kv.pop()?;
                    Some((key, entries))
                }
                _ => None,
            })
            .collect(),
        Value::Map(pairs) => pairs,
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for (key, entries) in streams {
        if let Some(key) = as_string(&key) {
            out.extend(parse_entries(&key, entries));
        }
    }
    out
}

/// Polls a request once, so that it is handed to its connection now, then yields so that the
/// connection's task writes it before the caller goes on with other work; returns the request,
/// to be awaited later.
pub async fn send_now<'a, T: Send + 'a>(
    mut request: futures::future::BoxFuture<'a, T>,
) -> futures::future::BoxFuture<'a, T> {
    use futures::FutureExt as _;
    if let std::task::Poll::Ready(done) = futures::poll!(&mut request) {
        request = futures::future::ready(done).boxed();
    }
    tokio::task::yield_now().await;
    request
}

/// How many entries an `XREADGROUP` reply holds, counted without taking it apart (the reader
/// decides from it whether to send the next read before it parses this one).
pub fn read_reply_len(v: &Value) -> usize {
    let entries_len = |entries: &Value| match entries {
        Value::Array(entries) => entries.len(),
        _ => 0,
    };
    match v {
        Value::Array(streams) => streams
            .iter()
            .map(|s| match s {
                Value::Array(kv) if kv.len() == 2 => entries_len(&kv[1]),
                _ => 0,
            })
            .sum(),
        Value::Map(pairs) => pairs.iter().map(|(_, entries)| entries_len(entries)).sum(),
        _ => 0,
    }
}

/// Parses an `XAUTOCLAIM` reply: (next cursor, claimed entries, ids deleted from the PEL because
/// their payload no longer exists).
pub fn parse_autoclaim(stream_key: &str, v: Value) -> (String, Vec<RawEntry>, Vec<String>) {
    let Value::Array(mut parts) = v else {
        return ("0-0".into(), Vec::new(), Vec::new());
    };
    let deleted = if parts.len() > 2 {
        match parts.swap_remove(2) {
            Value::Array(ids) => ids.iter().filter_map(as_string).collect(),
            _ => Vec::new(),
        }
    } else {
        Vec::new()
    };
    let entries = if parts.len() > 1 {
        parse_entries(stream_key, parts.swap_remove(1))
    } else {
        Vec::new()
    };
    let cursor = parts
        .first()
        .and_then(as_string)
        .unwrap_or_else(|| "0-0".into());
    (cursor, entries, deleted)
}

/// Parses the reply of the summary-less `XPENDING key group start end count [consumer]`:
/// (id, consumer, idle ms, delivery count) per entry.
pub fn parse_pending_range(v: Value) -> Vec<(String, String, u64, u64)> {
    let Value::Array(rows) = v else {
        return Vec::new();
    };
    rows.into_iter()
        .filter_map(|row| {
            let Value::Array(cols) = row else { return None };
            if cols.len() < 4 {
                return None;
            }
            let num = |v: &Value| match v {
                Value::Int(i) => Some(*i as u64),
                other => as_string(other)?.parse().ok(),
            };
            Some((
                as_string(&cols[0])?,
                as_string(&cols[1])?,
                num(&cols[2])?,
                num(&cols[3])?,
            ))
        })
        .collect()
}

/// Reads a flat `[key, value, key, value …]` reply (XINFO) into a map of values.
pub fn flat_map(v: Value) -> HashMap<String, Value> {
    match v {
        Value::Array(items) => {
            let mut map = HashMap::new();
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                if let Some(k) = as_string(&k) {
                    map.insert(k, v);
                }
            }
            map
        }
        Value::Map(pairs) => pairs
            .into_iter()
            .filter_map(|(k, v)| Some((as_string(&k)?, v)))
            .collect(),
        _ => HashMap::new(),
    }
}

/// A value of an XINFO map as a string.
pub fn value_str(v: Option<&Value>) -> Option<String> {
    v.and_then(as_string)
}

/// A value of an XINFO map as an integer.
pub fn value_int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Int(i) => Some(*i),
        other => as_string(other)?.parse().ok(),
    }
}

/// Parses a stream id `ms-seq` (or `ms`, meaning `ms-0`). On the hot path: every entry read is
/// tracked by its parsed id.
pub fn parse_id(id: &str) -> Option<(u64, u64)> {
    fn number(digits: &[u8]) -> Option<u64> {
        if digits.is_empty() {
            return None;
        }
        digits.iter().try_fold(0u64, |n, &d| {
            if d.is_ascii_digit() {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            } else {
                None
            }
        })
    }
    let bytes = id.as_bytes();
    match bytes.iter().position(|&b| b == b'-') {
        Some(dash) => Some((number(&bytes[..dash])?, number(&bytes[dash + 1..])?)),
        None => Some((number(bytes)?, 0)),
    }
}

/// The smallest id strictly greater than `id`.
pub fn next_id(id: &str) -> Option<String> {
    let (ms, seq) = parse_id(id)?;
    Some(match seq.checked_add(1) {
        Some(seq) => format!("{ms}-{seq}"),
        None => format!("{}-0", ms + 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_step() {
        assert_eq!(parse_id("1700000000000-42"), Some((1_700_000_000_000, 42)));
        assert_eq!(parse_id("5"), Some((5, 0)));
        assert_eq!(parse_id("18446744073709551615-0"), Some((u64::MAX, 0)));
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "1-2-3",
            "a-1",
            "1-b",
            "18446744073709551616-0",
            "+1-0",
        ] {
            assert_eq!(parse_id(bad), None, "{bad}");
        }
        assert_eq!(next_id("1-2").as_deref(), Some("1-3"));
        assert_eq!(next_id("1-18446744073709551615").as_deref(), Some("2-0"));
    }

    #[test]
    fn read_replies_are_counted_without_parsing() {
        let entry = |id: &str| {
            Value::Array(vec![
                Value::BulkString(id.into()),
                Value::Array(vec![
                    Value::BulkString(b"k".to_vec()),
                    Value::BulkString(b"v".to_vec()),
                ]),
            ])
        };
        let stream = |key: &str, ids: &[&str]| {
            (
                Value::BulkString(key.into()),
                Value::Array(ids.iter().map(|id| entry(id)).collect()),
            )
        };
        let (a, b) = (stream("a", &["1-0", "2-0"]), stream("b", &["3-0"]));
        let resp2 = Value::Array(vec![
            Value::Array(vec![a.0.clone(), a.1.clone()]),
            Value::Array(vec![b.0.clone(), b.1.clone()]),
        ]);
        let resp3 = Value::Map(vec![a, b]);
        for reply in [resp2, resp3] {
            assert_eq!(read_reply_len(&reply), 3);
            assert_eq!(read_reply_len(&reply), parse_read_reply(reply).len());
        }
        assert_eq!(read_reply_len(&Value::Nil), 0);
    }
}
