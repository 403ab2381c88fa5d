//! [`JwtVerifier`]: checks an access token's EdDSA signature, issuer, audience, issue time and
//! expiry with the public key(s), then the process's [`Revocations`] (in memory: no round trip).
//! Only `alg: EdDSA` is accepted: `none`, HMAC (the classic "sign with the public key as HS256
//! secret" confusion), RSA and ECDSA are rejected before any key is used.

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Context as _;
use ed25519_dalek::VerifyingKey;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde_json::json;

use super::{
    claims::Claims,
    keys::{self, ensure_dev_keypair},
    revocations::Revocations,
};
use crate::{config::AuthArgs, problem::ApiError};

/// Clock skew tolerated on `exp` and on an `iat` in the future, in seconds.
const LEEWAY_SECS: u64 = 5;

/// Who issues access tokens and for whom: `iss` and `aud`, required to match on every service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenScope {
    pub issuer: String,
    pub audience: String,
}

impl Default for TokenScope {
    fn default() -> Self {
        Self {
            issuer: crate::config::DEFAULT_JWT_ISSUER.to_owned(),
            audience: crate::config::DEFAULT_JWT_AUDIENCE.to_owned(),
        }
    }
}

impl TokenScope {
    /// `MESH_JWT_ISSUER` and `MESH_JWT_AUDIENCE`.
    pub fn of(auth: &AuthArgs) -> Self {
        Self {
            issuer: auth.jwt_issuer.clone(),
            audience: auth.jwt_audience.clone(),
        }
    }
}

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

#[derive(Clone)]
struct Inner {
    keys: Vec<(String, VerifyingKey, DecodingKey)>,
    validation: Validation,
    revocations: Option<Revocations>,
}

fn validation_for(scope: &TokenScope) -> Validation {
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.algorithms = vec![Algorithm::EdDSA];
    validation.leeway = LEEWAY_SECS;
    validation.validate_exp = true;
    validation.set_issuer(&[&scope.issuer]);
    validation.set_audience(&[&scope.audience]);
    validation.required_spec_claims = ["exp", "sub", "iss", "aud"]
        .into_iter()
        .map(String::from)
        .collect();
    validation
}

impl JwtVerifier {
    /// A verifier for these public keys (`kid`, key) and the default [`TokenScope`], without
    /// revocations.
    pub fn from_keys(keys: Vec<(String, VerifyingKey)>) -> Self {
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
                validation: validation_for(&TokenScope::default()),
                revocations: None,
            }),
        }
    }

    /// The same keys, accepting tokens of `scope` only.
    pub fn scoped(self, scope: TokenScope) -> Self {
        let mut inner = (*self.inner).clone();
        inner.validation = validation_for(&scope);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// A verifier for one Ed25519 public key in SPKI PEM, without revocations.
    pub fn from_public_pem(pem: &[u8]) -> anyhow::Result<Self> {
        let key = keys::public_key_from_pem(pem)?;
        Ok(Self::from_keys(vec![(keys::key_id(&key), key)]))
    }

    /// A verifier for the Ed25519 keys of a JWKS document, without revocations.
    pub fn from_jwks_json(json: &str) -> anyhow::Result<Self> {
        Ok(Self::from_keys(keys::keys_from_jwks(json)?))
    }

    /// Refuses the tokens `revocations` holds on every [`authenticate`], and every token while
    /// it has not been read once.
    ///
    /// [`authenticate`]: Self::authenticate
    pub fn with_revocations(self, revocations: Revocations) -> Self {
        let mut inner = (*self.inner).clone();
        inner.revocations = Some(revocations);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Finds the public key: `MESH_JWT_PUBLIC_KEY_FILE`, `MESH_JWT_PUBLIC_KEY`, `MESH_JWKS_URL`
    /// (fetched now, retried for up to a minute while the user service starts), the configured
    /// private key, else the dev key pair in `data_dir`; the scope from `MESH_JWT_ISSUER` and
    /// `MESH_JWT_AUDIENCE`; checks `revocations`.
    pub async fn load(
        auth: &AuthArgs,
        data_dir: &Path,
        revocations: Revocations,
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
        Ok(verifier
            .scoped(TokenScope::of(auth))
            .with_revocations(revocations))
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

    /// Signature, algorithm, scope, issue time and expiry only — no revocations.
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
                Ok(data) => {
                    // A token "issued" in the future was minted with a bad clock or forged
                    // with a stolen key to outlive a revocation: refused.
                    let latest = chrono::Utc::now().timestamp() + LEEWAY_SECS as i64;
                    if data.claims.iat > latest || data.claims.issued_at_ms() > latest * 1000 {
                        return Err(TokenError::Invalid);
                    }
                    return Ok(data.claims);
                }
                Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => {
                    outcome = Err(TokenError::Expired);
                }
                Err(_) => {}
            }
        }
        outcome
    }

    /// [`verify`](Self::verify), then the revocations. Until this process has read the
    /// revocations once, every token is refused with 503: a logged-out token must not pass
    /// because the process started during a Redis outage.
    pub async fn authenticate(&self, token: &str) -> Result<Claims, ApiError> {
        let claims = self.verify(token)?;
        if let Some(revocations) = &self.inner.revocations {
            if !revocations.is_synced() {
                return Err(ApiError::Unavailable(
                    "token revocations have not been read since start-up".into(),
                ));
            }
            if revocations.is_revoked(&claims) {
                return Err(TokenError::Revoked.into());
            }
        }
        Ok(claims)
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
