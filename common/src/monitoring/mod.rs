//! What an operator alerts on, on every service's `/metrics`, cheap to scrape: the gauges that
//! come from Redis and the database are refreshed by [`Monitor::run`] every
//! `MESH_METRICS_REFRESH` (10 s) and a scrape only copies the last refresh.
//!
//! - `groups`: per (stream, group) the service consumes: lag, pending, oldest pending age,
//!   consumers, and (with `dead_letters`) dead letters not replayed.
//! - the outbox backlog: rows and the age of the oldest (`crate::db::outbox::backlog`).
//! - `exposition`: the text format of these gauges.
//!
//! Counters and histograms recorded as things happen (deliveries, retries, dead letters,
//! handler durations: `crate::runtime::meters`; HTTP requests: `crate::http`) go through the
//! process-wide recorder (`crate::recorder`); [`Monitor::render`] puts both on one page.
//! docs/architecture.md, "Operations", lists every metric.

mod dead_letters;
mod exposition;
mod groups;

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::connection::Conn;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

pub use groups::{CONSUMERS, DEAD_LETTERS, LAG, OLDEST_PENDING_AGE, PENDING};

use self::{dead_letters::DeadLetterTally, exposition::Family};
use crate::{backoff::LogLimiter, keys::Keys};

/// Rows in the outbox, waiting to be published.
pub const OUTBOX_BACKLOG: &str = "mesh_outbox_backlog_rows";
/// Age of the oldest outbox row.
pub const OUTBOX_OLDEST_AGE: &str = "mesh_outbox_oldest_age_seconds";
/// Unix time of the last successful refresh, per `source` (`redis`, `database`).
pub const REFRESHED_AT: &str = "mesh_metrics_refresh_timestamp_seconds";

/// Shortest refresh interval taken (a smaller setting would make the refresh a busy loop).
pub const MIN_REFRESH: Duration = Duration::from_millis(100);

/// The background refresh of the gauges and the page it renders. Cheap to clone.
#[derive(Clone)]
pub struct Monitor {
    inner: Arc<Inner>,
}

struct Inner {
    redis: Conn,
    db: Option<DatabaseConnection>,
    keys: Keys,
    every: Duration,
    /// (stream, group) pairs to report.
    pairs: Mutex<BTreeSet<(String, String)>>,
    state: tokio::sync::Mutex<DeadLetterTally>,
    page: Mutex<Page>,
    log: LogLimiter,
}

/// The last refresh of each source, rendered; kept when a later refresh of that source fails
/// ([`REFRESHED_AT`] says how old it is).
#[derive(Default)]
struct Page {
    redis: String,
    redis_at: Option<f64>,
    database: String,
    database_at: Option<f64>,
}

impl Monitor {
    /// A monitor reading Redis through `redis` (a connection of its own: a refresh may walk a
    /// stream) and, if given, the outbox of `db`; refreshed every `every` (at least
    /// [`MIN_REFRESH`]) once [`run`](Self::run).
    pub fn new(redis: Conn, db: Option<DatabaseConnection>, keys: Keys, every: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                redis,
                db,
                keys,
                every: every.max(MIN_REFRESH),
                pairs: Mutex::default(),
                state: tokio::sync::Mutex::default(),
                page: Mutex::default(),
                log: LogLimiter::new(Duration::from_secs(60)),
            }),
        }
    }

    /// Reports `group` on each of `streams` (unprefixed) from the next refresh on.
    pub fn watch(&self, group: &str, streams: &[String]) {
        let mut pairs = lock(&self.inner.pairs);
        for stream in streams {
            pairs.insert((stream.clone(), group.to_owned()));
        }
    }

    /// Refreshes now, then every interval until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.inner.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            tokio::select! {
                _ = self.refresh() => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// One refresh of every source. A source that fails (or takes longer than the interval,
    /// and at least 5 s) keeps its previous values.
    pub async fn refresh(&self) {
        let limit = self.inner.every.max(Duration::from_secs(5));
        match tokio::time::timeout(limit, self.refresh_redis()).await {
            Ok(Ok(text)) => {
                let mut page = lock(&self.inner.page);
                page.redis = text;
                page.redis_at = Some(unix_now());
            }
            Ok(Err(error)) => self.warn("redis", &error),
            Err(_) => self.warn("redis", &"timed out"),
        }
        let Some(db) = &self.inner.db else { return };
        match tokio::time::timeout(limit, crate::db::outbox::backlog(db)).await {
            Ok(Ok((rows, oldest))) => {
                let mut text = String::new();
                let mut backlog = Family::gauge(
                    OUTBOX_BACKLOG,
                    "Outbox rows waiting to be published to Redis.",
                );
                backlog.push(Vec::new(), rows as f64);
                backlog.render(&mut text);
                let mut age = Family::gauge(
                    OUTBOX_OLDEST_AGE,
                    "Age of the oldest outbox row; 0 when the outbox is empty.",
                );
                let now_ms = (unix_now() * 1000.0) as i64;
                let age_ms = oldest.map_or(0, |at| now_ms.saturating_sub(at).max(0));
                age.push(Vec::new(), age_ms as f64 / 1000.0);
                age.render(&mut text);
                let mut page = lock(&self.inner.page);
                page.database = text;
                page.database_at = Some(unix_now());
            }
            Ok(Err(error)) => self.warn("database", &error),
            Err(_) => self.warn("database", &"timed out"),
        }
    }

    async fn refresh_redis(&self) -> redis::RedisResult<String> {
        let pairs = lock(&self.inner.pairs).clone();
        let mut tally = self.inner.state.lock().await;
        let mut conn = self.inner.redis.clone();
        let families = groups::collect(&mut conn, &self.inner.keys, &pairs, &mut tally).await?;
        let mut text = String::new();
        for family in &families {
            family.render(&mut text);
        }
        Ok(text)
    }

    fn warn(&self, source: &str, error: &dyn std::fmt::Display) {
        if let Some(suppressed) = self.inner.log.allow() {
            tracing::warn!(source, %error, suppressed, "metrics refresh failed; keeping the last values");
        }
    }

    /// The `/metrics` page: the process-wide recorder's metrics, then the last refresh.
    pub fn render(&self) -> String {
        let mut out = crate::recorder::handle().render();
        let page = lock(&self.inner.page);
        out.push_str(&page.redis);
        out.push_str(&page.database);
        let mut at = Family::gauge(
            REFRESHED_AT,
            "Unix time of the last successful refresh of the gauges from this source.",
        );
        for (source, time) in [("redis", page.redis_at), ("database", page.database_at)] {
            if let Some(time) = time {
                at.push(vec![("source", source.to_owned())], time.floor());
            }
        }
        at.render(&mut out);
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
