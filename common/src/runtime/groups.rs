//! The worker's consumer group on each of its streams: created when the worker starts (reading
//! from the start of the stream), and again by the reader if someone deleted it (`NOGROUP`).

use redis::Value;
use tokio_util::sync::CancellationToken;

use super::{redis_io, shared::Shared};
use crate::backoff::{Backoff, sleep_or_cancel};

/// Creates the group on every stream at id `0` with `MKSTREAM`; `BUSYGROUP` means it exists.
pub(crate) async fn ensure_groups<H>(shared: &Shared<H>) -> redis::RedisResult<()> {
    let mut conn = shared.cmd.clone();
    for key in shared.stream_keys() {
        let created: redis::RedisResult<Value> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&key)
            .arg(&shared.cfg.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(_) => {
                tracing::info!(stream = %key, group = %shared.cfg.group, "consumer group created")
            }
            Err(e) if redis_io::error_code(&e) == Some("BUSYGROUP") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// [`ensure_groups`], retrying with backoff until Redis answers or `shutdown`.
pub(crate) async fn ensure_groups_until_ok<H>(shared: &Shared<H>, shutdown: &CancellationToken) {
    let mut backoff = Backoff::reconnect();
    while !shutdown.is_cancelled() {
        match ensure_groups(shared).await {
            Ok(()) => return,
            Err(error) => {
                if let Some(suppressed) = shared.redis_log.allow() {
                    tracing::warn!(%error, suppressed, "cannot create consumer groups; retrying");
                }
                sleep_or_cancel(backoff.next_delay(), shutdown).await;
            }
        }
    }
}
