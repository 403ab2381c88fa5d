//! Key material: parsing Ed25519 keys from PEM and JWKS, the JWKS document, key ids (RFC 7638
//! thumbprints), and the dev key pair generated into the data dir when nothing is configured.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{
    SigningKey, VerifyingKey,
    pkcs8::{
        DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey,
        spki::der::pem::LineEnding,
    },
};
use rand::RngCore as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::config::AuthArgs;

/// File name of the dev private key (PKCS#8 PEM) in the data dir.
pub const DEV_PRIVATE_KEY_FILE: &str = "jwt-ed25519.key.pem";
/// File name of the dev public key (SPKI PEM) in the data dir.
pub const DEV_PUBLIC_KEY_FILE: &str = "jwt-ed25519.pub.pem";

/// Parses an Ed25519 public key from SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
pub fn public_key_from_pem(pem: &[u8]) -> anyhow::Result<VerifyingKey> {
    let text = std::str::from_utf8(pem).context("public key PEM is not UTF-8")?;
    VerifyingKey::from_public_key_pem(text.trim())
        .map_err(|e| anyhow::anyhow!("not an Ed25519 public key (SPKI PEM): {e}"))
}

/// Parses an Ed25519 private key from PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
pub fn private_key_from_pem(pem: &[u8]) -> anyhow::Result<SigningKey> {
    let text = std::str::from_utf8(pem).context("private key PEM is not UTF-8")?;
    SigningKey::from_pkcs8_pem(text.trim())
        .map_err(|e| anyhow::anyhow!("not an Ed25519 private key (PKCS#8 PEM): {e}"))
}

/// SPKI PEM of a public key.
pub fn public_key_pem(key: &VerifyingKey) -> anyhow::Result<String> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("encode public key: {e}"))
}

/// The RFC 7638 thumbprint of the key's JWK: a stable key id (`kid`).
pub fn key_id(key: &VerifyingKey) -> String {
    let x = URL_SAFE_NO_PAD.encode(key.as_bytes());
    // Members in lexicographic order, no whitespace, as RFC 7638 requires.
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The JWK of a public key.
pub fn jwk(key: &VerifyingKey) -> Value {
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "alg": "EdDSA",
        "use": "sig",
        "kid": key_id(key),
        "x": URL_SAFE_NO_PAD.encode(key.as_bytes()),
    })
}

/// The Ed25519 signing keys of a JWKS document (other key types are skipped), with their `kid`.
pub fn keys_from_jwks(json: &str) -> anyhow::Result<Vec<(String, VerifyingKey)>> {
    let doc: Value = serde_json::from_str(json).context("JWKS is not JSON")?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .context("JWKS has no `keys` array")?;
    let mut found = Vec::new();
    for jwk in keys {
        let field = |name: &str| jwk.get(name).and_then(Value::as_str);
        if field("kty") != Some("OKP") || field("crv") != Some("Ed25519") {
            continue;
        }
        if field("use").is_some_and(|u| u != "sig") || field("alg").is_some_and(|a| a != "EdDSA") {
            continue;
        }
        let x = field("x").context("OKP key without `x`")?;
        let raw = URL_SAFE_NO_PAD
            .decode(x.trim_end_matches('='))
            .context("JWK `x` is not base64url")?;
        let raw: [u8; 32] = raw
            .try_into()
            .map_err(|_| anyhow::anyhow!("JWK `x` is not 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&raw).context("JWK `x` is not an Ed25519 point")?;
        let kid = field("kid").map_or_else(|| key_id(&key), str::to_owned);
        found.push((kid, key));
    }
    anyhow::ensure!(!found.is_empty(), "JWKS holds no Ed25519 signing key");
    Ok(found)
}

/// Where the dev key pair lives.
#[derive(Debug, Clone)]
pub struct DevKeyPair {
    pub private_key_file: PathBuf,
    pub public_key_file: PathBuf,
}

/// The signing key from `MESH_JWT_PRIVATE_KEY_FILE`, `MESH_JWT_PRIVATE_KEY`, else the dev key
/// pair in `data_dir` (generated if missing).
pub fn private_key(auth: &AuthArgs, data_dir: &Path) -> anyhow::Result<SigningKey> {
    if let Some(path) = &auth.jwt_private_key_file {
        let pem = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        private_key_from_pem(&pem).context("MESH_JWT_PRIVATE_KEY_FILE")
    } else if let Some(pem) = &auth.jwt_private_key {
        private_key_from_pem(pem.as_bytes()).context("MESH_JWT_PRIVATE_KEY")
    } else {
        let pair = ensure_dev_keypair(data_dir)?;
        let pem = std::fs::read(&pair.private_key_file)?;
        private_key_from_pem(&pem)
    }
}

/// Makes sure `data_dir` holds an Ed25519 key pair (PKCS#8 PEM private, SPKI PEM public) and
/// returns where. For laptops and tests only: a deployment configures its own keys.
///
/// Services started together from the same data dir race here; the private key is created with
/// an atomic link so exactly one wins and everyone uses its key. The public key is always derived
/// from the private one, so the two never disagree.
pub fn ensure_dev_keypair(data_dir: &Path) -> anyhow::Result<DevKeyPair> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("create data dir {}", data_dir.display()))?;
    let pair = DevKeyPair {
        private_key_file: data_dir.join(DEV_PRIVATE_KEY_FILE),
        public_key_file: data_dir.join(DEV_PUBLIC_KEY_FILE),
    };
    if !pair.private_key_file.exists() {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        let key = SigningKey::from_bytes(&seed);
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| anyhow::anyhow!("encode dev private key: {e}"))?;
        let tmp = tempfile_in(data_dir, pem.as_bytes())?;
        match std::fs::hard_link(&tmp, &pair.private_key_file) {
            Ok(()) => tracing::warn!(
                file = %pair.private_key_file.display(),
                "generated a dev JWT key pair: configure MESH_JWT_PRIVATE_KEY_FILE in a deployment"
            ),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).context("store dev private key"),
        }
        let _ = std::fs::remove_file(&tmp);
    }
    let key = private_key_from_pem(
        &std::fs::read(&pair.private_key_file)
            .with_context(|| format!("read {}", pair.private_key_file.display()))?,
    )?;
    let public = public_key_pem(&key.verifying_key())?;
    if std::fs::read_to_string(&pair.public_key_file)
        .ok()
        .as_deref()
        != Some(public.as_str())
    {
        let tmp = tempfile_in(data_dir, public.as_bytes())?;
        std::fs::rename(&tmp, &pair.public_key_file).context("store dev public key")?;
    }
    Ok(pair)
}

/// Writes `content` to a new, private (0600 on Unix) file in `dir` and returns its path.
fn tempfile_in(dir: &Path, content: &[u8]) -> anyhow::Result<PathBuf> {
    let mut name = [0u8; 8];
    rand::rng().fill_bytes(&mut name);
    let path = dir.join(format!(".jwt-{}.tmp", URL_SAFE_NO_PAD.encode(name)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("create {}", path.display()))?;
    file.write_all(content)?;
    file.sync_all()?;
    Ok(path)
}

/// The PKCS#8 DER of a signing key (what `jsonwebtoken`'s EdDSA signer takes).
pub(crate) fn signing_key_der(key: &SigningKey) -> anyhow::Result<Vec<u8>> {
    Ok(key
        .to_pkcs8_der()
        .map_err(|e| anyhow::anyhow!("encode private key: {e}"))?
        .as_bytes()
        .to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_keypair_is_created_once_and_parses() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure_dev_keypair(dir.path()).unwrap();
        let private = std::fs::read(&first.private_key_file).unwrap();
        let second = ensure_dev_keypair(dir.path()).unwrap();
        assert_eq!(private, std::fs::read(&second.private_key_file).unwrap());
        let signing = private_key_from_pem(&private).unwrap();
        let public = public_key_from_pem(&std::fs::read(&first.public_key_file).unwrap()).unwrap();
        assert_eq!(signing.verifying_key(), public);
    }

    #[test]
    fn jwks_round_trips() {
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        let doc = json!({ "keys": [jwk(&key)] }).to_string();
        let keys = keys_from_jwks(&doc).unwrap();
        assert_eq!(keys, vec![(key_id(&key), key)]);
        assert!(keys_from_jwks(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).is_err());
        assert!(keys_from_jwks(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}"#).is_err());
    }
}
