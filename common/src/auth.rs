//! Authentication shared by every service (docs/architecture.md, "Auth"): the user service signs
//! short-lived EdDSA (Ed25519) access tokens scoped by `iss` and `aud`; every service verifies
//! them locally with the public key, checks its in-memory [`Revocations`] (fed by the
//! `token-revoked` stream: log-out, refresh reuse, password reset, role change), and guards
//! roles. No shared secret anywhere, and no Redis round trip per request.
//!
//! # Usage (any service)
//!
//! ```text
//! use axum::extract::FromRef;
//! use common::auth::{AdminUser, AuthUser, JwtVerifier};
//!
//! #[derive(Clone)]
//! struct AppState { verifier: JwtVerifier, /* … */ }
//! impl FromRef<AppState> for JwtVerifier {
//!     fn from_ref(state: &AppState) -> Self { state.verifier.clone() }
//! }
//!
//! // In `run`, after `Service::connect`: the public key from `MESH_JWT_PUBLIC_KEY_FILE`,
//! // `MESH_JWT_PUBLIC_KEY`, `MESH_JWKS_URL` (fetched at start, retried for a while), else the dev
//! // key pair in `MESH_DATA_DIR`; the denylist lives under the service's key prefix.
//! let verifier = JwtVerifier::for_service(&service).await?;
//!
//! async fn mine(AuthUser(claims): AuthUser) -> … { claims.sub /* Uuid */; claims.role; }
//! async fn admin_only(AdminUser(claims): AdminUser) -> … { … }
//! ```
//!
//! Missing / malformed / badly signed / `alg` other than EdDSA / wrong `iss` or `aud` / `iat` in
//! the future / expired / revoked token → 401 problem+json (`ApiError::Unauthorized`); valid
//! token with the wrong role → 403 (`ApiError::Forbidden`); revocations not read yet since the
//! process started → 503 (fail closed).
//!
//! # Tests of another service
//!
//! With `MeshArgs::default()` and a temp data dir, the service verifies with the dev key pair in
//! that dir. Mint tokens for it with the same key:
//!
//! ```text
//! let signer = JwtSigner::load(&AuthArgs::default(), data_dir)?;   // same dev key pair
//! let (token, _claims) = signer.issue(user_id, Role::Admin)?;
//! ```
//!
//! Parts: [`keys`] (PEM/JWKS parsing, dev key pair), [`verifier`] ([`JwtVerifier`]),
//! [`signer`] ([`JwtSigner`], used by user), [`revocations`] (the local revocation set and its
//! stream follower), [`extract`] (the axum extractors).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod extract;
pub mod keys;
pub mod revocations;
pub mod signer;
pub mod verifier;

pub use crate::config::AuthArgs;
pub use extract::{AdminUser, AuthUser, bearer_token};
pub use keys::{DevKeyPair, ensure_dev_keypair};
pub use revocations::Revocations;
pub use signer::JwtSigner;
pub use verifier::{JwtVerifier, TokenError};

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

#[cfg(test)]
mod tests;
