//! The catalog API: success and every 4xx of each endpoint, problem+json bodies, nothing changed
//! by a rejected request, and `product-changed` on every change.

use common::{auth::Role, events::ProductChanged};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{InventoryApp, assert_problem, spawn_app};

fn id_of(product: &Value) -> Uuid {
    product["id"].as_str().expect("id").parse().expect("uuid")
}

#[tokio::test]
async fn admin_creates_a_product_and_product_changed_is_published() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/products"))
        .bearer_auth(app.admin_token())
        .header("x-request-id", "req-teapot")
        .json(&json!({"name": "  Teapot ", "description": "short and stout", "price_cents": 1299, "stock": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    let id = id_of(&created);
    assert_eq!(location, format!("/products/{id}"));
    assert_eq!(created["name"], "Teapot");
    assert_eq!(created["stock"], 7);
    assert_eq!(created["active"], true);
    assert_eq!(created["revision"], 1);

    let shown: Value = app.get(&location).await.json().await.unwrap();
    assert_eq!(shown, created);

    let events = app.events::<ProductChanged>().await;
    assert_eq!(events.len(), 1);
    let (envelope, event) = &events[0];
    assert_eq!(envelope.producer, "inventory");
    // The request id travels with the event.
    assert_eq!(envelope.correlation_id, "req-teapot");
    assert_eq!(
        event,
        &ProductChanged {
            product_id: id,
            name: "Teapot".into(),
            price_cents: 1299,
            active: true,
            revision: 1,
        }
    );
    // The initial stock is the first line of the ledger.
    let ledger = app.movements(id).await;
    assert_eq!(ledger.len(), 1);
    assert_eq!((ledger[0].delta, ledger[0].reason.as_str()), (7, "initial"));
}

#[tokio::test]
async fn invalid_products_are_rejected_with_problems_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_token();
    let cases = [
        (json!({"name": "", "price_cents": 100}), 422),
        (json!({"name": "   ", "price_cents": 100}), 422),
        (json!({"name": "x".repeat(201), "price_cents": 100}), 422),
        (json!({"name": "Cup", "price_cents": -1}), 422),
        (json!({"name": "Cup", "price_cents": 100, "stock": -5}), 422),
        (json!({"name": "Cup"}), 422),
        (json!({"name": "Cup", "price_cents": "ten"}), 422),
        (
            json!({"name": "Cup", "price_cents": 100, "role": "admin"}),
            422,
        ),
        (json!(["not", "an", "object"]), 422),
    ];
    for (body, status) in cases {
        let response = app
            .send(Method::POST, "/products", Some(&admin), Some(body.clone()))
            .await;
        let problem = assert_problem(response, status).await;
        assert!(!problem["detail"].as_str().unwrap().is_empty(), "{body}");
    }
    let raw = app
        .http
        .post(app.url("/products"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(raw, 400).await;

    assert!(app.all_products().await.is_empty());
    assert_eq!(
        app.stream_lengths(&["product-changed"]).await["product-changed"],
        0
    );
}

#[tokio::test]
async fn catalog_writes_need_an_admin_token_and_change_nothing_otherwise() {
    let app = spawn_app().await;
    let product = app.create_product("Kettle", 2500, 3).await;
    let id = id_of(&product);
    let before = app.stream_lengths(&["product-changed"]).await;
    let user = app.token(Role::User);
    let writes = [
        (
            Method::POST,
            "/products".to_owned(),
            Some(json!({"name": "Mug", "price_cents": 1})),
        ),
        (
            Method::PATCH,
            format!("/products/{id}"),
            Some(json!({"name": "Stolen"})),
        ),
        (Method::DELETE, format!("/products/{id}"), None),
        (
            Method::POST,
            format!("/products/{id}/stock"),
            Some(json!({"delta": -3, "reason": "x"})),
        ),
        (Method::GET, format!("/products/{id}/movements"), None),
    ];
    for (method, path, body) in writes {
        let anonymous = app.send(method.clone(), &path, None, body.clone()).await;
        assert_problem(anonymous, 401).await;
        let as_user = app
            .send(method.clone(), &path, Some(&user), body.clone())
            .await;
        assert_problem(as_user, 403).await;
        let garbage = app.send(method, &path, Some("not-a-jwt"), body).await;
        assert_problem(garbage, 401).await;
    }
    let products = app.all_products().await;
    assert_eq!(products.len(), 1);
    assert_eq!(products[0].name, "Kettle");
    assert_eq!(
        (products[0].stock, products[0].active, products[0].revision),
        (3, true, 1)
    );
    assert_eq!(app.stream_lengths(&["product-changed"]).await, before);
    assert_eq!(app.movements(id).await.len(), 1);
}

/// A product id that is not a UUID is a 400 (it does not parse), a UUID that names no product a
/// 404, on every route that takes one; nothing changes.
#[tokio::test]
async fn product_ids_are_400_when_not_uuids_and_404_when_unknown() {
    let app = spawn_app().await;
    let admin = app.admin_token();
    let cases = [
        (Method::GET, "/products/{id}", None),
        (
            Method::PATCH,
            "/products/{id}",
            Some(json!({"name": "New"})),
        ),
        (Method::DELETE, "/products/{id}", None),
        (
            Method::POST,
            "/products/{id}/stock",
            Some(json!({"delta": 1, "reason": "restock"})),
        ),
        (Method::GET, "/products/{id}/movements", None),
    ];
    for (method, path, body) in cases {
        app.assert_id_route(method, path, Some(&admin), body).await;
    }
    assert!(app.all_products().await.is_empty());
    assert_eq!(
        app.stream_lengths(&["product-changed"]).await["product-changed"],
        0
    );
}

#[tokio::test]
async fn admin_edits_a_product_and_each_change_bumps_the_revision() {
    let app = spawn_app().await;
    let admin = app.admin_token();
    let id = id_of(&app.create_product("Spoon", 300, 10).await);
    let path = format!("/products/{id}");

    let response = app
        .send(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"name": "Silver spoon", "price_cents": 900})),
        )
        .await;
    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["name"], "Silver spoon");
    assert_eq!(updated["price_cents"], 900);
    assert_eq!(updated["description"], "Spoon, the finest");
    assert_eq!(updated["stock"], 10);
    assert_eq!(updated["revision"], 2);

    // Rejected edits: stock is not a catalog field, an empty edit means nothing, bad values.
    for body in [
        json!({"stock": 1000}),
        json!({}),
        json!({"name": ""}),
        json!({"price_cents": -10}),
        json!({"active": "yes"}),
    ] {
        let response = app
            .send(Method::PATCH, &path, Some(&admin), Some(body))
            .await;
        assert_problem(response, 422).await;
    }
    let stored = app.product(id).await.unwrap();
    assert_eq!(
        (
            stored.name.as_str(),
            stored.price_cents,
            stored.stock,
            stored.revision
        ),
        ("Silver spoon", 900, 10, 2)
    );

    let events = app.events::<ProductChanged>().await;
    let revisions: Vec<i64> = events.iter().map(|(_, e)| e.revision).collect();
    assert_eq!(revisions, [1, 2]);
    assert_eq!(events[1].1.name, "Silver spoon");
    assert_eq!(events[1].1.price_cents, 900);
}

#[tokio::test]
async fn deleting_a_product_deactivates_it_once() {
    let app = spawn_app().await;
    let admin = app.admin_token();
    let id = id_of(&app.create_product("Saucer", 450, 2).await);
    let keep = id_of(&app.create_product("Plate", 650, 2).await);
    let path = format!("/products/{id}");

    let response = app.send(Method::DELETE, &path, Some(&admin), None).await;
    assert_eq!(response.status(), 204);
    let shown: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(shown["active"], false);
    assert_eq!(shown["revision"], 2);
    let list: Value = app.get("/products").await.json().await.unwrap();
    let listed: Vec<Uuid> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(listed, [keep]);
    assert_eq!(list["total"], 1);

    // Deleting again is a no-op: no new revision, no new event.
    let again = app.send(Method::DELETE, &path, Some(&admin), None).await;
    assert_eq!(again.status(), 204);
    assert_eq!(app.product(id).await.unwrap().revision, 2);
    let events = app.events::<ProductChanged>().await;
    let about_it: Vec<&ProductChanged> = events
        .iter()
        .map(|(_, e)| e)
        .filter(|e| e.product_id == id)
        .collect();
    assert_eq!(about_it.len(), 2);
    assert!(!about_it[1].active);

    // An inactive product can be brought back.
    let revived = app
        .send(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"active": true})),
        )
        .await;
    assert_eq!(revived.status(), 200);
    assert!(app.product(id).await.unwrap().active);
}
