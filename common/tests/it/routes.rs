//! `runtime::Routes` as a worker's handler: each event type reaches its own handler, decoded;
//! a payload that does not decode or breaks its bounds, and a stream without a route, are
//! dead-lettered at once and reach no handler; the same holds in transactional batches.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{
    Envelope, Keys,
    db::{self, inbox, migration::RuntimeMigrator, outbox::OutboxNotifier},
    events::{Event, OrderPlaced, ProductChanged, UserRegistered},
    runtime::{
        BatchTransactions, HandleError, Publisher, Routes, WorkerConfig, WorkerStats,
        dead_letter::{self, fields},
    },
    testing::{RedisServer, TestDb, unique_prefix, wait_drained},
};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::support::{InProcessWorker, pending, stream_entries};

const GROUP: &str = "routed";

/// What the handlers saw, by handler; with a database, each also records its event in the inbox
/// (in the batch transaction when there is one).
#[derive(Default)]
struct Seen {
    users: Mutex<Vec<(Uuid, UserRegistered)>>,
    products: Mutex<Vec<(Uuid, ProductChanged)>>,
    db: Option<DatabaseConnection>,
}

impl Seen {
    async fn record_in_inbox(&self, envelope: &Envelope) -> Result<(), HandleError> {
        if let Some(db) = &self.db
            && let Some(txn) = inbox::begin_once(db, GROUP, envelope).await?
        {
            txn.commit().await?;
        }
        Ok(())
    }
}

async fn on_user(
    seen: &Arc<Seen>,
    envelope: &Envelope,
    user: UserRegistered,
) -> Result<(), HandleError> {
    seen.record_in_inbox(envelope).await?;
    // Outside the database: only once the work is committed (a batch may be applied twice).
    let (seen, event_id) = (seen.clone(), envelope.event_id);
    db::after_commit(async move { seen.users.lock().unwrap().push((event_id, user)) }).await;
    Ok(())
}

async fn on_product(
    seen: &Arc<Seen>,
    envelope: &Envelope,
    product: ProductChanged,
) -> Result<(), HandleError> {
    seen.record_in_inbox(envelope).await?;
    let (seen, event_id) = (seen.clone(), envelope.event_id);
    db::after_commit(async move { seen.products.lock().unwrap().push((event_id, product)) }).await;
    Ok(())
}

fn routes() -> Routes<Arc<Seen>> {
    Routes::new(GROUP)
        .on::<UserRegistered>(on_user)
        .on::<ProductChanged>(on_product)
}

fn user(n: u8) -> UserRegistered {
    UserRegistered {
        user_id: Uuid::now_v7(),
        email: format!("u{n}@example.com"),
    }
}

fn product(price_cents: i64) -> ProductChanged {
    ProductChanged {
        product_id: Uuid::now_v7(),
        name: "lamp".into(),
        price_cents,
        active: true,
        revision: 1,
    }
}

/// Publishes `event` on its own stream; returns its envelope.
async fn publish<E: Event>(publisher: &Publisher, event: &E) -> Envelope {
    let envelope = Envelope::of_event("test", "corr", "", event)
        .unwrap()
        .into_envelope();
    publisher
        .publish_many(&[(E::TYPE.to_owned(), envelope.clone())])
        .await
        .unwrap();
    envelope
}

/// Publishes an envelope of type `E::TYPE` on `E::TYPE` whose `data` is `data` as it is.
async fn publish_data<E: Event>(publisher: &Publisher, data: serde_json::Value) -> Envelope {
    let envelope = Envelope::new(E::TYPE, "test", "corr", "", &data).unwrap();
    publisher
        .publish_many(&[(E::TYPE.to_owned(), envelope.clone())])
        .await
        .unwrap();
    envelope
}

/// The dead letters (all of `GROUP`, delivered once): event id, origin stream, last error.
async fn dead_letters(redis: &RedisServer, keys: &Keys) -> Vec<(String, String, String)> {
    let mut conn = redis.connection();
    let mut entries = Vec::new();
    for origin in dead_letter::origins(&redis.target(), &mut conn, keys)
        .await
        .unwrap()
    {
        entries.extend(stream_entries(&mut conn, &keys.dead_letter(&origin)).await);
    }
    entries
        .into_iter()
        .map(|(_, f)| {
            assert_eq!(f[fields::GROUP], GROUP);
            assert_eq!(
                f[fields::DELIVERY_COUNT],
                "1",
                "dead-lettered at once: {f:?}"
            );
            (
                f["event_id"].clone(),
                f[fields::ORIGIN_STREAM].clone(),
                f[fields::LAST_ERROR].clone(),
            )
        })
        .collect()
}

async fn wait_all_drained(redis: &RedisServer, keys: &Keys, streams: &[&str]) {
    let mut conn = redis.connection();
    for stream in streams {
        wait_drained(
            &mut conn,
            &keys.stream(stream),
            GROUP,
            Duration::from_secs(20),
        )
        .await;
        assert!(
            pending(&mut conn, &keys.stream(stream), GROUP)
                .await
                .is_empty()
        );
    }
}

#[test]
fn the_streams_are_the_routes_in_order() {
    assert_eq!(
        routes().streams(),
        [UserRegistered::TYPE, ProductChanged::TYPE]
    );
    assert_eq!(
        routes().with_state(Arc::default()).streams(),
        ["user-registered", "product-changed"]
    );
}

#[test]
#[should_panic(expected = "group `routed` has two routes for `user-registered`")]
fn a_second_route_for_a_stream_is_refused() {
    let _ = routes().on::<UserRegistered>(on_user);
}

#[tokio::test]
async fn two_event_types_reach_their_own_handlers_decoded() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let publisher = Publisher::new(redis.connection(), keys.clone());
    let users = [user(1), user(2), user(3)];
    let products = [product(100), product(250)];
    let mut user_ids = Vec::new();
    for u in &users {
        user_ids.push(publish(&publisher, u).await.event_id);
    }
    let mut product_ids = Vec::new();
    for p in &products {
        product_ids.push(publish(&publisher, p).await.event_id);
    }

    let seen = Arc::new(Seen::default());
    let handler = routes().with_state(seen.clone());
    let streams = handler.streams();
    let cfg = WorkerConfig::new(keys.clone(), GROUP, &streams);
    let worker = InProcessWorker::start(&redis, cfg, handler);
    wait_all_drained(&redis, &keys, &streams).await;
    let stats = worker.stats.clone();
    worker.stop().await;

    let mut got_users = seen.users.lock().unwrap().clone();
    got_users.sort_by_key(|(id, _)| *id);
    let want_users: Vec<_> = user_ids.into_iter().zip(users).collect();
    assert_eq!(got_users, want_users, "every user-registered, to on_user");
    let mut got_products = seen.products.lock().unwrap().clone();
    got_products.sort_by_key(|(id, _)| *id);
    let want_products: Vec<_> = product_ids.into_iter().zip(products).collect();
    assert_eq!(
        got_products, want_products,
        "every product-changed, to on_product"
    );
    assert!(dead_letters(&redis, &keys).await.is_empty());
    assert_eq!(WorkerStats::get(&stats.handled), 5);
    assert_eq!(WorkerStats::get(&stats.dead_lettered), 0);
}

#[tokio::test]
async fn a_stream_without_a_route_is_dead_lettered_at_once() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let publisher = Publisher::new(redis.connection(), keys.clone());
    // Read by the group (a configuration out of step with the routes), routed nowhere: a valid
    // event of the catalog all the same.
    let stray = publish_data::<OrderPlaced>(&publisher, serde_json::json!({})).await;
    let good = publish(&publisher, &user(1)).await;

    let seen = Arc::new(Seen::default());
    let handler = routes().with_state(seen.clone());
    let mut streams = handler.streams();
    streams.push(OrderPlaced::TYPE);
    let cfg = WorkerConfig::new(keys.clone(), GROUP, &streams);
    let worker = InProcessWorker::start(&redis, cfg, handler);
    wait_all_drained(&redis, &keys, &streams).await;
    let stats = worker.stats.clone();
    worker.stop().await;

    let dead = dead_letters(&redis, &keys).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let (event_id, stream, error) = &dead[0];
    assert_eq!(*event_id, stray.event_id.to_string());
    assert_eq!(stream, OrderPlaced::TYPE);
    assert_eq!(error, "routed does not consume `order-placed`");
    let users = seen.users.lock().unwrap().clone();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].0, good.event_id);
    assert!(seen.products.lock().unwrap().is_empty());
    assert_eq!(WorkerStats::get(&stats.dead_lettered), 1);
    assert_eq!(WorkerStats::get(&stats.retried), 0);
}

/// Publishes, on `product-changed`, a payload of another shape and one out of bounds around a
/// good one; returns (good, [(bad, what it breaks)]).
async fn publish_bad_products(publisher: &Publisher) -> (Envelope, Vec<(Envelope, &'static str)>) {
    let wrong_shape =
        publish_data::<ProductChanged>(publisher, serde_json::json!({ "n": 1 })).await;
    let good = publish(publisher, &product(100)).await;
    let negative_price = publish(publisher, &product(-1)).await;
    (
        good,
        vec![
            (wrong_shape, "missing field"),
            (negative_price, "`price_cents` -1 is outside"),
        ],
    )
}

fn assert_bad_products_dead_lettered(
    dead: &[(String, String, String)],
    bad: &[(Envelope, &'static str)],
) {
    assert_eq!(dead.len(), bad.len(), "{dead:?}");
    for (envelope, breaks) in bad {
        let (_, stream, error) = dead
            .iter()
            .find(|(id, _, _)| *id == envelope.event_id.to_string())
            .unwrap_or_else(|| panic!("{breaks}: not dead-lettered: {dead:?}"));
        assert_eq!(stream, ProductChanged::TYPE);
        assert!(
            error.starts_with("payload does not match `product-changed`") && error.contains(breaks),
            "{breaks}: {error}"
        );
    }
}

#[tokio::test]
async fn a_payload_that_does_not_decode_or_breaks_its_bounds_is_dead_lettered_unapplied() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let publisher = Publisher::new(redis.connection(), keys.clone());
    let (good, bad) = publish_bad_products(&publisher).await;

    let seen = Arc::new(Seen::default());
    let handler = routes().with_state(seen.clone());
    let streams = handler.streams();
    let cfg = WorkerConfig::new(keys.clone(), GROUP, &streams);
    let worker = InProcessWorker::start(&redis, cfg, handler);
    wait_all_drained(&redis, &keys, &streams).await;
    let stats = worker.stats.clone();
    worker.stop().await;

    assert_bad_products_dead_lettered(&dead_letters(&redis, &keys).await, &bad);
    let products = seen.products.lock().unwrap().clone();
    assert_eq!(products, [(good.event_id, good.event().unwrap())]);
    assert_eq!(WorkerStats::get(&stats.dead_lettered), 2);
    assert_eq!(WorkerStats::get(&stats.handled), 1);
    assert_eq!(WorkerStats::get(&stats.retried), 0);
}

#[tokio::test]
async fn in_a_batch_transaction_good_events_commit_and_bad_ones_are_dead_lettered() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let test_db = TestDb::new().await;
    let db = test_db.connect::<RuntimeMigrator>().await;
    let publisher = Publisher::new(redis.connection(), keys.clone());
    let (good, bad) = publish_bad_products(&publisher).await;
    let good_user = publish(&publisher, &user(1)).await;

    let seen = Arc::new(Seen {
        db: Some(db.clone()),
        ..Seen::default()
    });
    let handler = routes().with_state(seen.clone());
    let streams = handler.streams();
    let mut cfg = WorkerConfig::new(keys.clone(), GROUP, &streams);
    cfg.batch_transactions = Some(BatchTransactions {
        db: db.clone(),
        notifier: OutboxNotifier::default(),
    });
    let worker = InProcessWorker::start(&redis, cfg, handler);
    wait_all_drained(&redis, &keys, &streams).await;
    let stats = worker.stats.clone();
    worker.stop().await;

    assert_bad_products_dead_lettered(&dead_letters(&redis, &keys).await, &bad);
    for envelope in [&good, &good_user] {
        assert!(
            inbox::contains(&db, GROUP, &envelope.event_id.to_string())
                .await
                .unwrap(),
            "{} committed",
            envelope.event_type
        );
    }
    for (envelope, breaks) in &bad {
        assert!(
            !inbox::contains(&db, GROUP, &envelope.event_id.to_string())
                .await
                .unwrap(),
            "{breaks}: applied"
        );
    }
    assert_eq!(seen.products.lock().unwrap().len(), 1);
    assert_eq!(seen.users.lock().unwrap().len(), 1);
    assert_eq!(WorkerStats::get(&stats.dead_lettered), 2);
    assert_eq!(WorkerStats::get(&stats.handled), 2);
}
