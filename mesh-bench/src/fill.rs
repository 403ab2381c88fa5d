//! Pre-filling the benchmark's stream with mesh envelopes, and creating a group on it.

use std::time::Instant;

use common::{Envelope, Keys, runtime::Publisher};
use redis::Value;

/// Publishes `n` envelopes on `stream` (pipelined `XADD`, 1,000 per round trip); returns msgs/s.
pub async fn fill(
    conn: &common::connection::Conn,
    keys: &Keys,
    stream: &str,
    n: usize,
) -> anyhow::Result<f64> {
    let publisher = Publisher::new(conn.clone(), keys.clone());
    let started = Instant::now();
    let mut chunk = Vec::with_capacity(1000);
    for i in 0..n {
        let data = serde_json::json!({"order_id": uuid::Uuid::now_v7(), "n": i});
        chunk.push((
            stream.to_owned(),
            Envelope::new(stream, "bench", "bench", "", &data)?,
        ));
        if chunk.len() == 1000 {
            publisher.publish_many(&chunk).await?;
            chunk.clear();
        }
    }
    publisher.publish_many(&chunk).await?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Creates `group` at the start of `key` (`MKSTREAM`).
pub async fn create_group(
    conn: &mut common::connection::Conn,
    key: &str,
    group: &str,
) -> anyhow::Result<()> {
    let _: Value = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await?;
    Ok(())
}
