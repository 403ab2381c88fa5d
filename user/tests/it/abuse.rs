//! Abuse limits, from several client addresses (loopback 127.0.0.x): a guesser locks out only
//! its own account+address pair (the owner logs in from elsewhere), the per-account ceiling
//! stops guessing spread over addresses, the owner's success does not forgive the guesser,
//! registrations and reset requests are limited per address, and password hashing is bounded
//! (excess waits, then 503 with `Retry-After`).

use std::net::IpAddr;

use serde_json::json;
use user::UserArgs;

use common::testing::TestApp;

use crate::{PASSWORD, UserApp as _, assert_problem, spawn_app, spawn_app_with};

/// A client whose connections come from `ip` (any 127.0.0.x is this machine).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some(ip.parse::<IpAddr>().unwrap()))
        .build()
        .unwrap()
}

async fn login_from(app: &TestApp, client: &reqwest::Client, email: &str, password: &str) -> u16 {
    client
        .post(app.url("/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_guesser_locks_out_its_own_address_not_the_owner() {
    let app = spawn_app().await;
    app.register("judy@example.com", PASSWORD).await;
    let guesser = client_from("127.0.0.2");
    for _ in 0..5 {
        assert_eq!(
            login_from(&app, &guesser, "judy@example.com", "wrong guess").await,
            401
        );
    }
    // The guesser is stopped, even with the right password…
    assert_eq!(
        login_from(&app, &guesser, "judy@example.com", PASSWORD).await,
        429
    );
    // …the owner, from her own address, is not.
    app.session_with("judy@example.com", PASSWORD).await;
    // And her success did not forgive the guesser's failures.
    assert_eq!(
        login_from(&app, &guesser, "judy@example.com", "wrong guess").await,
        429
    );
}

#[tokio::test]
async fn guessing_spread_over_addresses_hits_the_account_ceiling() {
    let app = spawn_app_with(UserArgs {
        login_max_failures: 2,
        login_max_failures_per_account: 4,
        ..UserArgs::default()
    })
    .await;
    app.register("kim@example.com", PASSWORD).await;
    for ip in ["127.0.0.2", "127.0.0.3"] {
        let guesser = client_from(ip);
        for _ in 0..2 {
            assert_eq!(
                login_from(&app, &guesser, "kim@example.com", "wrong guess").await,
                401
            );
        }
        assert_eq!(
            login_from(&app, &guesser, "kim@example.com", "wrong guess").await,
            429
        );
    }
    // Four failures on the account: a fresh address is stopped by the ceiling.
    let fresh = client_from("127.0.0.4");
    assert_eq!(
        login_from(&app, &fresh, "kim@example.com", PASSWORD).await,
        429
    );
}

#[tokio::test]
async fn a_guesser_with_its_own_account_cannot_buy_back_guesses() {
    let app = spawn_app_with(UserArgs {
        login_max_failures: 3,
        ..UserArgs::default()
    })
    .await;
    app.register("victim@example.com", PASSWORD).await;
    app.register("mallory@example.com", PASSWORD).await;
    let mallory = client_from("127.0.0.2");
    let mut failures = 0;
    for _ in 0..10 {
        match login_from(&app, &mallory, "victim@example.com", "wrong guess").await {
            401 => failures += 1,
            429 => break,
            other => panic!("unexpected {other}"),
        }
        assert_eq!(
            login_from(&app, &mallory, "mallory@example.com", PASSWORD).await,
            200
        );
    }
    assert_eq!(
        failures, 3,
        "successful log-ins elsewhere gave back guesses"
    );
}

#[tokio::test]
async fn registrations_are_limited_per_address() {
    let app = spawn_app_with(UserArgs {
        register_max_per_ip: 3,
        ..UserArgs::default()
    })
    .await;
    let before = app.user_count().await;
    for i in 0..3 {
        assert_eq!(
            app.register(&format!("r{i}@example.com"), PASSWORD)
                .await
                .status(),
            201
        );
    }
    let limited = app.register("r3@example.com", PASSWORD).await;
    assert!(limited.headers().contains_key("retry-after"));
    assert_problem(limited, 429).await;
    assert_eq!(app.user_count().await, before + 3);
    // Another address still registers.
    let other = client_from("127.0.0.2")
        .post(app.url("/auth/register"))
        .json(&json!({"email": "r4@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 201);
}

#[tokio::test]
async fn password_reset_requests_are_limited_per_address() {
    let app = spawn_app_with(UserArgs {
        password_reset_max_per_ip: 2,
        ..UserArgs::default()
    })
    .await;
    // Known or not, every request counts, so the limit reveals nothing about accounts.
    for email in ["nobody@example.com", "noone@example.com"] {
        let response = app
            .post("/auth/password-reset", &json!({"email": email}))
            .await;
        assert_eq!(response.status(), 202);
    }
    let limited = app
        .post(
            "/auth/password-reset",
            &json!({"email": "third@example.com"}),
        )
        .await;
    assert_problem(limited, 429).await;
}

/// One hashing slot and no wait: of many registrations at once, those that find the slot taken
/// get 503 with `Retry-After` (and create nothing); the others succeed; nothing else happens.
#[tokio::test]
async fn password_hashing_beyond_its_bound_is_refused_with_503() {
    let app = spawn_app_with(UserArgs {
        password_hash_concurrency: 1,
        password_hash_wait_ms: 0,
        register_max_per_ip: 1_000,
        ..UserArgs::default()
    })
    .await;
    let before = app.user_count().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let (http, url) = (app.http.clone(), app.url("/auth/register"));
        tasks.spawn(async move {
            let response = http
                .post(url)
                .json(&json!({"email": format!("flood{i}@example.com"), "password": PASSWORD}))
                .send()
                .await
                .unwrap();
            let retry_after = response.headers().contains_key("retry-after");
            (response.status().as_u16(), retry_after)
        });
    }
    let (mut created, mut refused) = (0, 0);
    while let Some(outcome) = tasks.join_next().await {
        match outcome.unwrap() {
            (201, _) => created += 1,
            (503, true) => refused += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(created >= 1, "one slot serves at least one");
    assert!(
        refused >= 1,
        "16 argon2 hashes at once all fit through one slot"
    );
    assert_eq!(app.user_count().await, before + created);
}
