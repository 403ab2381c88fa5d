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
//! let verifier = service.verifier().await?;
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
//! Parts: `claims` ([`Claims`], [`Role`]), [`keys`] (PEM/JWKS parsing, dev key pair),
//! [`verifier`] ([`JwtVerifier`]), [`signer`] ([`JwtSigner`], used by user), [`revocations`]
//! (the local revocation set and its stream follower), [`extract`] (the axum extractors).

mod claims;
pub mod extract;
pub mod keys;
pub mod revocations;
pub mod signer;
pub mod verifier;

pub use crate::config::AuthArgs;
pub use claims::{Claims, Role};
pub use extract::{AdminUser, AuthUser, bearer_token};
pub use keys::{DevKeyPair, ensure_dev_keypair};
pub use revocations::Revocations;
pub use signer::JwtSigner;
pub use verifier::{JwtVerifier, TokenError};

#[cfg(test)]
mod tests;
