//! The `payment` group in process: wallets open once, orders are charged once with one
//! conditional debit, short wallets fail the payment without touching the balance, an order
//! that beats its wallet is retried, refunds happen exactly once, and an order refunded before it
//! was charged is never charged. Every test ends with money conserved and nothing dead-lettered.

use std::time::Duration;

use common::{
    Envelope,
    events::{
        Event, OrderCompleted, OrderPlaced, PaymentFailed, PaymentRefunded, RefundOrder,
        RefundReason, UserRegistered,
    },
    runtime::redis_io,
    testing::wait_until,
};
use payment::entity::{cancelled_order, payment as payment_row, refund, wallet};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use uuid::Uuid;

use crate::support::{PaymentApp, STARTING_CREDIT, TestApp, placed, spawn_app};

/// The same payload under a new event id: a producer that re-sent it.
fn resent<T: Event>(payload: &T) -> Envelope {
    Envelope::new(T::TYPE, "store", "req-42", "", payload).unwrap()
}

fn refund_of(order_id: Uuid, user_id: Uuid, reason: RefundReason) -> (Envelope, RefundOrder) {
    let payload = RefundOrder {
        order_id,
        user_id,
        reason,
    };
    let envelope = Envelope::new(RefundOrder::TYPE, "inventory", "req-43", "", &payload).unwrap();
    (envelope, payload)
}

async fn payments_of(app: &TestApp, order_id: Uuid) -> Vec<payment_row::Model> {
    payment_row::Entity::find()
        .filter(payment_row::Column::OrderId.eq(order_id))
        .all(&app.db)
        .await
        .unwrap()
}

async fn finish(app: &TestApp) {
    app.settle().await;
    app.assert_money_conserved().await;
    assert_eq!(app.dead_letters().await, 0, "nothing dead-lettered");
}

#[tokio::test]
async fn a_wallet_is_opened_once_on_user_registered_even_when_redelivered() {
    let app = spawn_app().await;
    let user_id = Uuid::now_v7();
    let payload = UserRegistered {
        user_id,
        email: "ada@example.com".into(),
    };
    let envelope = Envelope::new(UserRegistered::TYPE, "user", "req-1", "", &payload).unwrap();
    app.publish(&envelope).await;
    app.publish(&envelope).await;
    app.publish(&resent(&payload)).await;
    app.settle().await;

    let wallet = app.wallet(user_id).await.expect("wallet opened");
    assert_eq!(wallet.balance_cents, STARTING_CREDIT);
    assert_eq!(wallet.opening_credit_cents, STARTING_CREDIT);
    assert_eq!(wallet::Entity::find().count(&app.db).await.unwrap(), 1);
    finish(&app).await;
}

#[tokio::test]
async fn an_order_is_charged_once_even_when_delivered_twice_or_resent() {
    let app = spawn_app().await;
    let user_id = app.register_user().await;
    let (envelope, order) = placed(user_id, 1_200);
    app.publish(&envelope).await;
    app.publish(&envelope).await;
    let again = resent(&order);
    app.publish(&again).await;
    app.wait_for_events(OrderCompleted::TYPE, 1).await;
    app.settle().await;

    assert_eq!(app.balance(user_id).await, STARTING_CREDIT - 1_200);
    let payments = payments_of(&app, order.order_id).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0].status, "captured");
    assert_eq!(payments[0].amount_cents, 1_200);

    let completed = app.events::<OrderCompleted>().await;
    assert_eq!(completed.len(), 1);
    let (follow_up, paid) = &completed[0];
    assert_eq!(paid.order_id, order.order_id);
    assert_eq!(paid.user_id, user_id);
    assert_eq!(paid.payment_id, payments[0].id);
    assert_eq!(paid.items, order.items);
    assert_eq!(paid.total_cents, 1_200);
    // Either announcement of the order may be handled first (they are handled concurrently);
    // the charge is caused by whichever won.
    assert!(
        [envelope.event_id.to_string(), again.event_id.to_string()]
            .contains(&follow_up.causation_id),
        "caused by one of the two order-placed events: {}",
        follow_up.causation_id
    );
    assert_eq!(follow_up.correlation_id, "req-42");
    assert_eq!(follow_up.producer, "payment");
    assert!(app.events::<PaymentFailed>().await.is_empty());
    finish(&app).await;
}

#[tokio::test]
async fn insufficient_funds_fail_the_payment_and_leave_the_balance_alone() {
    let app = spawn_app().await;
    let user_id = app.register_user().await;
    let (envelope, order) = placed(user_id, STARTING_CREDIT + 1);
    app.publish(&envelope).await;
    app.publish(&envelope).await;
    app.wait_for_events(PaymentFailed::TYPE, 1).await;
    app.settle().await;

    assert_eq!(app.balance(user_id).await, STARTING_CREDIT);
    let payments = payments_of(&app, order.order_id).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0].status, "failed");
    assert_eq!(payments[0].reason.as_deref(), Some("insufficient_funds"));
    let failed = app.events::<PaymentFailed>().await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].1.order_id, order.order_id);
    assert_eq!(failed[0].1.user_id, user_id);
    assert_eq!(failed[0].1.reason, "insufficient_funds");
    assert!(app.events::<OrderCompleted>().await.is_empty());

    // Exactly the balance is enough: the debit is `>=`, not `>`.
    let (envelope, _) = placed(user_id, STARTING_CREDIT);
    app.publish(&envelope).await;
    app.wait_for_events(OrderCompleted::TYPE, 1).await;
    app.settle().await;
    assert_eq!(app.balance(user_id).await, 0);
    finish(&app).await;
}

#[tokio::test]
async fn an_order_ahead_of_its_wallet_is_retried_and_charged_once_the_wallet_opens() {
    let app = spawn_app().await;
    let user_id = Uuid::now_v7();
    let (envelope, order) = placed(user_id, 700);
    app.publish(&envelope).await;

    // Wait until the entry was delivered at least twice: the worker retried, not failed.
    let key = app.stream(OrderPlaced::TYPE);
    wait_until(Duration::from_secs(20), "order-placed redelivered", || {
        let mut conn = app.redis.clone();
        let key = key.clone();
        async move {
            let reply: redis::Value = redis::cmd("XPENDING")
                .arg(&key)
                .arg(payment::worker::GROUP)
                .arg("-")
                .arg("+")
                .arg(10)
                .query_async(&mut conn)
                .await
                .unwrap_or(redis::Value::Nil);
            redis_io::parse_pending_range(reply)
                .iter()
                .any(|(_, _, _, deliveries)| *deliveries >= 2)
        }
    })
    .await;
    assert!(payments_of(&app, order.order_id).await.is_empty());
    assert!(app.events::<PaymentFailed>().await.is_empty());

    let payload = UserRegistered {
        user_id,
        email: "late@example.com".into(),
    };
    app.publish(&Envelope::new(UserRegistered::TYPE, "user", "r", "", &payload).unwrap())
        .await;
    app.wait_for_events(OrderCompleted::TYPE, 1).await;
    app.settle().await;

    assert_eq!(app.balance(user_id).await, STARTING_CREDIT - 700);
    assert_eq!(payments_of(&app, order.order_id).await.len(), 1);
    assert!(app.events::<PaymentFailed>().await.is_empty());
    finish(&app).await;
}

#[tokio::test]
async fn a_refund_is_applied_exactly_once_and_restores_the_balance() {
    let app = spawn_app().await;
    let user_id = app.register_user().await;
    let (envelope, order) = placed(user_id, 2_000);
    app.publish(&envelope).await;
    app.wait_for_events(OrderCompleted::TYPE, 1).await;
    app.settle().await;
    assert_eq!(app.balance(user_id).await, STARTING_CREDIT - 2_000);

    let (refund_env, refund_payload) =
        refund_of(order.order_id, user_id, RefundReason::InsufficientStock);
    app.publish(&refund_env).await;
    app.publish(&refund_env).await;
    let refund_again = resent(&refund_payload);
    app.publish(&refund_again).await;
    let (other_reason, _) = refund_of(order.order_id, user_id, RefundReason::FulfillmentFailed);
    app.publish(&other_reason).await;
    app.wait_for_events(PaymentRefunded::TYPE, 1).await;
    app.settle().await;

    assert_eq!(app.balance(user_id).await, STARTING_CREDIT);
    let payments = payments_of(&app, order.order_id).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0].status, "refunded");
    let refunds = refund::Entity::find().all(&app.db).await.unwrap();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].amount_cents, 2_000);
    assert_eq!(refunds[0].reason, "insufficient_stock");

    let refunded = app.events::<PaymentRefunded>().await;
    assert_eq!(refunded.len(), 1);
    let (follow_up, event) = &refunded[0];
    assert_eq!(event.order_id, order.order_id);
    assert_eq!(event.user_id, user_id);
    assert_eq!(event.payment_id, payments[0].id);
    assert_eq!(event.amount_cents, 2_000);
    // The two announcements of the refund may be handled at once; either may be the cause.
    assert!(
        [
            refund_env.event_id.to_string(),
            refund_again.event_id.to_string()
        ]
        .contains(&follow_up.causation_id),
        "caused by one of the two refund-order events: {}",
        follow_up.causation_id
    );
    let cause = if follow_up.causation_id == refund_env.event_id.to_string() {
        &refund_env
    } else {
        &refund_again
    };
    assert_eq!(follow_up.correlation_id, cause.correlation_id);
    finish(&app).await;
}

#[tokio::test]
async fn an_order_refunded_before_it_was_placed_is_never_charged() {
    let app = spawn_app().await;
    let user_id = app.register_user().await;
    let (envelope, order) = placed(user_id, 900);
    let (cancel, _) = refund_of(order.order_id, user_id, RefundReason::CancelledByCustomer);
    app.publish(&cancel).await;
    app.publish(&cancel).await;
    app.settle().await;
    let tombstone = cancelled_order::Entity::find_by_id(order.order_id)
        .one(&app.db)
        .await
        .unwrap()
        .expect("tombstone");
    assert_eq!(tombstone.reason, "cancelled_by_customer");

    app.publish(&envelope).await;
    app.publish(&resent(&order)).await;
    app.settle().await;

    assert_eq!(app.balance(user_id).await, STARTING_CREDIT);
    assert!(payments_of(&app, order.order_id).await.is_empty());
    assert!(app.events::<OrderCompleted>().await.is_empty());
    assert!(app.events::<PaymentFailed>().await.is_empty());
    assert!(app.events::<PaymentRefunded>().await.is_empty());
    finish(&app).await;
}

#[tokio::test]
async fn a_refund_of_a_failed_payment_changes_nothing() {
    let app = spawn_app().await;
    let user_id = app.register_user().await;
    let (envelope, order) = placed(user_id, STARTING_CREDIT * 2);
    app.publish(&envelope).await;
    app.wait_for_events(PaymentFailed::TYPE, 1).await;
    app.settle().await;

    let (refund_env, _) = refund_of(order.order_id, user_id, RefundReason::CancelledByCustomer);
    app.publish(&refund_env).await;
    app.settle().await;

    assert_eq!(app.balance(user_id).await, STARTING_CREDIT);
    assert_eq!(payments_of(&app, order.order_id).await[0].status, "failed");
    assert!(
        refund::Entity::find()
            .all(&app.db)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(app.events::<PaymentRefunded>().await.is_empty());
    finish(&app).await;
}

#[tokio::test]
async fn poison_order_placed_goes_to_the_dead_letter_stream_without_charging() {
    let app = spawn_app().await;
    let user_id = app.register_user().await;
    let (envelope, mut order) = placed(user_id, 100);
    order.total_cents = -100;
    let bad = Envelope::new(OrderPlaced::TYPE, "store", "req", "", &order).unwrap();
    app.publish(&bad).await;
    app.publish(&envelope).await;
    app.wait_for_events(OrderCompleted::TYPE, 1).await;
    app.settle().await;
    assert_eq!(app.dead_letters().await, 1);
    assert_eq!(app.balance(user_id).await, STARTING_CREDIT - 100);
    app.assert_money_conserved().await;
}

#[tokio::test]
async fn concurrent_orders_never_overdraw_a_wallet() {
    let app = spawn_app().await;
    let user_id = app.register_user().await;
    // Twelve orders of 1,000 against 5,000: exactly five can be paid, whatever the interleaving.
    let orders: Vec<_> = (0..12).map(|_| placed(user_id, 1_000)).collect();
    for (envelope, _) in &orders {
        app.publish(envelope).await;
    }
    app.wait_for_events(OrderCompleted::TYPE, 5).await;
    app.wait_for_events(PaymentFailed::TYPE, 7).await;
    app.settle().await;

    assert_eq!(app.balance(user_id).await, 0);
    assert_eq!(app.events::<OrderCompleted>().await.len(), 5);
    assert_eq!(app.events::<PaymentFailed>().await.len(), 7);
    finish(&app).await;
}

#[tokio::test]
async fn an_order_cancelled_while_it_is_being_charged_is_never_charged_or_waits_for_the_warehouse()
{
    let app = spawn_app().await;
    let user_id = app.register_user().await;
    let orders: Vec<_> = (0..10).map(|_| placed(user_id, 300)).collect();
    // Each order's placement and cancellation race on two streams.
    for (envelope, order) in &orders {
        let (cancel, _) = refund_of(order.order_id, user_id, RefundReason::CancelledByCustomer);
        let (a, b) = tokio::join!(app.publish(envelope), app.publish(&cancel));
        let ((), ()) = (a, b);
    }
    app.settle().await;

    // Where the cancellation won, the order is tombstoned and never charged; where the charge
    // won, the money stays captured: the goods may already be on their way, and only the
    // warehouse can tell.
    let mut charged = Vec::new();
    for (_, order) in &orders {
        let payments = payments_of(&app, order.order_id).await;
        let tombstoned = cancelled_order::Entity::find_by_id(order.order_id)
            .one(&app.db)
            .await
            .unwrap()
            .is_some();
        match payments.as_slice() {
            [] => assert!(tombstoned, "an uncharged order is tombstoned"),
            [p] => {
                assert_eq!(
                    p.status, "captured",
                    "a customer's request alone refunds nothing"
                );
                assert!(!tombstoned);
                charged.push(order.order_id);
            }
            more => panic!("{} payments for one order", more.len()),
        }
    }
    assert_eq!(
        app.balance(user_id).await,
        STARTING_CREDIT - 300 * charged.len() as i64
    );
    assert!(app.events::<PaymentRefunded>().await.is_empty());

    // The warehouse accepts every cancellation (nothing shipped): the charged ones are refunded
    // once, the others stay uncharged.
    for (_, order) in &orders {
        let (accepted, _) = refund_of(
            order.order_id,
            user_id,
            RefundReason::CancelledBeforeShipping,
        );
        app.publish(&accepted).await;
    }
    app.settle().await;
    assert_eq!(app.balance(user_id).await, STARTING_CREDIT);
    for order_id in &charged {
        assert_eq!(payments_of(&app, *order_id).await[0].status, "refunded");
    }
    assert_eq!(app.events::<PaymentRefunded>().await.len(), charged.len());
    assert_eq!(app.events::<OrderCompleted>().await.len(), charged.len());
    finish(&app).await;
}
