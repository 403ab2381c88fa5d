//! The `warehouse` group in process: a reserved order gets one shipment, shipped at once with
//! auto-dispatch and announced once however often it is delivered; with auto-dispatch off it
//! waits; a refund cancels what has not left, leaves what has, and — arriving first — keeps the
//! order from ever shipping. A customer's cancellation is ruled on here: accepted (one
//! `cancelled_before_shipping` refund) while nothing has left, refused once it has.

use common::{
    Envelope,
    db::inbox,
    events::{Event as _, OrderShipped, RefundOrder, RefundReason, StockReserved},
};

use crate::support::{TestApp, WarehouseApp, refund, reserved_order, spawn_app, spawn_manual_app};

#[tokio::test]
async fn a_reserved_order_is_shipped_at_once_and_announced_once() {
    let app = spawn_app().await;
    let (envelope, order) = reserved_order();
    // A redelivery (same event id), then the same order under a new event id.
    app.publish(&envelope).await;
    app.publish(&envelope).await;
    let again = Envelope::new(StockReserved::TYPE, "inventory", "req-7", "", &order).unwrap();
    app.deliver(&again).await;

    let shipments = app.all_shipments().await;
    assert_eq!(shipments.len(), 1, "one shipment per order");
    let shipment = &shipments[0];
    assert_eq!(shipment.order_id, order.order_id);
    assert_eq!(shipment.user_id, order.user_id);
    assert_eq!(shipment.status, "shipped");
    assert_eq!(shipment.items, serde_json::to_value(&order.items).unwrap());
    let carrier = shipment.carrier.clone().expect("a carrier");
    let tracking = shipment.tracking_number.clone().expect("a tracking number");
    assert!(!carrier.is_empty() && !tracking.is_empty());
    assert!(shipment.shipped_at.is_some());

    let shipped = app.events::<OrderShipped>().await;
    assert_eq!(shipped.len(), 1, "one order-shipped");
    let (follow_up, payload) = &shipped[0];
    assert_eq!(payload.order_id, order.order_id);
    assert_eq!(payload.shipment_id, shipment.id);
    assert_eq!(
        (&payload.carrier, &payload.tracking_number),
        (&carrier, &tracking)
    );
    // Both announcements may be handled at once; the shipment is caused by whichever won.
    assert!(
        [envelope.event_id.to_string(), again.event_id.to_string()]
            .contains(&follow_up.causation_id),
        "caused by one of the two stock-reserved events: {}",
        follow_up.causation_id
    );
    assert_eq!(follow_up.correlation_id, "req-7");
    assert_eq!(follow_up.producer, "warehouse");
    for event_id in [envelope.event_id, again.event_id] {
        let recorded = inbox::contains(&app.db, "warehouse", &event_id.to_string()).await;
        assert!(recorded.unwrap(), "inbox holds {event_id}");
    }
    assert_eq!(app.published().await[RefundOrder::TYPE], 0);
}

#[tokio::test]
async fn with_auto_dispatch_off_a_shipment_waits_for_an_admin_to_ship_it() {
    let app = spawn_manual_app().await;
    let (envelope, order) = reserved_order();
    app.deliver(&envelope).await;

    let pending = app.shipment_of(order.order_id).await.expect("a shipment");
    assert_eq!(pending.status, "pending");
    assert_eq!(
        (
            pending.carrier.as_deref(),
            pending.tracking_number.as_deref()
        ),
        (None, None)
    );
    assert!(app.events::<OrderShipped>().await.is_empty());

    let response = app.ship(pending.id).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "shipped");
    assert_eq!(body["id"], pending.id.to_string());
    assert!(
        body["tracking_number"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let shipped = app.shipment_of(order.order_id).await.unwrap();
    assert_eq!(shipped.status, "shipped");

    let events = app.events::<OrderShipped>().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1.order_id, order.order_id);
    assert_eq!(events[0].1.shipment_id, pending.id);
    assert_eq!(
        Some(&events[0].1.tracking_number),
        shipped.tracking_number.as_ref()
    );

    // Shipped is final: shipping again or failing it is a conflict that changes nothing.
    crate::support::assert_problem(app.ship(pending.id).await, 409).await;
    crate::support::assert_problem(app.fail(pending.id, "lost").await, 409).await;
    assert_eq!(app.shipment_of(order.order_id).await.unwrap(), shipped);
    let counts = app.published().await;
    assert_eq!(
        (counts[OrderShipped::TYPE], counts[RefundOrder::TYPE]),
        (1, 0)
    );
}

#[tokio::test]
async fn a_refund_cancels_a_pending_shipment() {
    let app = spawn_manual_app().await;
    let (envelope, order) = reserved_order();
    app.deliver(&envelope).await;
    let pending = app.shipment_of(order.order_id).await.expect("a shipment");

    let cancel = refund(&order, RefundReason::CancelledByCustomer);
    app.publish(&cancel).await;
    app.deliver(&cancel).await;

    let cancelled = app.shipment_of(order.order_id).await.unwrap();
    assert_eq!(cancelled.id, pending.id);
    assert_eq!(cancelled.status, "cancelled");
    assert!(cancelled.reason.unwrap().contains("cancelled_by_customer"));
    crate::support::assert_problem(app.ship(pending.id).await, 409).await;
    assert!(app.events::<OrderShipped>().await.is_empty());
    assert_cancellation_accepted_once(&app, &order, &cancel).await;
}

/// The warehouse accepted the customer's cancellation: exactly one `refund-order`
/// (`cancelled_before_shipping`) of its own, caused by `cancel`, for payment and inventory.
async fn assert_cancellation_accepted_once(
    app: &TestApp,
    order: &StockReserved,
    cancel: &Envelope,
) {
    let refunds = app.events::<RefundOrder>().await;
    let accepted: Vec<_> = refunds
        .iter()
        .filter(|(_, r)| r.reason == RefundReason::CancelledBeforeShipping)
        .collect();
    assert_eq!(accepted.len(), 1, "{refunds:?}");
    let (envelope, refund) = accepted[0];
    assert_eq!(envelope.producer, "warehouse");
    assert_eq!(envelope.causation_id, cancel.event_id.to_string());
    assert_eq!(
        (refund.order_id, refund.user_id),
        (order.order_id, order.user_id)
    );
}

#[tokio::test]
async fn a_refund_before_the_stock_is_reserved_means_the_order_never_ships() {
    let app = spawn_app().await;
    let (envelope, order) = reserved_order();
    // The refund overtakes `stock-reserved` (they travel on different streams).
    let cancel = refund(&order, RefundReason::CancelledByCustomer);
    app.deliver(&cancel).await;
    let tombstone = app.shipment_of(order.order_id).await.expect("a tombstone");
    assert_eq!(tombstone.status, "cancelled");
    assert_cancellation_accepted_once(&app, &order, &cancel).await;

    app.deliver(&envelope).await;
    let shipments = app.all_shipments().await;
    assert_eq!(shipments.len(), 1);
    assert_eq!(shipments[0].id, tombstone.id);
    assert_eq!(shipments[0].status, "cancelled");
    assert!(app.events::<OrderShipped>().await.is_empty());
    assert!(
        inbox::contains(&app.db, "warehouse", &envelope.event_id.to_string())
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_refund_after_shipping_leaves_the_shipment_shipped() {
    let app = spawn_app().await;
    let (envelope, order) = reserved_order();
    app.deliver(&envelope).await;
    let shipped = app.shipment_of(order.order_id).await.unwrap();
    assert_eq!(shipped.status, "shipped");

    app.deliver(&refund(&order, RefundReason::CancelledByCustomer))
        .await;
    assert_eq!(app.shipment_of(order.order_id).await.unwrap(), shipped);
    assert_eq!(app.events::<OrderShipped>().await.len(), 1);
    // The cancellation came too late: nobody is told to refund or release (the customer keeps
    // the goods and has paid for them).
    let refunds = app.events::<RefundOrder>().await;
    assert_eq!(
        refunds.len(),
        1,
        "only the customer's own request: {refunds:?}"
    );
    assert_eq!(refunds[0].1.reason, RefundReason::CancelledByCustomer);
}

#[tokio::test]
async fn a_cancellation_is_accepted_once_however_often_it_is_delivered() {
    let app = spawn_manual_app().await;
    let (envelope, order) = reserved_order();
    app.deliver(&envelope).await;
    let cancel = refund(&order, RefundReason::CancelledByCustomer);
    app.deliver(&cancel).await;
    app.deliver(&cancel).await;
    // The same request under another event id finds the shipment cancelled already.
    app.deliver(&refund(&order, RefundReason::CancelledByCustomer))
        .await;
    assert_eq!(
        app.shipment_of(order.order_id).await.unwrap().status,
        "cancelled"
    );
    assert_cancellation_accepted_once(&app, &order, &cancel).await;
}

#[tokio::test]
async fn its_own_fulfillment_failed_refunds_change_nothing() {
    let app = spawn_app().await;
    let (envelope, order) = reserved_order();
    // A `fulfillment_failed` refund is this service's own outcome: it leaves no tombstone, so it
    // cannot stop a shipment it knows nothing about.
    app.deliver(&refund(&order, RefundReason::FulfillmentFailed))
        .await;
    assert!(app.all_shipments().await.is_empty());
    app.deliver(&envelope).await;
    assert_eq!(
        app.shipment_of(order.order_id).await.unwrap().status,
        "shipped"
    );
}

#[tokio::test]
async fn a_malformed_stock_reserved_is_dead_lettered_untouched() {
    let app = spawn_app().await;
    let bad = Envelope::new(
        StockReserved::TYPE,
        "inventory",
        "req-9",
        "",
        &serde_json::json!({"order_id": "not-a-uuid"}),
    )
    .unwrap();
    app.deliver(&bad).await;
    let dead = app.dead_letters().await;
    assert_eq!(dead, 1, "dead-lettered");
    assert!(app.all_shipments().await.is_empty());
    assert!(app.events::<OrderShipped>().await.is_empty());
}
