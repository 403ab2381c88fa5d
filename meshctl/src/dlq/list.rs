//! `dlq ls` and `dlq show`: the selected dead letters as a table (or JSON), one dead letter with
//! every field; the table is also the body of a replay or purge preview.

use crate::{ctx::Ctx, dead_letters::DeadLetter, fmt};

use super::select::{self, Filter};

/// `dlq ls`: the entries the filter selects.
pub async fn ls(ctx: &mut Ctx, filter: &Filter) -> anyhow::Result<()> {
    let rows = select::select(ctx, filter).await?;
    if ctx.json {
        return fmt::print_json(&rows);
    }
    print_list(&rows, None);
    Ok(())
}

/// `dlq show <id>`: one dead letter with every field.
pub async fn show(ctx: &mut Ctx, id: &str) -> anyhow::Result<()> {
    let d = select::by_id(ctx, id).await?;
    if ctx.json {
        return fmt::print_json(&d);
    }
    println!("id        {}", d.id);
    println!("failed at {}", fmt::opt(d.failed_at.as_deref()));
    println!("origin    {} {}", d.origin_stream, d.origin_id);
    println!("group     {} (consumer {})", d.group, d.consumer);
    println!("delivered {} times", d.delivery_count);
    println!("error     {}", d.error);
    println!("replayed  {}", if d.replayed { "yes" } else { "no" });
    println!("fields:");
    for (k, v) in &d.fields {
        println!("  {k} = {v}");
    }
    Ok(())
}

/// The list table; `actions` adds what an action would do with each entry.
pub fn print_list(rows: &[DeadLetter], actions: Option<&[&str]>) {
    if rows.is_empty() {
        println!("no dead-letter entries match");
        return;
    }
    let mut t = fmt::table([
        "ID", "FAILED", "STREAM", "GROUP", "TRIES", "ERROR", "TYPE", "REPLAYED", "ACTION",
    ]);
    for (i, d) in rows.iter().enumerate() {
        let mut err: String = d.error.chars().take(60).collect();
        if d.error.chars().count() > 60 {
            err.push('…');
        }
        t.add_row([
            d.id.clone(),
            fmt::id_when(Some(&d.id)),
            d.origin_stream.clone(),
            d.group.clone(),
            d.delivery_count.to_string(),
            err,
            fmt::opt(d.event_type.as_deref()),
            if d.replayed { "yes" } else { "no" }.to_owned(),
            actions.and_then(|a| a.get(i)).unwrap_or(&"").to_string(),
        ]);
    }
    println!("{t}");
}
