//! Waiting out failures: exponential backoff with jitter, a cancellable sleep, and a log limiter
//! so an outage does not flood the logs. Used by the stream runtime and the outbox relay.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use rand::Rng;
use tokio_util::sync::CancellationToken;

/// `base · 2^(attempt-1)`, capped at `max`, with "equal jitter": the delay is drawn from the
/// upper half of that window, so it still grows with every attempt while replicas spread out.
pub fn backoff_delay(base: Duration, max: Duration, attempt: u64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30) as u32;
    let window = base.saturating_mul(2u32.saturating_pow(exp)).min(max);
    let half = window / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
    half + Duration::from_millis(jitter)
}

/// Longest wait between two attempts to reach a dependency that is away (Redis, the database).
/// A failed attempt costs one connect or one query; waiting longer only delays recovery (the
/// chaos drill's settle time, docs/chaos.md), so this stays short.
pub const RECONNECT_MAX: Duration = Duration::from_secs(1);

/// Backoff state of a loop that retries one operation.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u64,
}

impl Backoff {
    /// The backoff of a loop that waits for Redis or the database to come back: 100 ms doubling
    /// to at most [`RECONNECT_MAX`], so a restarted dependency is noticed within about a second.
    pub fn reconnect() -> Self {
        Self::new(Duration::from_millis(100), RECONNECT_MAX)
    }

    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            attempt: 0,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        self.attempt += 1;
        backoff_delay(self.base, self.max, self.attempt)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Sleeps for `d` unless `token` is cancelled first.
pub async fn sleep_or_cancel(d: Duration, token: &CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = token.cancelled() => {}
    }
}

/// Lets a message through at most once per `every`; counts what it held back.
#[derive(Debug)]
pub struct LogLimiter {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogLimiter {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(suppressed since last time)` when this one may be logged.
    pub fn allow(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < self.every => {
                state.1 += 1;
                None
            }
            _ => {
                let suppressed = state.1;
                *state = (Some(now), 0);
                Some(suppressed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_grows_and_is_capped() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for attempt in 1..=3u64 {
            let d = backoff_delay(base, max, attempt);
            let window = base * 2u32.pow(attempt as u32 - 1);
            assert!(d >= window / 2 && d <= window, "{attempt}: {d:?}");
        }
        assert!(backoff_delay(base, max, 20) <= max);
    }
}
