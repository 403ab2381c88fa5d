//! The console in a real headless Chromium, driven over WebDriver (`chromedriver`, Debian's
//! `chromium-driver`; fantoccini): log in, see a poison event dead-lettered by a real worker
//! appear on the dead-letters page, replay it through the preview and its confirm once the
//! handler is fixed, and see it handled. Without `chromedriver` the test fails and says what to
//! install. With `CONSOLE_SCREENSHOTS_DIR` set it saves a PNG of each main page there
//! (`scripts/console-screenshots.sh`).

use std::{
    net::TcpStream,
    process::{Child, Command, Stdio},
    sync::atomic::Ordering,
    time::Duration,
};

use common::{
    Keys,
    runtime::WorkerConfig,
    stream_testing::{InProcessWorker, publish_n},
    testing::{RedisServer, free_port, unique_prefix, wait_drained, wait_until},
};
use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use serde_json::json;

use crate::{
    console::{Console, FailsUntilFixed, POISON_ERROR, TOKEN, publish},
    support::{json, read_without_ack},
};

/// `chromedriver` on a free port; killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start() -> Self {
        let bin = std::env::var("CHROMEDRIVER_BIN").unwrap_or_else(|_| "chromedriver".into());
        let port = free_port();
        let child = Command::new(&bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `{bin}` ({e}): the console's browser test needs Chromium and its \
                     WebDriver — on Debian `apt-get install chromium chromium-driver` (or set \
                     CHROMEDRIVER_BIN)"
                )
            });
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "chromedriver did not listen on {port} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn browser(&self) -> Client {
        let mut options = json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,900"],
        });
        if let Ok(bin) = std::env::var("CHROMIUM_BIN") {
            options["binary"] = json!(bin);
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), options);
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session from chromedriver")
    }
}

/// Saves the page as `<CONSOLE_SCREENSHOTS_DIR>/console-<name>.png` when that is set.
async fn screenshot(browser: &Client, name: &str) {
    let Ok(dir) = std::env::var("CONSOLE_SCREENSHOTS_DIR") else {
        return;
    };
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(format!("{dir}/console-{name}.png"), png).expect("write screenshot");
}

async fn text_of(browser: &Client, css: &str) -> String {
    let found = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await;
    let Ok(element) = found else {
        let page = browser.source().await.unwrap_or_default();
        panic!("no `{css}` on {:?}: {page}", browser.current_url().await);
    };
    element.text().await.expect("text")
}

/// Clicks what submits a form or follows a link, and waits until the browser has left the page:
/// without that wait, the next lookup can find its element on the page being left, and reading
/// it fails as stale (or reads the old page).
async fn click(browser: &Client, css: &str) {
    let target = browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}`: {e}"));
    click_and_leave(browser, target).await;
}

async fn click_and_leave(browser: &Client, target: Element) {
    let old_page = browser
        .find(Locator::Css("html"))
        .await
        .expect("the page's root");
    target.click().await.expect("click");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while old_page.tag_name().await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the click did not leave {:?} within 10 s",
            browser.current_url().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_operator_replays_a_dead_letter_in_a_real_browser_and_sees_it_handled() {
    let driver = Driver::start();
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let handler = FailsUntilFixed::default();
    let worker = InProcessWorker::start(
        &redis,
        WorkerConfig::new(keys.clone(), "payment", &["order-placed"]),
        handler.clone(),
    );
    // Some healthy traffic, and a group with entries held, for the other pages.
    publish_n(&redis, &keys, "order-placed", 3).await;
    publish_n(&redis, &keys, "stock-reserved", 2).await;
    read_without_ack(&mut conn, &keys.stream("stock-reserved"), "warehouse", 2).await;
    let console = Console::start(&redis, &keys).await;
    let browser = driver.browser().await;

    // Log in: the pages send there first.
    browser.goto(&console.url("/streams")).await.unwrap();
    let token = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#token"))
        .await
        .expect("the log-in form");
    screenshot(&browser, "login").await;
    token.send_keys(TOKEN).await.unwrap();
    click(&browser, "#login button").await;
    assert_eq!(text_of(&browser, "h1").await, "Streams");

    // A poison event: the worker dead-letters it, and it shows up on the page.
    let poison = publish(
        &redis,
        &keys,
        "order-placed",
        "order-42",
        json!({"poison": true}),
    )
    .await;
    let mut row = String::new();
    for _ in 0..100 {
        browser.goto(&console.url("/dead-letters")).await.unwrap();
        if let Ok(found) = browser.find(Locator::Css("#dead-letters tbody tr")).await {
            row = found.text().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        row.contains(POISON_ERROR),
        "the dead letter is listed: {row:?}"
    );
    assert!(row.contains("payment"), "{row}");
    assert_eq!(text_of(&browser, "#dead-letters td.replayed").await, "no");
    screenshot(&browser, "dead-letters").await;

    // The handler is fixed; replay through the preview and its confirm.
    handler.fixed.store(true, Ordering::SeqCst);
    click(&browser, "#preview-replay").await;
    let summary = text_of(&browser, "#summary").await;
    assert!(
        summary.starts_with("Preview only: nothing was changed."),
        "{summary}"
    );
    assert_eq!(
        browser
            .find_all(Locator::Css("#dead-letters > tbody > tr"))
            .await
            .unwrap()
            .len(),
        1
    );
    screenshot(&browser, "preview").await;
    assert_eq!(
        handler.recorder.counts().get(&poison),
        None,
        "the preview replayed nothing"
    );
    click(&browser, "#confirm-button").await;
    assert_eq!(text_of(&browser, "#totals").await, "replayed 1, skipped 0");
    assert_eq!(text_of(&browser, "#outcomes td.outcome").await, "replayed");

    // Handled once by the fixed handler, nothing pending, and marked replayed.
    wait_until(Duration::from_secs(30), "the replay handled", || async {
        handler.recorder.counts().get(&poison) == Some(&1)
    })
    .await;
    wait_drained(
        &mut conn,
        &keys.stream("order-placed"),
        "payment",
        Duration::from_secs(30),
    )
    .await;
    browser.goto(&console.url("/dead-letters")).await.unwrap();
    assert_eq!(text_of(&browser, "#dead-letters td.replayed").await, "yes");
    let ls = json(&redis, &keys, &["dlq", "ls"]).await;
    assert_eq!(ls[0]["replayed"], true);

    // The order's timeline: the poison entry and its replay, both delivered to `payment`, then
    // the order's next events (`stock-reserved` not delivered yet to `warehouse`, which reads no
    // more).
    publish(
        &redis,
        &keys,
        "order-completed",
        "order-42",
        json!({"n": 1}),
    )
    .await;
    publish(&redis, &keys, "stock-reserved", "order-42", json!({"n": 2})).await;
    browser
        .goto(&console.url("/timeline?correlation_id=order-42"))
        .await
        .unwrap();
    let mut rows = Vec::new();
    for r in browser
        .find_all(Locator::Css("#timeline tbody tr"))
        .await
        .unwrap()
    {
        rows.push(r.text().await.unwrap());
    }
    assert_eq!(rows.len(), 4, "{rows:#?}");
    assert!(rows[0].contains("order-placed") && rows[0].contains("payment: delivered"));
    assert!(rows[1].contains("replay for payment") && rows[1].contains("payment: delivered"));
    assert!(rows[2].contains("order-completed"), "{}", rows[2]);
    assert!(rows[3].contains("warehouse: not delivered"), "{}", rows[3]);
    let dead = text_of(&browser, "#timeline-dead-letters li").await;
    assert!(
        dead.contains(POISON_ERROR) && dead.ends_with("(replayed)"),
        "{dead}"
    );
    screenshot(&browser, "timeline").await;

    // The other main pages, for the screenshots (and that they render in a browser).
    for (path, name, heading) in [
        ("/streams", "streams", "Streams"),
        ("/groups", "groups", "Groups"),
        (
            "/streams/stock-reserved/groups/warehouse",
            "group",
            "Group warehouse on stock-reserved",
        ),
    ] {
        // More entries for `warehouse`, which reads no more: its lag grows on the sparkline.
        publish_n(&redis, &keys, "stock-reserved", 2).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        browser.goto(&console.url(path)).await.unwrap();
        assert_eq!(text_of(&browser, "h1").await, heading);
        screenshot(&browser, name).await;
    }
    let entry = browser
        .find(Locator::Css("#pending tbody tr a"))
        .await
        .expect("a pending entry");
    click_and_leave(&browser, entry).await;
    assert!(text_of(&browser, "h1").await.starts_with("Entry "));
    assert_eq!(text_of(&browser, "#positions td.state").await, "pending");
    screenshot(&browser, "entry").await;

    browser.close().await.unwrap();
    worker.stop().await;
}
