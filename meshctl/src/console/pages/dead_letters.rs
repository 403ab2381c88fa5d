//! `/dead-letters`: the dead letters a filter selects (`dlq::select`, as `meshctl dlq ls`), and
//! replay or purge the way `meshctl dlq` does it — a preview (`/dead-letters/preview`, a `GET`
//! that changes nothing) lists the exact entries and carries their ids in its confirm form; the
//! confirm (`POST /dead-letters/apply`, CSRF-checked) acts on exactly those ids through
//! `dlq::act::apply`, so a dead letter that fails after the preview is never swept in.

use std::sync::Arc;

use askama::Template;
use axum::{
    Extension, Form,
    extract::{Query, State},
    response::Response,
};
use serde::Deserialize;

use super::when;
use crate::{
    console::{
        Console,
        auth::Session,
        csrf,
        page::{PageError, filter, render},
    },
    dead_letters::DeadLetter,
    dlq::{
        act::{self, Kind},
        select::{self, Filter},
    },
    fmt,
    position::require_id,
};

/// Most dead letters listed, and pinned by one preview.
pub const MAX_ACTION: usize = 500;

/// The filter as the query string has it (empty fields are no filter).
#[derive(Deserialize, Default)]
pub struct Params {
    stream: Option<String>,
    group: Option<String>,
    since: Option<String>,
    until: Option<String>,
    error: Option<String>,
    /// Preview only: `replay` or `purge`.
    action: Option<String>,
    /// Preview only: exactly these ids (space- or comma-separated) instead of the filter.
    ids: Option<String>,
}

/// The filter as the form shows it again.
#[derive(Default)]
struct Shown {
    stream: String,
    group: String,
    since: String,
    until: String,
    error: String,
}

impl Params {
    fn filter(&self) -> Result<(Filter, Shown), PageError> {
        let f = Filter {
            stream: filter("stream", &self.stream)?,
            group: filter("group", &self.group)?,
            since: filter("since", &self.since)?,
            until: filter("until", &self.until)?,
            error: filter("error", &self.error)?,
        };
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let shown = Shown {
            stream: text(&f.stream),
            group: text(&f.group),
            since: text(&f.since),
            until: text(&f.until),
            error: text(&f.error),
        };
        Ok((f, shown))
    }
}

struct Row {
    id: String,
    failed: String,
    origin_stream: String,
    origin_id: String,
    group: String,
    tries: u64,
    error: String,
    event_type: String,
    replayed: bool,
    fields: Vec<(String, String)>,
    /// What the previewed action does with it.
    action: &'static str,
}

fn row(d: DeadLetter, kind: Option<Kind>) -> Row {
    Row {
        action: match (kind, d.replayed) {
            (None, _) => "",
            (Some(Kind::Replay), false) => "replay",
            (Some(Kind::Replay), true) => "skip (replayed before)",
            (Some(Kind::Purge), _) => "purge",
        },
        failed: when(Some(&d.id)),
        event_type: fmt::opt(d.event_type),
        fields: d.fields.into_iter().collect(),
        id: d.id,
        origin_stream: d.origin_stream,
        origin_id: d.origin_id,
        group: d.group,
        tries: d.delivery_count,
        error: d.error,
        replayed: d.replayed,
    }
}

#[derive(Template)]
#[template(path = "console/dead_letters.html")]
struct ListPage {
    title: &'static str,
    signed_in: bool,
    csrf: String,
    filter: Shown,
    total: usize,
    rows: Vec<Row>,
}

pub async fn list(
    State(console): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Query(params): Query<Params>,
) -> Result<Response, PageError> {
    let (f, shown) = params.filter()?;
    let mut ctx = console.ctx.clone();
    let selected = select::select(&mut ctx, &f).await?;
    let total = selected.len();
    render(&ListPage {
        title: "Dead letters",
        signed_in: true,
        csrf: session.csrf,
        filter: shown,
        total,
        rows: selected
            .into_iter()
            .take(MAX_ACTION)
            .map(|d| row(d, None))
            .collect(),
    })
}

fn kind(action: Option<&str>) -> Result<Kind, PageError> {
    match action {
        Some("replay") => Ok(Kind::Replay),
        Some("purge") => Ok(Kind::Purge),
        _ => Err(PageError::bad_request("action is `replay` or `purge`")),
    }
}

/// Ids as a form or query carries them: space- or comma-separated, each a valid stream id, at
/// most [`MAX_ACTION`], each once.
fn parse_ids(text: &str) -> Result<Vec<String>, PageError> {
    let mut ids: Vec<String> = Vec::new();
    for word in text.split([' ', ',', '\n', '\t']).filter(|w| !w.is_empty()) {
        let id = require_id(word)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
        if ids.len() > MAX_ACTION {
            return Err(PageError::bad_request(format!(
                "at most {MAX_ACTION} ids at once"
            )));
        }
    }
    Ok(ids)
}

#[derive(Template)]
#[template(path = "console/dlq_preview.html")]
struct PreviewPage {
    title: String,
    signed_in: bool,
    csrf: String,
    action: &'static str,
    verb: &'static str,
    ids: String,
    more: usize,
    rows: Vec<Row>,
}

pub async fn preview(
    State(console): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Query(params): Query<Params>,
) -> Result<Response, PageError> {
    let kind = kind(params.action.as_deref())?;
    let mut ctx = console.ctx.clone();
    let selected = match params.ids.as_deref().map(str::trim) {
        Some(ids) if !ids.is_empty() => select::by_ids(&mut ctx, &parse_ids(ids)?).await?,
        _ => select::select(&mut ctx, &params.filter()?.0).await?,
    };
    let more = selected.len().saturating_sub(MAX_ACTION);
    let rows: Vec<Row> = selected
        .into_iter()
        .take(MAX_ACTION)
        .map(|d| row(d, Some(kind)))
        .collect();
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let verb = verb(kind);
    render(&PreviewPage {
        title: format!("{verb}: preview"),
        signed_in: true,
        csrf: session.csrf,
        action: kind.name(),
        verb,
        ids: ids.join(" "),
        more,
        rows,
    })
}

fn verb(kind: Kind) -> &'static str {
    match kind {
        Kind::Replay => "Replay",
        Kind::Purge => "Purge",
    }
}

#[derive(Deserialize)]
pub struct Confirm {
    csrf: Option<String>,
    action: Option<String>,
    ids: Option<String>,
}

#[derive(Template)]
#[template(path = "console/dlq_result.html")]
struct ResultPage {
    title: String,
    signed_in: bool,
    csrf: String,
    totals: String,
    results: Vec<act::Outcome>,
}

pub async fn apply(
    State(console): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Form(form): Form<Confirm>,
) -> Result<Response, PageError> {
    csrf::check(&session, form.csrf.as_deref())?;
    let kind = kind(form.action.as_deref())?;
    let ids = parse_ids(form.ids.as_deref().unwrap_or_default())?;
    if ids.is_empty() {
        return Err(PageError::bad_request("no dead-letter ids to act on"));
    }
    let mut ctx = console.ctx.clone();
    let done = act::apply(&mut ctx, kind, &ids).await?;
    tracing::info!(
        action = kind.name(),
        ids = ids.len(),
        replayed = done.replayed,
        purged = done.purged,
        skipped = done.skipped,
        missing = done.missing,
        "dead letters acted on from the console"
    );
    let mut totals = match kind {
        Kind::Replay => format!("replayed {}, skipped {}", done.replayed, done.skipped),
        Kind::Purge => format!("purged {}", done.purged),
    };
    if done.missing > 0 {
        totals.push_str(&format!(", missing {}", done.missing));
    }
    render(&ResultPage {
        title: format!("{}: done", verb(kind)),
        signed_in: true,
        csrf: session.csrf,
        totals,
        results: done.results,
    })
}
