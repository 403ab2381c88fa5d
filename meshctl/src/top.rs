//! `top`: a live view refreshed every second — per stream the rate in (entries added), per group
//! the rate out (entries read), lag, pending and dead letters. `--iterations` bounds it (tests,
//! scripts); `--json` prints one JSON line per refresh.

use std::{collections::HashMap, io::IsTerminal, time::Duration};

use clap::Args;
use serde::Serialize;

use crate::{ctx::Ctx, dead_letters, fmt, info, position::parse_duration};

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Refresh period.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub interval: Duration,
    /// Stop after this many refreshes (default: until interrupted).
    #[arg(long)]
    pub iterations: Option<u64>,
}

#[derive(Debug, Serialize)]
struct GroupRow {
    group: String,
    /// Entries read per second since the previous refresh (`None` on the first).
    rate_out: Option<f64>,
    lag: u64,
    pending: i64,
    dead_letters: u64,
}

#[derive(Debug, Serialize)]
struct StreamRow {
    stream: String,
    length: u64,
    /// Entries added per second since the previous refresh (`None` on the first).
    rate_in: Option<f64>,
    groups: Vec<GroupRow>,
}

#[derive(Debug, Serialize)]
struct Frame {
    at: String,
    iteration: u64,
    streams: Vec<StreamRow>,
}

pub async fn top(ctx: &mut Ctx, a: &TopArgs) -> anyhow::Result<()> {
    // Counters of the previous refresh: entries added per stream, entries read per group.
    let mut prev: HashMap<String, u64> = HashMap::new();
    let mut prev_at: Option<std::time::Instant> = None;
    let tty = std::io::stdout().is_terminal();
    let mut iteration = 0u64;
    let mut ticker = tokio::time::interval(a.interval.max(Duration::from_millis(100)));
    loop {
        ticker.tick().await;
        iteration += 1;
        let now = std::time::Instant::now();
        let dt = prev_at.map(|t| now.duration_since(t).as_secs_f64().max(1e-3));
        let rate = |prev: &HashMap<String, u64>, k: &str, v: Option<u64>| -> Option<f64> {
            let (v, p, dt) = (v?, *prev.get(k)?, dt?);
            Some(((v.saturating_sub(p)) as f64 / dt * 10.0).round() / 10.0)
        };
        let dead = dead_letters::Counts::load(ctx).await?;
        let mut next = HashMap::new();
        let mut streams = Vec::new();
        for name in info::mesh_streams(ctx).await? {
            let s = info::stream_info(ctx, &name, &dead).await?;
            if !s.exists {
                continue;
            }
            let mut groups = Vec::new();
            for g in info::groups_of(ctx, &s, &dead).await? {
                let k = format!("g\0{name}\0{}", g.group);
                let read = g.entries_read.map(|v| v.max(0) as u64);
                groups.push(GroupRow {
                    rate_out: rate(&prev, &k, read),
                    lag: g.lag,
                    pending: g.pending,
                    dead_letters: g.dead_letters,
                    group: g.group,
                });
                if let Some(read) = read {
                    next.insert(k, read);
                }
            }
            let k = format!("s\0{name}");
            let row = StreamRow {
                rate_in: rate(&prev, &k, s.entries_added),
                length: s.length,
                stream: name,
                groups,
            };
            if let Some(added) = s.entries_added {
                next.insert(k, added);
            }
            streams.push(row);
        }
        let frame = Frame {
            at: fmt::rfc3339(crate::position::now_ms()).unwrap_or_default(),
            iteration,
            streams,
        };
        if ctx.json {
            fmt::print_json_line(&frame)?;
        } else {
            render(&frame, tty);
        }
        prev = next;
        prev_at = Some(now);
        if a.iterations.is_some_and(|n| iteration >= n) {
            return Ok(());
        }
    }
}

fn render(frame: &Frame, tty: bool) {
    if tty {
        // Clear the screen and go home, like top(1).
        print!("\x1b[2J\x1b[H");
    }
    println!("meshctl top — {} (refresh #{})", frame.at, frame.iteration);
    let mut t = fmt::table([
        "STREAM", "GROUP", "LENGTH", "IN/s", "OUT/s", "LAG", "PENDING", "DEAD",
    ]);
    let rate = |r: Option<f64>| r.map(|r| format!("{r:.1}")).unwrap_or_else(|| "…".into());
    for s in &frame.streams {
        t.add_row([
            s.stream.clone(),
            String::new(),
            s.length.to_string(),
            rate(s.rate_in),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
        for g in &s.groups {
            t.add_row([
                String::new(),
                g.group.clone(),
                String::new(),
                String::new(),
                rate(g.rate_out),
                g.lag.to_string(),
                g.pending.to_string(),
                g.dead_letters.to_string(),
            ]);
        }
    }
    println!("{t}");
}
