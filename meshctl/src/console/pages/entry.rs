//! `/streams/{stream}/entries/{id}`: one entry — its fields, whether it is a valid envelope, its
//! payload, and where each group stands with it (`show::entry`, as `meshctl show`).

use std::sync::Arc;

use askama::Template;
use axum::{
    Extension,
    extract::{Path, State},
    response::Response,
};

use super::{ms, when};
use crate::{
    console::{
        Console,
        auth::Session,
        page::{PageError, bounded, render},
    },
    fmt, show,
};

struct Position {
    group: String,
    state: &'static str,
    consumer: String,
    deliveries: String,
    idle: String,
}

#[derive(Template)]
#[template(path = "console/entry.html")]
struct Page {
    title: String,
    signed_in: bool,
    csrf: String,
    stream: String,
    added: String,
    poison: Option<String>,
    correlation_id: Option<String>,
    groups: Vec<Position>,
    fields: Vec<(String, String)>,
    data: Option<String>,
}

pub async fn page(
    State(console): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Path((stream, id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    bounded("stream", &stream)?;
    bounded("id", &id)?;
    let mut ctx = console.ctx.clone();
    let view = show::entry(&mut ctx, &stream, &id).await?;
    let e = view.entry;
    render(&Page {
        title: format!("Entry {} on {}", e.id, view.stream),
        signed_in: true,
        csrf: session.csrf,
        added: when(Some(&e.id)),
        poison: view.poison,
        correlation_id: e
            .fields
            .get("correlation_id")
            .filter(|c| !c.is_empty())
            .cloned(),
        groups: view
            .groups
            .into_iter()
            .map(|g| Position {
                group: g.group,
                state: g.state,
                consumer: fmt::opt(g.consumer),
                deliveries: fmt::opt(g.deliveries),
                idle: ms(g.idle_ms),
            })
            .collect(),
        data: e
            .data
            .as_ref()
            .and_then(|d| serde_json::to_string_pretty(d).ok()),
        fields: e.fields.into_iter().collect(),
        stream: view.stream,
    })
}
