//! Stream and outbox helpers of [`TestApp`]: publish an event as another service would, wait
//! until the outbox is empty and a group has handled everything, and read or count what the
//! service published.

use std::{collections::HashMap, time::Duration};

use super::{TestApp, read_events, wait_drained, wait_until, xlen};
use crate::{Envelope, db::outbox, events::Event, runtime::Publisher};

/// How long a group may take to handle what a test published.
const IDLE_WITHIN: Duration = Duration::from_secs(20);

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
        wait_until(Duration::from_secs(10), "outbox drained", || async {
            outbox::unsent(&self.db).await.expect("count outbox") == 0
        })
        .await;
    }

    /// Waits until `group` has handled everything on `streams` and the outbox is empty; twice,
    /// as a service may consume what it publishes itself (its own `refund-order`s).
    pub async fn wait_idle(&self, group: &str, streams: &[&str]) {
        for _ in 0..2 {
            self.flush_outbox().await;
            for stream in streams {
                // A stream nobody published to has nothing to handle.
                if self.stream_len(stream).await == 0 {
                    continue;
                }
                wait_drained(
                    &mut self.redis.clone(),
                    &self.stream(stream),
                    group,
                    IDLE_WITHIN,
                )
                .await;
            }
        }
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
            IDLE_WITHIN,
            &format!("{n} entries on {name}"),
            || async move { self.stream_len(name).await >= n },
        )
        .await;
    }

    /// The number of entries on the dead-letter stream.
    pub async fn dead_letters(&self) -> u64 {
        xlen(&mut self.redis.clone(), &self.keys.dead_letter()).await
    }
}
