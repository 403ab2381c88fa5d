//! Credentials: e-mail and password validation, and argon2id hashing off the async runtime
//! (a hash takes tens of milliseconds of CPU; on a runtime thread it would stall other requests)
//! through [`Hashing`], which bounds how many run at once: each one holds ~19 MiB and a core, so
//! a flood of registrations or log-ins must queue briefly and then be turned away, not spawn
//! hundreds of blocking threads.

use std::{sync::Arc, time::Duration};

use argon2::{
    Argon2, PasswordHash, PasswordHasher as _, PasswordVerifier as _, password_hash::SaltString,
};
use common::problem::ApiError;
use rand::RngCore as _;
use tokio::sync::Semaphore;

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

/// The argon2id work of one process: at most `concurrency` hashes at once; a request that cannot
/// start one within `wait` gets 503 with `Retry-After`. Cheap to clone.
#[derive(Clone)]
pub struct Hashing {
    permits: Arc<Semaphore>,
    wait: Duration,
}

impl Hashing {
    /// `concurrency` 0 means one per core.
    pub fn new(concurrency: usize, wait: Duration) -> Self {
        let concurrency = match concurrency {
            0 => std::thread::available_parallelism().map_or(2, usize::from),
            n => n,
        };
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            wait,
        }
    }

    /// argon2id PHC string of `password`.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run(move || {
            let salt = new_salt()?;
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("hash password: {e}"))
        })
        .await
    }

    /// Whether `password` matches the PHC string `hash`. Without a hash (unknown account) a
    /// dummy hash is checked anyway, so the answer takes as long either way and does not reveal
    /// which e-mails have accounts.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, ApiError> {
        self.run(move || {
            let (hash, known) = match hash {
                Some(hash) => (hash, true),
                None => (dummy_hash().to_owned(), false),
            };
            let parsed =
                PasswordHash::new(&hash).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
            let ok = Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            Ok(ok && known)
        })
        .await
    }

    /// Runs `work` on the blocking pool once a permit is free (waiting at most `wait`).
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                metrics::counter!("user_password_hashes_refused_total").increment(1);
                ApiError::Overloaded {
                    detail: "too many password checks at once; try again shortly".into(),
                    retry_after: 1,
                }
            })?;
        let outcome = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| anyhow::anyhow!("password hashing task: {e}"))?;
        Ok(outcome?)
    }
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
        let hashing = Hashing::new(0, Duration::from_secs(5));
        let hash = hashing.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            hashing
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hashing
                .verify("wrong horse".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(!hashing.verify("correct horse".into(), None).await.unwrap());
    }

    /// With every permit taken, a hash waits `wait` and is then refused with 503 + Retry-After;
    /// once a permit is free it runs.
    #[tokio::test]
    async fn hashes_beyond_the_bound_are_refused_after_the_wait() {
        let hashing = Hashing::new(1, Duration::from_millis(200));
        let held = hashing.permits.clone().acquire_owned().await.unwrap();
        let started = std::time::Instant::now();
        let refused = hashing.hash("correct horse".into()).await.unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(
            matches!(refused, ApiError::Overloaded { retry_after: 1, .. }),
            "{refused:?}"
        );
        drop(held);
        assert!(hashing.hash("correct horse".into()).await.is_ok());
    }
}
