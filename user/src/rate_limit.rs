//! Rate limits of the user service, as counters in Redis that expire with their window; past a
//! limit the answer is 429 with `Retry-After` until the window ends.
//!
//! Failed log-ins are counted per account *and client address* (the pair), per address, and per
//! account across all addresses (a ceiling well above the pair's limit). An attacker who guesses
//! a victim's password from one address locks out only that pair — the owner, from elsewhere,
//! still logs in — while guessing spread over many addresses still hits the account ceiling. A
//! success clears only its own pair and gives back the attempt it was charged, so neither the
//! owner's log-in nor the attacker's own account forgives anyone else's failures. Check and count
//! are one Lua script: an attempt is counted before its password is checked, so concurrent guesses
//! cannot get past the limit.
//!
//! Registrations and password reset requests are limited per client address; reset mails also
//! per account ([`allow_password_reset`], which answers 202 either way). IPv6 addresses count by
//! their /64, what one client usually holds.

use std::{
    net::{IpAddr, Ipv6Addr},
    sync::{Arc, LazyLock},
};

use common::connection::Conn;
use common::{keys::Keys, problem::ApiError};
use sha2::{Digest as _, Sha256};

/// Hash of the e-mail for key names: they show up in monitoring; addresses should not.
fn account_key(email: &str) -> String {
    Sha256::digest(email.as_bytes())[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The address as counted: IPv4 as it is, IPv6 by its /64.
fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Counts one password reset request of `email` and says whether it may be mailed: at most
/// `max` per `window_secs`, so the endpoint cannot be used to flood someone's inbox.
pub async fn allow_password_reset(
    redis: &Conn,
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

/// A successful log-in: its pair's failures are forgiven (`KEYS[1]` deleted) and every other
/// counter (`KEYS[2..]`) gets back the attempt it was charged — only that one.
static FORGIVE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
redis.call('DEL', KEYS[1])
for i = 2, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then
    redis.call('DECR', KEYS[i])
  end
end
return 0
",
    )
});

/// The limits, from the service's settings (each at least 1).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Failed log-ins per account and client address within the log-in window.
    pub login_per_pair: u64,
    /// Failed log-ins per account from all addresses within the log-in window.
    pub login_per_account: u64,
    /// Failed log-ins per client address within the log-in window.
    pub login_per_address: u64,
    pub login_window_secs: u64,
    /// Registrations per client address within the address window.
    pub registrations_per_address: u64,
    /// Password reset requests per client address within the address window.
    pub resets_per_address: u64,
    pub address_window_secs: u64,
}

/// The rate limits of the user service. Every log-in attempt is counted *before* the password
/// is checked ([`take_login_attempt`](Self::take_login_attempt)), so at most the limit of
/// guesses is ever checked per window however many arrive at once; a success gives its attempt
/// back ([`login_succeeded`](Self::login_succeeded)).
#[derive(Clone)]
pub struct Limiter {
    redis: Conn,
    keys: Keys,
    limits: Arc<Limits>,
}

impl Limiter {
    pub fn new(redis: Conn, keys: Keys, limits: Limits) -> Self {
        let at_least_one = |n: u64| n.max(1);
        let limits = Limits {
            login_per_pair: at_least_one(limits.login_per_pair),
            login_per_account: at_least_one(limits.login_per_account),
            login_per_address: at_least_one(limits.login_per_address),
            login_window_secs: at_least_one(limits.login_window_secs),
            registrations_per_address: at_least_one(limits.registrations_per_address),
            resets_per_address: at_least_one(limits.resets_per_address),
            address_window_secs: at_least_one(limits.address_window_secs),
        };
        Self {
            redis,
            keys,
            limits: Arc::new(limits),
        }
    }

    /// The log-in counters with their limits; the pair first (what a success clears).
    fn login_counters(&self, email: &str, ip: Option<IpAddr>) -> Vec<(String, u64)> {
        let account = account_key(email);
        let address = ip.map_or_else(|| "unknown".to_owned(), address_key);
        let mut counters = vec![
            (
                self.keys
                    .login_failures("pair", &format!("{account}:{address}")),
                self.limits.login_per_pair,
            ),
            (
                self.keys.login_failures("account", &account),
                self.limits.login_per_account,
            ),
        ];
        if ip.is_some() {
            counters.push((
                self.keys.login_failures("ip", &address),
                self.limits.login_per_address,
            ));
        }
        counters
    }

    /// Counts an attempt against the pair, the account and the address, or 429 (with
    /// `Retry-After`) if any has used up its attempts; then nothing is counted. An attempt that
    /// is not [`login_succeeded`](Self::login_succeeded) stays counted as a failure — also when
    /// it fails for another reason (a database error), which errs on the safe side.
    pub async fn take_login_attempt(
        &self,
        email: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), ApiError> {
        let counters = self.login_counters(email, ip);
        self.take(
            &counters,
            self.limits.login_window_secs,
            "too many failed log-ins",
        )
        .await
    }

    /// The attempt succeeded: forgives its pair's failures and gives the account and the
    /// address back the attempt (their other failures stay).
    pub async fn login_succeeded(&self, email: &str, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let mut invocation = FORGIVE.prepare_invoke();
        for (key, _) in self.login_counters(email, ip) {
            invocation.key(key);
        }
        let _: i64 = invocation.invoke_async(&mut self.redis.clone()).await?;
        Ok(())
    }

    /// Counts a registration from `ip`, or 429 past the per-address limit.
    pub async fn take_registration(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        self.take_per_address(
            "register",
            ip,
            self.limits.registrations_per_address,
            "too many registrations from this address",
        )
        .await
    }

    /// Counts a password reset request from `ip`, or 429 past the per-address limit.
    pub async fn take_reset_request(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        self.take_per_address(
            "password-reset",
            ip,
            self.limits.resets_per_address,
            "too many password reset requests from this address",
        )
        .await
    }

    async fn take_per_address(
        &self,
        scope: &str,
        ip: Option<IpAddr>,
        max: u64,
        what: &str,
    ) -> Result<(), ApiError> {
        let Some(ip) = ip else { return Ok(()) };
        let counter = (self.keys.rate_limit(scope, &address_key(ip)), max);
        self.take(&[counter], self.limits.address_window_secs, what)
            .await
    }

    /// One attempt from every counter, or 429 with the seconds until the exhausted window ends.
    async fn take(
        &self,
        counters: &[(String, u64)],
        window: u64,
        what: &str,
    ) -> Result<(), ApiError> {
        let mut invocation = TAKE_ATTEMPT.prepare_invoke();
        invocation.arg(window);
        for (key, max) in counters {
            invocation.key(key).arg(*max);
        }
        let retry_after: u64 = invocation.invoke_async(&mut self.redis.clone()).await?;
        if retry_after > 0 {
            return Err(ApiError::TooManyRequests {
                detail: format!("{what}; try again later"),
                retry_after,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7");
    }
}
