//! The gauges refreshed in the background: as of the last refresh, never queried by a scrape,
//! kept (with their time) when a source cannot be reached.

use std::time::Duration;

use axum::Router;
use common::{
    Envelope, Keys,
    db::{self, migration::RuntimeMigrator, outbox},
    monitoring::Monitor,
    runtime::dead_letter,
    testing::{Exposition, RedisServer, TestDb, unique_prefix, wait_until},
};
use sea_orm::ConnectionTrait;
use tokio_util::sync::CancellationToken;

use super::{fail, now_ms, read_as, serve_with, xadd_at};

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
    let dead: Vec<String> =
        common::stream_testing::stream_entries(&mut conn, &keys.dead_letter("orders"))
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
    assert_eq!(dead.len(), 3);
    let replay = dead_letter::replay(&mut conn, &keys, "orders", &dead[0])
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
        .arg(keys.dead_letter("orders"))
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
