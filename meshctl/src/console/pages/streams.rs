//! `/streams`: every stream with its length, first and last entry (and their age), groups and
//! dead letters (`streams::overview`, as `meshctl streams`).

use std::sync::Arc;

use askama::Template;
use axum::{Extension, extract::State, response::Response};

use super::when;
use crate::{
    console::{
        Console,
        auth::Session,
        page::{PageError, render},
    },
    streams,
};

struct Row {
    name: String,
    exists: bool,
    length: u64,
    first: String,
    last: String,
    groups: usize,
    dead_letters: u64,
}

#[derive(Template)]
#[template(path = "console/streams.html")]
struct Page {
    title: &'static str,
    signed_in: bool,
    csrf: String,
    rows: Vec<Row>,
}

pub async fn page(
    State(console): State<Arc<Console>>,
    Extension(session): Extension<Session>,
) -> Result<Response, PageError> {
    let mut ctx = console.ctx.clone();
    let rows = streams::overview(&mut ctx)
        .await?
        .into_iter()
        .map(|s| Row {
            first: when(s.first_id.as_deref()),
            last: when(s.last_id.as_deref()),
            name: s.stream,
            exists: s.exists,
            length: s.length,
            groups: s.groups,
            dead_letters: s.dead_letters,
        })
        .collect();
    render(&Page {
        title: "Streams",
        signed_in: true,
        csrf: session.csrf,
        rows,
    })
}
