//! Credentials: e-mail and password validation, and argon2id hashing off the async runtime
//! (a hash takes tens of milliseconds of CPU; on a runtime thread it would stall other requests).

use argon2::{
    Argon2, PasswordHash, PasswordHasher as _, PasswordVerifier as _, password_hash::SaltString,
};
use common::problem::ApiError;
use rand::RngCore as _;

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest accepted password: bounds the hashing work a request can ask for.
pub const MAX_PASSWORD_LEN: usize = 128;

/// The normalised (trimmed, lowercased) e-mail, or 422.
pub fn normalize_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(email)
    } else {
        Err(ApiError::validation("email is not a valid e-mail address"))
    }
}

/// 422 unless the password has an acceptable length.
pub fn validate_password(password: &str) -> Result<(), ApiError> {
    let len = password.chars().count();
    if (MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&len) {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters long"
        )))
    }
}

/// argon2id PHC string of `password`, computed on the blocking pool.
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = new_salt()?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hash password: {e}"))
    })
    .await?
}

/// Whether `password` matches the PHC string `hash`, computed on the blocking pool. Without a
/// hash (unknown account) a dummy hash is checked anyway, so the answer takes as long either way
/// and does not reveal which e-mails have accounts.
pub async fn verify_password(password: String, hash: Option<String>) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let (hash, known) = match hash {
            Some(hash) => (hash, true),
            None => (dummy_hash().to_owned(), false),
        };
        let parsed = PasswordHash::new(&hash).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(ok && known)
    })
    .await?
}

/// 16 random bytes, as argon2's PHC salt.
fn new_salt() -> anyhow::Result<SaltString> {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    SaltString::encode_b64(&bytes).map_err(|e| anyhow::anyhow!("salt: {e}"))
}

fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let Ok(salt) = new_salt() else {
            return String::new();
        };
        Argon2::default()
            .hash_password(b"not a password of anyone", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email(" Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "a@b@c.de",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn hashes_verify_only_the_right_password() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify_password("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify_password("wrong horse".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(!verify_password("correct horse".into(), None).await.unwrap());
    }
}
