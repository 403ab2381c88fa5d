//! `POST /orders/{id}/cancel` in every status: a pending order is cancelled and payment told
//! never to charge it; a paid one gets a refund request and becomes `refunded` when the money is
//! back; shipped and finished orders cannot be cancelled.

use common::{
    Envelope,
    auth::Role,
    events::{OrderCompleted, OrderShipped, PaymentRefunded, RefundOrder, RefundReason},
};
use serde_json::Value;
use uuid::Uuid;

use crate::support::{StoreApp, TestApp, assert_problem, id_of, spawn_app};

/// An `order-completed` for an order placed by the store.
pub fn paid(order_id: Uuid, user_id: Uuid) -> Envelope {
    let payload = OrderCompleted {
        order_id,
        user_id,
        payment_id: Uuid::now_v7(),
        items: vec![common::events::OrderLine {
            product_id: Uuid::nil(),
            quantity: 1,
            unit_price_cents: 0,
        }],
        total_cents: 0,
    };
    Envelope::new("order-completed", "payment", "req", "", &payload).unwrap()
}

pub fn shipped(order_id: Uuid) -> Envelope {
    let payload = OrderShipped {
        order_id,
        shipment_id: Uuid::now_v7(),
        carrier: "DHL".into(),
        tracking_number: "TRACK-1".into(),
    };
    Envelope::new("order-shipped", "warehouse", "req", "", &payload).unwrap()
}

pub fn refunded(order_id: Uuid, user_id: Uuid) -> Envelope {
    let payload = PaymentRefunded {
        order_id,
        user_id,
        payment_id: Uuid::now_v7(),
        amount_cents: 120,
    };
    Envelope::new("payment-refunded", "payment", "req", "", &payload).unwrap()
}

async fn cancel(app: &TestApp, token: &str, id: Uuid) -> reqwest::Response {
    app.send_with_headers(
        reqwest::Method::POST,
        &format!("/orders/{id}/cancel"),
        Some(token),
        None,
        &[("x-request-id", "req-cancel")],
    )
    .await
}

#[tokio::test]
async fn cancelling_a_pending_order_cancels_it_and_publishes_refund_order() {
    let app = spawn_app().await;
    let cup = app.seed_product("cup", 100).await;
    let shopper = app.caller(Role::User);
    let id = id_of(&app.place(&shopper, &[(cup, 1)]).await);

    let response = cancel(&app, &shopper.token, id).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "cancelled");
    let history = body["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["status"], "cancelled");
    assert_eq!(history[1]["reason"], "cancelled_by_customer");

    let refunds = app.events::<RefundOrder>().await;
    assert_eq!(refunds.len(), 1);
    let (envelope, refund) = &refunds[0];
    assert_eq!(refund.order_id, id);
    assert_eq!(refund.user_id, shopper.id);
    assert_eq!(refund.reason, RefundReason::CancelledByCustomer);
    assert_eq!(envelope.correlation_id, "req-cancel");

    // Its own refund-order changes nothing more; a payment arriving late cannot revive it.
    app.publish(&paid(id, shopper.id)).await;
    app.settle().await;
    assert_eq!(app.status(id).await.as_str(), "cancelled");
    assert_eq!(app.history(id).await.len(), 2);

    // Cancelled is final: cancelling again is a conflict and publishes nothing.
    assert_problem(cancel(&app, &shopper.token, id).await, 409).await;
    assert_eq!(app.events::<RefundOrder>().await.len(), 1);
    assert_eq!(app.dead_letters().await, 0);
}

#[tokio::test]
async fn cancelling_a_paid_order_requests_a_refund_and_ends_refunded() {
    let app = spawn_app().await;
    let cup = app.seed_product("cup", 100).await;
    let shopper = app.caller(Role::User);
    let id = id_of(&app.place(&shopper, &[(cup, 1)]).await);
    app.publish(&paid(id, shopper.id)).await;
    app.settle().await;
    assert_eq!(app.status(id).await.as_str(), "paid");

    let response = cancel(&app, &shopper.token, id).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["status"], "paid",
        "the final status comes from the events"
    );
    let last = body["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["status"], "paid");
    assert_eq!(last["reason"], "cancellation requested by customer");

    // Asking twice publishes one refund.
    assert_eq!(cancel(&app, &shopper.token, id).await.status(), 202);
    let refunds = app.events::<RefundOrder>().await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].1.reason, RefundReason::CancelledByCustomer);
    assert_eq!(refunds[0].1.order_id, id);

    // Payment gives the money back.
    app.publish(&refunded(id, shopper.id)).await;
    app.settle().await;
    assert_eq!(app.status(id).await.as_str(), "refunded");
    let statuses: Vec<String> = app
        .history(id)
        .await
        .into_iter()
        .map(|h| h.status)
        .collect();
    assert_eq!(statuses, ["pending", "paid", "paid", "refunded"]);
    assert_problem(cancel(&app, &shopper.token, id).await, 409).await;
    assert_eq!(app.dead_letters().await, 0);
}

#[tokio::test]
async fn a_reserved_order_can_be_cancelled_but_a_shipped_one_cannot() {
    let app = spawn_app().await;
    let cup = app.seed_product("cup", 100).await;
    let shopper = app.caller(Role::User);
    let reserved = id_of(&app.place(&shopper, &[(cup, 1)]).await);
    let sent = id_of(&app.place(&shopper, &[(cup, 2)]).await);
    let reservation = |order_id| {
        Envelope::new(
            "stock-reserved",
            "inventory",
            "req",
            "",
            &common::events::StockReserved {
                order_id,
                user_id: shopper.id,
                items: vec![common::events::OrderLine {
                    product_id: Uuid::nil(),
                    quantity: 1,
                    unit_price_cents: 0,
                }],
            },
        )
        .unwrap()
    };
    app.publish(&reservation(reserved)).await;
    app.publish(&shipped(sent)).await;
    app.settle().await;
    assert_eq!(app.status(reserved).await.as_str(), "reserved");
    assert_eq!(app.status(sent).await.as_str(), "shipped");

    assert_eq!(cancel(&app, &shopper.token, reserved).await.status(), 202);
    let problem = assert_problem(cancel(&app, &shopper.token, sent).await, 409).await;
    assert!(problem["detail"].as_str().unwrap().contains("shipped"));
    // Someone else cannot cancel it, and learns nothing about it.
    let stranger = app.caller(Role::User);
    assert_problem(cancel(&app, &stranger.token, reserved).await, 404).await;
    assert_problem(
        app.send(
            reqwest::Method::POST,
            &format!("/orders/{reserved}/cancel"),
            None,
            None,
        )
        .await,
        401,
    )
    .await;

    let refunds = app.events::<RefundOrder>().await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].1.order_id, reserved);
    assert_eq!(app.status(sent).await.as_str(), "shipped");
}
