//! The admin API of `/shipments`: failing a pending shipment refunds the order once, a shipment
//! that is no longer pending is a 409, the list filters and pages, ids that are not UUIDs are
//! 400s, unknown ones 404s, and bad input is a 4xx problem that changes nothing.

use common::events::{Event as _, OrderShipped, RefundOrder, RefundReason};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    TestApp, WarehouseApp, assert_problem, reserved_order, spawn_app, spawn_manual_app,
};

/// Delivers `n` reserved orders and returns their shipments' ids, oldest first.
async fn pending_shipments(app: &TestApp, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let (envelope, order) = reserved_order();
        app.deliver(&envelope).await;
        ids.push(
            app.shipment_of(order.order_id)
                .await
                .expect("a shipment")
                .id,
        );
    }
    ids
}

async fn list(app: &TestApp, query: &str) -> reqwest::Response {
    app.send(
        Method::GET,
        &format!("/shipments{query}"),
        Some(&app.admin_token()),
        None,
    )
    .await
}

#[tokio::test]
async fn failing_a_pending_shipment_refunds_the_order_once() {
    let app = spawn_manual_app().await;
    let (envelope, order) = reserved_order();
    app.deliver(&envelope).await;
    let id = app.shipment_of(order.order_id).await.unwrap().id;

    let response = app.fail(id, "  crushed by a forklift ").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "failed");
    assert_eq!(body["reason"], "crushed by a forklift");
    // The service reads its own `refund-order` too, and leaves the failed shipment alone.
    app.settle().await;
    let failed = app.shipment_of(order.order_id).await.unwrap();
    assert_eq!(failed.status, "failed");

    let refunds = app.events::<RefundOrder>().await;
    assert_eq!(refunds.len(), 1);
    let (envelope, refund) = &refunds[0];
    assert_eq!(refund.order_id, order.order_id);
    assert_eq!(refund.user_id, order.user_id);
    assert_eq!(refund.reason, RefundReason::FulfillmentFailed);
    assert_eq!(envelope.producer, "warehouse");

    // Failed is final: a second fail and a late ship are conflicts that change nothing.
    let again = assert_problem(app.fail(id, "again").await, 409).await;
    assert!(again["detail"].as_str().unwrap().contains("failed"));
    assert_problem(app.ship(id).await, 409).await;
    app.settle().await;
    assert_eq!(app.shipment_of(order.order_id).await.unwrap(), failed);
    let counts = app.published().await;
    assert_eq!(
        (counts[OrderShipped::TYPE], counts[RefundOrder::TYPE]),
        (0, 1)
    );
}

#[tokio::test]
async fn a_shipped_shipment_cannot_be_failed() {
    let app = spawn_app().await;
    let (envelope, order) = reserved_order();
    app.deliver(&envelope).await;
    let shipped = app.shipment_of(order.order_id).await.unwrap();
    assert_eq!(shipped.status, "shipped");

    assert_problem(app.fail(shipped.id, "too late").await, 409).await;
    assert_problem(app.ship(shipped.id).await, 409).await;
    assert_eq!(app.shipment_of(order.order_id).await.unwrap(), shipped);
    let counts = app.published().await;
    assert_eq!(
        (counts[OrderShipped::TYPE], counts[RefundOrder::TYPE]),
        (1, 0)
    );
}

#[tokio::test]
async fn the_list_filters_by_status_and_order_and_pages_newest_first() {
    let app = spawn_manual_app().await;
    let ids = pending_shipments(&app, 5).await;
    assert_eq!(app.ship(ids[0]).await.status(), 200);
    assert_eq!(app.ship(ids[1]).await.status(), 200);
    assert_eq!(app.fail(ids[2], "water damage").await.status(), 200);

    let all: Value = list(&app, "").await.json().await.unwrap();
    assert_eq!(all["total"], 5);
    assert_eq!(
        (all["page"].as_u64(), all["per_page"].as_u64()),
        (Some(1), Some(20))
    );
    let listed: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let newest_first: Vec<String> = ids.iter().rev().map(Uuid::to_string).collect();
    assert_eq!(listed, newest_first);

    for (status, expected) in [
        ("pending", 2),
        ("shipped", 2),
        ("failed", 1),
        ("cancelled", 0),
    ] {
        let page: Value = list(&app, &format!("?status={status}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(page["total"], expected, "{status}");
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), expected, "{status}");
        assert!(items.iter().all(|s| s["status"] == status));
    }

    let second: Value = list(&app, "?status=pending&per_page=1&page=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["total"], 2);
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["items"][0]["id"], ids[3].to_string());

    let mine = app.shipment_of_id(ids[4]).await;
    let by_order: Value = list(
        &app,
        &format!("?order_id={}", mine["order_id"].as_str().unwrap()),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(by_order["total"], 1);
    assert_eq!(by_order["items"][0]["id"], ids[4].to_string());

    // Filters that do not parse are 400s; the page rules are those of every list.
    for bad in ["?status=lost", "?order_id=7"] {
        assert_problem(list(&app, bad).await, 400).await;
    }
    let admin = app.admin_token();
    app.assert_paged_list("/shipments", Some(&admin)).await;
    app.assert_paged_list("/shipments?status=shipped", Some(&admin))
        .await;
}

#[tokio::test]
async fn malformed_ids_are_400_unknown_ones_404_and_nothing_changes() {
    let app = spawn_manual_app().await;
    let ids = pending_shipments(&app, 1).await;
    let before = app.all_shipments().await;
    let admin = app.admin_token();
    app.assert_id_route(Method::GET, "/shipments/{id}", Some(&admin), None)
        .await;
    app.assert_id_route(Method::POST, "/shipments/{id}/ship", Some(&admin), None)
        .await;
    app.assert_id_route(
        Method::POST,
        "/shipments/{id}/fail",
        Some(&admin),
        Some(json!({"reason": "lost"})),
    )
    .await;
    let shown: Value = app.shipment_of_id(ids[0]).await;
    assert_eq!(shown["status"], "pending");
    assert_eq!(app.all_shipments().await, before);
    let counts = app.published().await;
    assert_eq!(
        (counts[OrderShipped::TYPE], counts[RefundOrder::TYPE]),
        (0, 0)
    );
}

#[tokio::test]
async fn failing_needs_a_reason_and_a_bad_body_changes_nothing() {
    let app = spawn_manual_app().await;
    let ids = pending_shipments(&app, 1).await;
    let path = format!("/shipments/{}/fail", ids[0]);
    let admin = app.admin_token();
    for (body, status) in [
        (json!({"reason": ""}), 422),
        (json!({"reason": "   "}), 422),
        (json!({"reason": "x".repeat(201)}), 422),
        (json!({}), 422),
        (json!({"reason": "lost", "refund": false}), 422),
        (json!({"reason": 7}), 422),
    ] {
        let response = app
            .send(Method::POST, &path, Some(&admin), Some(body.clone()))
            .await;
        assert_problem(response, status).await;
    }
    // No body at all, and a body that is not JSON.
    assert_problem(app.send(Method::POST, &path, Some(&admin), None).await, 415).await;
    let garbled = app
        .http
        .post(app.url(&path))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{reason")
        .send()
        .await
        .unwrap();
    assert_problem(garbled, 400).await;

    let shown = app.shipment_of_id(ids[0]).await;
    assert_eq!(shown["status"], "pending");
    let counts = app.published().await;
    assert_eq!(
        (counts[OrderShipped::TYPE], counts[RefundOrder::TYPE]),
        (0, 0)
    );
}
