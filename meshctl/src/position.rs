//! Parsing what the operator types: a position in a stream (an id, a time, `start`, `end`) and a
//! duration (`500ms`, `30s`, `5m`, `2h`, `7d`).

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use common::runtime::redis_io;

use crate::ctx::bad_input;

/// The largest sequence number of a stream id.
pub const MAX_SEQ: u64 = u64::MAX;

/// A point in a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    Start,
    End,
    /// A normalised id `ms-seq`.
    Id(String),
    /// Milliseconds since the epoch.
    Time(u64),
}

/// Parses `start`, `end`, an id (`1700000000000-0`, `1700000000000`), a time (RFC 3339,
/// `2026-01-02T03:04:05`, `now`) or an age (`10m`, `10m ago`).
pub fn parse_position(text: &str) -> anyhow::Result<Position> {
    let t = text.trim();
    match t {
        "start" | "-" | "first" => return Ok(Position::Start),
        "end" | "$" | "+" | "last" => return Ok(Position::End),
        "now" => return Ok(Position::Time(now_ms())),
        _ => {}
    }
    if t.chars().next().is_some_and(|c| c.is_ascii_digit()) && !t.contains(':') {
        if let Some(id) = parse_stream_id(t) {
            return Ok(Position::Id(id));
        }
        if let Ok(d) = parse_duration(t.trim_end_matches("ago").trim()) {
            return Ok(Position::Time(
                now_ms().saturating_sub(d.as_millis() as u64),
            ));
        }
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(t) {
        return Ok(Position::Time(time.timestamp_millis().max(0) as u64));
    }
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, format) {
            return Ok(Position::Time(
                naive.and_utc().timestamp_millis().max(0) as u64
            ));
        }
    }
    Err(bad_input(format!(
        "`{text}` is not a stream id (`<ms>-<seq>`), a time (RFC 3339, or an age like `10m`), \
         `start` or `end`"
    )))
}

/// A valid stream id, normalised to `ms-seq`.
pub fn parse_stream_id(text: &str) -> Option<String> {
    let t = text.trim();
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit() || c == '-') {
        return None;
    }
    let (ms, seq) = redis_io::parse_id(t)?;
    Some(format!("{ms}-{seq}"))
}

/// A stream id given as an argument, or a bad-input error.
pub fn require_id(text: &str) -> anyhow::Result<String> {
    parse_stream_id(text)
        .ok_or_else(|| bad_input(format!("`{text}` is not a stream id (`<ms>-<seq>`)")))
}

/// `500ms`, `30s`, `5m`, `2h`, `7d`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 500ms, 30s, 5m, 2h, 7d)"))?;
    let ms = match unit.trim() {
        "ms" => n,
        "" | "s" | "sec" => n * 1000,
        "m" | "min" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        _ => return Err(format!("`{text}`: unknown unit (use ms, s, m, h or d)")),
    };
    Ok(Duration::from_millis(ms))
}

pub fn now_ms() -> u64 {
    Utc::now().timestamp_millis().max(0) as u64
}

/// The id just before the first entry at or after `ms`: a group set there delivers every entry
/// from that time on.
pub fn id_before_time(ms: u64) -> String {
    match ms.checked_sub(1) {
        Some(prev) => format!("{prev}-{MAX_SEQ}"),
        None => "0-0".into(),
    }
}

/// Orders two ids; unparsable ids sort first.
pub fn id_key(id: &str) -> (u64, u64) {
    redis_io::parse_id(id).unwrap_or((0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_ids_times_and_ages_parse() {
        assert_eq!(parse_position("start").unwrap(), Position::Start);
        assert_eq!(parse_position("end").unwrap(), Position::End);
        assert_eq!(
            parse_position("1700000000000-3").unwrap(),
            Position::Id("1700000000000-3".into())
        );
        assert_eq!(
            parse_position("2023-11-14T22:13:20Z").unwrap(),
            Position::Time(1_700_000_000_000)
        );
        assert!(matches!(
            parse_position("10m ago").unwrap(),
            Position::Time(_)
        ));
        assert!(parse_position("nonsense").is_err());
        assert!(parse_position("12-x").is_err());
        assert_eq!(id_before_time(1000), format!("999-{MAX_SEQ}"));
    }
}
