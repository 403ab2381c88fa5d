//! Stream and outbox helpers of [`TestApp`]: publish an event as another service would, wait
//! until the outbox is empty and a group has handled everything, and read or count what the
//! service published. [`wait_idle`] and [`wait_outbox_empty`] serve the tests that run replicas
//! of a binary on a database and Redis server of their own as well.

use std::{collections::HashMap, time::Duration};

use crate::connection::Conn;
use sea_orm::DatabaseConnection;

use super::app::TestApp;
use super::streams::{dead_letter_total, read_events, wait_drained, xlen};
use super::wait::wait_until;
use crate::{Envelope, Keys, db::outbox, events::Event, runtime::Publisher};

/// How long a group may take to handle what a test published.
const IDLE_WITHIN: Duration = Duration::from_secs(30);

/// How long a test waits for new entries on a stream.
const EVENTS_WITHIN: Duration = Duration::from_secs(20);

/// Waits until the outbox of `db` is empty: every event caused so far is on its stream.
pub async fn wait_outbox_empty(db: &DatabaseConnection) {
    wait_until(Duration::from_secs(10), "outbox drained", || async {
        outbox::unsent(db).await.expect("count outbox") == 0
    })
    .await;
}

/// Waits until `group` has handled everything on `streams` (under `keys`) and the outbox of
/// `db` is empty; twice, as a service may consume what it publishes itself (its own
/// `refund-order`s).
pub async fn wait_idle(
    conn: &Conn,
    db: &DatabaseConnection,
    keys: &Keys,
    group: &str,
    streams: &[&str],
) {
    for _ in 0..2 {
        wait_outbox_empty(db).await;
        for stream in streams {
            let key = keys.stream(stream);
            // A stream nobody published to has nothing to handle.
            if xlen(&mut conn.clone(), &key).await == 0 {
                continue;
            }
            wait_drained(&mut conn.clone(), &key, group, IDLE_WITHIN).await;
        }
    }
}

impl TestApp {
    /// The key of stream `name` under the app's prefix.
    pub fn stream(&self, name: &str) -> String {
        self.keys.stream(name)
    }

    /// Publishes an event on the stream of its type.
    pub async fn publish(&self, envelope: &Envelope) {
        Publisher::new(self.redis.clone(), self.keys.clone())
            .publish(&envelope.event_type, envelope)
            .await
            .expect("publish");
    }

    /// Waits until the outbox is empty: every event caused so far is on its stream.
    pub async fn flush_outbox(&self) {
        wait_outbox_empty(&self.db).await;
    }

    /// [`wait_idle`] on the app's Redis server and database.
    pub async fn wait_idle(&self, group: &str, streams: &[&str]) {
        wait_idle(&self.redis, &self.db, &self.keys, group, streams).await;
    }

    /// Every event on stream `T::TYPE`, decoded, after flushing the outbox.
    pub async fn events<T: Event>(&self) -> Vec<(Envelope, T)> {
        self.flush_outbox().await;
        read_events::<T>(&mut self.redis.clone(), &self.keys).await
    }

    /// The number of entries on stream `name`.
    pub async fn stream_len(&self, name: &str) -> u64 {
        xlen(&mut self.redis.clone(), &self.stream(name)).await
    }

    /// Entry counts of streams `names` after flushing the outbox, for "nothing was published"
    /// checks.
    pub async fn stream_lengths(&self, names: &[&str]) -> HashMap<String, u64> {
        self.flush_outbox().await;
        let mut lengths = HashMap::new();
        for name in names {
            lengths.insert((*name).to_owned(), self.stream_len(name).await);
        }
        lengths
    }

    /// Waits until stream `name` holds at least `n` entries.
    pub async fn wait_for_events(&self, name: &str, n: u64) {
        wait_until(
            EVENTS_WITHIN,
            &format!("{n} entries on {name}"),
            || async move { self.stream_len(name).await >= n },
        )
        .await;
    }

    /// The number of entries on the dead-letter streams.
    pub async fn dead_letters(&self) -> u64 {
        dead_letter_total(&self.redis_server, &self.keys).await
    }
}
