//! `/timeline?correlation_id=…`: one order (or any chain of events) across the mesh, oldest first,
//! with where each group stands with each entry, and its dead letters (`timeline::timeline`, as
//! `meshctl timeline`).

use std::sync::Arc;

use askama::Template;
use axum::{
    Extension,
    extract::{Query, State},
    response::Response,
};
use common::envelope::REPLAY_FOR_GROUP_FIELD;
use serde::Deserialize;

use super::when;
use crate::{
    console::{
        Console,
        auth::Session,
        page::{PageError, render},
    },
    fmt, timeline,
};

#[derive(Deserialize)]
pub struct Params {
    correlation_id: Option<String>,
}

struct Step {
    added: String,
    stream: String,
    id: String,
    event_type: String,
    producer: String,
    /// The group a dead-letter replay is for.
    replay_for: Option<String>,
    /// (group, CSS class, state).
    groups: Vec<(String, &'static str, &'static str)>,
}

#[derive(Template)]
#[template(path = "console/timeline.html")]
struct Page {
    title: &'static str,
    signed_in: bool,
    csrf: String,
    correlation_id: String,
    searched: bool,
    steps: Vec<Step>,
    dead_letters: Vec<String>,
    truncated: bool,
}

pub async fn page(
    State(console): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Query(params): Query<Params>,
) -> Result<Response, PageError> {
    let mut page = Page {
        title: "Timeline",
        signed_in: true,
        csrf: session.csrf,
        correlation_id: String::new(),
        searched: false,
        steps: Vec::new(),
        dead_letters: Vec::new(),
        truncated: false,
    };
    let wanted = params.correlation_id.unwrap_or_default();
    if wanted.trim().is_empty() {
        return render(&page);
    }
    let mut ctx = console.ctx.clone();
    let t = timeline::timeline(&mut ctx, &wanted).await?;
    page.searched = true;
    page.correlation_id = t.correlation_id;
    page.truncated = t.truncated;
    page.steps = t
        .steps
        .into_iter()
        .map(|s| Step {
            added: when(Some(&s.entry.id)),
            event_type: fmt::opt(s.entry.event_type),
            producer: fmt::opt(s.producer),
            replay_for: s.entry.fields.get(REPLAY_FOR_GROUP_FIELD).cloned(),
            groups: s
                .groups
                .into_iter()
                .map(|g| {
                    let class = match g.state {
                        "pending" => "pending",
                        "delivered" => "delivered",
                        _ => "not",
                    };
                    (g.group, class, g.state)
                })
                .collect(),
            id: s.entry.id,
            stream: s.stream,
        })
        .collect();
    page.dead_letters = t
        .dead_letters
        .into_iter()
        .map(|d| {
            format!(
                "{}: {} {} failed in group {}: {}{}",
                d.id,
                d.origin_stream,
                d.origin_id,
                d.group,
                d.error,
                if d.replayed { " (replayed)" } else { "" }
            )
        })
        .collect();
    render(&page)
}
