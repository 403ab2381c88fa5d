//! Token attacks the verifier must reject (no Redis needed: signature, algorithm and expiry).

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use uuid::Uuid;

use super::{Claims, JwtSigner, JwtVerifier, Role, TokenError};

fn signer(seed: u8) -> JwtSigner {
    JwtSigner::new(
        SigningKey::from_bytes(&[seed; 32]),
        std::time::Duration::from_secs(900),
    )
    .unwrap()
}

fn b64(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn claims(role: Role, exp_in: i64) -> Claims {
    let mut claims = signer(0).claims(Uuid::new_v4(), role);
    claims.exp = claims.iat + exp_in;
    claims
}

#[test]
fn a_token_of_the_signer_verifies() {
    let signer = signer(1);
    let (token, issued) = signer.issue(Uuid::new_v4(), Role::Admin).unwrap();
    assert_eq!(signer.verifier().verify(&token), Ok(issued));
}

#[test]
fn the_public_pem_and_the_jwks_verify_like_the_signer() {
    let signer = signer(2);
    let (token, issued) = signer.issue(Uuid::new_v4(), Role::User).unwrap();
    let pem = signer.public_key_pem().unwrap();
    let from_pem = JwtVerifier::from_public_pem(pem.as_bytes()).unwrap();
    assert_eq!(from_pem.verify(&token), Ok(issued.clone()));
    let jwks = signer.verifier().jwks().to_string();
    let from_jwks = JwtVerifier::from_jwks_json(&jwks).unwrap();
    assert_eq!(from_jwks.verify(&token), Ok(issued));
}

#[test]
fn alg_none_is_rejected() {
    let verifier = signer(3).verifier();
    let header = b64(&json!({"alg": "none", "typ": "JWT"}));
    let payload = b64(&serde_json::to_value(claims(Role::Admin, 600)).unwrap());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        assert_eq!(verifier.verify(&token), Err(TokenError::Invalid));
    }
}

#[test]
fn hs256_signed_with_the_public_key_is_rejected() {
    let signer = signer(4);
    let verifier = signer.verifier();
    let pem = signer.public_key_pem().unwrap();
    let raw = signer.verifier().jwks()["keys"][0]["x"]
        .as_str()
        .unwrap()
        .to_owned();
    for secret in [
        pem.as_bytes().to_vec(),
        URL_SAFE_NO_PAD.decode(raw).unwrap(),
    ] {
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(Role::Admin, 600),
            &EncodingKey::from_secret(&secret),
        )
        .unwrap();
        assert_eq!(verifier.verify(&token), Err(TokenError::Invalid));
    }
}

#[test]
fn rs256_and_es256_headers_are_rejected() {
    let verifier = signer(5).verifier();
    let payload = b64(&serde_json::to_value(claims(Role::Admin, 600)).unwrap());
    for alg in ["RS256", "ES256", "PS256", "HS512"] {
        let header = b64(&json!({"alg": alg, "typ": "JWT"}));
        let sig = URL_SAFE_NO_PAD.encode([1u8; 64]);
        let token = format!("{header}.{payload}.{sig}");
        assert_eq!(verifier.verify(&token), Err(TokenError::Invalid), "{alg}");
    }
}

#[test]
fn an_expired_token_is_rejected() {
    let signer = signer(6);
    let token = signer.sign(&claims(Role::User, -3600)).unwrap();
    assert_eq!(signer.verifier().verify(&token), Err(TokenError::Expired));
}

#[test]
fn a_token_of_another_key_is_rejected() {
    let (token, _) = signer(7).issue(Uuid::new_v4(), Role::Admin).unwrap();
    assert_eq!(
        signer(8).verifier().verify(&token),
        Err(TokenError::Invalid)
    );
    // Same token without its `kid`: every key is tried, none matches.
    let mut parts: Vec<&str> = token.split('.').collect();
    let header = b64(&json!({"alg": "EdDSA", "typ": "JWT"}));
    parts[0] = &header;
    assert_eq!(
        signer(8).verifier().verify(&parts.join(".")),
        Err(TokenError::Invalid)
    );
}

#[test]
fn a_tampered_payload_is_rejected() {
    let signer = signer(9);
    let (token, issued) = signer.issue(Uuid::new_v4(), Role::User).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let forged = Claims {
        role: Role::Admin,
        ..issued
    };
    let payload = b64(&serde_json::to_value(forged).unwrap());
    let token = format!("{}.{payload}.{}", parts[0], parts[2]);
    assert_eq!(signer.verifier().verify(&token), Err(TokenError::Invalid));
}

#[test]
fn garbage_is_rejected() {
    let verifier = signer(10).verifier();
    for token in [
        "",
        "a.b.c",
        "not-a-token",
        "....",
        "eyJhbGciOiJFZERTQSJ9.e30.",
    ] {
        assert_eq!(verifier.verify(token), Err(TokenError::Invalid), "{token}");
    }
}

#[test]
fn tokens_of_another_scope_or_issued_in_the_future_are_rejected() {
    let signer = signer(9);
    let verifier = signer.verifier();
    let mut other_audience = claims(Role::User, 600);
    other_audience.aud = "another-mesh".into();
    let mut other_issuer = claims(Role::User, 600);
    other_issuer.iss = "another-issuer".into();
    let mut future = claims(Role::User, 7200);
    future.iat += 3600;
    for forged in [other_audience, other_issuer, future] {
        let token = signer.sign(&forged).unwrap();
        assert_eq!(
            verifier.verify(&token),
            Err(TokenError::Invalid),
            "{forged:?}"
        );
    }
    // A verifier scoped to another audience refuses this signer's genuine tokens.
    let (token, _) = signer.issue(Uuid::new_v4(), Role::User).unwrap();
    let elsewhere = signer.verifier().scoped(super::verifier::TokenScope {
        issuer: crate::config::DEFAULT_JWT_ISSUER.into(),
        audience: "shop-two".into(),
    });
    assert_eq!(elsewhere.verify(&token), Err(TokenError::Invalid));
    assert!(verifier.verify(&token).is_ok());
}
