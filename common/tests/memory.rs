//! The allocator of every binary (`common::memory`) hands what a load freed back to the system
//! while the process idles. A test binary of its own: the process's resident memory is the
//! measure, and other tests in the same process would allocate meanwhile.

use std::time::{Duration, Instant};

extern crate common;

/// This process's anonymous resident memory (`RssAnon`), in KiB.
fn rss_anon_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// No allocation after the frees triggers it: jemalloc's background thread returns the pages.
#[test]
fn memory_freed_after_a_load_goes_back_to_the_system_while_idle() {
    let before = rss_anon_kib();
    // 64 MiB in 1 KiB pieces, as a load frees many small buffers.
    let pieces: Vec<Vec<u8>> = (0..65_536).map(|i| vec![i as u8; 1024]).collect();
    let peak = rss_anon_kib();
    assert!(
        peak - before >= 64 * 1024,
        "{before} KiB before, {peak} KiB with the pieces"
    );
    drop(pieces);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = rss_anon_kib();
        if now <= before + 4 * 1024 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "RssAnon {now} KiB 10 s after the frees, {before} KiB before the load"
        );
    }
}
