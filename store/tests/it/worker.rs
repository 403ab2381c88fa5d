//! The `store` group in process: the status machine gives the same final state whatever order
//! the saga's events arrive in and never shows a backwards move; duplicates apply once; unknown
//! orders are dead-lettered; the catalog projection ignores stale revisions.

use std::time::Duration;

use common::{
    Envelope,
    auth::Role,
    db::inbox,
    events::{PaymentFailed, ProductChanged, RefundOrder, RefundReason, StockReserved},
    testing::wait_until,
};
use store::status::OrderStatus;
use uuid::Uuid;

use crate::{
    cancel::{paid, refunded, shipped},
    support::{StoreApp, TestApp, assert_problem, id_of, items, spawn_app},
};

/// A saga event the store consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Paid,
    Reserved,
    Shipped,
    Refunded,
    PaymentFailed,
    RefundRequested,
}

fn event(step: Step, order_id: Uuid, user_id: Uuid) -> Envelope {
    match step {
        Step::Paid => paid(order_id, user_id),
        Step::Reserved => Envelope::new(
            "stock-reserved",
            "inventory",
            "req",
            "",
            &StockReserved {
                order_id,
                user_id,
                items: vec![common::events::OrderLine {
                    product_id: Uuid::nil(),
                    quantity: 1,
                    unit_price_cents: 0,
                }],
            },
        )
        .unwrap(),
        Step::Shipped => shipped(order_id),
        Step::Refunded => refunded(order_id, user_id),
        Step::PaymentFailed => Envelope::new(
            "payment-failed",
            "payment",
            "req",
            "",
            &PaymentFailed {
                order_id,
                user_id,
                reason: "insufficient_funds".into(),
            },
        )
        .unwrap(),
        Step::RefundRequested => Envelope::new(
            "refund-order",
            "inventory",
            "req",
            "",
            &RefundOrder {
                order_id,
                user_id,
                reason: RefundReason::InsufficientStock,
            },
        )
        .unwrap(),
    }
}

fn permutations(steps: &[Step]) -> Vec<Vec<Step>> {
    if steps.len() <= 1 {
        return vec![steps.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..steps.len() {
        let mut rest = steps.to_vec();
        let first = rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first);
            out.push(tail);
        }
    }
    out
}

/// Asserts the history of an order never moves backwards and nothing follows a terminal state.
async fn assert_forward_only(app: &TestApp, id: Uuid, arrival: &[Step]) {
    let history = app.history(id).await;
    let statuses: Vec<OrderStatus> = history
        .iter()
        .map(|h| OrderStatus::parse(&h.status).unwrap())
        .collect();
    assert_eq!(statuses.first(), Some(&OrderStatus::Pending));
    for pair in statuses.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(
            a == b || a.can_move_to(b),
            "backwards move {a} → {b} in {statuses:?} (arrival {arrival:?})"
        );
    }
}

/// Places one order per arrival order, then feeds the events round by round (each round waits
/// until the group is idle), so every order sees exactly its permutation.
async fn feed_every_permutation(app: &TestApp, steps: &[Step]) -> Vec<(Uuid, Vec<Step>)> {
    let cup = app.seed_product("cup", 100).await;
    let shopper = app.caller(Role::User);
    let mut orders = Vec::new();
    for arrival in permutations(steps) {
        orders.push((id_of(&app.place(&shopper, &[(cup, 1)]).await), arrival));
    }
    for round in 0..steps.len() {
        for (id, arrival) in &orders {
            app.publish(&event(arrival[round], *id, shopper.id)).await;
        }
        app.settle().await;
    }
    orders
}

#[tokio::test]
async fn any_arrival_order_of_paid_reserved_shipped_refunded_ends_refunded() {
    let app = spawn_app().await;
    let steps = [Step::Paid, Step::Reserved, Step::Shipped, Step::Refunded];
    let orders = feed_every_permutation(&app, &steps).await;
    assert_eq!(orders.len(), 24);
    for (id, arrival) in &orders {
        assert_eq!(
            app.status(*id).await,
            OrderStatus::Refunded,
            "arrival {arrival:?}"
        );
        assert_forward_only(&app, *id, arrival).await;
    }
    assert_eq!(app.dead_letters().await, 0);
}

#[tokio::test]
async fn any_arrival_order_of_paid_reserved_shipped_ends_shipped() {
    let app = spawn_app().await;
    let steps = [
        Step::Paid,
        Step::Reserved,
        Step::Shipped,
        Step::RefundRequested,
    ];
    let orders = feed_every_permutation(&app, &steps).await;
    for (id, arrival) in &orders {
        // A refund request alone changes nothing: only the money coming back does.
        assert_eq!(
            app.status(*id).await,
            OrderStatus::Shipped,
            "arrival {arrival:?}"
        );
        assert_forward_only(&app, *id, arrival).await;
        let history = app.history(*id).await;
        assert!(
            history
                .iter()
                .any(|h| h.reason == "refund requested: insufficient_stock"),
            "the refund request is recorded"
        );
        // Every step is in the history: as the status it moved to, or, when a later step
        // overtook it, as a note that it arrived late.
        for step in ["paid", "reserved", "shipped"] {
            // A transition is a row whose status differs from the one before (notes keep it).
            let moved = history
                .windows(2)
                .filter(|w| w[1].status == step && w[0].status != step)
                .count();
            let late = history
                .iter()
                .filter(|h| h.reason.starts_with(&format!("{step}:")))
                .count();
            assert_eq!(
                moved + late,
                1,
                "{step} recorded once in {history:#?} (arrival {arrival:?})"
            );
        }
    }
}

#[tokio::test]
async fn a_failed_payment_is_final_whatever_comes_after() {
    let app = spawn_app().await;
    let steps = [Step::PaymentFailed, Step::Paid, Step::Reserved];
    let orders = feed_every_permutation(&app, &steps).await;
    for (id, arrival) in &orders {
        let expected = if arrival[0] == Step::PaymentFailed {
            OrderStatus::PaymentFailed
        } else {
            // Contradictory news: the order was paid first; a later failure cannot unpay it.
            OrderStatus::Reserved
        };
        assert_eq!(app.status(*id).await, expected, "arrival {arrival:?}");
        assert_forward_only(&app, *id, arrival).await;
    }
    let failed = orders
        .iter()
        .find(|(_, a)| a[0] == Step::PaymentFailed)
        .unwrap()
        .0;
    let last = app.history(failed).await.pop().unwrap();
    assert_eq!(last.status, "payment_failed");
    assert_eq!(last.reason, "payment failed: insufficient_funds");
    assert!(last.event_id.is_some());
}

#[tokio::test]
async fn duplicate_events_are_applied_once() {
    let app = spawn_app().await;
    let cup = app.seed_product("cup", 100).await;
    let shopper = app.caller(Role::User);
    let id = id_of(&app.place(&shopper, &[(cup, 1)]).await);

    let payment = paid(id, shopper.id);
    // The same event three times (a redelivery, an outbox re-send, a replay) …
    for _ in 0..3 {
        app.publish(&payment).await;
    }
    // … and the same news under another event id.
    app.publish(&paid(id, shopper.id)).await;
    app.settle().await;

    let history = app.history(id).await;
    let statuses: Vec<&str> = history.iter().map(|h| h.status.as_str()).collect();
    assert_eq!(statuses, ["pending", "paid"]);
    assert_eq!(
        history[1].event_id.as_deref(),
        Some(payment.event_id.to_string().as_str())
    );
    assert!(
        inbox::contains(&app.db, store::worker::GROUP, &payment.event_id.to_string())
            .await
            .unwrap()
    );
    assert_eq!(app.dead_letters().await, 0);
}

#[tokio::test]
async fn an_event_for_an_unknown_order_is_dead_lettered() {
    let app = spawn_app().await;
    app.publish(&shipped(Uuid::now_v7())).await;
    wait_until(Duration::from_secs(20), "one dead letter", || async {
        app.dead_letters().await == 1
    })
    .await;
    app.settle().await;
}

#[tokio::test]
async fn the_catalog_projection_ignores_stale_revisions() {
    let app = spawn_app().await;
    let id = Uuid::now_v7();
    let change = |revision, price_cents, active| ProductChanged {
        product_id: id,
        name: format!("cup r{revision}"),
        price_cents,
        active,
        revision,
    };
    app.catalog(&change(3, 300, true)).await;
    // Older revisions arriving late, and the same revision again, change nothing.
    app.catalog(&change(2, 200, true)).await;
    app.catalog(&change(1, 100, false)).await;
    app.catalog(&change(3, 999, false)).await;
    let held = app.catalog_product(id).await.unwrap();
    assert_eq!(
        (held.revision, held.price_cents, held.active),
        (3, 300, true)
    );
    assert_eq!(held.name, "cup r3");

    let shopper = app.caller(Role::User);
    let order = app.place(&shopper, &[(id, 2)]).await;
    assert_eq!(order["subtotal_cents"], 600);

    // A newer revision applies: deactivated, it cannot be ordered any more.
    app.catalog(&change(4, 400, false)).await;
    let held = app.catalog_product(id).await.unwrap();
    assert_eq!(
        (held.revision, held.price_cents, held.active),
        (4, 400, false)
    );
    let rejected = app
        .send(
            reqwest::Method::POST,
            "/orders",
            Some(&shopper.token),
            Some(items(&[(id, 1)])),
        )
        .await;
    assert_problem(rejected, 422).await;
}

#[tokio::test]
async fn events_of_one_order_handled_at_the_same_time_still_converge() {
    let app = spawn_app().await;
    let cup = app.seed_product("cup", 100).await;
    let shopper = app.caller(Role::User);
    let steps = [Step::Paid, Step::Reserved, Step::Shipped, Step::Refunded];
    let mut orders = Vec::new();
    for _ in 0..20 {
        orders.push(id_of(&app.place(&shopper, &[(cup, 1)]).await));
    }
    // Everything at once: the worker runs handlers of different streams concurrently, so the
    // conditional updates of one order race each other.
    for (i, id) in orders.iter().enumerate() {
        for k in 0..steps.len() {
            app.publish(&event(steps[(i + k) % steps.len()], *id, shopper.id))
                .await;
        }
    }
    app.settle().await;
    for id in &orders {
        assert_eq!(app.status(*id).await, OrderStatus::Refunded);
        assert_forward_only(&app, *id, &steps).await;
    }
    assert_eq!(app.dead_letters().await, 0);
}
