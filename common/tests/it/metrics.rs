//! `/metrics`: the gauges an operator alerts on (group lag with the counted fallback, pending,
//! oldest pending age, dead letters per origin stream and group, outbox backlog) come from a
//! background refresh and are scraped as they were at that refresh; the worker's counters and
//! handler histograms count every delivery, retry and dead letter; HTTP request durations are
//! labelled by route template, never by the path sent.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{Router, routing::get};
use common::{
    Envelope, Keys,
    config::HttpArgs,
    db::{self, migration::RuntimeMigrator, outbox},
    http::{self, Readiness},
    monitoring::Monitor,
    runtime::{
        HandleError, Handler, Message, WorkerConfig,
        dead_letter::{self, Failure},
    },
    testing::{Exposition, RedisServer, TestDb, unique_prefix, wait_drained, wait_until},
};
use redis::aio::ConnectionManager;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::InProcessWorker;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Serves `api` with the ops routes of `monitor` (as a service does) on a free port, with a
/// request time limit of `limit_secs`; returns its base URL.
async fn serve_with(
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

async fn xadd_at(conn: &mut ConnectionManager, key: &str, id: &str, n: usize) {
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
async fn read_as(
    conn: &mut ConnectionManager,
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

async fn fail(conn: &mut ConnectionManager, keys: &Keys, stream: &str, group: &str, id: &str) {
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

#[tokio::test]
async fn gauges_report_lag_pending_dead_letters_and_outbox_backlog_as_of_the_last_refresh() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let test_db = TestDb::new().await;
    let db = test_db.connect::<RuntimeMigrator>().await;
    let orders = keys.stream("orders");
    let refunds = keys.stream("refunds");

    // orders: six entries, the first two minutes old; billing reads four, dead-letters two of
    // them (one replayed since, which adds an entry), shipping (not watched) dead-letters one.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&orders)
        .arg("billing")
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
    let old = now_ms() - 120_000;
    for n in 0..6 {
        xadd_at(&mut conn, &orders, &format!("{old}-{n}"), n).await;
    }
    let read = read_as(&mut conn, &orders, "billing", "c1", 4).await;
    assert_eq!(read.len(), 4);
    fail(&mut conn, &keys, "orders", "billing", &read[2]).await;
    fail(&mut conn, &keys, "orders", "billing", &read[3]).await;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&orders)
        .arg("shipping")
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();
    let shipped = read_as(&mut conn, &orders, "shipping", "s1", 1).await;
    fail(&mut conn, &keys, "orders", "shipping", &shipped[0]).await;
    let dead: Vec<String> = common::stream_testing::stream_entries(&mut conn, &keys.dead_letter())
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(dead.len(), 3);
    let replay = dead_letter::replay(&mut conn, &keys, &dead[0])
        .await
        .unwrap();
    assert!(matches!(replay, dead_letter::Replay::Replayed { .. }));

    // refunds: three entries, the middle one deleted after the group's position, so Redis
    // reports the lag unknown and it is counted.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&refunds)
        .arg("billing")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
    for n in 0..3 {
        xadd_at(&mut conn, &refunds, "*", n).await;
    }
    let ids: Vec<String> = common::stream_testing::stream_entries(&mut conn, &refunds)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let _: i64 = redis::cmd("XDEL")
        .arg(&refunds)
        .arg(&ids[1])
        .query_async(&mut conn)
        .await
        .unwrap();
    let state = common::testing::group_state(&mut conn, &refunds, "billing")
        .await
        .unwrap();
    assert_eq!(state.lag, None, "Redis should not know this lag");

    // Outbox: three rows, the oldest 90 s old.
    for n in 0..3 {
        let envelope = Envelope::new(
            "order-placed",
            "test",
            "c",
            "",
            &serde_json::json!({"n": n}),
        )
        .unwrap();
        let txn = db::begin(&db).await.unwrap();
        outbox::enqueue(&*txn, "orders", &envelope).await.unwrap();
        txn.commit().await.unwrap();
    }
    db.execute_unprepared(&format!(
        "UPDATE mesh_outbox SET created_at = {} WHERE id = (SELECT MIN(id) FROM mesh_outbox)",
        now_ms() - 90_000
    ))
    .await
    .unwrap();

    // An hour between refreshes: the first one runs at start, the next only when asked.
    let monitor = Monitor::new(
        redis.connection(),
        Some(db.clone()),
        keys.clone(),
        Duration::from_secs(3600),
    );
    monitor.watch("billing", &["orders".to_owned(), "refunds".to_owned()]);
    let shutdown = CancellationToken::new();
    tokio::spawn(monitor.clone().run(shutdown.clone()));
    let base = serve_with(
        30,
        Router::new(),
        &redis,
        Some(db.clone()),
        monitor.clone(),
        &shutdown,
    )
    .await;
    wait_until(Duration::from_secs(10), "first refresh", || async {
        Exposition::scrape(&base)
            .await
            .value("mesh_outbox_backlog_rows", &[])
            .is_some()
    })
    .await;

    let page = Exposition::scrape(&base).await;
    let billing = |stream: &'static str| [("stream", stream), ("group", "billing")];
    // Six added and a replay: billing has read four, so three are not delivered yet.
    assert_eq!(
        page.value("mesh_stream_group_lag", &billing("orders")),
        Some(3.0)
    );
    assert_eq!(
        page.value("mesh_stream_group_pending", &billing("orders")),
        Some(2.0)
    );
    let age = page
        .value(
            "mesh_stream_group_oldest_pending_age_seconds",
            &billing("orders"),
        )
        .unwrap();
    assert!((119.0..180.0).contains(&age), "oldest pending age {age}");
    assert_eq!(
        page.value("mesh_stream_group_consumers", &billing("orders")),
        Some(1.0)
    );
    assert_eq!(
        page.value("mesh_dead_letter_entries", &billing("orders")),
        Some(1.0)
    );
    // Counted: the two entries left after last-delivered-id 0-0.
    assert_eq!(
        page.value("mesh_stream_group_lag", &billing("refunds")),
        Some(2.0)
    );
    assert_eq!(
        page.value("mesh_stream_group_pending", &billing("refunds")),
        Some(0.0)
    );
    assert_eq!(
        page.value(
            "mesh_stream_group_oldest_pending_age_seconds",
            &billing("refunds")
        ),
        Some(0.0)
    );
    assert_eq!(
        page.value("mesh_dead_letter_entries", &billing("refunds")),
        Some(0.0)
    );
    // Only the watched group is reported, on both of its streams.
    for name in ["mesh_stream_group_lag", "mesh_dead_letter_entries"] {
        let groups: Vec<_> = page
            .samples(name)
            .into_iter()
            .map(|(labels, _)| labels["group"].clone())
            .collect();
        assert_eq!(groups, ["billing", "billing"], "{name}");
    }
    assert_eq!(page.value("mesh_outbox_backlog_rows", &[]), Some(3.0));
    let outbox_age = page.value("mesh_outbox_oldest_age_seconds", &[]).unwrap();
    assert!(
        (89.0..150.0).contains(&outbox_age),
        "outbox age {outbox_age}"
    );
    let refreshed = page
        .value(
            "mesh_metrics_refresh_timestamp_seconds",
            &[("source", "redis")],
        )
        .unwrap();
    assert!((refreshed - now_ms() as f64 / 1000.0).abs() < 60.0);
    assert!(
        page.text.contains("# TYPE mesh_stream_group_lag gauge\n"),
        "{}",
        page.text
    );

    // Scrapes do not query Redis: new entries and a purge show only after the next refresh.
    xadd_at(&mut conn, &orders, "*", 7).await;
    let _: i64 = redis::cmd("XDEL")
        .arg(keys.dead_letter())
        .arg(&dead[1])
        .query_async(&mut conn)
        .await
        .unwrap();
    for _ in 0..3 {
        let page = Exposition::scrape(&base).await;
        assert_eq!(
            page.value("mesh_stream_group_lag", &billing("orders")),
            Some(3.0)
        );
        assert_eq!(
            page.value("mesh_dead_letter_entries", &billing("orders")),
            Some(1.0)
        );
    }
    monitor.refresh().await;
    let page = Exposition::scrape(&base).await;
    assert_eq!(
        page.value("mesh_stream_group_lag", &billing("orders")),
        Some(4.0)
    );
    // The purged dead letter was billing's one not replayed.
    assert_eq!(
        page.value("mesh_dead_letter_entries", &billing("orders")),
        Some(0.0)
    );
    shutdown.cancel();
}

/// Fails the first delivery of every event whose payload says `flaky`, dead-letters those that
/// say `broken`, handles the rest.
#[derive(Clone, Default)]
struct Picky {
    attempts: Arc<Mutex<HashMap<uuid::Uuid, u32>>>,
}

impl Handler for Picky {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(message.envelope.event_id).or_default();
            *n += 1;
            *n
        };
        let data = message.envelope.data.get();
        if data.contains("flaky") && attempt == 1 {
            Err(HandleError::retry(anyhow::anyhow!("busy")))
        } else if data.contains("broken") {
            Err(HandleError::dead_letter(anyhow::anyhow!("broken")))
        } else {
            Ok(())
        }
    }
}

#[tokio::test]
async fn worker_counts_deliveries_retries_dead_letters_and_times_handlers_per_event_type() {
    // Before the worker makes its handles (a service does this when it connects).
    let recorder = common::recorder::handle();
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    // The recorder is the process's: a stream name of its own keeps these series this test's.
    let stream = format!("metered-{}", uuid::Uuid::new_v4().simple());
    let key = keys.stream(&stream);
    let publisher = common::runtime::Publisher::new(conn.clone(), keys.clone());
    for (event_type, data) in [
        ("order-placed", "fine"),
        ("order-placed", "fine"),
        ("order-placed", "flaky"),
        ("gizmo-made", "broken"),
    ] {
        let envelope = Envelope::new(
            event_type,
            "test",
            "c",
            "",
            &serde_json::json!({ "mode": data }),
        )
        .unwrap();
        publisher.publish(&stream, &envelope).await.unwrap();
    }
    // Poison: not an envelope.
    let _: String = redis::cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg("junk")
        .arg("1")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut cfg = WorkerConfig::new(keys.clone(), "metered", &[stream.as_str()]);
    cfg.retry_base = Duration::from_millis(20);
    cfg.retry_max = Duration::from_millis(50);
    let worker = InProcessWorker::start(&redis, cfg, Picky::default());
    wait_drained(&mut conn, &key, "metered", Duration::from_secs(20)).await;
    worker.stop().await;

    let page = Exposition::parse(&recorder.render());
    let labels = [("stream", stream.as_str()), ("group", "metered")];
    // Five entries, the flaky one delivered twice.
    assert_eq!(
        page.value("mesh_stream_deliveries_total", &labels),
        Some(6.0)
    );
    assert_eq!(page.value("mesh_stream_retries_total", &labels), Some(1.0));
    assert_eq!(
        page.value("mesh_stream_dead_lettered_total", &labels),
        Some(2.0)
    );
    let count = |event_type: &str| {
        page.value(
            "mesh_stream_handler_duration_seconds_count",
            &[
                ("stream", stream.as_str()),
                ("group", "metered"),
                ("type", event_type),
            ],
        )
    };
    // Every handler run, whatever its outcome; a type outside the catalog is `other`.
    assert_eq!(count("order-placed"), Some(4.0));
    assert_eq!(count("other"), Some(1.0));
    assert_eq!(count("gizmo-made"), None);
    let buckets: Vec<_> = page
        .samples("mesh_stream_handler_duration_seconds_bucket")
        .into_iter()
        .filter(|(l, _)| l["stream"] == stream && l["type"] == "order-placed")
        .collect();
    assert_eq!(buckets.len(), common::recorder::BUCKETS_SECONDS.len() + 1);
    assert!(buckets.iter().any(|(l, v)| l["le"] == "+Inf" && *v == 4.0));
}

#[tokio::test]
async fn http_request_durations_are_labelled_by_route_template_and_status() {
    common::recorder::handle();
    let redis = RedisServer::start();
    let monitor = Monitor::new(
        redis.connection(),
        None,
        Keys::new(unique_prefix()),
        Duration::from_secs(3600),
    );
    let shutdown = CancellationToken::new();
    let api = Router::new()
        .route(
            "/metrics-test/items/{id}",
            get(
                |axum::extract::Path(id): axum::extract::Path<String>| async move {
                    if id == "missing" {
                        (axum::http::StatusCode::NOT_FOUND, "no such item")
                    } else {
                        (axum::http::StatusCode::OK, "an item")
                    }
                },
            ),
        )
        .route(
            "/metrics-test/slow/{id}",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "too late"
            }),
        );
    let base = serve_with(1, api, &redis, None, monitor, &shutdown).await;
    let client = reqwest::Client::new();
    for id in ["7f3c-one", "8a1d-two", "missing"] {
        client
            .get(format!("{base}/metrics-test/items/{id}"))
            .send()
            .await
            .unwrap();
    }
    let unmatched = client
        .get(format!("{base}/metrics-test/nowhere-9c2e"))
        .send()
        .await
        .unwrap();
    assert_eq!(unmatched.status(), 404);
    // Cut off by the server's time limit: counted, with its route.
    let slow = client
        .get(format!("{base}/metrics-test/slow/41b7"))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), 408);

    let page = Exposition::scrape(&base).await;
    let count = |route: &str, status: &str| {
        page.value(
            "mesh_http_request_duration_seconds_count",
            &[("method", "GET"), ("route", route), ("status", status)],
        )
    };
    assert_eq!(count("/metrics-test/items/{id}", "200"), Some(2.0));
    assert_eq!(count("/metrics-test/items/{id}", "404"), Some(1.0));
    assert!(count("unmatched", "404").is_some_and(|n| n >= 1.0));
    assert_eq!(count("/metrics-test/slow/{id}", "408"), Some(1.0));
    for raw in ["7f3c-one", "8a1d-two", "nowhere-9c2e", "41b7"] {
        assert!(!page.text.contains(raw), "raw path `{raw}` in a label");
    }
    shutdown.cancel();
}

#[tokio::test]
async fn a_refresh_that_cannot_reach_redis_keeps_the_last_values_and_their_time() {
    let mut redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let test_db = TestDb::new().await;
    let db = test_db.connect::<RuntimeMigrator>().await;
    let orders = keys.stream("orders");
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&orders)
        .arg("billing")
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
    xadd_at(&mut conn, &orders, "*", 1).await;
    let monitor = Monitor::new(
        redis.connection(),
        Some(db.clone()),
        keys.clone(),
        Duration::from_secs(3600),
    );
    monitor.watch("billing", &["orders".to_owned()]);
    let shutdown = CancellationToken::new();
    let base = serve_with(
        30,
        Router::new(),
        &redis,
        Some(db),
        monitor.clone(),
        &shutdown,
    )
    .await;
    monitor.refresh().await;
    let before = Exposition::scrape(&base).await;
    let labels = [("stream", "orders"), ("group", "billing")];
    assert_eq!(before.value("mesh_stream_group_lag", &labels), Some(1.0));
    let redis_at = |page: &Exposition| {
        page.value(
            "mesh_metrics_refresh_timestamp_seconds",
            &[("source", "redis")],
        )
    };
    let database_at = |page: &Exposition| {
        page.value(
            "mesh_metrics_refresh_timestamp_seconds",
            &[("source", "database")],
        )
    };
    assert!(redis_at(&before).is_some() && database_at(&before).is_some());

    redis.stop();
    // The timestamps have a resolution of a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    monitor.refresh().await;
    let after = Exposition::scrape(&base).await;
    assert_eq!(after.value("mesh_stream_group_lag", &labels), Some(1.0));
    assert_eq!(
        redis_at(&after),
        redis_at(&before),
        "redis refreshed while down?"
    );
    assert!(
        database_at(&after) > database_at(&before),
        "the database source refreshes on its own"
    );
    shutdown.cancel();
}
