//! What an access token says: who ([`Claims::sub`]) may do what ([`Role`]), until when.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role `{other}` (expected `user` or `admin`)"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    pub role: Role,
    /// Unique token id: what a log-out revokes. A UUIDv7 (simple form), so it also carries the
    /// millisecond the token was issued at.
    pub jti: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Issuer (`MESH_JWT_ISSUER`), checked by every verifier.
    pub iss: String,
    /// Audience (`MESH_JWT_AUDIENCE`), checked by every verifier.
    pub aud: String,
}

impl Claims {
    /// When the token was issued, in Unix milliseconds: from the `jti`'s UUIDv7 timestamp (the
    /// signer's clock, to the millisecond), else `iat` (whole seconds). A per-user revocation
    /// voids tokens issued before its own millisecond, so a log-in right after a password
    /// reset works at once.
    pub fn issued_at_ms(&self) -> i64 {
        uuid::Uuid::try_parse(&self.jti)
            .ok()
            .filter(|id| id.get_version() == Some(uuid::Version::SortRand))
            .and_then(|id| id.get_timestamp())
            .map(|ts| {
                let (secs, nanos) = ts.to_unix();
                i64::try_from(secs)
                    .unwrap_or(i64::MAX / 1000)
                    .saturating_mul(1000)
                    .saturating_add(i64::from(nanos / 1_000_000))
            })
            .unwrap_or_else(|| self.iat.saturating_mul(1000))
    }

    /// Seconds until the token expires (0 when already expired).
    pub fn remaining_secs(&self) -> u64 {
        u64::try_from(self.exp - chrono::Utc::now().timestamp()).unwrap_or(0)
    }
}
