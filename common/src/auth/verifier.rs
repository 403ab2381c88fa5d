//! [`JwtVerifier`]: checks an access token's EdDSA signature and expiry with the public key(s),
//! then the Redis denylist. Only `alg: EdDSA` is accepted: `none`, HMAC (the classic "sign with
//! the public key as HS256 secret" confusion), RSA and ECDSA are rejected before any key is used.

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Context as _;
use ed25519_dalek::VerifyingKey;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use redis::{AsyncCommands as _, aio::ConnectionManager};
use serde_json::json;

use super::{
    claims::Claims,
    keys::{self, ensure_dev_keypair},
};
use crate::{config::AuthArgs, keys::Keys, problem::ApiError, service::Service};

/// Clock skew tolerated on `exp`, in seconds.
const LEEWAY_SECS: u64 = 5;

/// Why a token was refused. Every variant is a 401.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("missing bearer token")]
    Missing,
    #[error("token expired")]
    Expired,
    #[error("token revoked")]
    Revoked,
    #[error("invalid token")]
    Invalid,
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> Self {
        ApiError::Unauthorized(error.to_string())
    }
}

/// Verifies access tokens. Cheap to clone.
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Vec<(String, VerifyingKey, DecodingKey)>,
    validation: Validation,
    denylist: Option<(ConnectionManager, Keys)>,
}

impl JwtVerifier {
    /// A verifier for these public keys (`kid`, key), without a denylist.
    pub fn from_keys(keys: Vec<(String, VerifyingKey)>) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.required_spec_claims = ["exp", "sub"].into_iter().map(String::from).collect();
        let keys = keys
            .into_iter()
            .map(|(kid, key)| {
                let decoding = DecodingKey::from_ed_der(key.as_bytes());
                (kid, key, decoding)
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                keys,
                validation,
                denylist: None,
            }),
        }
    }

    /// A verifier for one Ed25519 public key in SPKI PEM, without a denylist.
    pub fn from_public_pem(pem: &[u8]) -> anyhow::Result<Self> {
        let key = keys::public_key_from_pem(pem)?;
        Ok(Self::from_keys(vec![(keys::key_id(&key), key)]))
    }

    /// A verifier for the Ed25519 keys of a JWKS document, without a denylist.
    pub fn from_jwks_json(json: &str) -> anyhow::Result<Self> {
        Ok(Self::from_keys(keys::keys_from_jwks(json)?))
    }

    /// Checks the denylist in `redis` (under the prefix of `keys`) on every [`authenticate`].
    ///
    /// [`authenticate`]: Self::authenticate
    pub fn with_denylist(self, redis: ConnectionManager, keys: Keys) -> Self {
        let inner = Inner {
            keys: self.inner.keys.clone(),
            validation: self.inner.validation.clone(),
            denylist: Some((redis, keys)),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The verifier of a running service: [`load`](Self::load) with its settings and Redis.
    pub async fn for_service(service: &Service) -> anyhow::Result<Self> {
        Self::load(
            &service.args.auth,
            &service.args.data_dir,
            service.redis.clone(),
            service.keys.clone(),
        )
        .await
    }

    /// Finds the public key: `MESH_JWT_PUBLIC_KEY_FILE`, `MESH_JWT_PUBLIC_KEY`, `MESH_JWKS_URL`
    /// (fetched now, retried for up to a minute while the user service starts), the configured
    /// private key, else the dev key pair in `data_dir`. Checks the denylist in `redis`.
    pub async fn load(
        auth: &AuthArgs,
        data_dir: &Path,
        redis: ConnectionManager,
        keys: Keys,
    ) -> anyhow::Result<Self> {
        let verifier = if let Some(path) = &auth.jwt_public_key_file {
            let pem = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
            Self::from_public_pem(&pem).context("MESH_JWT_PUBLIC_KEY_FILE")?
        } else if let Some(pem) = &auth.jwt_public_key {
            Self::from_public_pem(pem.as_bytes()).context("MESH_JWT_PUBLIC_KEY")?
        } else if let Some(url) = &auth.jwks_url {
            let body = fetch_jwks(url).await?;
            Self::from_jwks_json(&body).with_context(|| format!("JWKS from {url}"))?
        } else if auth.jwt_private_key_file.is_some() || auth.jwt_private_key.is_some() {
            let public = keys::private_key(auth, data_dir)?.verifying_key();
            Self::from_keys(vec![(keys::key_id(&public), public)])
        } else {
            let pair = ensure_dev_keypair(data_dir)?;
            let pem = std::fs::read(&pair.public_key_file)?;
            Self::from_public_pem(&pem)?
        };
        Ok(verifier.with_denylist(redis, keys))
    }

    /// The JWKS document of the keys (`GET /.well-known/jwks.json`).
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<_> = self
            .inner
            .keys
            .iter()
            .map(|(_, key, _)| keys::jwk(key))
            .collect();
        json!({ "keys": keys })
    }

    /// Signature, algorithm and expiry only — no denylist.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid);
        }
        let candidates: Vec<&DecodingKey> = match &header.kid {
            Some(kid) => self
                .inner
                .keys
                .iter()
                .filter(|(k, _, _)| k == kid)
                .map(|(_, _, d)| d)
                .collect(),
            None => self.inner.keys.iter().map(|(_, _, d)| d).collect(),
        };
        let mut outcome = Err(TokenError::Invalid);
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, key, &self.inner.validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => {
                    outcome = Err(TokenError::Expired);
                }
                Err(_) => {}
            }
        }
        outcome
    }

    /// [`verify`](Self::verify), then the denylist. Redis unreachable → 503: a revoked token
    /// must not pass because the denylist could not be read.
    pub async fn authenticate(&self, token: &str) -> Result<Claims, ApiError> {
        let claims = self.verify(token)?;
        if let Some((redis, keys)) = &self.inner.denylist {
            let denied: bool = redis
                .clone()
                .exists(keys.auth_denylist(&claims.jti))
                .await?;
            if denied {
                return Err(TokenError::Revoked.into());
            }
        }
        Ok(claims)
    }

    /// Denylists the token until it expires (logout).
    pub async fn revoke(&self, claims: &Claims) -> Result<(), ApiError> {
        let Some((redis, keys)) = &self.inner.denylist else {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "verifier has no denylist"
            )));
        };
        // Keep the entry a little past `exp` so the leeway cannot resurrect the token.
        let ttl = claims.remaining_secs() + LEEWAY_SECS + 1;
        let _: () = redis
            .clone()
            .set_ex(keys.auth_denylist(&claims.jti), 1, ttl)
            .await?;
        Ok(())
    }
}

/// Fetches a JWKS document, retrying while the issuer is still starting.
async fn fetch_jwks(url: &str) -> anyhow::Result<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .context("http client")?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut delay = Duration::from_millis(200);
    loop {
        let attempt = async {
            let response = client.get(url).send().await?.error_for_status()?;
            response.text().await
        };
        match attempt.await {
            Ok(body) => return Ok(body),
            Err(e) if tokio::time::Instant::now() + delay < deadline => {
                tracing::warn!(url, error = %e, "JWKS not reachable yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e).with_context(|| format!("fetch JWKS from {url}")),
        }
    }
}
