//! Failed log-ins are counted per account and per client address in Redis, in counters that
//! expire with their window. Past the limit, log-ins get 429 with `Retry-After` until the window
//! ends — even with the right password, or guessing would simply continue.

use std::net::IpAddr;

use common::{keys::Keys, problem::ApiError};
use redis::aio::ConnectionManager;
use sha2::{Digest as _, Sha256};

/// Hash of the e-mail for key names: they show up in monitoring; addresses should not.
fn account_key(email: &str) -> String {
    Sha256::digest(email.as_bytes())[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Counts one password reset request of `email` and says whether it may be mailed: at most
/// `max` per `window_secs`, so the endpoint cannot be used to flood someone's inbox.
pub async fn allow_password_reset(
    redis: &ConnectionManager,
    keys: &Keys,
    email: &str,
    max: u64,
    window_secs: u64,
) -> Result<bool, ApiError> {
    let key = keys.password_reset_requests(&account_key(email));
    let (count, _): (u64, i64) = redis::pipe()
        .incr(&key, 1)
        .cmd("EXPIRE")
        .arg(&key)
        .arg(window_secs.max(1))
        .arg("NX")
        .query_async(&mut redis.clone())
        .await?;
    Ok(count <= max)
}

/// Counts failed log-ins.
#[derive(Clone)]
pub struct LoginLimiter {
    redis: ConnectionManager,
    keys: Keys,
    max_per_account: u64,
    max_per_ip: u64,
    window_secs: u64,
}

impl LoginLimiter {
    pub fn new(
        redis: ConnectionManager,
        keys: Keys,
        max_per_account: u64,
        max_per_ip: u64,
        window_secs: u64,
    ) -> Self {
        Self {
            redis,
            keys,
            max_per_account: max_per_account.max(1),
            max_per_ip: max_per_ip.max(1),
            window_secs: window_secs.max(1),
        }
    }

    fn counters(&self, email: &str, ip: Option<IpAddr>) -> Vec<(String, u64)> {
        let account = account_key(email);
        let mut counters = vec![(
            self.keys.login_failures("account", &account),
            self.max_per_account,
        )];
        if let Some(ip) = ip {
            counters.push((
                self.keys.login_failures("ip", &ip.to_string()),
                self.max_per_ip,
            ));
        }
        counters
    }

    /// 429 if the account or the address used up its failures.
    pub async fn check(&self, email: &str, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let mut redis = self.redis.clone();
        for (key, max) in self.counters(email, ip) {
            let (count, ttl): (Option<u64>, i64) = redis::pipe()
                .get(&key)
                .ttl(&key)
                .query_async(&mut redis)
                .await?;
            if count.unwrap_or(0) >= max {
                let retry_after = u64::try_from(ttl).unwrap_or(self.window_secs).max(1);
                return Err(ApiError::TooManyRequests {
                    detail: "too many failed log-ins; try again later".into(),
                    retry_after,
                });
            }
        }
        Ok(())
    }

    /// Counts one failure against the account and the address.
    pub async fn record_failure(&self, email: &str, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let mut redis = self.redis.clone();
        for (key, _) in self.counters(email, ip) {
            // NX: the window starts with the first failure and is not extended by later ones.
            let _: (u64, i64) = redis::pipe()
                .incr(&key, 1)
                .cmd("EXPIRE")
                .arg(&key)
                .arg(self.window_secs)
                .arg("NX")
                .query_async(&mut redis)
                .await?;
        }
        Ok(())
    }

    /// A successful log-in forgives the account's failures (not the address's).
    pub async fn clear(&self, email: &str) -> Result<(), ApiError> {
        let mut redis = self.redis.clone();
        if let Some((key, _)) = self.counters(email, None).into_iter().next() {
            let _: i64 = redis::cmd("DEL").arg(key).query_async(&mut redis).await?;
        }
        Ok(())
    }
}
