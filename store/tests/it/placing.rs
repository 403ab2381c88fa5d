//! `POST /orders` under concurrency, where orders are written in groups (`common::db::GroupCommit`):
//! every order placed at the same time is written exactly once with its own lines, history and
//! `order-placed`; a retry racing its first request in the same group is answered as a retry;
//! and with the database's write lock held elsewhere every order answers 503 without writing
//! anything, and placing works again once it is released.

use std::{collections::HashMap, time::Duration};

use common::{
    auth::Role,
    events::OrderPlaced,
    testing::{ServiceHome, TestApp, TestDb},
};
use futures::future::join_all;
use sea_orm::sqlx;
use serde_json::Value;
use uuid::Uuid;

use crate::support::{StoreApp, assert_problem, id_of, items, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_placed_at_once_are_each_written_once_with_their_own_lines_and_event() {
    let app = spawn_app().await;
    let products = [
        app.seed_product("cup", 1_250).await,
        app.seed_product("pot", 333).await,
        app.seed_product("jug", 2_000).await,
    ];
    let shoppers: Vec<_> = (0..4).map(|_| app.caller(Role::User)).collect();

    // 40 orders at once, of 1 to 3 lines with distinct quantities; two of them share an
    // `Idempotency-Key` and a body (a client's retry racing its first attempt).
    let bodies: Vec<Vec<(Uuid, i64)>> = (0..40)
        .map(|i| {
            (0..=(i % 3))
                .map(|line| (products[line], (i * 3 + line + 1) as i64))
                .collect()
        })
        .collect();
    let requests = bodies.iter().enumerate().map(|(i, lines)| {
        let who = if i < 2 {
            &shoppers[0]
        } else {
            &shoppers[i % shoppers.len()]
        };
        let key = if i < 2 { "retry-1" } else { "" };
        let body = if i < 2 { &bodies[0] } else { lines };
        let app = &app;
        async move {
            let headers: Vec<(&str, &str)> = if key.is_empty() {
                vec![]
            } else {
                vec![("idempotency-key", key)]
            };
            let response = app
                .send_with_headers(
                    reqwest::Method::POST,
                    "/orders",
                    Some(&who.token),
                    Some(items(body)),
                    &headers,
                )
                .await;
            let status = response.status().as_u16();
            let order: Value = response.json().await.expect("order JSON");
            (i, status, order)
        }
    });
    let answers = join_all(requests).await;

    let mut statuses: Vec<u16> = answers[..2].iter().map(|(_, s, _)| *s).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 201], "the retry is answered as a retry");
    assert_eq!(
        id_of(&answers[0].2),
        id_of(&answers[1].2),
        "one order for the key"
    );
    for (i, status, _) in &answers[2..] {
        assert_eq!(*status, 201, "order {i}");
    }

    // Every order exactly once, as asked, with its history and its event.
    let placed: HashMap<Uuid, &Vec<(Uuid, i64)>> = answers[1..]
        .iter()
        .map(|(i, _, order)| (id_of(order), &bodies[if *i < 2 { 0 } else { *i }]))
        .collect();
    assert_eq!(placed.len(), 39);
    assert_eq!(app.order_count().await, 39);
    app.flush_outbox().await;
    let events: HashMap<Uuid, OrderPlaced> = app
        .events::<OrderPlaced>()
        .await
        .into_iter()
        .map(|(_, event)| (event.order_id, event))
        .collect();
    assert_eq!(events.len(), 39, "one order-placed per order");
    for (id, asked) in &placed {
        let lines = store::orders::lines(&app.db, *id).await.expect("lines");
        let mut got: Vec<(Uuid, i64)> = lines.iter().map(|l| (l.product_id, l.quantity)).collect();
        let mut want = (*asked).clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "lines of {id}");
        let history = app.history(*id).await;
        assert_eq!(history.len(), 1, "one history row for {id}");
        assert_eq!(history[0].reason, "placed");
        let event = &events[id];
        let mut in_event: Vec<(Uuid, i64)> = event
            .items
            .iter()
            .map(|l| (l.product_id, l.quantity))
            .collect();
        in_event.sort();
        assert_eq!(in_event, want, "order-placed of {id}");
        assert_eq!(event.total_cents, app.order(*id).await.total_cents);
    }
    app.stop(Duration::from_secs(10)).await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_placed_while_another_process_holds_the_sqlite_write_lock_answer_503_and_write_nothing()
 {
    let app = TestApp::spawn_in(
        ServiceHome::on(TestDb::sqlite()),
        common::service::run::<store::Store>,
    )
    .await;
    let cup = app.seed_product("cup", 1_250).await;
    let shopper = app.caller(Role::User);
    let mut locker = app.home.test_db.other_sqlite_connection().await;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut locker)
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let responses = join_all((1..=10).map(|q| {
        app.send(
            reqwest::Method::POST,
            "/orders",
            Some(&shopper.token),
            Some(items(&[(cup, q)])),
        )
    }))
    .await;
    let waited = started.elapsed();
    for response in responses {
        assert!(response.headers().contains_key("retry-after"));
        assert_problem(response, 503).await;
    }
    // A group that cannot begin fails as a whole: the orders do not wait for the lock one
    // after the other (10 × the 5 s busy timeout).
    assert!(
        waited < Duration::from_secs(30),
        "10 orders answered in {waited:?}"
    );
    assert_eq!(app.order_count().await, 0, "nothing written");

    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    let order = app.place(&shopper, &[(cup, 2)]).await;
    assert_eq!(app.order(id_of(&order)).await.total_cents, 3_000);
    assert_eq!(app.order_count().await, 1);
    app.stop(Duration::from_secs(10)).await.expect("clean stop");
}
