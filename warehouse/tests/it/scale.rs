//! The warehouse binary as deployed. `--scale warehouse=2`: two real processes share one
//! database, one Redis and one consumer group; 100 reserved orders arrive at once. Every order
//! gets exactly one shipment, shipped once and announced once. And `MESH_WAREHOUSE_AUTO_DISPATCH`
//! switches auto-dispatch off.

use std::{collections::HashSet, path::Path, process::Stdio, time::Duration};

use common::{
    Envelope, Keys,
    events::{Event, OrderShipped, RefundOrder, StockReserved},
    runtime::Publisher,
    testing::{
        Proc, RedisServer, TestDb, consumer_count, free_port, read_events, service_command,
        unique_prefix, wait_blocked_readers, wait_drained, wait_idle, wait_ready, wait_until, xlen,
    },
};
use sea_orm::EntityTrait;
use warehouse::entity::shipment;

use crate::support::reserved_order;

fn spawn_warehouse(
    redis: &RedisServer,
    db_url: &str,
    keys: &Keys,
    data: &Path,
    port: u16,
    auto_dispatch: &str,
) -> Proc {
    let child = service_command(
        env!("CARGO_BIN_EXE_warehouse"),
        &redis.url(),
        db_url,
        data,
        keys.prefix(),
    )
    .env("MESH_LISTEN", format!("127.0.0.1:{port}"))
    .env("MESH_WAREHOUSE_AUTO_DISPATCH", auto_dispatch)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::inherit())
    .spawn()
    .expect("spawn the warehouse binary");
    Proc(child)
}

#[tokio::test]
async fn two_replicas_ship_every_order_exactly_once() {
    let redis = RedisServer::start();
    let test_db = TestDb::new().await;
    // Migrated up front: on SQLite the two processes would otherwise race to create the tables.
    let db = test_db.connect::<warehouse::Migrator>().await;
    let keys = Keys::new(unique_prefix());

    let data = tempfile::tempdir().expect("data dir");
    let ports = [free_port(), free_port()];
    let replicas: Vec<Proc> = ports
        .iter()
        .map(|&port| spawn_warehouse(&redis, &test_db.url, &keys, data.path(), port, "true"))
        .collect();
    let http = reqwest::Client::new();
    for port in ports {
        let base_url = format!("http://127.0.0.1:{port}");
        wait_ready(&http, &base_url, Duration::from_secs(30)).await;
    }

    let mut conn = redis.connection();
    wait_blocked_readers(&mut conn, 2, Duration::from_secs(30)).await;

    let orders: Vec<_> = (0..100).map(|_| reserved_order()).collect();
    let items: Vec<(String, Envelope)> = orders
        .iter()
        .map(|(envelope, _)| (StockReserved::TYPE.to_owned(), envelope.clone()))
        .collect();
    Publisher::new(redis.connection(), keys.clone())
        .publish_many(&items)
        .await
        .expect("publish reserved orders");

    let shipped_key = keys.stream(OrderShipped::TYPE);
    wait_until(
        Duration::from_secs(90),
        "an order-shipped per order",
        || {
            let mut conn = conn.clone();
            let key = shipped_key.clone();
            async move { xlen(&mut conn, &key).await >= 100 }
        },
    )
    .await;
    wait_idle(
        &conn,
        &db,
        &keys,
        warehouse::worker::GROUP,
        &warehouse::worker::routes().streams(),
    )
    .await;

    // Both replicas joined the group.
    let consumers = consumer_count(
        &mut conn,
        &keys.stream(StockReserved::TYPE),
        warehouse::worker::GROUP,
    )
    .await;
    assert_eq!(consumers, 2, "two consumers in the group");

    let all_orders: HashSet<_> = orders.iter().map(|(_, o)| o.order_id).collect();
    let shipments = shipment::Entity::find().all(&db).await.unwrap();
    assert_eq!(shipments.len(), 100, "one shipment per order");
    assert!(shipments.iter().all(|s| s.status == "shipped"));
    let shipped_orders: HashSet<_> = shipments.iter().map(|s| s.order_id).collect();
    assert_eq!(shipped_orders, all_orders);

    // Both replicas run an outbox relay over the same table; the relay claims rows, so with no
    // crash every event goes out exactly once.
    let announced = read_events::<OrderShipped>(&mut conn, &keys).await;
    assert_eq!(announced.len(), 100, "order-shipped entries on the stream");
    let event_ids: HashSet<_> = announced.iter().map(|(e, _)| e.event_id).collect();
    assert_eq!(event_ids.len(), 100);
    let announced_orders: HashSet<_> = announced.iter().map(|(_, p)| p.order_id).collect();
    assert_eq!(announced_orders, all_orders, "each order announced once");
    let shipment_ids: HashSet<_> = shipments.iter().map(|s| s.id).collect();
    assert!(
        announced
            .iter()
            .all(|(_, p)| shipment_ids.contains(&p.shipment_id))
    );
    assert_eq!(xlen(&mut conn, &keys.stream(RefundOrder::TYPE)).await, 0);
    assert_eq!(common::testing::dead_letter_total(&redis, &keys).await, 0);

    for mut replica in replicas {
        replica.stop_cleanly(Duration::from_secs(30)).await;
    }
}

#[tokio::test]
async fn auto_dispatch_off_by_env_leaves_shipments_pending() {
    let redis = RedisServer::start();
    let test_db = TestDb::new().await;
    let db = test_db.connect::<warehouse::Migrator>().await;
    let keys = Keys::new(unique_prefix());
    let data = tempfile::tempdir().expect("data dir");
    let port = free_port();
    let mut replica = spawn_warehouse(&redis, &test_db.url, &keys, data.path(), port, "false");
    let http = reqwest::Client::new();
    wait_ready(
        &http,
        &format!("http://127.0.0.1:{port}"),
        Duration::from_secs(30),
    )
    .await;

    let (envelope, order) = reserved_order();
    Publisher::new(redis.connection(), keys.clone())
        .publish(StockReserved::TYPE, &envelope)
        .await
        .expect("publish");
    let mut conn = redis.connection();
    wait_drained(
        &mut conn,
        &keys.stream(StockReserved::TYPE),
        warehouse::worker::GROUP,
        Duration::from_secs(30),
    )
    .await;
    let shipments = shipment::Entity::find().all(&db).await.unwrap();
    assert_eq!(shipments.len(), 1);
    assert_eq!(shipments[0].order_id, order.order_id);
    assert_eq!(shipments[0].status, "pending");
    assert_eq!(xlen(&mut conn, &keys.stream(OrderShipped::TYPE)).await, 0);
    replica.stop_cleanly(Duration::from_secs(30)).await;
}
