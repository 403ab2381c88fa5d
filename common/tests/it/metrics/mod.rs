//! `/metrics`: the gauges an operator alerts on (group lag with the counted fallback, pending,
//! oldest pending age, dead letters per origin stream and group, outbox backlog) come from a
//! background refresh and are scraped as they were at that refresh; the worker's counters and
//! handler histograms count every delivery, retry and dead letter; HTTP request durations are
//! labelled by route template, never by the path sent.

mod gauges;
mod recorded;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use common::connection::Conn;
use common::{
    Envelope, Keys,
    config::HttpArgs,
    http::{self, Readiness},
    monitoring::Monitor,
    runtime::dead_letter::{self, Failure},
    testing::RedisServer,
};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Serves `api` with the ops routes of `monitor` (as a service does) on a free port, with a
/// request time limit of `limit_secs`; returns its base URL.
pub async fn serve_with(
    limit_secs: u64,
    api: Router,
    redis: &RedisServer,
    db: Option<DatabaseConnection>,
    monitor: Monitor,
    shutdown: &CancellationToken,
) -> String {
    let readiness = Readiness {
        service: "test",
        redis: redis.connection(),
        db,
    };
    let router = http::with_common_layers(api.merge(http::ops_router(readiness, monitor)));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let limits = HttpArgs {
        http_request_timeout_secs: limit_secs,
        ..HttpArgs::default()
    };
    tokio::spawn(http::serve(listener, router, limits, shutdown.clone()));
    base
}

pub async fn xadd_at(conn: &mut Conn, key: &str, id: &str, n: usize) {
    let envelope = Envelope::new(
        "order-placed",
        "test",
        "c",
        "",
        &serde_json::json!({"n": n}),
    )
    .unwrap();
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key).arg(id);
    for (name, value) in envelope.to_fields() {
        cmd.arg(name).arg(value);
    }
    let _: String = cmd.query_async(conn).await.unwrap();
}

/// `XREADGROUP … COUNT n` as `consumer`; returns the ids read (and so pending).
pub async fn read_as(
    conn: &mut Conn,
    key: &str,
    group: &str,
    consumer: &str,
    n: usize,
) -> Vec<String> {
    let reply: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg(consumer)
        .arg("COUNT")
        .arg(n)
        .arg("STREAMS")
        .arg(key)
        .arg(">")
        .query_async(conn)
        .await
        .unwrap();
    common::runtime::redis_io::parse_read_reply(reply)
        .into_iter()
        .map(|e| e.id)
        .collect()
}

pub async fn fail(conn: &mut Conn, keys: &Keys, stream: &str, group: &str, id: &str) {
    let failure = Failure {
        origin_stream: stream,
        origin_id: id,
        group,
        consumer: "c1",
        delivery_count: 5,
        last_error: "ledger unavailable",
    };
    let fields = vec![("type".to_owned(), b"order-placed".to_vec())];
    dead_letter::dead_letter(conn, keys, &fields, &failure)
        .await
        .unwrap();
}
