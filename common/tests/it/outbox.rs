//! The outbox relay: everything enqueued is published once Redis takes it, in the order it was
//! enqueued, across several relay batches; while Redis is down nothing is lost, and the rows are
//! deleted only after they were published.

use std::time::Duration;

use common::connection::Conn;
use common::{
    Envelope, Keys,
    db::{self, migration::RuntimeMigrator, outbox},
    runtime::Publisher,
    testing::{RedisServer, TestDb, unique_prefix, xlen},
};

async fn enqueue_n(db: &sea_orm::DatabaseConnection, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let envelope = Envelope::new(
            "thing-done",
            "test",
            "c",
            "",
            &serde_json::json!({ "i": i }),
        )
        .unwrap();
        ids.push(envelope.event_id.to_string());
        let txn = db::begin(db).await.unwrap();
        outbox::enqueue(&*txn, "thing-done", &envelope)
            .await
            .unwrap();
        txn.commit().await.unwrap();
    }
    ids
}

async fn published_ids(conn: &mut Conn, key: &str) -> Vec<String> {
    crate::support::stream_entries(conn, key)
        .await
        .into_iter()
        .map(|(_, fields)| fields["event_id"].clone())
        .collect()
}

#[tokio::test]
async fn the_relay_publishes_every_row_once_in_order_and_keeps_rows_while_redis_is_down() {
    let mut redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let key = keys.stream("thing-done");
    let test_db = TestDb::new().await;
    let db = test_db.connect::<RuntimeMigrator>().await;
    let mut conn = redis.connection();
    let relay = outbox::OutboxRelay::new(db.clone(), Publisher::new(conn.clone(), keys.clone()));

    // More than two relay batches (500 rows each).
    let first = enqueue_n(&db, 1_100).await;
    assert_eq!(relay.publish_pending().await.unwrap(), 1_100);
    assert_eq!(outbox::unsent(&db).await.unwrap(), 0);
    assert_eq!(published_ids(&mut conn, &key).await, first);
    assert_eq!(relay.publish_pending().await.unwrap(), 0, "nothing twice");

    // Redis down: the publish fails and the rows stay.
    redis.stop();
    let second = enqueue_n(&db, 3).await;
    assert!(relay.publish_pending().await.is_err());
    assert_eq!(outbox::unsent(&db).await.unwrap(), 3);

    redis.start_again();
    let mut published = 0;
    for _ in 0..50 {
        match relay.publish_pending().await {
            Ok(n) => {
                published = n;
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(published, 3);
    assert_eq!(outbox::unsent(&db).await.unwrap(), 0);
    let mut conn = redis.connection();
    assert_eq!(xlen(&mut conn, &key).await, 1_103);
    let all = published_ids(&mut conn, &key).await;
    assert_eq!(all[1_100..], second[..]);
}
