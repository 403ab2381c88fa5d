//! The database going away under a running service: PostgreSQL stopped and started again (a
//! private cluster), and a SQLite file whose write lock another process holds. During the outage
//! a write answers 503 problem+json with `Retry-After`, and the events that arrive stay pending
//! with their delivery count untouched (an outage is not a poison message: `db::outage`); once
//! the database is back each is applied exactly once, nothing is dead-lettered, money is
//! conserved.

use std::time::Duration;

use common::{
    Envelope,
    auth::Role,
    events::{Event, OrderPlaced},
    runtime::redis_io,
    testing::{PostgresCluster, ServiceHome, TestDb},
};
use payment::{PaymentArgs, entity::payment as payment_row};
use reqwest::Method;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, sqlx};
use serde_json::json;

use crate::support::{PaymentApp, STARTING_CREDIT, TestApp, assert_problem, placed};

/// Deliveries before an entry is dead-lettered, in these tests: an outage that counted its
/// failed attempts would dead-letter its entries within seconds.
const MAX_DELIVERIES: u64 = 2;

/// How long the outage lasts: several retry rounds of every entry (they back off to 5 s).
const OUTAGE: Duration = Duration::from_secs(12);

async fn spawn_on(home: ServiceHome) -> TestApp {
    let settings = PaymentArgs {
        starting_credit_cents: STARTING_CREDIT,
    };
    TestApp::spawn_in(home, move |mut args, listener, shutdown| {
        args.worker.max_deliveries = MAX_DELIVERIES;
        common::service::run_with::<payment::Payment>(args, settings, listener, shutdown)
    })
    .await
}

/// Delivery counts of the `payment` group's pending `order-placed` entries.
async fn delivery_counts(app: &TestApp) -> Vec<u64> {
    let reply: redis::Value = redis::cmd("XPENDING")
        .arg(app.stream(OrderPlaced::TYPE))
        .arg(payment::worker::GROUP)
        .arg("-")
        .arg("+")
        .arg(100)
        .query_async(&mut app.redis.clone())
        .await
        .unwrap();
    redis_io::parse_pending_range(reply)
        .into_iter()
        .map(|(_, _, _, count)| count)
        .collect()
}

/// Runs the outage scenario: `down` makes the database unavailable, `up` brings it back.
async fn rides_out_an_outage(app: &TestApp, down: impl AsyncFnOnce(), up: impl AsyncFnOnce()) {
    let user_id = app.register_user().await;
    let token = app.token_for(user_id, Role::User);

    down().await;
    let response = app
        .send(
            Method::POST,
            "/wallet/deposit",
            Some(&token),
            Some(json!({"amount_cents": 1_000})),
        )
        .await;
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert_problem(response, 503).await;
    assert!(
        retry_after.is_some_and(|s| s > 0),
        "Retry-After: {retry_after:?}"
    );

    let orders: Vec<Envelope> = (0..5).map(|_| placed(user_id, 100).0).collect();
    for envelope in &orders {
        app.publish(envelope).await;
    }
    tokio::time::sleep(OUTAGE).await;
    let counts = delivery_counts(app).await;
    assert_eq!(
        counts.len(),
        orders.len(),
        "every order pending: {counts:?}"
    );
    assert!(
        counts.iter().all(|&n| n < MAX_DELIVERIES),
        "an outage must not count deliveries: {counts:?}"
    );
    up().await;

    app.settle().await;
    assert_eq!(app.dead_letters().await, 0, "nothing dead-lettered");
    assert!(delivery_counts(app).await.is_empty());
    for envelope in &orders {
        let order: OrderPlaced = envelope.payload().unwrap();
        let payments = payment_row::Entity::find()
            .filter(payment_row::Column::OrderId.eq(order.order_id))
            .count(&app.db)
            .await
            .unwrap();
        assert_eq!(payments, 1, "order {} charged once", order.order_id);
    }
    assert_eq!(app.balance(user_id).await, STARTING_CREDIT - 500);
    let response = app
        .send(
            Method::POST,
            "/wallet/deposit",
            Some(&token),
            Some(json!({"amount_cents": 1_000})),
        )
        .await;
    assert_eq!(response.status(), 201, "deposits work again");
    app.assert_money_conserved().await;
}

#[tokio::test]
async fn a_postgres_restart_answers_503_then_applies_the_events_of_the_outage_once() {
    let mut cluster = PostgresCluster::start();
    let home = ServiceHome::on(TestDb::on_postgres(&cluster.url()).await);
    let app = spawn_on(home).await;
    let cluster = std::sync::Mutex::new(&mut cluster);
    rides_out_an_outage(
        &app,
        async || cluster.lock().unwrap().stop(),
        async || cluster.lock().unwrap().start_again(),
    )
    .await;
    app.stop(Duration::from_secs(30)).await.unwrap();
}

#[tokio::test]
async fn a_sqlite_file_locked_by_another_writer_answers_503_then_applies_the_events_once() {
    let app = spawn_on(ServiceHome::on(TestDb::sqlite())).await;
    // Another process's write transaction: in WAL mode readers go on, every writer waits.
    let mut locker = app.home.test_db.other_sqlite_connection().await;
    let locker = tokio::sync::Mutex::new(&mut locker);
    rides_out_an_outage(
        &app,
        async || {
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut **locker.lock().await)
                .await
                .unwrap();
        },
        async || {
            sqlx::query("ROLLBACK")
                .execute(&mut **locker.lock().await)
                .await
                .unwrap();
        },
    )
    .await;
    app.stop(Duration::from_secs(30)).await.unwrap();
}
