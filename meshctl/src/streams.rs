//! Read-only views: `streams`, `stream <s>`, `groups [<s>]`, `consumers <s> <g>`,
//! `pending <s> <g>`. Each has a data function (`overview`, `group_rows`, `consumer_rows`,
//! `pending_rows`) that the console's pages call too, and a printer.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use common::runtime::redis_io;
use redis::Value;
use serde::Serialize;

use crate::{
    ctx::Ctx,
    dead_letters, fmt,
    info::{self, GroupInfo, StreamInfo},
    position::parse_duration,
};

/// Every stream of the mesh with its summary.
pub async fn overview(ctx: &mut Ctx) -> anyhow::Result<Vec<StreamInfo>> {
    let dead = dead_letters::Counts::load(ctx).await?;
    let mut rows = Vec::new();
    for name in info::mesh_streams(ctx).await? {
        rows.push(info::stream_info(ctx, &name, &dead).await?);
    }
    Ok(rows)
}

pub async fn streams(ctx: &mut Ctx) -> anyhow::Result<()> {
    let rows = overview(ctx).await?;
    if ctx.json {
        return fmt::print_json(&rows);
    }
    let mut t = fmt::table([
        "STREAM", "LENGTH", "FIRST", "LAST", "GROUPS", "DEAD", "FIRST ID", "LAST ID",
    ]);
    for s in &rows {
        if !s.exists {
            t.add_row([
                s.stream.as_str(),
                "-",
                "(no such stream yet)",
                "",
                "",
                "",
                "",
                "",
            ]);
            continue;
        }
        t.add_row([
            s.stream.clone(),
            s.length.to_string(),
            fmt::id_when(s.first_id.as_deref()),
            fmt::id_when(s.last_id.as_deref()),
            s.groups.to_string(),
            s.dead_letters.to_string(),
            fmt::opt(s.first_id.as_deref()),
            fmt::opt(s.last_id.as_deref()),
        ]);
    }
    println!("{t}");
    Ok(())
}

#[derive(Serialize)]
struct StreamDetail {
    #[serde(flatten)]
    stream: StreamInfo,
    group_details: Vec<GroupInfo>,
}

pub async fn stream(ctx: &mut Ctx, name: &str) -> anyhow::Result<()> {
    ctx.require_stream(name).await?;
    let dead = dead_letters::Counts::load(ctx).await?;
    let stream = info::stream_info(ctx, name, &dead).await?;
    let groups = info::groups_of(ctx, &stream, &dead).await?;
    if ctx.json {
        return fmt::print_json(&StreamDetail {
            stream,
            group_details: groups,
        });
    }
    let s = &stream;
    println!("stream          {} (key {})", s.stream, s.key);
    println!("length          {}", s.length);
    println!("entries added   {}", fmt::opt(s.entries_added));
    println!(
        "first entry     {} {}",
        fmt::opt(s.first_id.as_deref()),
        fmt::id_when(s.first_id.as_deref())
    );
    println!(
        "last entry      {} {}",
        fmt::opt(s.last_id.as_deref()),
        fmt::id_when(s.last_id.as_deref())
    );
    println!(
        "max deleted id  {}",
        fmt::opt(s.max_deleted_entry_id.as_deref())
    );
    println!("dead letters    {}", s.dead_letters);
    println!("groups          {}\n", s.groups);
    print_groups(&groups);
    Ok(())
}

/// The groups of one stream, or of every stream.
pub async fn group_rows(ctx: &mut Ctx, stream: Option<&str>) -> anyhow::Result<Vec<GroupInfo>> {
    let names = match stream {
        Some(s) => {
            ctx.require_stream(s).await?;
            vec![s.to_owned()]
        }
        None => info::mesh_streams(ctx).await?,
    };
    let dead = dead_letters::Counts::load(ctx).await?;
    let mut rows = Vec::new();
    for name in names {
        let s = info::stream_info(ctx, &name, &dead).await?;
        rows.extend(info::groups_of(ctx, &s, &dead).await?);
    }
    Ok(rows)
}

pub async fn groups(ctx: &mut Ctx, stream: Option<&str>) -> anyhow::Result<()> {
    let rows = group_rows(ctx, stream).await?;
    if ctx.json {
        return fmt::print_json(&rows);
    }
    print_groups(&rows);
    Ok(())
}

fn print_groups(rows: &[GroupInfo]) {
    if rows.is_empty() {
        println!("no consumer groups");
        return;
    }
    let mut t = fmt::table([
        "STREAM",
        "GROUP",
        "CONSUMERS",
        "PENDING",
        "OLDEST PENDING",
        "LAG",
        "READ",
        "LAST DELIVERED",
        "DEAD",
    ]);
    for g in rows {
        let lag = match g.lag_source {
            "redis" => g.lag.to_string(),
            _ => format!("{} (counted)", g.lag),
        };
        t.add_row([
            g.stream.clone(),
            g.group.clone(),
            g.consumers.to_string(),
            g.pending.to_string(),
            fmt::opt(g.oldest_pending_age_ms.map(fmt::duration)),
            lag,
            fmt::opt(g.entries_read),
            format!(
                "{} {}",
                g.last_delivered_id,
                fmt::id_when(Some(&g.last_delivered_id))
            ),
            g.dead_letters.to_string(),
        ]);
    }
    println!("{t}");
    for g in rows {
        if let Some(note) = &g.lag_note {
            println!("note: {}/{}: {note}", g.stream, g.group);
        }
        if let Some(w) = &g.warning {
            println!("WARNING: {}/{}: {w}", g.stream, g.group);
        }
    }
}

#[derive(Serialize)]
pub struct ConsumerInfo {
    pub name: String,
    pub pending: i64,
    pub idle_ms: i64,
    /// Since the consumer's last successful read or claim (Redis ≥ 7.2).
    pub inactive_ms: Option<i64>,
}

/// The consumers of a group.
pub async fn consumer_rows(
    ctx: &mut Ctx,
    stream: &str,
    group: &str,
) -> anyhow::Result<Vec<ConsumerInfo>> {
    let key = ctx.require_group(stream, group).await?;
    let raw: Vec<Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(&key)
        .arg(group)
        .query_async(&mut ctx.conn)
        .await
        .context("XINFO CONSUMERS")?;
    let rows: Vec<ConsumerInfo> = raw
        .into_iter()
        .map(|c| {
            let m = redis_io::flat_map(c);
            ConsumerInfo {
                name: redis_io::value_str(m.get("name")).unwrap_or_default(),
                pending: redis_io::value_int(m.get("pending")).unwrap_or(0),
                idle_ms: redis_io::value_int(m.get("idle")).unwrap_or(0),
                inactive_ms: redis_io::value_int(m.get("inactive")).filter(|v| *v >= 0),
            }
        })
        .collect();
    Ok(rows)
}

pub async fn consumers(ctx: &mut Ctx, stream: &str, group: &str) -> anyhow::Result<()> {
    let rows = consumer_rows(ctx, stream, group).await?;
    if ctx.json {
        return fmt::print_json(&rows);
    }
    let mut t = fmt::table(["CONSUMER", "PENDING", "IDLE", "INACTIVE"]);
    for c in &rows {
        t.add_row([
            c.name.clone(),
            c.pending.to_string(),
            fmt::duration(c.idle_ms.max(0) as u64),
            fmt::opt(c.inactive_ms.map(|v| fmt::duration(v as u64))),
        ]);
    }
    println!("{t}");
    Ok(())
}

#[derive(Debug, Args)]
pub struct PendingArgs {
    pub stream: String,
    pub group: String,
    /// Only entries owned by this consumer.
    #[arg(long)]
    pub consumer: Option<String>,
    /// Only entries idle at least this long (`30s`, `5m`).
    #[arg(long, value_parser = parse_duration)]
    pub min_idle: Option<Duration>,
    /// Most entries to list.
    #[arg(long, default_value_t = 1000)]
    pub count: u64,
}

#[derive(Serialize)]
pub struct PendingEntry {
    pub id: String,
    pub consumer: String,
    pub idle_ms: u64,
    pub deliveries: u64,
    pub added_at: Option<String>,
}

/// The pending entries of a group that `args` selects, oldest first.
pub async fn pending_rows(ctx: &mut Ctx, args: &PendingArgs) -> anyhow::Result<Vec<PendingEntry>> {
    let key = ctx.require_group(&args.stream, &args.group).await?;
    let mut cmd = redis::cmd("XPENDING");
    cmd.arg(&key).arg(&args.group);
    if let Some(idle) = args.min_idle {
        cmd.arg("IDLE").arg(idle.as_millis() as u64);
    }
    cmd.arg("-").arg("+").arg(args.count);
    if let Some(c) = &args.consumer {
        cmd.arg(c);
    }
    let v: Value = cmd.query_async(&mut ctx.conn).await.context("XPENDING")?;
    let rows: Vec<PendingEntry> = redis_io::parse_pending_range(v)
        .into_iter()
        .map(|(id, consumer, idle_ms, deliveries)| PendingEntry {
            added_at: fmt::id_time(&id),
            id,
            consumer,
            idle_ms,
            deliveries,
        })
        .collect();
    Ok(rows)
}

pub async fn pending(ctx: &mut Ctx, args: &PendingArgs) -> anyhow::Result<()> {
    let rows = pending_rows(ctx, args).await?;
    if ctx.json {
        return fmt::print_json(&rows);
    }
    if rows.is_empty() {
        println!("nothing pending");
        return Ok(());
    }
    let mut t = fmt::table(["ID", "CONSUMER", "IDLE", "DELIVERIES", "ADDED"]);
    for p in &rows {
        t.add_row([
            p.id.clone(),
            p.consumer.clone(),
            fmt::duration(p.idle_ms),
            p.deliveries.to_string(),
            fmt::id_when(Some(&p.id)),
        ]);
    }
    println!("{t}");
    Ok(())
}
