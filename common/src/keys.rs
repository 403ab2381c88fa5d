//! Redis key naming: every key the runtime touches is `MESH_STREAM_PREFIX` + a fixed name, so tests
//! and tenants can share one Redis.
//!
//! Keys are laid out for Redis Cluster (docs/redis-cluster.md): the keys of every multi-key
//! operation share a hash tag (`{…}`, the part a cluster hashes), so they live in one slot. A
//! stream's key `<prefix><stream>` has no tag, so it hashes as a whole; its dead-letter stream
//! `<prefix>dead-letter:{<prefix><stream>}` and the set of its replayed dead letters hash to the
//! same text, hence the same slot: dead-lettering (`XADD` + `XACK` in `MULTI`) and replay (one
//! script) stay in one slot. A group's idempotency generations share `{<prefix><group>}`; the
//! log-in counters, checked in one script, share `{<prefix>auth:login}`. So that a tag cannot
//! open early or close late, a prefix, stream or group name never holds `{` or `}`
//! ([`check_name`]).

/// The name part shared by the dead-letter streams (`dead-letter:{<origin key>}`), unprefixed.
/// Before the per-origin dead-letter streams, the one dead-letter stream of a mesh was
/// `<prefix>dead-letter` ([`Keys::legacy_dead_letter`], read by `meshctl dlq migrate-legacy`).
pub const DEAD_LETTER_STREAM: &str = "dead-letter";

/// Why a name cannot be part of a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` holds `{{` or `}}`, which would change which Redis Cluster slot its keys hash to")]
pub struct BadName(pub String);

/// Checks a prefix, stream or group name: no `{` or `}` (hash tags are the key layout's).
pub fn check_name(name: &str) -> Result<(), BadName> {
    if name.contains(['{', '}']) {
        return Err(BadName(name.to_owned()));
    }
    Ok(())
}

/// Checks a key prefix ([`check_name`]).
pub fn check_prefix(prefix: &str) -> Result<(), BadName> {
    check_name(prefix)
}

/// Builds the Redis keys of one mesh (one prefix).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key of a stream.
    pub fn stream(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The stream name of a key, if the key belongs to this prefix.
    pub fn stream_name<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&self.prefix)
    }

    /// The dead-letter stream of the entries of `origin` (an unprefixed stream), in its slot.
    pub fn dead_letter(&self, origin: &str) -> String {
        format!("{p}{DEAD_LETTER_STREAM}:{{{p}{origin}}}", p = self.prefix)
    }

    /// The origin stream (unprefixed) of a dead-letter stream's key, if it is one of this prefix.
    pub fn dead_letter_origin<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&self.prefix)?
            .strip_prefix(DEAD_LETTER_STREAM)?
            .strip_prefix(":{")?
            .strip_prefix(&self.prefix)?
            .strip_suffix('}')
    }

    /// A `SCAN MATCH` pattern of every dead-letter stream of this prefix.
    pub fn dead_letter_pattern(&self) -> String {
        let p = glob_escape(&self.prefix);
        format!("{p}{DEAD_LETTER_STREAM}:{{{p}*}}")
    }

    /// Set of the ids of `origin`'s dead-letter stream already replayed (a dead-letter entry is
    /// replayed at most once), in the slot of the stream.
    pub fn dead_letter_replayed(&self, origin: &str) -> String {
        format!(
            "{p}{DEAD_LETTER_STREAM}-replayed:{{{p}{origin}}}",
            p = self.prefix
        )
    }

    /// The one dead-letter stream of a mesh before the per-origin ones (moved by `meshctl dlq
    /// migrate-legacy`).
    pub fn legacy_dead_letter(&self) -> String {
        self.stream(DEAD_LETTER_STREAM)
    }

    /// The replayed set of [`Self::legacy_dead_letter`].
    pub fn legacy_dead_letter_replayed(&self) -> String {
        format!("{}{DEAD_LETTER_STREAM}:replayed", self.prefix)
    }

    /// Base name of the generation sets of processed `event_id`s of one group
    /// (`<base>:<generation>`, see `runtime::idempotency`): the generations share a slot.
    pub fn idempotency(&self, group: &str) -> String {
        format!("{p}idem:{{{p}{group}}}", p = self.prefix)
    }

    /// Counter of pending entries whose payload was trimmed before they were processed.
    pub fn trimmed_counter(&self, group: &str) -> String {
        format!("{}stats:{group}:trimmed-pending", self.prefix)
    }

    /// Counter of failed log-ins for one `scope` (`pair` of account and address, `account`,
    /// `ip`) and subject; expires with its window. The counters of a log-in are taken in one
    /// script: they share a slot.
    pub fn login_failures(&self, scope: &str, subject: &str) -> String {
        format!(
            "{p}auth:login-failures:{{{p}auth:login}}:{scope}:{subject}",
            p = self.prefix
        )
    }

    /// Counter of one rate-limited action (`scope`: `register`, `password-reset`) of one client
    /// address; expires with its window.
    pub fn rate_limit(&self, scope: &str, address: &str) -> String {
        format!("{}auth:rate:{scope}:{address}", self.prefix)
    }

    /// Counter of password reset requests for one account; expires with its window.
    pub fn password_reset_requests(&self, account: &str) -> String {
        format!("{}auth:password-reset-requests:{account}", self.prefix)
    }
}

/// Escapes the glob characters of `s` for a `SCAN MATCH` pattern or an ACL key pattern.
pub fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::{key_slot, same_slot};

    #[test]
    fn the_keys_of_each_multi_key_operation_share_a_slot() {
        let keys = Keys::new("mesh:");
        let stream = keys.stream("order-placed");
        assert!(same_slot(&[
            stream.clone(),
            keys.dead_letter("order-placed"),
            keys.dead_letter_replayed("order-placed"),
        ]));
        assert_eq!(
            keys.dead_letter_origin(&keys.dead_letter("order-placed")),
            Some("order-placed")
        );
        assert_eq!(keys.dead_letter_origin(&stream), None);
        let idem = keys.idempotency("payment");
        assert!(same_slot(&[format!("{idem}:1"), format!("{idem}:2")]));
        assert!(same_slot(&[
            keys.login_failures("pair", "a:b"),
            keys.login_failures("ip", "c"),
        ]));
        // Streams are spread over the slots, not all on one.
        assert_ne!(
            key_slot(stream.as_bytes()),
            key_slot(keys.stream("payment-failed").as_bytes())
        );
    }

    #[test]
    fn names_with_braces_are_refused() {
        assert!(check_prefix("mesh:").is_ok());
        assert!(check_prefix("me{sh").is_err());
        assert!(check_name("a}").is_err());
        assert_eq!(
            Keys::new("a*").dead_letter_pattern(),
            "a\\*dead-letter:{a\\**}"
        );
    }
}
