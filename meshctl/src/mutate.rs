//! Commands that change state: `group seek`, `trim`, `publish`. Each previews what it would do and
//! acts only with `--yes`.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use common::{
    Envelope,
    runtime::{Publisher, trim as safe_trim},
};
use serde::Serialize;

use crate::{
    ctx::{Ctx, bad_input},
    fmt, info,
    position::{Position, id_before_time, id_key, parse_duration, parse_position},
};

#[derive(Debug, Args)]
pub struct SeekArgs {
    pub stream: String,
    pub group: String,
    /// `start`, `end`, an id (the group continues after it) or a time (entries from then on are
    /// delivered again).
    #[arg(long)]
    pub to: String,
    /// Move the group; without it, only preview what would be delivered again or skipped.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Serialize)]
struct SeekReport {
    stream: String,
    group: String,
    from_id: String,
    to_id: String,
    /// `rewind`, `skip` or `none`.
    direction: &'static str,
    /// Entries after the new position: what the group will be delivered.
    to_deliver: u64,
    /// Entries delivered before that will be delivered again (rewind).
    redelivered: u64,
    /// Entries never delivered that the group will not see (skip).
    skipped: u64,
    /// Pending entries stay pending and are retried as before.
    pending: i64,
    applied: bool,
}

pub async fn seek(ctx: &mut Ctx, a: &SeekArgs) -> anyhow::Result<()> {
    let key = ctx.require_group(&a.stream, &a.group).await?;
    let stream = info::stream_info(ctx, &a.stream, &Default::default()).await?;
    let groups = info::groups_of(ctx, &stream, &Default::default()).await?;
    let Some(g) = groups.into_iter().find(|g| g.group == a.group) else {
        return Err(crate::ctx::not_found(format!(
            "unknown group `{}`",
            a.group
        )));
    };
    let to_id = match parse_position(&a.to)? {
        Position::Start => "0-0".to_owned(),
        Position::End => stream
            .last_generated_id
            .clone()
            .unwrap_or_else(|| "0-0".into()),
        Position::Id(id) => id,
        Position::Time(ms) => id_before_time(ms),
    };
    let (from, to) = (id_key(&g.last_delivered_id), id_key(&to_id));
    let to_deliver = info::count_after(&mut ctx.conn, &key, &to_id).await?;
    let (direction, redelivered, skipped) = if to < from {
        let n = info::count_range(
            &mut ctx.conn,
            &key,
            &format!("({to_id}"),
            &g.last_delivered_id,
        )
        .await?;
        ("rewind", n, 0)
    } else if to > from {
        let n = info::count_range(
            &mut ctx.conn,
            &key,
            &format!("({}", g.last_delivered_id),
            &to_id,
        )
        .await?;
        ("skip", 0, n)
    } else {
        ("none", 0, 0)
    };
    let mut report = SeekReport {
        stream: a.stream.clone(),
        group: a.group.clone(),
        from_id: g.last_delivered_id.clone(),
        to_id: to_id.clone(),
        direction,
        to_deliver,
        redelivered,
        skipped,
        pending: g.pending,
        applied: false,
    };
    if a.yes {
        // ENTRIESREAD keeps Redis's lag exact after the move: read = added - what is left.
        let entries_read = stream.entries_added.unwrap_or(0).saturating_sub(to_deliver);
        let _: () = redis::cmd("XGROUP")
            .arg("SETID")
            .arg(&key)
            .arg(&a.group)
            .arg(&to_id)
            .arg("ENTRIESREAD")
            .arg(entries_read)
            .query_async(&mut ctx.conn)
            .await
            .context("XGROUP SETID")?;
        report.applied = true;
    }
    if ctx.json {
        return fmt::print_json(&report);
    }
    let r = &report;
    let verb = if r.applied { "moved" } else { "would move" };
    println!(
        "group {} on {}: {verb} from {} to {} ({}): {} entries to deliver, {} delivered again, \
         {} skipped; {} pending entries stay pending",
        r.group,
        r.stream,
        r.from_id,
        r.to_id,
        r.direction,
        r.to_deliver,
        r.redelivered,
        r.skipped,
        r.pending
    );
    if r.redelivered > 0 {
        println!(
            "note: workers skip (and ack) events their group's idempotency records already hold"
        );
    }
    if !r.applied {
        println!("preview only; run again with --yes to act");
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct TrimArgs {
    pub stream: String,
    /// Keep at least this much recent history, even if every group is past it.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub retention: Duration,
    /// Trim; without it, only preview the trim point, why, and what would go.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Serialize)]
struct TrimReport {
    stream: String,
    length: u64,
    #[serde(flatten)]
    plan: safe_trim::TrimPlan,
    retention_ms: u64,
    applied: bool,
    removed: u64,
}

pub async fn trim(ctx: &mut Ctx, a: &TrimArgs) -> anyhow::Result<()> {
    let key = ctx.require_stream(&a.stream).await?;
    let length: u64 = redis::cmd("XLEN")
        .arg(&key)
        .query_async(&mut ctx.conn)
        .await?;
    let (plan, removed) = if a.yes {
        safe_trim::trim(&mut ctx.conn, &key, a.retention).await?
    } else {
        (safe_trim::plan(&mut ctx.conn, &key, a.retention).await?, 0)
    };
    let report = TrimReport {
        stream: a.stream.clone(),
        length,
        plan,
        retention_ms: a.retention.as_millis() as u64,
        applied: a.yes,
        removed,
    };
    if ctx.json {
        return fmt::print_json(&report);
    }
    match &report.plan.min_id {
        None => println!(
            "{}: nothing can be trimmed: {}",
            a.stream, report.plan.reason
        ),
        Some(point) => {
            let why = &report.plan.reason;
            let why = if why.ends_with("from") {
                format!("{why} {point}")
            } else {
                why.clone()
            };
            println!(
                "{}: trim point {point} ({})",
                a.stream,
                fmt::id_when(Some(point))
            );
            println!("why: {why}");
            if report.applied {
                println!("trimmed {} of {} entries", report.removed, report.length);
            } else {
                println!(
                    "would trim {} of {} entries; preview only, run again with --yes to act",
                    report.plan.would_remove, report.length
                );
            }
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    pub stream: String,
    /// Event type (default: the stream name, as every mesh stream is named after its type).
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// The payload, a JSON object.
    #[arg(long)]
    pub data: String,
    /// The envelope's `producer`.
    #[arg(long, default_value = "meshctl")]
    pub producer: String,
    /// The envelope's `correlation_id` (default: a fresh `meshctl-<uuid>`).
    #[arg(long)]
    pub correlation_id: Option<String>,
    /// The `event_id` that caused this one (empty: none).
    #[arg(long, default_value = "")]
    pub causation_id: String,
    /// Publish; without it, only preview the envelope's fields.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Serialize)]
struct PublishReport {
    stream: String,
    fields: Vec<(&'static str, String)>,
    applied: bool,
    id: Option<String>,
}

pub async fn publish(ctx: &mut Ctx, a: &PublishArgs) -> anyhow::Result<()> {
    let data: serde_json::Value =
        serde_json::from_str(&a.data).map_err(|e| bad_input(format!("--data is not JSON: {e}")))?;
    if !data.is_object() {
        return Err(bad_input("--data must be a JSON object"));
    }
    let event_type = a.event_type.clone().unwrap_or_else(|| a.stream.clone());
    let correlation = a
        .correlation_id
        .clone()
        .unwrap_or_else(|| format!("meshctl-{}", uuid::Uuid::now_v7()));
    let envelope = Envelope::new(
        &event_type,
        &a.producer,
        &correlation,
        &a.causation_id,
        &data,
    )
    .context("build envelope")?;
    let mut report = PublishReport {
        stream: a.stream.clone(),
        fields: envelope.to_fields(),
        applied: false,
        id: None,
    };
    if a.yes {
        let publisher = Publisher::new(ctx.conn.clone(), ctx.keys.clone());
        report.id = Some(
            publisher
                .publish(&a.stream, &envelope)
                .await
                .context("XADD")?,
        );
        report.applied = true;
    }
    if ctx.json {
        return fmt::print_json(&report);
    }
    if !common::events::ALL_STREAMS.contains(&a.stream.as_str()) {
        println!("note: `{}` is not a stream of the event catalog", a.stream);
    }
    for (k, v) in &report.fields {
        println!("  {k} = {v}");
    }
    match &report.id {
        Some(id) => println!("published {id} on {}", a.stream),
        None => println!("preview only; run again with --yes to publish"),
    }
    Ok(())
}
