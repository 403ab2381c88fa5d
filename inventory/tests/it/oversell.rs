//! Oversell: two real inventory processes (the binary, as deployed) share one database and one
//! consumer group; 200 single-unit orders race for 50 units. Exactly 50 are reserved.

use std::{collections::HashSet, time::Duration};

use common::{
    Keys,
    events::{Event, OrderCompleted, RefundOrder, RefundReason, StockReserved},
    runtime::Publisher,
    testing::{
        Proc, RedisServer, TestDb, consumer_count, free_port, read_events, unique_prefix,
        wait_blocked_readers, wait_idle, wait_ready, wait_until, xlen,
    },
};
use inventory::entity::reservation;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::{
    support::{movements, seed_product, spawn_inventory},
    worker::paid_order,
};

#[tokio::test]
async fn two_replicas_never_oversell() {
    let redis = RedisServer::start();
    let test_db = TestDb::new().await;
    let db = test_db.connect::<inventory::Migrator>().await;
    let keys = Keys::new(unique_prefix());
    let product = seed_product(&db, 50).await;

    let data = tempfile::tempdir().expect("data dir");
    let ports = [free_port(), free_port()];
    let replicas: Vec<Proc> = ports
        .iter()
        .map(|&port| spawn_inventory(&redis, &test_db.url, &keys, data.path(), port, &[]))
        .collect();
    let http = reqwest::Client::new();
    for port in ports {
        let base_url = format!("http://127.0.0.1:{port}");
        wait_ready(&http, &base_url, Duration::from_secs(30)).await;
    }

    let mut conn = redis.connection();
    wait_blocked_readers(&mut conn, 2, Duration::from_secs(30)).await;

    // 200 single-unit orders at once.
    let orders: Vec<_> = (0..200).map(|_| paid_order(&[(product.id, 1)])).collect();
    let items: Vec<(String, common::Envelope)> = orders
        .iter()
        .map(|(envelope, _)| (OrderCompleted::TYPE.to_owned(), envelope.clone()))
        .collect();
    Publisher::new(redis.connection(), keys.clone())
        .publish_many(&items)
        .await
        .expect("publish orders");

    let (reserved_key, refund_key) = (
        keys.stream(StockReserved::TYPE),
        keys.stream(RefundOrder::TYPE),
    );
    wait_until(
        Duration::from_secs(90),
        "an outcome for every order",
        || {
            let mut conn = conn.clone();
            let (a, b) = (reserved_key.clone(), refund_key.clone());
            async move { xlen(&mut conn, &a).await + xlen(&mut conn, &b).await >= 200 }
        },
    )
    .await;
    wait_idle(
        &conn,
        &db,
        &keys,
        inventory::worker::GROUP,
        &inventory::worker::routes().streams(),
    )
    .await;

    // Both replicas took part in the group.
    let consumers = consumer_count(
        &mut conn,
        &keys.stream(OrderCompleted::TYPE),
        inventory::worker::GROUP,
    )
    .await;
    assert_eq!(consumers, 2, "two consumers in the group");

    let stock = inventory::entity::product::Entity::find_by_id(product.id)
        .one(&db)
        .await
        .unwrap()
        .unwrap()
        .stock;
    assert_eq!(stock, 0);
    let held = reservation::Entity::find()
        .filter(reservation::Column::ProductId.eq(product.id))
        .filter(reservation::Column::Status.eq(reservation::RESERVED))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(held.len(), 50);
    assert!(held.iter().all(|r| r.quantity == 1));

    // Both replicas run an outbox relay over the same table; the relay claims rows
    // (`DELETE … RETURNING` in a transaction, `SKIP LOCKED` on PostgreSQL), so with no crash
    // every event goes out exactly once — and one outcome per order, never both.
    let reserved_all = read_events::<StockReserved>(&mut conn, &keys).await;
    let refunds_all = read_events::<RefundOrder>(&mut conn, &keys).await;
    assert_eq!(
        reserved_all.len(),
        50,
        "stock-reserved entries on the stream"
    );
    assert_eq!(refunds_all.len(), 150, "refund-order entries on the stream");
    let reserved = distinct(reserved_all);
    let refunds = distinct(refunds_all);
    assert_eq!(reserved.len(), 50);
    assert_eq!(refunds.len(), 150);
    assert!(
        refunds
            .iter()
            .all(|(_, r)| r.reason == RefundReason::InsufficientStock)
    );
    let reserved_ids: HashSet<_> = reserved.iter().map(|(_, e)| e.order_id).collect();
    let refunded_ids: HashSet<_> = refunds.iter().map(|(_, e)| e.order_id).collect();
    assert_eq!(
        (reserved_ids.len(), refunded_ids.len()),
        (50, 150),
        "one event per order"
    );
    let held_ids: HashSet<_> = held.iter().map(|r| r.order_id).collect();
    let all_ids: HashSet<_> = orders.iter().map(|(_, o)| o.order_id).collect();
    assert_eq!(reserved_ids, held_ids);
    assert!(reserved_ids.is_disjoint(&refunded_ids));
    assert_eq!(&reserved_ids | &refunded_ids, all_ids);

    // The ledger sums to the stock: +50 initial, fifty -1 reservations.
    let ledger = movements(&db, product.id).await;
    assert_eq!(ledger.iter().map(|m| m.delta).sum::<i64>(), stock);
    assert_eq!(ledger.len(), 51);

    for mut replica in replicas {
        replica.stop_cleanly(Duration::from_secs(30)).await;
    }
}

/// The events with distinct `event_id`s (outbox re-sends removed), in stream order.
fn distinct<T>(events: Vec<(common::Envelope, T)>) -> Vec<(common::Envelope, T)> {
    let mut seen = HashSet::new();
    events
        .into_iter()
        .filter(|(envelope, _)| seen.insert(envelope.event_id))
        .collect()
}
