//! `/groups[?stream=…]`: the consumer groups of one stream or of all, with consumers, pending,
//! lag and its sparkline (`streams::group_rows`, as `meshctl groups`).

use std::sync::Arc;

use askama::Template;
use axum::{
    Extension,
    extract::{Query, State},
    response::Response,
};
use serde::Deserialize;

use super::{ms, when};
use crate::{
    console::{
        Console,
        auth::Session,
        page::{PageError, filter, render},
        sparkline,
    },
    fmt, streams,
};

#[derive(Deserialize)]
pub struct Params {
    stream: Option<String>,
}

struct Row {
    stream: String,
    group: String,
    consumers: i64,
    pending: i64,
    oldest_pending: String,
    lag: u64,
    lag_counted: bool,
    spark: String,
    read: String,
    last_delivered: String,
    dead_letters: u64,
    warning: Option<String>,
}

#[derive(Template)]
#[template(path = "console/groups.html")]
struct Page {
    title: String,
    signed_in: bool,
    csrf: String,
    rows: Vec<Row>,
}

pub async fn page(
    State(console): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Query(params): Query<Params>,
) -> Result<Response, PageError> {
    let stream = filter("stream", &params.stream)?;
    let mut ctx = console.ctx.clone();
    let rows = streams::group_rows(&mut ctx, stream.as_deref())
        .await?
        .into_iter()
        .map(|g| Row {
            spark: sparkline::svg(&console.lag.of(&g.stream, &g.group)),
            oldest_pending: ms(g.oldest_pending_age_ms),
            lag: g.lag,
            lag_counted: g.lag_source != "redis",
            read: fmt::opt(g.entries_read),
            last_delivered: format!(
                "{} {}",
                g.last_delivered_id,
                when(Some(&g.last_delivered_id))
            ),
            consumers: g.consumers,
            pending: g.pending,
            dead_letters: g.dead_letters,
            warning: g.warning,
            stream: g.stream,
            group: g.group,
        })
        .collect();
    render(&Page {
        title: match &stream {
            Some(s) => format!("Groups of {s}"),
            None => "Groups".to_owned(),
        },
        signed_in: true,
        csrf: session.csrf,
        rows,
    })
}
