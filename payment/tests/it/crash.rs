//! Crash safety with the real binary: two payment replicas share one database and one consumer
//! group; one is killed with `kill -9` while orders are being charged and a fresh one takes its
//! place. Every order ends with exactly one payment and one outcome, no wallet is overdrawn or
//! charged twice, and money is conserved.

use std::{
    collections::HashSet,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use common::connection::Conn;
use common::{
    Envelope, Keys,
    events::{Event, OrderCompleted, OrderPlaced, PaymentFailed, UserRegistered},
    runtime::Publisher,
    testing::{
        Proc, RedisServer, TestDb, free_port, read_events, service_command, unique_prefix,
        wait_idle, wait_ready, wait_until, xlen,
    },
};
use payment::entity::{payment as payment_row, wallet};
use sea_orm::EntityTrait;
use uuid::Uuid;

use crate::support::placed;

fn spawn_payment(redis: &RedisServer, db_url: &str, keys: &Keys, data: &Path, port: u16) -> Proc {
    let child = service_command(
        env!("CARGO_BIN_EXE_payment"),
        &redis.url(),
        db_url,
        data,
        keys.prefix(),
    )
    .env("MESH_LISTEN", format!("127.0.0.1:{port}"))
    .env("MESH_STARTING_CREDIT_CENTS", "5000")
    // Entries of the killed replica are reclaimed after a second, not the default 30.
    .env("MESH_PROCESSING_TIMEOUT_MS", "1000")
    .env("MESH_WORKER_CONCURRENCY", "8")
    .env("MESH_WORKER_BATCH", "8")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::inherit())
    .spawn()
    .expect("spawn the payment binary");
    Proc(child)
}

async fn wait_replica_ready(port: u16) {
    let base_url = format!("http://127.0.0.1:{port}");
    wait_ready(&reqwest::Client::new(), &base_url, Duration::from_secs(30)).await;
}

async fn distinct_orders<T: Event>(
    conn: &mut Conn,
    keys: &Keys,
    order_of: impl Fn(&T) -> Uuid,
) -> HashSet<Uuid> {
    let mut event_ids = HashSet::new();
    let mut orders = HashSet::new();
    for (envelope, payload) in read_events::<T>(conn, keys).await {
        // An outbox row re-sent after the crash repeats its event id; never a new one.
        if event_ids.insert(envelope.event_id) {
            assert!(
                orders.insert(order_of(&payload)),
                "two distinct {} events for one order",
                T::TYPE
            );
        }
    }
    orders
}

#[tokio::test]
async fn a_replica_killed_mid_charge_loses_nothing_and_charges_nothing_twice() {
    let redis = RedisServer::start();
    let test_db = TestDb::new().await;
    let db = test_db.connect::<payment::Migrator>().await;
    let keys = Keys::new(unique_prefix());
    let data = tempfile::tempdir().expect("data dir");
    let ports = [free_port(), free_port(), free_port()];
    let first = spawn_payment(&redis, &test_db.url, &keys, data.path(), ports[0]);
    let survivor = spawn_payment(&redis, &test_db.url, &keys, data.path(), ports[1]);
    wait_replica_ready(ports[0]).await;
    wait_replica_ready(ports[1]).await;
    let publisher = Publisher::new(redis.connection(), keys.clone());

    // Four wallets of 5,000; sixty orders of 100 each: exactly fifty per user can be paid.
    let users: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
    let registrations: Vec<(String, Envelope)> = users
        .iter()
        .map(|&user_id| {
            let payload = UserRegistered {
                user_id,
                email: format!("{user_id}@example.com"),
            };
            let envelope = Envelope::new(UserRegistered::TYPE, "user", "r", "", &payload).unwrap();
            (UserRegistered::TYPE.to_owned(), envelope)
        })
        .collect();
    publisher.publish_many(&registrations).await.unwrap();
    let orders: Vec<(String, Envelope)> = (0..60)
        .flat_map(|_| users.iter().copied())
        .map(|user_id| {
            let (envelope, _) = placed(user_id, 100);
            (OrderPlaced::TYPE.to_owned(), envelope)
        })
        .collect();
    publisher.publish_many(&orders).await.unwrap();

    // Kill one replica with SIGKILL while the orders are being charged; start a fresh one.
    let mut conn = redis.connection();
    let completed_key = keys.stream(OrderCompleted::TYPE);
    wait_until(Duration::from_secs(30), "charging under way", || {
        let mut conn = conn.clone();
        let key = completed_key.clone();
        async move { xlen(&mut conn, &key).await >= 10 }
    })
    .await;
    let mut first = first;
    first.0.kill().expect("kill -9");
    first.0.wait().expect("reap");
    let at_kill = xlen(&mut conn, &completed_key).await;
    eprintln!("order-completed entries when killed: {at_kill}");
    let replacement = spawn_payment(&redis, &test_db.url, &keys, data.path(), ports[2]);
    wait_replica_ready(ports[2]).await;

    let failed_key = keys.stream(PaymentFailed::TYPE);
    wait_until(
        Duration::from_secs(90),
        "an outcome for every order",
        || {
            let mut conn = conn.clone();
            let (a, b) = (completed_key.clone(), failed_key.clone());
            async move { xlen(&mut conn, &a).await + xlen(&mut conn, &b).await >= 240 }
        },
    )
    .await;
    // Nobody published refunds: that stream is empty, and skipped.
    wait_idle(
        &conn,
        &db,
        &keys,
        payment::worker::GROUP,
        &payment::worker::routes().streams(),
    )
    .await;

    let wallets = wallet::Entity::find().all(&db).await.unwrap();
    assert_eq!(wallets.len(), 4);
    assert!(wallets.iter().all(|w| w.balance_cents == 0), "{wallets:?}");
    let payments = payment_row::Entity::find().all(&db).await.unwrap();
    assert_eq!(payments.len(), 240);
    let captured = payments.iter().filter(|p| p.status == "captured").count();
    assert_eq!(captured, 200);
    let opening: i64 = wallets.iter().map(|w| w.opening_credit_cents).sum();
    let charged: i64 = payments
        .iter()
        .filter(|p| p.status == "captured")
        .map(|p| p.amount_cents)
        .sum();
    assert_eq!(opening, charged, "money conserved");

    let completed = distinct_orders::<OrderCompleted>(&mut conn, &keys, |e| e.order_id).await;
    let failed = distinct_orders::<PaymentFailed>(&mut conn, &keys, |e| e.order_id).await;
    assert_eq!((completed.len(), failed.len()), (200, 40));
    assert!(completed.is_disjoint(&failed));
    assert_eq!(common::testing::dead_letter_total(&redis, &keys).await, 0);

    // The survivors stop cleanly on SIGTERM (exit 0), as under `docker compose stop`.
    for mut replica in [survivor, replacement] {
        replica.stop_cleanly(Duration::from_secs(30)).await;
    }
}

#[tokio::test]
async fn the_migrate_subcommand_creates_the_schema_and_exits() {
    let test_db = TestDb::new().await;
    let data = tempfile::tempdir().expect("data dir");
    let status = Command::new(env!("CARGO_BIN_EXE_payment"))
        .arg("migrate")
        .env("DATABASE_URL", &test_db.url)
        .env("MESH_DATA_DIR", data.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .status()
        .expect("run payment migrate");
    assert!(status.success(), "payment migrate: {status}");
    let db = common::db::connect(&test_db.url).await.expect("connect");
    assert!(wallet::Entity::find().all(&db).await.unwrap().is_empty());
    assert!(
        payment_row::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .is_empty()
    );
}
