//! The Redis cache of the public product list. Every page is stored under a key that contains
//! the catalog's *version*, a counter bumped after every committed write (catalog or stock). A
//! read after a write therefore looks under a new key and goes to the database: no stale page is
//! ever served once the write has returned, and old pages simply expire.
//!
//! The cache is an optimisation only: when Redis fails, reads go to the database. A bump that
//! failed (a write while Redis was away) is owed: this process makes it before it reads the
//! cache again, so pages cached before the outage are not served after it. (A bump owed by a
//! process that then died is bounded by [`TTL`].)

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use common::Keys;
use common::connection::Conn;

/// How long a cached page lives (also the bound on staleness if a version bump was lost).
pub const TTL: Duration = Duration::from_secs(30);

/// Cached pages of `GET /products`, under the mesh prefix.
#[derive(Clone)]
pub struct ProductCache {
    redis: Conn,
    prefix: String,
    /// A version bump failed and must be made before the cache is read again.
    bump_owed: Arc<AtomicBool>,
}

/// The version a page was read under, to store the fresh page under the same one.
#[derive(Debug, Clone, Copy)]
pub struct Version(i64);

impl ProductCache {
    pub fn new(redis: Conn, keys: &Keys) -> Self {
        Self {
            redis,
            prefix: format!("{}inventory:products:", keys.prefix()),
            bump_owed: Arc::new(AtomicBool::new(false)),
        }
    }

    fn version_key(&self) -> String {
        format!("{}version", self.prefix)
    }

    fn page_key(&self, version: Version, page: u64, per_page: u64) -> String {
        format!("{}v{}:p{page}:n{per_page}", self.prefix, version.0)
    }

    /// The cached page, or the version to store it under once read from the database.
    /// `Err(None)` when Redis is unavailable (do not cache).
    pub async fn get(&self, page: u64, per_page: u64) -> Result<String, Option<Version>> {
        if self.bump_owed.load(Ordering::Acquire) && !self.bump().await {
            return Err(None);
        }
        let mut conn = self.redis.clone();
        let version: Option<i64> = match redis::cmd("GET")
            .arg(self.version_key())
            .query_async(&mut conn)
            .await
        {
            Ok(v) => v,
            Err(error) => {
                tracing::warn!(%error, "product cache unavailable; reading the database");
                return Err(None);
            }
        };
        let version = Version(version.unwrap_or(0));
        let cached: redis::RedisResult<Option<String>> = redis::cmd("GET")
            .arg(self.page_key(version, page, per_page))
            .query_async(&mut conn)
            .await;
        match cached {
            Ok(Some(body)) => {
                metrics::counter!("inventory_product_cache_hits_total").increment(1);
                Ok(body)
            }
            Ok(None) => {
                metrics::counter!("inventory_product_cache_misses_total").increment(1);
                Err(Some(version))
            }
            Err(error) => {
                tracing::warn!(%error, "product cache unavailable; reading the database");
                Err(None)
            }
        }
    }

    /// Stores a page read from the database under the version it was looked up with. If a
    /// write bumped the version meanwhile, the page lands under the old key and is never read.
    pub async fn put(&self, version: Version, page: u64, per_page: u64, body: &str) {
        let result: redis::RedisResult<()> = redis::cmd("SET")
            .arg(self.page_key(version, page, per_page))
            .arg(body)
            .arg("PX")
            .arg(TTL.as_millis() as u64)
            .query_async(&mut self.redis.clone())
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, "cannot store a product page in the cache");
        }
    }

    /// Invalidates the cache once what the caller wrote is committed: at once outside a batch
    /// transaction, after its commit inside one — and then once for the whole batch.
    pub async fn invalidate_after_commit(&self) {
        let cache = self.clone();
        common::db::after_commit_once("inventory-product-cache", async move {
            cache.invalidate().await
        })
        .await;
    }

    /// Makes every cached page unreachable. Call after the write has committed. If Redis is
    /// away, the bump is owed and made before this process reads the cache again.
    pub async fn invalidate(&self) {
        self.bump_owed.store(true, Ordering::Release);
        self.bump().await;
    }

    /// Bumps the version; on success nothing is owed any more.
    async fn bump(&self) -> bool {
        let result: redis::RedisResult<i64> = redis::cmd("INCR")
            .arg(self.version_key())
            .query_async(&mut self.redis.clone())
            .await;
        match result {
            Ok(_) => {
                self.bump_owed.store(false, Ordering::Release);
                true
            }
            Err(error) => {
                tracing::warn!(%error, "cannot invalidate the product cache yet; reading the database until it can");
                false
            }
        }
    }
}
