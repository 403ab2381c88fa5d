//! The `inventory` group in process: paid orders reserve every line or none, a short order is
//! refunded, a refund after a failed fulfillment releases the reservation exactly once, and
//! redeliveries change nothing.

use std::time::Duration;

use common::{
    Envelope,
    db::inbox,
    events::{Event, OrderCompleted, OrderLine, RefundOrder, RefundReason, StockReserved},
    testing::{wait_until, xlen},
};
use inventory::entity::reservation;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::support::{InventoryApp, TestApp, seed_product, spawn_app};

/// An `order-completed` event for `lines` of (product, quantity).
pub fn paid_order(lines: &[(Uuid, i64)]) -> (Envelope, OrderCompleted) {
    let order = OrderCompleted {
        order_id: Uuid::now_v7(),
        user_id: Uuid::now_v7(),
        payment_id: Uuid::now_v7(),
        items: lines
            .iter()
            .map(|&(product_id, quantity)| OrderLine {
                product_id,
                quantity,
                unit_price_cents: 1_000,
            })
            .collect(),
        total_cents: 1_000,
    };
    let envelope = Envelope::new(OrderCompleted::TYPE, "payment", "req-42", "", &order).unwrap();
    (envelope, order)
}

pub fn refund(order: &OrderCompleted, reason: RefundReason) -> Envelope {
    let payload = RefundOrder {
        order_id: order.order_id,
        user_id: order.user_id,
        reason,
    };
    Envelope::new(RefundOrder::TYPE, "warehouse", "req-43", "", &payload).unwrap()
}

async fn reservations(app: &TestApp, order_id: Uuid) -> Vec<reservation::Model> {
    reservation::Entity::find()
        .filter(reservation::Column::OrderId.eq(order_id))
        .all(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_paid_order_reserves_every_line_and_publishes_stock_reserved() {
    let app = spawn_app().await;
    let cup = seed_product(&app.db, 10).await;
    let pot = seed_product(&app.db, 3).await;
    let (envelope, order) = paid_order(&[(cup.id, 4), (pot.id, 3), (cup.id, 1)]);
    app.publish(&envelope).await;
    app.wait_for_events(StockReserved::TYPE, 1).await;
    app.settle().await;

    assert_eq!(app.product(cup.id).await.unwrap().stock, 5);
    assert_eq!(app.product(pot.id).await.unwrap().stock, 0);
    let mut held: Vec<(Uuid, i64, String)> = reservations(&app, order.order_id)
        .await
        .into_iter()
        .map(|r| (r.product_id, r.quantity, r.status))
        .collect();
    held.sort();
    let mut expected = vec![
        (cup.id, 5, "reserved".to_owned()),
        (pot.id, 3, "reserved".to_owned()),
    ];
    expected.sort();
    assert_eq!(held, expected);

    let reserved = app.events::<StockReserved>().await;
    assert_eq!(reserved.len(), 1);
    let (follow_up, payload) = &reserved[0];
    assert_eq!(payload.order_id, order.order_id);
    assert_eq!(payload.items, order.items);
    assert_eq!(follow_up.causation_id, envelope.event_id.to_string());
    assert_eq!(follow_up.correlation_id, "req-42");
    assert!(app.events::<RefundOrder>().await.is_empty());

    for product in [&cup, &pot] {
        let ledger = app.movements(product.id).await;
        let sum: i64 = ledger.iter().map(|m| m.delta).sum();
        assert_eq!(sum, app.product(product.id).await.unwrap().stock);
        assert!(
            ledger[1..]
                .iter()
                .all(|m| m.order_id == Some(order.order_id) && m.reason == "reserved")
        );
    }
}

#[tokio::test]
async fn an_order_short_on_one_line_reserves_nothing_and_is_refunded() {
    let app = spawn_app().await;
    let plenty = seed_product(&app.db, 50).await;
    let scarce = seed_product(&app.db, 1).await;
    let retired = seed_product(&app.db, 9).await;
    inventory::catalog::deactivate(&app.db, retired.id, "test")
        .await
        .unwrap();

    let orders = [
        paid_order(&[(plenty.id, 2), (scarce.id, 2)]),
        paid_order(&[(plenty.id, 1), (Uuid::now_v7(), 1)]),
        paid_order(&[(plenty.id, 1), (retired.id, 1)]),
    ];
    for (envelope, _) in &orders {
        app.publish(envelope).await;
    }
    app.wait_for_events(RefundOrder::TYPE, 3).await;
    app.settle().await;

    for (product, stock) in [(&plenty, 50), (&scarce, 1), (&retired, 9)] {
        assert_eq!(app.product(product.id).await.unwrap().stock, stock);
        assert_eq!(
            app.movements(product.id).await.len(),
            1,
            "only the initial stock"
        );
    }
    let refunds = app.events::<RefundOrder>().await;
    assert_eq!(refunds.len(), 3);
    for (envelope, order) in &orders {
        let (follow_up, refund) = refunds
            .iter()
            .find(|(_, r)| r.order_id == order.order_id)
            .expect("a refund for every order");
        assert_eq!(refund.user_id, order.user_id);
        assert_eq!(refund.reason, RefundReason::InsufficientStock);
        assert_eq!(follow_up.causation_id, envelope.event_id.to_string());
        assert!(reservations(&app, order.order_id).await.is_empty());
    }
    assert!(app.events::<StockReserved>().await.is_empty());
}

#[tokio::test]
async fn a_failed_fulfillment_refund_releases_the_reservation_exactly_once() {
    let app = spawn_app().await;
    let product = seed_product(&app.db, 5).await;
    let (envelope, order) = paid_order(&[(product.id, 2)]);
    app.publish(&envelope).await;
    app.wait_for_events(StockReserved::TYPE, 1).await;
    app.settle().await;
    assert_eq!(app.product(product.id).await.unwrap().stock, 3);

    // The same refund twice (same event id: a redelivery), then again under a new event id
    // (another producer retry), then a cancellation that finds nothing left to release.
    let failed = refund(&order, RefundReason::FulfillmentFailed);
    app.publish(&failed).await;
    app.publish(&failed).await;
    app.publish(&refund(&order, RefundReason::FulfillmentFailed))
        .await;
    app.publish(&refund(&order, RefundReason::CancelledBeforeShipping))
        .await;
    app.settle().await;

    assert_eq!(app.product(product.id).await.unwrap().stock, 5);
    let held = reservations(&app, order.order_id).await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].status, "released");
    let ledger = app.movements(product.id).await;
    let deltas: Vec<(i64, &str)> = ledger
        .iter()
        .map(|m| (m.delta, m.reason.as_str()))
        .collect();
    assert_eq!(deltas, [(5, "initial"), (-2, "reserved"), (2, "released")]);

    // A refund for insufficient stock releases nothing, even for a reserved order; nor does a
    // customer's cancellation the warehouse has not accepted yet (the goods may have left).
    let (envelope, other) = paid_order(&[(product.id, 1)]);
    app.publish(&envelope).await;
    app.wait_for_events(StockReserved::TYPE, 2).await;
    app.publish(&refund(&other, RefundReason::InsufficientStock))
        .await;
    app.publish(&refund(&other, RefundReason::CancelledByCustomer))
        .await;
    app.settle().await;
    assert_eq!(app.product(product.id).await.unwrap().stock, 4);
    assert_eq!(
        reservations(&app, other.order_id).await[0].status,
        "reserved"
    );
}

#[tokio::test]
async fn an_order_refunded_before_it_was_reserved_takes_no_stock() {
    let app = spawn_app().await;
    let product = seed_product(&app.db, 5).await;
    let (envelope, order) = paid_order(&[(product.id, 2)]);

    // The customer cancelled while the payment was under way and the warehouse accepted it: its
    // refund reaches inventory before the order's `order-completed` does.
    app.publish(&refund(&order, RefundReason::CancelledBeforeShipping))
        .await;
    app.settle().await;
    app.publish(&envelope).await;
    app.settle().await;

    assert_eq!(app.product(product.id).await.unwrap().stock, 5);
    assert!(reservations(&app, order.order_id).await.is_empty());
    let lengths = app.stream_lengths(&[StockReserved::TYPE]).await;
    assert_eq!(
        lengths[StockReserved::TYPE],
        0,
        "no stock-reserved for a withdrawn order"
    );
    // Only the refund the test published: inventory adds no refund of its own.
    assert_eq!(
        xlen(&mut app.redis.clone(), &app.stream(RefundOrder::TYPE)).await,
        1
    );
    let ledger = app.movements(product.id).await;
    assert_eq!(ledger.len(), 1, "only the initial stock: {ledger:?}");
}

#[tokio::test]
async fn a_redelivered_or_repeated_order_is_reserved_once() {
    let app = spawn_app().await;
    let product = seed_product(&app.db, 10).await;
    let (envelope, order) = paid_order(&[(product.id, 3)]);
    app.publish(&envelope).await;
    app.publish(&envelope).await;
    // The same order again under a new event id.
    let again = Envelope::new(OrderCompleted::TYPE, "payment", "req-42", "", &order).unwrap();
    app.publish(&again).await;
    app.wait_for_events(StockReserved::TYPE, 1).await;
    app.settle().await;

    assert_eq!(app.product(product.id).await.unwrap().stock, 7);
    assert_eq!(app.events::<StockReserved>().await.len(), 1);
    for event_id in [envelope.event_id, again.event_id] {
        let recorded = inbox::contains(&app.db, "inventory", &event_id.to_string()).await;
        assert!(recorded.unwrap(), "inbox holds {event_id}");
    }
    assert!(app.events::<RefundOrder>().await.is_empty());
    assert_eq!(app.movements(product.id).await.len(), 2);
}

/// Lines no store would send — anyone with Redis access can publish — are dead-lettered
/// before they reach a sum: nothing reserved, nothing published, the product still readable.
/// The two lines of 2^62 once wrapped around to a negative quantity and were "reserved".
#[tokio::test]
async fn orders_with_impossible_lines_are_dead_lettered_untouched() {
    const HALF_WRAP: i64 = 4_611_686_018_427_387_904;
    let app = spawn_app().await;
    let product = seed_product(&app.db, 10).await;
    let bad_orders: [&[(Uuid, i64)]; 5] = [
        &[(product.id, 0)],
        &[(product.id, -3)],
        &[(product.id, 1_001)],
        &[(product.id, HALF_WRAP), (product.id, HALF_WRAP)],
        &[],
    ];
    for lines in bad_orders {
        let (envelope, _) = paid_order(lines);
        app.publish(&envelope).await;
    }
    wait_until(Duration::from_secs(20), "all dead-lettered", || async {
        app.dead_letters().await == 5
    })
    .await;
    app.settle().await;
    assert_eq!(app.product(product.id).await.unwrap().stock, 10);
    assert!(app.events::<StockReserved>().await.is_empty());
    assert!(app.events::<RefundOrder>().await.is_empty());
    let shown = app.get(&format!("/products/{}", product.id)).await;
    assert_eq!(shown.status(), 200);
}

#[tokio::test]
async fn a_database_failure_is_retried_never_turned_into_a_refund() {
    use sea_orm::ConnectionTrait;

    let app = spawn_app().await;
    let product = seed_product(&app.db, 10).await;
    // The products table disappears for a while: every reservation attempt fails.
    app.db
        .execute_unprepared("ALTER TABLE products RENAME TO products_away")
        .await
        .unwrap();
    let (envelope, order) = paid_order(&[(product.id, 2)]);
    app.publish(&envelope).await;
    let key = app.stream(OrderCompleted::TYPE);
    wait_until(Duration::from_secs(20), "a second delivery", || {
        let mut conn = app.redis.clone();
        let key = key.clone();
        async move {
            let reply: redis::Value = redis::cmd("XPENDING")
                .arg(&key)
                .arg("inventory")
                .arg("-")
                .arg("+")
                .arg(10)
                .query_async(&mut conn)
                .await
                .unwrap();
            common::runtime::redis_io::parse_pending_range(reply)
                .iter()
                .any(|(_, _, _, deliveries)| *deliveries >= 2)
        }
    })
    .await;
    app.db
        .execute_unprepared("ALTER TABLE products_away RENAME TO products")
        .await
        .unwrap();

    app.wait_for_events(StockReserved::TYPE, 1).await;
    app.settle().await;
    assert_eq!(app.product(product.id).await.unwrap().stock, 8);
    assert_eq!(reservations(&app, order.order_id).await.len(), 1);
    assert!(app.events::<RefundOrder>().await.is_empty());
    assert_eq!(app.dead_letters().await, 0);
}
