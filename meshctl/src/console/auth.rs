//! Who may use the console: whoever holds the operator token. Logging in with it opens a session
//! (a random id in an `HttpOnly`, `SameSite=Strict` cookie, `Secure` unless turned off) that
//! lasts `--session-ttl`; sessions live in this process's memory (a restart logs everyone out),
//! at most [`MAX_SESSIONS`] at once. The token is compared by its SHA-256 digest in constant
//! time; failed log-ins are limited to [`MAX_FAILURES_PER_MINUTE`] for the whole process.

use std::{
    collections::HashMap,
    path::Path,
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::ctx::usage;

/// Shortest operator token accepted.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest operator token accepted (and longest read from a form).
pub const MAX_TOKEN_LEN: usize = 1024;
/// Most sessions open at once; logging in past it ends the oldest.
pub const MAX_SESSIONS: usize = 256;
/// Failed log-ins per minute, all clients together, before log-in answers 429.
pub const MAX_FAILURES_PER_MINUTE: u32 = 10;
/// The session cookie.
pub const COOKIE: &str = "mesh_console_session";

/// Reads the operator token from `file`, else from `MESH_CONSOLE_TOKEN`; refuses to start
/// without one or with one too short.
pub fn load_token(file: Option<&Path>) -> anyhow::Result<String> {
    let token = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?,
        None => std::env::var("MESH_CONSOLE_TOKEN").map_err(|_| {
            usage(
                "no operator token: set --token-file (or MESH_CONSOLE_TOKEN_FILE) or \
                 MESH_CONSOLE_TOKEN; the console has no default",
            )
        })?,
    };
    let token = token.trim().to_owned();
    if token.chars().count() < MIN_TOKEN_LEN || token.len() > MAX_TOKEN_LEN {
        return Err(usage(format!(
            "the operator token must have {MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} characters"
        )));
    }
    Ok(token)
}

/// A session: its CSRF token and when it ends.
#[derive(Clone)]
pub struct Session {
    pub csrf: String,
    expires: Instant,
}

/// The token's digest, the open sessions and the failed log-ins.
pub struct Auth {
    digest: [u8; 32],
    ttl: Duration,
    pub cookie_secure: bool,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<(Instant, u32)>,
}

/// What a log-in attempt gives.
pub enum Login {
    /// The session id to set in the cookie.
    Ok(String),
    Wrong,
    TooMany,
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// 32 random bytes, URL-safe base64.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Auth {
    pub fn new(token: &str, ttl: Duration, cookie_secure: bool) -> Self {
        Self {
            digest: digest(token),
            ttl,
            cookie_secure,
            sessions: Mutex::default(),
            failures: Mutex::new((Instant::now(), 0)),
        }
    }

    /// Checks `given` and opens a session when it is the token.
    pub fn log_in(&self, given: &str) -> Login {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.0.elapsed() >= Duration::from_secs(60) {
            *failures = (Instant::now(), 0);
        }
        if failures.1 >= MAX_FAILURES_PER_MINUTE {
            return Login::TooMany;
        }
        if !bool::from(digest(given.trim()).ct_eq(&self.digest)) {
            failures.1 += 1;
            return Login::Wrong;
        }
        drop(failures);
        let id = random_token();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            id.clone(),
            Session {
                csrf: random_token(),
                expires: now + self.ttl,
            },
        );
        Login::Ok(id)
    }

    /// The live session of this id.
    pub fn session(&self, id: &str) -> Option<Session> {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .get(id)
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }

    pub fn log_out(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// The `Set-Cookie` value that opens session `id`.
    pub fn cookie(&self, id: &str) -> String {
        format!(
            "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            self.ttl.as_secs(),
            if self.cookie_secure { "; Secure" } else { "" }
        )
    }

    /// The `Set-Cookie` value that clears the session cookie.
    pub fn cleared_cookie(&self) -> String {
        format!(
            "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            if self.cookie_secure { "; Secure" } else { "" }
        )
    }
}

/// The session id in a request's `Cookie` headers.
pub fn session_id(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Auth, Login, MAX_FAILURES_PER_MINUTE};

    #[test]
    fn only_the_token_opens_a_session_and_guessing_is_limited() {
        let auth = Auth::new(
            "correct-horse-battery-staple",
            Duration::from_secs(60),
            true,
        );
        let Login::Ok(id) = auth.log_in("correct-horse-battery-staple") else {
            panic!("the token must log in");
        };
        assert!(auth.session(&id).is_some());
        for _ in 0..MAX_FAILURES_PER_MINUTE {
            assert!(matches!(auth.log_in("wrong"), Login::Wrong));
        }
        assert!(matches!(
            auth.log_in("correct-horse-battery-staple"),
            Login::TooMany
        ));
        auth.log_out(&id);
        assert!(auth.session(&id).is_none());
    }

    #[test]
    fn an_expired_session_is_gone() {
        let auth = Auth::new("correct-horse-battery-staple", Duration::ZERO, false);
        let Login::Ok(id) = auth.log_in("correct-horse-battery-staple") else {
            panic!("the token must log in");
        };
        assert!(auth.session(&id).is_none());
        assert!(!auth.cookie(&id).contains("Secure"));
    }
}
