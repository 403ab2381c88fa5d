//! `POST /orders`, `GET /orders`, `GET /orders/{id}`: pricing from the projection, every
//! rejection as problem+json with nothing changed, `Idempotency-Key` retries, and who sees what.

use std::time::Duration;

use common::{
    auth::Role,
    events::{Event as _, OrderLine, OrderPlaced, ProductChanged},
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{StoreApp, assert_problem, id_of, items, spawn_app};

#[tokio::test]
async fn placing_an_order_prices_it_from_the_catalog_and_publishes_order_placed() {
    let app = spawn_app().await;
    let cup = app.seed_product("cup", 1_250).await;
    let pot = app.seed_product("pot", 333).await;
    let shopper = app.caller(Role::User);

    // Two lines of the same product are merged.
    let response = app
        .send_with_headers(
            reqwest::Method::POST,
            "/orders",
            Some(&shopper.token),
            Some(items(&[(cup, 2), (pot, 1), (cup, 1)])),
            &[("x-request-id", "req-order-1")],
        )
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let order: Value = response.json().await.unwrap();
    let id = id_of(&order);
    assert_eq!(location, format!("/orders/{id}"));
    // 3 × 12.50 + 3.33 = 40.83; fee 20 % = 8.166 → 8.17 (half up); total 49.00.
    assert_eq!(order["status"], "pending");
    assert_eq!(order["user_id"], shopper.id.to_string());
    assert_eq!(order["subtotal_cents"], 4_083);
    assert_eq!(order["fee_cents"], 817);
    assert_eq!(order["total_cents"], 4_900);
    let lines = order["items"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    let cup_line = lines
        .iter()
        .find(|l| l["product_id"] == cup.to_string())
        .unwrap();
    assert_eq!(cup_line["quantity"], 3);
    assert_eq!(cup_line["unit_price_cents"], 1_250);
    assert_eq!(cup_line["line_total_cents"], 3_750);
    assert_eq!(cup_line["name"], "cup");

    let placed = app.events::<OrderPlaced>().await;
    assert_eq!(placed.len(), 1);
    let (envelope, payload) = &placed[0];
    assert_eq!(envelope.event_type, OrderPlaced::TYPE);
    assert_eq!(envelope.producer, store::SERVICE);
    assert_eq!(envelope.correlation_id, "req-order-1");
    assert_eq!(payload.order_id, id);
    assert_eq!(payload.user_id, shopper.id);
    assert_eq!(
        (
            payload.subtotal_cents,
            payload.fee_cents,
            payload.total_cents
        ),
        (4_083, 817, 4_900)
    );
    let mut expected = vec![
        OrderLine {
            product_id: cup,
            quantity: 3,
            unit_price_cents: 1_250,
        },
        OrderLine {
            product_id: pot,
            quantity: 1,
            unit_price_cents: 333,
        },
    ];
    expected.sort_by_key(|l| l.product_id);
    let mut got = payload.items.clone();
    got.sort_by_key(|l| l.product_id);
    assert_eq!(got, expected);

    // The owner reads it back with its history.
    let shown: Value = app
        .get_as(&location, &shopper.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["total_cents"], 4_900);
    let history = shown["history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["status"], "pending");
    assert_eq!(history[0]["reason"], "placed");
    assert!(history[0]["event_id"].is_null());
    assert!(history[0]["at"].is_string());
}

#[tokio::test]
async fn invalid_orders_are_rejected_with_problem_json_and_change_nothing() {
    let app = spawn_app().await;
    let cup = app.seed_product("cup", 100).await;
    let gone = Uuid::now_v7();
    app.catalog(&ProductChanged {
        product_id: gone,
        name: "gone".into(),
        price_cents: 100,
        active: false,
        revision: 1,
    })
    .await;
    let shopper = app.caller(Role::User);
    let too_many: Vec<(Uuid, i64)> = (0..51).map(|_| (Uuid::now_v7(), 1)).collect();

    let cases: Vec<(&str, Value, u16)> = vec![
        ("no items", json!({"items": []}), 422),
        ("51 lines", items(&too_many), 422),
        ("quantity 0", items(&[(cup, 0)]), 422),
        ("negative quantity", items(&[(cup, -1)]), 422),
        ("quantity 1001", items(&[(cup, 1_001)]), 422),
        ("merged over 1000", items(&[(cup, 600), (cup, 401)]), 422),
        (
            "unknown product",
            items(&[(cup, 1), (Uuid::now_v7(), 1)]),
            422,
        ),
        ("inactive product", items(&[(gone, 1)]), 422),
        ("unknown field", json!({"items": [], "coupon": "FREE"}), 422),
        (
            "not a uuid",
            json!({"items": [{"product_id": "cup", "quantity": 1}]}),
            422,
        ),
        ("missing items", json!({}), 422),
    ];
    for (what, body, status) in cases {
        let response = app
            .send(
                reqwest::Method::POST,
                "/orders",
                Some(&shopper.token),
                Some(body),
            )
            .await;
        let problem = assert_problem(response, status).await;
        assert!(!problem["detail"].as_str().unwrap().is_empty(), "{what}");
    }
    // Not JSON at all.
    let response = app
        .http
        .post(app.url("/orders"))
        .bearer_auth(&shopper.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(response, 400).await;
    // A bad idempotency key.
    let response = app
        .send_with_headers(
            reqwest::Method::POST,
            "/orders",
            Some(&shopper.token),
            Some(items(&[(cup, 1)])),
            &[("idempotency-key", " ")],
        )
        .await;
    assert_problem(response, 422).await;
    // No token, a bad token.
    assert_problem(
        app.send(
            reqwest::Method::POST,
            "/orders",
            None,
            Some(items(&[(cup, 1)])),
        )
        .await,
        401,
    )
    .await;
    assert_problem(
        app.send(
            reqwest::Method::POST,
            "/orders",
            Some("not-a-token"),
            Some(items(&[(cup, 1)])),
        )
        .await,
        401,
    )
    .await;
    assert_problem(app.get("/orders").await, 401).await;

    assert_eq!(app.order_count().await, 0);
    assert!(app.events::<OrderPlaced>().await.is_empty());
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_returns_the_same_order() {
    let app = spawn_app().await;
    let cup = app.seed_product("cup", 500).await;
    let pot = app.seed_product("pot", 700).await;
    let shopper = app.caller(Role::User);
    let key = [("idempotency-key", "checkout-7f3a")];

    let first = app
        .send_with_headers(
            reqwest::Method::POST,
            "/orders",
            Some(&shopper.token),
            Some(items(&[(cup, 2), (pot, 1)])),
            &key,
        )
        .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();

    // The same request again, lines in another order: the same order, 200.
    let retry = app
        .send_with_headers(
            reqwest::Method::POST,
            "/orders",
            Some(&shopper.token),
            Some(items(&[(pot, 1), (cup, 1), (cup, 1)])),
            &key,
        )
        .await;
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["id"], first["id"]);
    assert_eq!(retry["total_cents"], first["total_cents"]);

    // The same key with another body is a client bug.
    let other = app
        .send_with_headers(
            reqwest::Method::POST,
            "/orders",
            Some(&shopper.token),
            Some(items(&[(cup, 3)])),
            &key,
        )
        .await;
    assert_problem(other, 422).await;

    // Keys are per user: someone else's identical key is their own order.
    let neighbour = app.caller(Role::User);
    let theirs = app
        .send_with_headers(
            reqwest::Method::POST,
            "/orders",
            Some(&neighbour.token),
            Some(items(&[(cup, 2), (pot, 1)])),
            &key,
        )
        .await;
    assert_eq!(theirs.status(), 201);
    let theirs: Value = theirs.json().await.unwrap();
    assert_ne!(theirs["id"], first["id"]);

    // Concurrent retries of a fresh key: still one order.
    let racers = (0..8).map(|_| {
        app.send_with_headers(
            reqwest::Method::POST,
            "/orders",
            Some(&shopper.token),
            Some(items(&[(pot, 4)])),
            &[("idempotency-key", "checkout-race")],
        )
    });
    let answers = futures::future::join_all(racers).await;
    let mut ids = Vec::new();
    for response in answers {
        assert!(
            matches!(response.status().as_u16(), 200 | 201),
            "{}",
            response.status()
        );
        let body: Value = response.json().await.unwrap();
        ids.push(body["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one order for one key: {ids:?}");

    assert_eq!(app.order_count().await, 3);
    assert_eq!(app.events::<OrderPlaced>().await.len(), 3);
}

#[tokio::test]
async fn orders_are_visible_to_their_owner_and_admins_only() {
    let app = spawn_app().await;
    let cup = app.seed_product("cup", 100).await;
    let alice = app.caller(Role::User);
    let bob = app.caller(Role::User);
    let admin = app.caller(Role::Admin);
    let a1 = id_of(&app.place(&alice, &[(cup, 1)]).await);
    let a2 = id_of(&app.place(&alice, &[(cup, 2)]).await);
    let b1 = id_of(&app.place(&bob, &[(cup, 3)]).await);
    // One of Alice's orders is cancelled, for the status filter.
    let cancelled = app
        .send(
            reqwest::Method::POST,
            &format!("/orders/{a1}/cancel"),
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(cancelled.status(), 200);

    // Someone else's order does not exist for you, nor does an unknown one; an id that is not
    // a UUID is a 400.
    assert_problem(
        app.get_as(&format!("/orders/{b1}"), &alice.token).await,
        404,
    )
    .await;
    app.assert_id_route(
        reqwest::Method::GET,
        "/orders/{id}",
        Some(&alice.token),
        None,
    )
    .await;
    app.assert_id_route(
        reqwest::Method::POST,
        "/orders/{id}/cancel",
        Some(&alice.token),
        None,
    )
    .await;
    assert_eq!(
        app.get_as(&format!("/orders/{b1}"), &bob.token)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get_as(&format!("/orders/{a1}"), &admin.token)
            .await
            .status(),
        200
    );

    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let mine: Value = app
        .get_as("/orders", &alice.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        ids(&mine),
        vec![a2.to_string(), a1.to_string()],
        "own orders, newest first"
    );
    assert_eq!(mine["total"], 2);
    assert_eq!(mine["items"][0]["items"][0]["quantity"], 2);

    let all: Value = app
        .get_as("/orders", &admin.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["total"], 3);
    let bobs: Value = app
        .get_as(&format!("/orders?user_id={}", bob.id), &admin.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&bobs), vec![b1.to_string()]);
    let pending: Value = app
        .get_as("/orders?status=pending", &admin.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&pending), vec![b1.to_string(), a2.to_string()]);
    let alice_cancelled: Value = app
        .get_as("/orders?status=cancelled", &alice.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&alice_cancelled), vec![a1.to_string()]);
    let page2: Value = app
        .get_as("/orders?per_page=2&page=2", &admin.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&page2), vec![a1.to_string()]);
    assert_eq!(page2["total"], 3);

    // A user may not look at someone else's list; a filter that does not parse is a 400.
    assert_problem(
        app.get_as(&format!("/orders?user_id={}", bob.id), &alice.token)
            .await,
        403,
    )
    .await;
    let own: Value = app
        .get_as(&format!("/orders?user_id={}", alice.id), &alice.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(own["total"], 2);
    for query in ["status=lost", "user_id=nobody"] {
        assert_problem(
            app.get_as(&format!("/orders?{query}"), &admin.token).await,
            400,
        )
        .await;
    }
    // The rules of every list, for a user's own list, an admin's and a filtered one.
    app.assert_paged_list("/orders", Some(&alice.token)).await;
    app.assert_paged_list("/orders", Some(&admin.token)).await;
    app.assert_paged_list("/orders?status=pending", Some(&admin.token))
        .await;
}

/// The outbox is there so that a service takes work while the broker is away: with Redis down,
/// a shopper places orders (tokens are checked against the revocations already read, no round
/// trip) and reads them; the `order-placed` events wait in the outbox and go out, once each,
/// when Redis is back.
#[tokio::test]
async fn orders_are_taken_while_redis_is_down_and_published_when_it_returns() {
    let mut app = spawn_app().await;
    let product = app.seed_product("Kettle", 2_500).await;
    let shopper = app.caller(Role::User);
    // The process has read the (empty) revocations once: from now on tokens need no Redis.
    app.place(&shopper, &[(product, 1)]).await;
    app.settle().await;

    app.redis_server.stop();
    let mut placed = Vec::new();
    for quantity in 1..=3 {
        let order = app.place(&shopper, &[(product, quantity)]).await;
        placed.push(order["id"].as_str().unwrap().to_owned());
    }
    let listed = app.get_as("/orders", &shopper.token).await;
    assert_eq!(listed.status(), 200);
    let page: Value = listed.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 4);

    app.redis_server.start_again();
    // The test's own connection reconnects on its first command after the restart.
    common::testing::wait_until(Duration::from_secs(10), "redis back", || async {
        redis::cmd("PING")
            .query_async::<String>(&mut app.redis.clone())
            .await
            .is_ok()
    })
    .await;
    app.flush_outbox().await;
    common::testing::wait_until(
        Duration::from_secs(20),
        "order-placed published",
        || async { app.events::<OrderPlaced>().await.len() == 4 },
    )
    .await;
    let published: Vec<String> = app
        .events::<OrderPlaced>()
        .await
        .into_iter()
        .map(|(_, order)| order.order_id.to_string())
        .collect();
    for id in &placed {
        assert_eq!(
            published.iter().filter(|p| *p == id).count(),
            1,
            "{id} once"
        );
    }
}
