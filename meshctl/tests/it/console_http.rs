//! `meshctl serve` over real HTTP against real runtime state: nothing without a session, only the
//! token logs in, only the console's own host names are answered, a form without the session's
//! CSRF token (or from another origin) changes nothing, every page shows what the mesh holds, and
//! a confirm acts on exactly the ids its preview pinned.

use std::{sync::atomic::Ordering, time::Duration};

use common::{
    Keys,
    runtime::WorkerConfig,
    stream_testing::{InProcessWorker, Recorder, publish_n},
    testing::{RedisServer, TestRedis, unique_prefix, wait_drained, wait_until},
};
use serde_json::json;

use crate::{
    console::{Console, FailsUntilFixed, POISON_ERROR, TOKEN, csrf_of, publish, serve_command},
    dlq::RejectsOne,
    support::{ids_of, json, read_without_ack, run},
};

#[tokio::test]
async fn the_console_refuses_to_start_without_a_long_enough_token() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    for (env, why) in [
        (vec![], "no operator token"),
        (
            vec![("MESH_CONSOLE_TOKEN", "short")],
            "16 to 1024 characters",
        ),
    ] {
        let out = serve_command(&redis, &keys, &env, &[])
            .stderr(std::process::Stdio::piped())
            .output()
            .await
            .expect("run meshctl serve");
        assert_eq!(out.status.code(), Some(64), "{env:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{env:?}: {stderr}");
    }
}

#[tokio::test]
async fn pages_need_a_session_the_token_and_the_consoles_own_host() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let console = Console::start(&redis, &keys).await;
    let http = &console.http;

    // No session: a page sends to the log-in form, a form post is refused.
    let r = http.get(console.url("/streams")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login");
    let r = http
        .post(console.url("/dead-letters/apply"))
        .form(&[("action", "purge"), ("ids", "1-0")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http.get(console.url("/login")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-security-policy"],
        "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; \
         base-uri 'none'"
    );
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let r = http
        .get(console.url("/static/console.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );

    // A wrong token opens nothing.
    for wrong in ["", "operator-token-for-the-tests-0124", &TOKEN[..20]] {
        let r = http
            .post(console.url("/login"))
            .form(&[("token", wrong)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "token {wrong:?}");
        assert!(r.headers().get("set-cookie").is_none());
        assert!(r.text().await.unwrap().contains("not the operator token"));
    }

    // The token opens a session in a cookie scripts cannot read and other sites cannot send.
    let r = http
        .post(console.url("/login"))
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/streams");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = console.page(&cookie, "/streams").await;
    assert!(page.contains("<h1>Streams</h1>"), "{page}");

    // Another host name (DNS rebinding) is misdirected, session or not; `localhost` is ours.
    for (host, status) in [
        ("evil.example".to_owned(), 421),
        (
            format!("evil.example:{}", console.host.split(':').nth(1).unwrap()),
            421,
        ),
        (console.host.replace("127.0.0.1", "localhost"), 200),
    ] {
        let r = http
            .get(console.url("/streams"))
            .header("host", &host)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "Host: {host}");
    }

    // Logging out ends the session.
    let csrf = csrf_of(&page);
    let r = http
        .post(console.url("/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, _) = console.get(&cookie, "/streams").await;
    assert_eq!(status, 303, "the old cookie no longer opens pages");
}

/// One dead letter on `invoices` (group `accounting`); returns its id.
async fn one_dead_letter(redis: &dyn TestRedis, keys: &Keys) -> String {
    let events = publish_n(redis, keys, "invoices", 2).await;
    let worker = InProcessWorker::start(
        redis,
        WorkerConfig::new(keys.clone(), "accounting", &["invoices"]),
        RejectsOne {
            bad_event: events[1].clone(),
            recorder: Recorder::default(),
        },
    );
    let mut conn = redis.connection();
    wait_drained(
        &mut conn,
        &keys.stream("invoices"),
        "accounting",
        Duration::from_secs(30),
    )
    .await;
    worker.stop().await;
    let ls = json(redis, keys, &["dlq", "ls"]).await;
    assert_eq!(ls.as_array().unwrap().len(), 1, "{ls}");
    ls[0]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_form_without_the_csrf_token_or_from_another_origin_changes_nothing() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let dead = one_dead_letter(&redis, &keys).await;
    let console = Console::start(&redis, &keys).await;
    let cookie = console.log_in().await;
    let csrf = csrf_of(&console.page(&cookie, "/dead-letters").await);
    let other = csrf_of(&console.page(&console.log_in().await, "/streams").await);
    assert_ne!(csrf, other, "each session has its own CSRF token");

    let purge = |csrf: Option<&str>, headers: &[(&str, &str)]| {
        let mut form = vec![("action", "purge"), ("ids", dead.as_str())];
        if let Some(c) = csrf {
            form.push(("csrf", c));
        }
        let mut r = console
            .http
            .post(console.url("/dead-letters/apply"))
            .header("cookie", &cookie)
            .form(&form);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send()
    };
    for (csrf, headers, what) in [
        (None, vec![], "no CSRF token"),
        (Some(""), vec![], "an empty CSRF token"),
        (Some(other.as_str()), vec![], "another session's CSRF token"),
        (
            Some(csrf.as_str()),
            vec![("origin", "http://evil.example")],
            "another origin",
        ),
        (
            Some(csrf.as_str()),
            vec![("sec-fetch-site", "cross-site")],
            "a cross-site request",
        ),
    ] {
        let r = purge(csrf, &headers).await.unwrap();
        assert_eq!(r.status(), 403, "{what}");
        let ls = json(&redis, &keys, &["dlq", "ls"]).await;
        assert_eq!(ls.as_array().unwrap().len(), 1, "{what} changed nothing");
    }

    let origin = console.base.clone();
    let r = purge(Some(&csrf), &[("origin", &origin)]).await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("purged 1"), "{body}");
    let ls = json(&redis, &keys, &["dlq", "ls"]).await;
    assert_eq!(ls.as_array().unwrap().len(), 0, "the purge went through");
}

common::on_one_server_and_a_cluster!(a_confirm_acts_on_exactly_the_ids_its_preview_pinned);
async fn a_confirm_acts_on_exactly_the_ids_its_preview_pinned(redis: &dyn TestRedis) {
    let keys = Keys::new(unique_prefix());
    let handler = FailsUntilFixed::default();
    let worker = InProcessWorker::start(
        &redis,
        WorkerConfig::new(keys.clone(), "accounting", &["invoices"]),
        handler.clone(),
    );
    let first = publish(
        &redis,
        &keys,
        "invoices",
        "order-1",
        json!({"poison": true}),
    )
    .await;
    let count = || async {
        json(&redis, &keys, &["dlq", "ls"])
            .await
            .as_array()
            .unwrap()
            .len()
    };
    wait_until(Duration::from_secs(30), "first dead letter", || async {
        count().await == 1
    })
    .await;
    let console = Console::start(&redis, &keys).await;
    let cookie = console.log_in().await;
    let preview = console
        .page(
            &cookie,
            "/dead-letters/preview?action=replay&group=accounting",
        )
        .await;
    assert!(
        preview.contains("Preview only: nothing was changed"),
        "{preview}"
    );
    let pinned = preview
        .split("name=\"ids\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the confirm form pins ids")
        .to_owned();
    assert_eq!(pinned.split(' ').count(), 1, "{pinned}");

    // A second dead letter arrives between the preview and the confirm.
    publish(
        &redis,
        &keys,
        "invoices",
        "order-2",
        json!({"poison": true}),
    )
    .await;
    wait_until(Duration::from_secs(30), "second dead letter", || async {
        count().await == 2
    })
    .await;
    handler.fixed.store(true, Ordering::SeqCst);
    let r = console
        .http
        .post(console.url("/dead-letters/apply"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf_of(&preview).as_str()),
            ("action", "replay"),
            ("ids", pinned.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("replayed 1, skipped 0"));
    wait_until(Duration::from_secs(30), "the replay is handled", || async {
        handler.recorder.counts().get(&first) == Some(&1)
    })
    .await;
    let ls = json(&redis, &keys, &["dlq", "ls"]).await;
    let replayed: Vec<bool> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["replayed"].as_bool().unwrap())
        .collect();
    assert_eq!(replayed, [true, false], "only the pinned one was replayed");
    assert_eq!(handler.recorder.counts().len(), 1);
    worker.stop().await;
}

common::on_one_server_and_a_cluster!(every_page_shows_the_meshs_state_and_the_cli_timeline_agrees);
async fn every_page_shows_the_meshs_state_and_the_cli_timeline_agrees(redis: &dyn TestRedis) {
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let dead = one_dead_letter(&redis, &keys).await;
    let invoices = ids_of(&mut conn, &keys.stream("invoices")).await;
    publish_n(&redis, &keys, "shipments", 2).await;
    read_without_ack(&mut conn, &keys.stream("shipments"), "billing", 2).await;
    let shipments = ids_of(&mut conn, &keys.stream("shipments")).await;
    let console = Console::start(&redis, &keys).await;
    let cookie = console.log_in().await;

    let streams = console.page(&cookie, "/streams").await;
    assert!(streams.contains("data-stream=\"invoices\""), "{streams}");
    assert!(streams.contains("<td class=\"num\">2</td>"), "{streams}");

    // The sampler draws each group's lag after two samples (every 200 ms here).
    wait_until(Duration::from_secs(10), "a sparkline", || async {
        console
            .page(&cookie, "/groups")
            .await
            .contains("<svg class=\"spark\"")
    })
    .await;
    let groups = console.page(&cookie, "/groups?stream=shipments").await;
    assert!(
        groups.contains("data-group=\"shipments/billing\""),
        "{groups}"
    );
    assert!(!groups.contains("invoices/accounting"), "{groups}");

    let group = console
        .page(&cookie, "/streams/shipments/groups/billing")
        .await;
    for id in &shipments {
        assert!(group.contains(id.as_str()), "pending {id} in {group}");
    }
    assert!(group.contains("billing-1"), "{group}");

    let entry = console
        .page(
            &cookie,
            &format!("/streams/invoices/entries/{}", invoices[0]),
        )
        .await;
    assert!(entry.contains("<dd id=\"envelope\">valid</dd>"), "{entry}");
    assert!(
        entry.contains("<td class=\"state\">delivered</td>"),
        "{entry}"
    );

    let dlq = console.page(&cookie, "/dead-letters").await;
    assert!(dlq.contains(&format!("data-id=\"{dead}\"")), "{dlq}");
    assert!(dlq.contains("invoice total does not add up"), "{dlq}");
    let none = console
        .page(&cookie, "/dead-letters?group=accounting&error=timeout")
        .await;
    assert!(none.contains("0 dead letters match"), "{none}");

    let timeline = console.page(&cookie, "/timeline?correlation_id=corr").await;
    for id in invoices.iter().chain(&shipments) {
        assert!(timeline.contains(id.as_str()), "{id} in {timeline}");
    }
    assert!(timeline.contains(&dead), "{timeline}");

    // Unknown names are 404, bad ids 400.
    for (path, status) in [
        ("/streams/nope/groups/billing", 404),
        ("/streams/shipments/groups/nope", 404),
        ("/streams/invoices/entries/12-x", 400),
        ("/streams/invoices/entries/1-0", 404),
        ("/dead-letters/preview?action=replay&ids=nonsense", 400),
        ("/dead-letters/preview?action=explode", 400),
        ("/no-such-page", 404),
        (&format!("/streams/{}/entries/1-0", "s".repeat(201)), 400),
    ] {
        assert_eq!(console.get(&cookie, path).await.0, status, "{path}");
    }
    // A malformed or oversized form is refused with the console's HTML page, not acted on.
    let csrf = csrf_of(&dlq);
    for (body, status) in [
        (format!("csrf={csrf}&action=purge&ids=%ZZ"), 400),
        (
            format!("csrf={csrf}&action=purge&ids={}", "1-0+".repeat(20_000)),
            413,
        ),
        (
            format!("csrf={csrf}&action=purge&ids={}", many_ids(501)),
            400,
        ),
        (format!("csrf={csrf}&action=purge&ids=1-0"), 200),
    ] {
        let r = console
            .http
            .post(console.url("/dead-letters/apply"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{}", &body[..body.len().min(80)]);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    assert_eq!(
        json(&redis, &keys, &["dlq", "ls"])
            .await
            .as_array()
            .unwrap()
            .len(),
        1,
        "nothing was purged (1-0 is no dead letter: `missing`)"
    );

    // `meshctl timeline` is the same data.
    let t = json(&redis, &keys, &["timeline", "corr"]).await;
    let steps: Vec<&str> = t["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let mut all: Vec<&str> = invoices
        .iter()
        .chain(&shipments)
        .map(String::as_str)
        .collect();
    all.sort();
    assert_eq!(
        steps, all,
        "every entry of the correlation id, oldest first"
    );
    assert_eq!(t["dead_letters"][0]["id"], dead.as_str());
    let billing = &t["steps"][2]["groups"][0];
    assert_eq!(billing["group"], "billing");
    assert_eq!(billing["state"], "pending");
    assert_eq!(billing["consumer"], "billing-1");
    let text = run(&redis, &keys, &["timeline", "corr"]).await;
    assert_eq!(text.code, 0, "{text:?}");
    assert!(text.stdout.contains("billing: pending"), "{}", text.stdout);
    assert!(
        text.stdout.contains(&format!("dead letter {dead}")),
        "{}",
        text.stdout
    );
    let out = run(&redis, &keys, &["timeline", ""]).await;
    assert_eq!(out.code, 65, "{out:?}");
    assert!(POISON_ERROR.starts_with("poison"));
}

/// `n` distinct stream ids, `+`-separated (a form's spaces).
fn many_ids(n: u64) -> String {
    (1..=n)
        .map(|i| format!("{i}-0"))
        .collect::<Vec<_>>()
        .join("+")
}
