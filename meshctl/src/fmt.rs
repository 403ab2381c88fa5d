//! Output: readable durations and times for people, JSON for scripts, and the table style.

use std::io::Write as _;

use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::{Table, presets};
use serde::Serialize;

use crate::position::now_ms;

/// `850ms`, `12.4s`, `4m 05s`, `3h 12m`, `2d 4h`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m {:02}s", s / 60, s % 60),
        3_600_000..86_400_000 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// RFC 3339 UTC with milliseconds, for JSON.
pub fn rfc3339(ms: u64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms as i64)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// Milliseconds part of a stream id (the time it was added).
pub fn id_ms(id: &str) -> Option<u64> {
    common::runtime::redis_io::parse_id(id).map(|(ms, _)| ms)
}

/// The time an entry was added, for JSON.
pub fn id_time(id: &str) -> Option<String> {
    id_ms(id).filter(|ms| *ms > 0).and_then(rfc3339)
}

/// Milliseconds since an entry was added.
pub fn id_age_ms(id: &str) -> Option<u64> {
    id_ms(id)
        .filter(|ms| *ms > 0)
        .map(|ms| now_ms().saturating_sub(ms))
}

/// `2026-01-02 03:04:05 (12m 03s ago)` for a stream id; `-` for none.
pub fn id_when(id: Option<&str>) -> String {
    let Some(ms) = id.and_then(id_ms).filter(|ms| *ms > 0) else {
        return "-".into();
    };
    let Some(t) = DateTime::<Utc>::from_timestamp_millis(ms as i64) else {
        return "-".into();
    };
    format!(
        "{} ({} ago)",
        t.format("%Y-%m-%d %H:%M:%S"),
        duration(now_ms().saturating_sub(ms))
    )
}

/// `-` for a missing value.
pub fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// A table with a header and no borders (easy to read and to grep).
pub fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING).set_header(header);
    t
}

/// Prints a JSON document.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    writeln!(std::io::stdout(), "{text}").context("write to stdout")
}

/// Prints one JSON line (stdout is line-buffered: a reader of the pipe gets it at once).
pub fn print_json_line<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string(value)?;
    writeln!(std::io::stdout(), "{text}").context("write to stdout")
}

/// Whether `error` is stdout closed by its reader (`meshctl tail -f | head`): not a failure.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_well() {
        assert_eq!(super::duration(850), "850ms");
        assert_eq!(super::duration(12_400), "12.4s");
        assert_eq!(super::duration(245_000), "4m 05s");
        assert_eq!(super::duration(3 * 3_600_000 + 720_000), "3h 12m");
        assert_eq!(super::duration(2 * 86_400_000 + 4 * 3_600_000), "2d 4h");
    }
}
