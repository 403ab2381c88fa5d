//! `/streams/{stream}/groups/{group}[?consumer=…]`: one group — its lag with the sparkline, its
//! consumers, and its pending entries, oldest first (`streams::group_rows`, `consumer_rows`,
//! `pending_rows`, as `meshctl groups`, `consumers` and `pending`).

use std::sync::Arc;

use askama::Template;
use axum::{
    Extension,
    extract::{Path, Query, State},
    http::StatusCode,
    response::Response,
};
use serde::Deserialize;

use super::{ms, when};
use crate::{
    console::{
        Console,
        auth::Session,
        page::{PageError, bounded, filter, render},
        sparkline,
    },
    streams::{self, PendingArgs},
};

/// Most pending entries listed.
pub const MAX_PENDING: usize = 200;

#[derive(Deserialize)]
pub struct Params {
    consumer: Option<String>,
}

struct Consumer {
    name: String,
    pending: i64,
    idle: String,
    inactive: String,
}

struct Pending {
    id: String,
    consumer: String,
    idle: String,
    deliveries: u64,
    added: String,
}

#[derive(Template)]
#[template(path = "console/group.html")]
struct Page {
    title: String,
    signed_in: bool,
    csrf: String,
    stream: String,
    lag: u64,
    spark: String,
    pending_total: i64,
    last_delivered: String,
    consumers: Vec<Consumer>,
    consumer: Option<String>,
    pending: Vec<Pending>,
    max_pending: usize,
}

pub async fn page(
    State(console): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    Path((stream, group)): Path<(String, String)>,
    Query(params): Query<Params>,
) -> Result<Response, PageError> {
    bounded("stream", &stream)?;
    bounded("group", &group)?;
    let consumer = filter("consumer", &params.consumer)?;
    let mut ctx = console.ctx.clone();
    let consumers = streams::consumer_rows(&mut ctx, &stream, &group).await?;
    let info = streams::group_rows(&mut ctx, Some(&stream))
        .await?
        .into_iter()
        .find(|g| g.group == group)
        .ok_or_else(|| PageError::new(StatusCode::NOT_FOUND, "no such group"))?;
    let args = PendingArgs {
        stream: stream.clone(),
        group: group.clone(),
        consumer: consumer.clone(),
        min_idle: None,
        count: MAX_PENDING as u64,
    };
    let pending = streams::pending_rows(&mut ctx, &args)
        .await?
        .into_iter()
        .map(|p| Pending {
            added: when(Some(&p.id)),
            idle: ms(Some(p.idle_ms)),
            id: p.id,
            consumer: p.consumer,
            deliveries: p.deliveries,
        })
        .collect();
    render(&Page {
        title: format!("Group {group} on {stream}"),
        signed_in: true,
        csrf: session.csrf,
        spark: sparkline::svg(&console.lag.of(&stream, &group)),
        lag: info.lag,
        pending_total: info.pending,
        last_delivered: format!(
            "{} {}",
            info.last_delivered_id,
            when(Some(&info.last_delivered_id))
        ),
        consumers: consumers
            .into_iter()
            .map(|c| Consumer {
                idle: ms(Some(c.idle_ms.max(0) as u64)),
                inactive: ms(c.inactive_ms.map(|v| v.max(0) as u64)),
                name: c.name,
                pending: c.pending,
            })
            .collect(),
        consumer,
        pending,
        max_pending: MAX_PENDING,
        stream,
    })
}
