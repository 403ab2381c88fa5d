//! Where an order's time goes, hop by hop, read from the streams themselves: an event's envelope
//! says when it was made (`occurred_at`, set by its producer, in the handler or request that
//! made it) and its entry id when it was published (the relay's `XADD`; the id's first part is
//! Redis's clock in milliseconds). The events of one order share a `correlation_id`, so each
//! chain, ordered by `occurred_at`, splits into *made → published* (the producer's commit and its
//! outbox relay) and *published → the next event made* (the consumer's read, its queue and its
//! handler up to the follow-up). The clocks are the services' and Redis's: on one machine the
//! same clock, so the split is only meaningful there (as in `scripts/bench-orders.sh`).

use std::collections::HashMap;

use anyhow::{Context as _, Result};
use common::{Envelope, Keys, connection::Conn, events::ALL_STREAMS, runtime::redis_io};
use redis::Value;

/// One event of a chain: its type, when it was made and when it was published (ms since epoch).
struct Event {
    event_type: String,
    made_ms: f64,
    published_ms: f64,
}

/// Reads every event published on the mesh's streams (`keys`) from `since_ms` on, and prints
/// the hops of their chains: p50/p95/p99 per hop, in the order they happen.
pub async fn print(conn: &mut Conn, keys: &Keys, since_ms: u64) -> Result<()> {
    let mut chains: HashMap<String, Vec<Event>> = HashMap::new();
    for stream in ALL_STREAMS {
        read_stream(conn, &keys.stream(stream), since_ms, &mut chains).await?;
    }
    let hops = hops(chains.into_values());
    println!(
        "  where it went, from the streams (p50 / p95 / p99; made = `occurred_at`, published = entry id):"
    );
    for (label, mut times) in hops {
        times.sort_by(f64::total_cmp);
        let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
        println!(
            "    {label:<52} {:>7.1} / {:>7.1} / {:>7.1} ms  ({} events)",
            at(0.50),
            at(0.95),
            at(0.99),
            times.len()
        );
    }
    Ok(())
}

/// Adds the events of stream `key` from `since_ms` on to their chains (by correlation id).
async fn read_stream(
    conn: &mut Conn,
    key: &str,
    since_ms: u64,
    chains: &mut HashMap<String, Vec<Event>>,
) -> Result<()> {
    let mut start = format!("{since_ms}-0");
    loop {
        let reply: Value = redis::cmd("XRANGE")
            .arg(key)
            .arg(&start)
            .arg("+")
            .arg("COUNT")
            .arg(5000)
            .query_async(conn)
            .await
            .with_context(|| format!("XRANGE {key}"))?;
        let entries = redis_io::parse_entries(key, reply);
        let Some(last) = entries.last() else {
            return Ok(());
        };
        start = format!("({}", last.id);
        let full = entries.len() == 5000;
        for entry in entries {
            let Some(fields) = entry.fields else { continue };
            let (Ok(envelope), Some((published_ms, _))) = (
                Envelope::from_fields(&fields),
                redis_io::parse_id(&entry.id),
            ) else {
                continue;
            };
            chains
                .entry(envelope.correlation_id)
                .or_default()
                .push(Event {
                    event_type: envelope.event_type,
                    made_ms: envelope.occurred_at.timestamp_micros() as f64 / 1000.0,
                    published_ms: published_ms as f64,
                });
        }
        if !full {
            return Ok(());
        }
    }
}

/// The hops of `chains`, labelled, each with its times (ms), in the order they happen (by the
/// mean position of their event in its chain).
fn hops(chains: impl Iterator<Item = Vec<Event>>) -> Vec<(String, Vec<f64>)> {
    // label → (times, sum of positions)
    let mut hops: HashMap<String, (Vec<f64>, f64)> = HashMap::new();
    let mut add = |label: String, position: f64, ms: f64| {
        let hop = hops.entry(label).or_default();
        hop.0.push(ms);
        hop.1 += position;
    };
    for mut chain in chains {
        chain.sort_by(|a, b| a.made_ms.total_cmp(&b.made_ms));
        for (i, event) in chain.iter().enumerate() {
            let position = i as f64 * 2.0;
            add(
                format!("{} made → published", event.event_type),
                position,
                event.published_ms - event.made_ms,
            );
            if let Some(next) = chain.get(i + 1) {
                add(
                    format!("{} published → {} made", event.event_type, next.event_type),
                    position + 1.0,
                    next.made_ms - event.published_ms,
                );
            }
        }
    }
    let mut hops: Vec<(String, Vec<f64>, f64)> = hops
        .into_iter()
        .map(|(label, (times, positions))| {
            let mean = positions / times.len() as f64;
            (label, times, mean)
        })
        .collect();
    hops.sort_by(|a, b| a.2.total_cmp(&b.2));
    hops.into_iter()
        .map(|(label, times, _)| (label, times))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, made_ms: f64, published_ms: f64) -> Event {
        Event {
            event_type: event_type.into(),
            made_ms,
            published_ms,
        }
    }

    #[test]
    fn a_chain_splits_into_made_to_published_and_published_to_the_next_made() {
        let chains = vec![
            // Out of order, as streams are read one after the other.
            vec![event("b", 20.0, 23.0), event("a", 0.0, 10.0)],
            vec![event("a", 100.0, 104.0), event("b", 110.0, 111.0)],
        ];
        let hops = hops(chains.into_iter());
        let labels: Vec<&str> = hops.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            labels,
            [
                "a made → published",
                "a published → b made",
                "b made → published"
            ]
        );
        assert_eq!(hops[0].1, [10.0, 4.0]);
        assert_eq!(hops[1].1, [10.0, 6.0]);
        assert_eq!(hops[2].1, [3.0, 1.0]);
    }
}
