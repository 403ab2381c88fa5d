//! Lag sparklines: a task samples the lag of every group every `--sample-interval` (the same
//! `streams::group_rows` as `meshctl groups`) into a ring of the last [`SAMPLES`] values per
//! group, and [`svg`] draws a ring as an inline SVG polyline (markup, not a script or an image:
//! the CSP allows it). At most [`MAX_GROUPS`] groups are followed.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use super::Console;
use crate::streams;

/// Samples kept per group.
pub const SAMPLES: usize = 60;
/// Groups followed at most (a Redis with more groups gets sparklines for the first ones).
pub const MAX_GROUPS: usize = 1000;

const WIDTH: f64 = 120.0;
const HEIGHT: f64 = 24.0;

/// The lag samples of every group, by (stream, group).
#[derive(Default)]
pub struct Sparklines(Mutex<HashMap<(String, String), VecDeque<u64>>>);

impl Sparklines {
    /// Records one sample per group; forgets groups that are gone.
    pub fn record(&self, lags: Vec<((String, String), u64)>) {
        let mut rings = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let present: std::collections::HashSet<_> = lags.iter().map(|(k, _)| k.clone()).collect();
        rings.retain(|k, _| present.contains(k));
        for (key, lag) in lags {
            if !rings.contains_key(&key) && rings.len() >= MAX_GROUPS {
                continue;
            }
            let ring = rings.entry(key).or_default();
            if ring.len() == SAMPLES {
                ring.pop_front();
            }
            ring.push_back(lag);
        }
    }

    /// The samples of one group, oldest first.
    pub fn of(&self, stream: &str, group: &str) -> Vec<u64> {
        let rings = self.0.lock().unwrap_or_else(|p| p.into_inner());
        rings
            .get(&(stream.to_owned(), group.to_owned()))
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// Samples every group's lag until `shutdown`; a failed sample (Redis away) is logged and
/// skipped.
pub async fn sample(console: Arc<Console>, every: Duration, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let mut ctx = console.ctx.clone();
        match streams::group_rows(&mut ctx, None).await {
            Ok(groups) => console.lag.record(
                groups
                    .into_iter()
                    .map(|g| ((g.stream, g.group), g.lag))
                    .collect(),
            ),
            Err(error) => tracing::warn!(error = format!("{error:#}"), "lag sample failed"),
        }
    }
}

/// An inline SVG of `samples` (oldest left), scaled to the largest; empty with fewer than two.
pub fn svg(samples: &[u64]) -> String {
    if samples.len() < 2 {
        return String::new();
    }
    let max = samples.iter().copied().max().unwrap_or(0).max(1) as f64;
    let step = WIDTH / (SAMPLES - 1) as f64;
    let start = WIDTH - step * (samples.len() - 1) as f64;
    let points: Vec<String> = samples
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let x = start + step * i as f64;
            let y = HEIGHT - 2.0 - (*v as f64 / max) * (HEIGHT - 4.0);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let (lo, hi) = (
        samples.iter().min().copied().unwrap_or(0),
        samples.iter().max().copied().unwrap_or(0),
    );
    format!(
        "<svg class=\"spark\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         role=\"img\" aria-label=\"lag over the last {n} samples, {lo} to {hi}\">\
         <polyline fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\" points=\"{}\"/></svg>",
        points.join(" "),
        n = samples.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::{SAMPLES, Sparklines, svg};

    #[test]
    fn a_ring_keeps_the_last_samples_and_forgets_gone_groups() {
        let s = Sparklines::default();
        let key = ("orders".to_owned(), "payment".to_owned());
        for lag in 0..(SAMPLES as u64 + 5) {
            s.record(vec![(key.clone(), lag)]);
        }
        let samples = s.of("orders", "payment");
        assert_eq!(samples.len(), SAMPLES);
        assert_eq!(samples[0], 5);
        s.record(vec![]);
        assert!(s.of("orders", "payment").is_empty());
    }

    #[test]
    fn the_svg_has_one_point_per_sample() {
        assert_eq!(svg(&[3]), "");
        let drawn = svg(&[0, 4, 2]);
        assert!(drawn.starts_with("<svg"), "{drawn}");
        let points = drawn
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(points.split(' ').count(), 3, "{drawn}");
        assert!(
            points.ends_with("120.0,12.0"),
            "the newest at the right: {drawn}"
        );
        assert!(drawn.contains("0 to 4"), "{drawn}");
    }
}
