//! Failed log-ins are counted per account and per client address in Redis, in counters that
//! expire with their window. Past the limit, log-ins get 429 with `Retry-After` until the window
//! ends — even with the right password, or guessing would simply continue. Check and count are
//! one Lua script: an attempt is counted before its password is checked, so concurrent guesses
//! cannot get past the limit.

use std::{net::IpAddr, sync::LazyLock};

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

/// Takes one log-in attempt from every counter, atomically: if any counter has used up its
/// limit, nothing is counted and the answer is the seconds until that window ends; otherwise
/// every counter goes up by one (its window starting with the first attempt: `EXPIRE … NX`) and
/// the answer is 0. One script, so that concurrent guesses cannot all pass a check made before
/// any of them was counted.
///
/// `KEYS`: the counters; `ARGV[1]`: the window in seconds; `ARGV[1 + i]`: the limit of `KEYS[i]`.
static TAKE_ATTEMPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local window = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count >= tonumber(ARGV[i + 1]) then
    local ttl = redis.call('TTL', key)
    if ttl < 0 then
      -- A counter without expiry would lock the subject out for good: give it its window.
      redis.call('EXPIRE', key, window)
      ttl = window
    end
    return math.max(ttl, 1)
  end
end
for _, key in ipairs(KEYS) do
  redis.call('INCR', key)
  redis.call('EXPIRE', key, window, 'NX')
end
return 0
",
    )
});

/// A successful log-in: the account's failures are forgiven (`KEYS[1]` deleted) and the address
/// gets back the attempt it was charged (`KEYS[2]`, if given, one down) — only failures count
/// against an address.
static FORGIVE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
redis.call('DEL', KEYS[1])
if KEYS[2] and tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then
  redis.call('DECR', KEYS[2])
end
return 0
",
    )
});

/// Limits log-in attempts per account and per client address. Every attempt is counted
/// *before* the password is checked ([`take_attempt`](Self::take_attempt)), so at most the
/// limit of guesses is ever checked per window however many arrive at once; a success gives its
/// attempt back ([`succeeded`](Self::succeeded)).
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

    /// Counts an attempt against the account and the address, or 429 (with `Retry-After`) if
    /// either has used up its attempts; then nothing is counted. An attempt that is not
    /// [`succeeded`](Self::succeeded) stays counted as a failure — also when it fails for
    /// another reason (a database error), which errs on the safe side.
    pub async fn take_attempt(&self, email: &str, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let counters = self.counters(email, ip);
        let mut invocation = TAKE_ATTEMPT.prepare_invoke();
        invocation.arg(self.window_secs);
        for (key, max) in &counters {
            invocation.key(key).arg(*max);
        }
        let retry_after: u64 = invocation.invoke_async(&mut self.redis.clone()).await?;
        if retry_after > 0 {
            return Err(ApiError::TooManyRequests {
                detail: "too many failed log-ins; try again later".into(),
                retry_after,
            });
        }
        Ok(())
    }

    /// The attempt succeeded: forgives the account's failures and gives the address its attempt
    /// back (the address's earlier failures stay).
    pub async fn succeeded(&self, email: &str, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let mut invocation = FORGIVE.prepare_invoke();
        for (key, _) in self.counters(email, ip) {
            invocation.key(key);
        }
        let _: i64 = invocation.invoke_async(&mut self.redis.clone()).await?;
        Ok(())
    }
}
