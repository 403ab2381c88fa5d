//! The public product list: pagination and its checks, and the Redis cache serving a write's
//! result to the very next read — for every kind of write: catalog edits, stock adjustments,
//! new products, soft deletes, and the worker's reservations and releases.

use common::events::{Event as _, ProductChanged, RefundReason, StockReserved};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    support::{InventoryApp, TestApp, assert_problem, spawn_app},
    worker::{paid_order, refund},
};

fn id_of(product: &Value) -> Uuid {
    product["id"].as_str().expect("id").parse().expect("uuid")
}

#[tokio::test]
async fn the_product_list_is_paginated_and_checks_its_query() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(id_of(
            &app.create_product(&format!("Item {i}"), 100 + i, 1).await,
        ));
    }
    let page: Value = app
        .get("/products?page=2&per_page=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            page["page"].as_u64(),
            page["per_page"].as_u64(),
            page["total"].as_u64()
        ),
        (Some(2), Some(2), Some(5))
    );
    let got: Vec<Uuid> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(got, ids[2..4]);
    let last: Value = app
        .get("/products?page=3&per_page=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(last["items"].as_array().unwrap().len(), 1);
    let beyond: Value = app
        .get("/products?page=9&per_page=2")
        .await
        .json()
        .await
        .unwrap();
    assert!(beyond["items"].as_array().unwrap().is_empty());
    let default: Value = app.get("/products").await.json().await.unwrap();
    assert_eq!(default["per_page"], 20);
    assert_eq!(default["items"].as_array().unwrap().len(), 5);

    // The rules every list of the mesh follows (common::testing::TestApp::assert_paged_list).
    app.assert_paged_list("/products", None).await;
    // Out of range: 422 validation. Not a number at all: 400.
    for query in ["page=0", "per_page=0", "per_page=101"] {
        let body = assert_problem(app.get(&format!("/products?{query}")).await, 422).await;
        assert!(body["type"].as_str().unwrap().ends_with("/validation"));
    }
    for query in ["page=abc", "per_page=-1", "page=1.5"] {
        let body = assert_problem(app.get(&format!("/products?{query}")).await, 400).await;
        assert!(body["type"].as_str().unwrap().ends_with("/bad-request"));
    }
}

/// Reads the list twice so that the second read is a cache hit; returns that page.
async fn cached_list(app: &TestApp) -> Value {
    app.get("/products").await;
    let response = app.get("/products").await;
    assert_eq!(response.headers()["x-cache"], "hit", "the list is cached");
    response.json().await.unwrap()
}

/// The list right after a write: read from the database (the write invalidated the cache).
async fn fresh_list(app: &TestApp) -> Value {
    let response = app.get("/products").await;
    assert_eq!(
        response.headers()["x-cache"],
        "miss",
        "the write invalidated the cache"
    );
    response.json().await.unwrap()
}

async fn shown(app: &TestApp, id: Uuid) -> Value {
    let response = app.get(&format!("/products/{id}")).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_soft_delete_shows_in_the_very_next_read() {
    let app = spawn_app().await;
    let gone = id_of(&app.create_product("Cracked mug", 300, 1).await);
    let kept = id_of(&app.create_product("Mug", 400, 1).await);
    assert_eq!(cached_list(&app).await["total"], 2);

    let response = app
        .send(
            Method::DELETE,
            &format!("/products/{gone}"),
            Some(&app.admin_token()),
            None,
        )
        .await;
    assert_eq!(response.status(), 204);

    let list = fresh_list(&app).await;
    assert_eq!(list["total"], 1);
    let listed: Vec<Uuid> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(listed, [kept]);
    assert_eq!(shown(&app, gone).await["active"], false);
}

#[tokio::test]
async fn the_workers_reservations_and_releases_show_in_the_very_next_read() {
    let app = spawn_app().await;
    let id = id_of(&app.create_product("Kettle", 2500, 5).await);
    assert_eq!(cached_list(&app).await["items"][0]["stock"], 5);

    // A paid order takes 2. Once the worker has handled (and acked) the event, the list and
    // the product show the new stock.
    let (envelope, order) = paid_order(&[(id, 2)]);
    app.publish(&envelope).await;
    app.wait_for_events(StockReserved::TYPE, 1).await;
    app.settle().await;
    assert_eq!(fresh_list(&app).await["items"][0]["stock"], 3);
    assert_eq!(shown(&app, id).await["stock"], 3);

    // Its shipment failed: the refund gives the 2 back.
    assert_eq!(cached_list(&app).await["items"][0]["stock"], 3);
    app.publish(&refund(&order, RefundReason::FulfillmentFailed))
        .await;
    app.settle().await;
    assert_eq!(app.product(id).await.unwrap().stock, 5);
    assert_eq!(fresh_list(&app).await["items"][0]["stock"], 5);
    assert_eq!(shown(&app, id).await["stock"], 5);
}

#[tokio::test]
async fn the_cached_list_shows_a_write_to_the_very_next_read() {
    let app = spawn_app().await;
    let admin = app.admin_token();
    let id = id_of(&app.create_product("Jug", 1500, 4).await);

    let first = app.get("/products").await;
    assert_eq!(first.headers()["x-cache"], "miss");
    let second = app.get("/products").await;
    assert_eq!(second.headers()["x-cache"], "hit");
    let cached: Value = second.json().await.unwrap();
    assert_eq!(cached["items"][0]["name"], "Jug");

    // Catalog write, then read at once.
    let response = app
        .send(
            Method::PATCH,
            &format!("/products/{id}"),
            Some(&admin),
            Some(json!({"name": "Big jug"})),
        )
        .await;
    assert_eq!(response.status(), 200);
    let fresh: Value = app.get("/products").await.json().await.unwrap();
    assert_eq!(fresh["items"][0]["name"], "Big jug");

    // Stock write, then read at once.
    let response = app
        .send(
            Method::POST,
            &format!("/products/{id}/stock"),
            Some(&admin),
            Some(json!({"delta": 6, "reason": "restock"})),
        )
        .await;
    assert_eq!(response.status(), 200);
    let fresh: Value = app.get("/products").await.json().await.unwrap();
    assert_eq!(fresh["items"][0]["stock"], 10);

    // A new product, then read at once.
    app.create_product("Bowl", 800, 1).await;
    let fresh: Value = app.get("/products").await.json().await.unwrap();
    assert_eq!(fresh["total"], 2);

    // Pages live under the mesh prefix.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut app.redis.clone())
        .await
        .unwrap();
    let cache_keys: Vec<&String> = keys
        .iter()
        .filter(|k| k.contains("inventory:products:"))
        .collect();
    assert!(!cache_keys.is_empty());
    assert!(
        cache_keys.iter().all(|k| k.starts_with(app.keys.prefix())),
        "{cache_keys:?}"
    );
}

#[tokio::test]
async fn the_list_is_served_from_the_database_while_redis_is_down() {
    let mut app = spawn_app().await;
    app.create_product("Lamp", 3000, 2).await;
    assert_eq!(app.get("/products").await.headers()["x-cache"], "miss");

    app.redis_server.stop();
    let started = std::time::Instant::now();
    let response = app.get("/products").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-cache"], "miss");
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["items"][0]["name"], "Lamp");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // Admin writes go on: tokens are checked against the process's own revocations, and the
    // `product-changed` waits in the outbox.
    let write = app
        .send(
            Method::POST,
            "/products",
            Some(&app.admin_token()),
            Some(json!({"name": "Desk", "price_cents": 1})),
        )
        .await;
    assert_eq!(write.status(), 201);
    assert_eq!(app.all_products().await.len(), 2);
    // Back up: the page cached before the outage is not served, the write is published.
    app.redis_server.start_again();
    common::testing::wait_until(std::time::Duration::from_secs(15), "fresh list", || async {
        let page: Value = app.get("/products").await.json().await.unwrap();
        page["items"]
            .as_array()
            .is_some_and(|items| items.len() == 2)
    })
    .await;
    app.flush_outbox().await;
    assert_eq!(app.events::<ProductChanged>().await.len(), 2);
}
