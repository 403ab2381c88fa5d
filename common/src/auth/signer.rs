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
    verifier::JwtVerifier,
};
use crate::config::AuthArgs;

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
}

impl JwtSigner {
    pub fn new(key: SigningKey, ttl: Duration) -> anyhow::Result<Self> {
        let encoding = EncodingKey::from_ed_der(&keys::signing_key_der(&key)?);
        let kid = keys::key_id(&key.verifying_key());
        Ok(Self {
            inner: Arc::new(Inner {
                key,
                encoding,
                kid,
                ttl,
            }),
        })
    }

    /// A signer for a PKCS#8 PEM Ed25519 private key.
    pub fn from_private_pem(pem: &[u8], ttl: Duration) -> anyhow::Result<Self> {
        Self::new(keys::private_key_from_pem(pem)?, ttl)
    }

    /// The private key from `MESH_JWT_PRIVATE_KEY_FILE`, `MESH_JWT_PRIVATE_KEY`, else the dev key
    /// pair in `data_dir` (generated if missing).
    pub fn load(auth: &AuthArgs, data_dir: &Path) -> anyhow::Result<Self> {
        Self::new(keys::private_key(auth, data_dir)?, auth.access_token_ttl())
    }

    /// A verifier for this signer's public key (no denylist).
    pub fn verifier(&self) -> JwtVerifier {
        let public = self.inner.key.verifying_key();
        JwtVerifier::from_keys(vec![(self.inner.kid.clone(), public)])
    }

    /// SPKI PEM of the public key.
    pub fn public_key_pem(&self) -> anyhow::Result<String> {
        keys::public_key_pem(&self.inner.key.verifying_key())
    }

    /// Lifetime of the tokens this signer issues.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// A fresh access token for `sub` with `role`, valid for the configured lifetime.
    pub fn issue(&self, sub: Uuid, role: Role) -> anyhow::Result<(String, Claims)> {
        let iat = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(self.inner.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub,
            role,
            jti: Uuid::new_v4().simple().to_string(),
            iat,
            exp: iat.saturating_add(ttl),
        };
        Ok((self.sign(&claims)?, claims))
    }

    /// Signs arbitrary claims (tests use it for expired tokens).
    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.inner.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.inner.encoding).context("sign access token")
    }
}
