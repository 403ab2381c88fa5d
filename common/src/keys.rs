//! Redis key naming: every key the runtime touches is `MESH_STREAM_PREFIX` + a fixed name, so tests
//! and tenants can share one Redis.

/// The dead-letter stream, unprefixed.
pub const DEAD_LETTER_STREAM: &str = "dead-letter";

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

    /// The dead-letter stream.
    pub fn dead_letter(&self) -> String {
        self.stream(DEAD_LETTER_STREAM)
    }

    /// Set of dead-letter entry ids already replayed (a dead-letter entry is replayed at most once).
    pub fn dead_letter_replayed(&self) -> String {
        format!("{}dead-letter:replayed", self.prefix)
    }

    /// Base name of the generation sets of processed `event_id`s of one group
    /// (see `runtime::idempotency`).
    pub fn idempotency(&self, group: &str) -> String {
        format!("{}idem:{group}", self.prefix)
    }

    /// Counter of pending entries whose payload was trimmed before they were processed.
    pub fn trimmed_counter(&self, group: &str) -> String {
        format!("{}stats:{group}:trimmed-pending", self.prefix)
    }

    /// Counter of failed log-ins for one `scope` (`pair` of account and address, `account`,
    /// `ip`) and subject; expires with its window.
    pub fn login_failures(&self, scope: &str, subject: &str) -> String {
        format!("{}auth:login-failures:{scope}:{subject}", self.prefix)
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
