//! Polling: wait until a condition holds, or until a service answers `/readyz`, and fail the test
//! with what it was waiting for when time runs out.

use std::{
    future::Future,
    time::{Duration, Instant},
};

/// Polls `check` every 20 ms until it returns true; panics with `what` after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the service at `base_url` answers `GET /readyz` with 200.
pub async fn wait_ready(http: &reqwest::Client, base_url: &str, timeout: Duration) {
    let url = format!("{base_url}/readyz");
    wait_until(timeout, &format!("{base_url} ready"), || {
        let (http, url) = (http.clone(), url.clone());
        async move { matches!(http.get(url).send().await, Ok(r) if r.status() == 200) }
    })
    .await;
}
