//! `check`: a probe for cron or monitoring. Thresholds on lag, the age of the oldest pending entry
//! and the dead-letter size; a one-line summary; exit 0 ok, 1 warning, 2 critical. A value at or
//! above a threshold trips it. A group that missed trimmed entries is a warning.

use std::time::Duration;

use clap::Args;
use serde::Serialize;

use crate::{
    ctx::{Ctx, exit},
    dead_letters, fmt, info,
    position::parse_duration,
};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Lag (entries not yet delivered to a group) that is a warning.
    #[arg(long, default_value_t = 1_000)]
    pub lag_warn: u64,
    /// Lag that is critical.
    #[arg(long, default_value_t = 10_000)]
    pub lag_crit: u64,
    /// Age of a group's oldest pending entry (since it was added) that is a warning.
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    pub pending_age_warn: Duration,
    /// Age of the oldest pending entry that is critical.
    #[arg(long, value_parser = parse_duration, default_value = "30m")]
    pub pending_age_crit: Duration,
    /// Dead-letter entries not yet replayed that are a warning.
    #[arg(long, default_value_t = 1)]
    pub dead_letter_warn: u64,
    /// Dead-letter entries not yet replayed that are critical.
    #[arg(long, default_value_t = 100)]
    pub dead_letter_crit: u64,
}

#[derive(Debug, Serialize)]
struct Finding {
    /// `warning` or `critical`.
    level: &'static str,
    /// `stream/group`, or `dead-letter`.
    subject: String,
    /// `lag`, `oldest_pending_age_ms`, `dead_letters`, `behind_first_entry`.
    metric: &'static str,
    value: u64,
    threshold: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    /// `ok`, `warning` or `critical`.
    status: &'static str,
    exit_code: u8,
    summary: String,
    streams: usize,
    groups: usize,
    max_lag: u64,
    max_pending_age_ms: u64,
    dead_letters: u64,
    findings: Vec<Finding>,
}

fn grade(
    findings: &mut Vec<Finding>,
    subject: &str,
    metric: &'static str,
    value: u64,
    (warn, crit): (u64, u64),
) {
    let (level, threshold) = if value >= crit {
        ("critical", crit)
    } else if value >= warn {
        ("warning", warn)
    } else {
        return;
    };
    findings.push(Finding {
        level,
        subject: subject.to_owned(),
        metric,
        value,
        threshold,
    });
}

pub async fn check(ctx: &mut Ctx, a: &CheckArgs) -> anyhow::Result<u8> {
    let dead = dead_letters::Counts::load(ctx).await?;
    let mut findings = Vec::new();
    let (mut streams, mut groups, mut max_lag, mut max_age) = (0, 0, 0u64, 0u64);
    for name in info::mesh_streams(ctx).await? {
        let s = info::stream_info(ctx, &name, &dead).await?;
        if !s.exists {
            continue;
        }
        streams += 1;
        for g in info::groups_of(ctx, &s, &dead).await? {
            groups += 1;
            let subject = format!("{}/{}", g.stream, g.group);
            max_lag = max_lag.max(g.lag);
            grade(
                &mut findings,
                &subject,
                "lag",
                g.lag,
                (a.lag_warn, a.lag_crit),
            );
            let age = g.oldest_pending_age_ms.unwrap_or(0);
            max_age = max_age.max(age);
            let limits = (
                a.pending_age_warn.as_millis() as u64,
                a.pending_age_crit.as_millis() as u64,
            );
            if g.pending > 0 {
                grade(
                    &mut findings,
                    &subject,
                    "oldest_pending_age_ms",
                    age,
                    limits,
                );
            }
            if g.behind_first_entry {
                grade(
                    &mut findings,
                    &subject,
                    "behind_first_entry",
                    1,
                    (1, u64::MAX),
                );
            }
        }
    }
    let dead_total = dead.total();
    grade(
        &mut findings,
        "dead-letter",
        "dead_letters",
        dead_total,
        (a.dead_letter_warn, a.dead_letter_crit),
    );
    let (status, code) = if findings.iter().any(|f| f.level == "critical") {
        ("critical", exit::CRITICAL)
    } else if findings.is_empty() {
        ("ok", exit::OK)
    } else {
        ("warning", exit::WARNING)
    };
    let mut summary = format!(
        "{}: {streams} streams, {groups} groups, max lag {max_lag}, oldest pending {}, \
         {dead_total} dead letters",
        status.to_uppercase(),
        fmt::duration(max_age)
    );
    if !findings.is_empty() {
        let details: Vec<String> = findings
            .iter()
            .map(|f| {
                let (v, t) = if f.metric == "oldest_pending_age_ms" {
                    (fmt::duration(f.value), fmt::duration(f.threshold))
                } else {
                    (f.value.to_string(), f.threshold.to_string())
                };
                format!("{} {} {} {v} >= {t}", f.level, f.subject, f.metric)
            })
            .collect();
        summary.push_str(" — ");
        summary.push_str(&details.join("; "));
    }
    let report = Report {
        status,
        exit_code: code,
        summary,
        streams,
        groups,
        max_lag,
        max_pending_age_ms: max_age,
        dead_letters: dead_total,
        findings,
    };
    if ctx.json {
        fmt::print_json(&report)?;
    } else {
        println!("{}", report.summary);
    }
    Ok(code)
}
