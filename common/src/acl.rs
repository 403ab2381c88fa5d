//! Least privilege in Redis: an ACL file (`redis-server --aclfile`) with one user per service
//! that may touch only its own keys and the streams it is wired to (`events::wiring`), an
//! `operator` user for `meshctl`, a password-less `health` user that may only `PING`, and the
//! `default` user switched off. Passwords are stored as SHA-256 (`#<hex>`), so the file reveals
//! none. `meshctl acl` writes it; docs/security.md explains the deployment.

use std::{collections::BTreeMap, fmt::Write as _};

use sha2::{Digest as _, Sha256};

use crate::{
    events::wiring::{SERVICES, WIRING, consumed_by, produced_by},
    keys::{Keys, glob_escape},
};

/// The user `meshctl` connects as.
pub const OPERATOR: &str = "operator";
/// The user a health check connects as (no password, `PING` only).
pub const HEALTH: &str = "health";

/// Shortest password accepted: the ACL users guard every order in the mesh.
pub const MIN_PASSWORD_LEN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AclError {
    #[error("no Redis password for {0}")]
    Missing(String),
    #[error(
        "the Redis password for {0} must be at least {MIN_PASSWORD_LEN} characters without spaces"
    )]
    Weak(String),
}

/// Commands every service user may run: reading and writing data, streams, scripts,
/// transactions and its connection, minus everything `@dangerous` or `@admin`; and, on a Redis
/// Cluster, `CLUSTER SLOTS`, with which the client learns which node serves which slot.
const SERVICE_COMMANDS: &str = "-@all +@read +@write +@stream +@scripting +@transaction +@connection -@dangerous -@admin +cluster|slots";

/// The ACL file for the mesh under `keys`'s prefix. `passwords` maps each service of
/// [`SERVICES`] and [`OPERATOR`] to its password.
pub fn acl_file(keys: &Keys, passwords: &BTreeMap<String, String>) -> Result<String, AclError> {
    // No comment line: Redis refuses an ACL file with anything but `user` lines.
    let mut out = String::from("user default off\n");
    let _ = writeln!(out, "user {HEALTH} on nopass resetchannels -@all +ping");
    let _ = writeln!(
        out,
        "user {OPERATOR} on #{} resetchannels ~* +@all -@admin -flushall -flushdb",
        hash(password(passwords, OPERATOR)?)
    );
    for service in SERVICES {
        let _ = writeln!(
            out,
            "user {service} on #{} resetchannels {SERVICE_COMMANDS} {}",
            hash(password(passwords, service)?),
            key_patterns(keys, service).join(" ")
        );
    }
    Ok(out)
}

/// The key patterns of `service`: the streams it produces or consumes, the dead-letter stream
/// (its worker dead-letters; its metrics read it and, read-only, the replayed set), streams every
/// process reads (read-only), its idempotency sets and
/// counters, and its own keys (`auth:` for user's rate limits, `inventory:` for the product
/// cache).
pub fn key_patterns(keys: &Keys, service: &str) -> Vec<String> {
    let p = glob_escape(keys.prefix());
    let mut streams: Vec<&str> = produced_by(service);
    for s in consumed_by(service) {
        if !streams.contains(&s) {
            streams.push(s);
        }
    }
    let mut patterns: Vec<String> = streams.iter().map(|s| format!("~{p}{s}")).collect();
    for w in WIRING.iter().filter(|w| w.read_by_all) {
        if !streams.contains(&w.stream) {
            patterns.push(format!("%R~{p}{}", w.stream));
        }
    }
    // The dead-letter streams of the streams it consumes (its worker dead-letters there, its
    // metrics count them), and which of them were replayed: the metrics count only the others.
    for s in consumed_by(service) {
        patterns.push(format!("~{}", glob_escape(&keys.dead_letter(s))));
        patterns.push(format!("%R~{}", glob_escape(&keys.dead_letter_replayed(s))));
    }
    patterns.push(format!("~{}:*", glob_escape(&keys.idempotency(service))));
    patterns.push(format!("~{p}stats:{service}:*"));
    match service {
        "user" => patterns.push(format!("~{p}auth:*")),
        "inventory" => patterns.push(format!("~{p}inventory:*")),
        _ => {}
    }
    patterns
}

fn password<'a>(passwords: &'a BTreeMap<String, String>, who: &str) -> Result<&'a str, AclError> {
    let pw = passwords
        .get(who)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| AclError::Missing(who.to_owned()))?;
    if pw.chars().count() < MIN_PASSWORD_LEN || pw.chars().any(char::is_whitespace) {
        return Err(AclError::Weak(who.to_owned()));
    }
    Ok(pw)
}

fn hash(password: &str) -> String {
    Sha256::digest(password.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A prefix taken literally in a Redis glob pattern.
#[cfg(test)]
mod tests {
    use super::*;

    fn passwords() -> BTreeMap<String, String> {
        SERVICES
            .iter()
            .chain(&[OPERATOR])
            .map(|s| (s.to_string(), format!("{s}-password-long-enough")))
            .collect()
    }

    #[test]
    fn every_user_is_in_the_file_with_hashed_passwords_only() {
        let file = acl_file(&Keys::new("p:"), &passwords()).unwrap();
        assert!(!file.contains("password-long-enough"), "{file}");
        assert!(file.contains("user default off"));
        for s in SERVICES {
            assert!(file.contains(&format!("user {s} on #")), "{s}");
        }
        let payment = file
            .lines()
            .find(|l| l.starts_with("user payment "))
            .unwrap();
        assert!(payment.contains("~p:order-placed "), "{payment}");
        assert!(payment.contains("%R~p:token-revoked "), "{payment}");
        assert!(!payment.contains("order-shipped"), "{payment}");
        assert!(
            payment.contains("~p:dead-letter:{p:order-placed} "),
            "{payment}"
        );
        assert!(payment.contains("~p:idem:{p:payment}:* "), "{payment}");
    }

    #[test]
    fn missing_or_weak_passwords_are_refused() {
        let mut pw = passwords();
        pw.remove("store");
        assert_eq!(
            acl_file(&Keys::default(), &pw),
            Err(AclError::Missing("store".into()))
        );
        pw.insert("store".into(), "short".into());
        assert_eq!(
            acl_file(&Keys::default(), &pw),
            Err(AclError::Weak("store".into()))
        );
        pw.insert("store".into(), "has a space in it somewhere".into());
        assert!(acl_file(&Keys::default(), &pw).is_err());
    }

    #[test]
    fn glob_characters_of_the_prefix_are_taken_literally() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
