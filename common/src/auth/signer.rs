//! [`JwtSigner`]: issues EdDSA access tokens (the user service; tests of other services mint
//! tokens with it from the same dev key pair).

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Context as _;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use uuid::Uuid;

use super::{
    claims::{Claims, Role},
    keys,
    verifier::{JwtVerifier, TokenScope},
};
use crate::config::AuthArgs;

/// A token id: a UUIDv7 of `unix_ms` in simple form (what [`Claims::issued_at_ms`] reads back).
pub fn jti_at(unix_ms: i64) -> String {
    let ms = u64::try_from(unix_ms).unwrap_or(0);
    let ts =
        uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, ((ms % 1000) * 1_000_000) as u32);
    Uuid::new_v7(ts).simple().to_string()
}

/// Signs access tokens. Cheap to clone.
#[derive(Clone)]
pub struct JwtSigner {
    inner: Arc<Inner>,
}

struct Inner {
    key: SigningKey,
    encoding: EncodingKey,
    kid: String,
    ttl: Duration,
    scope: TokenScope,
}

impl JwtSigner {
    /// A signer with the default scope ([`TokenScope::default`]).
    pub fn new(key: SigningKey, ttl: Duration) -> anyhow::Result<Self> {
        let encoding = EncodingKey::from_ed_der(&keys::signing_key_der(&key)?);
        let kid = keys::key_id(&key.verifying_key());
        Ok(Self {
            inner: Arc::new(Inner {
                key,
                encoding,
                kid,
                ttl,
                scope: TokenScope::default(),
            }),
        })
    }

    /// The same key, issuing tokens for `scope`.
    pub fn scoped(self, scope: TokenScope) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                key: inner.key.clone(),
                encoding: inner.encoding.clone(),
                kid: inner.kid.clone(),
                ttl: inner.ttl,
                scope,
            }),
        }
    }

    /// A signer for a PKCS#8 PEM Ed25519 private key.
    pub fn from_private_pem(pem: &[u8], ttl: Duration) -> anyhow::Result<Self> {
        Self::new(keys::private_key_from_pem(pem)?, ttl)
    }

    /// The private key from `MESH_JWT_PRIVATE_KEY_FILE`, `MESH_JWT_PRIVATE_KEY`, else the dev key
    /// pair in `data_dir` (generated if missing); the scope from `MESH_JWT_ISSUER` and
    /// `MESH_JWT_AUDIENCE`.
    pub fn load(auth: &AuthArgs, data_dir: &Path) -> anyhow::Result<Self> {
        let signer = Self::new(keys::private_key(auth, data_dir)?, auth.access_token_ttl())?;
        Ok(signer.scoped(TokenScope::of(auth)))
    }

    /// A verifier for this signer's public key and scope (every token counts as not revoked
    /// until [`JwtVerifier::with_revocations`] gives it a set).
    pub fn verifier(&self) -> JwtVerifier {
        let public = self.inner.key.verifying_key();
        JwtVerifier::from_keys(vec![(self.inner.kid.clone(), public)])
            .scoped(self.inner.scope.clone())
    }

    /// SPKI PEM of the public key.
    pub fn public_key_pem(&self) -> anyhow::Result<String> {
        keys::public_key_pem(&self.inner.key.verifying_key())
    }

    /// Lifetime of the tokens this signer issues.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// The claims of a fresh access token for `sub` with `role`, valid for the configured
    /// lifetime (tests change them and [`sign`](Self::sign) the result).
    pub fn claims(&self, sub: Uuid, role: Role) -> Claims {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let iat = now_ms.div_euclid(1000);
        let ttl = i64::try_from(self.inner.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        Claims {
            sub,
            role,
            jti: jti_at(now_ms),
            iat,
            exp: iat.saturating_add(ttl),
            iss: self.inner.scope.issuer.clone(),
            aud: self.inner.scope.audience.clone(),
        }
    }

    /// A fresh access token for `sub` with `role`, valid for the configured lifetime.
    pub fn issue(&self, sub: Uuid, role: Role) -> anyhow::Result<(String, Claims)> {
        let claims = self.claims(sub, role);
        Ok((self.sign(&claims)?, claims))
    }

    /// Signs arbitrary claims (tests use it for expired tokens).
    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.inner.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.inner.encoding).context("sign access token")
    }
}
