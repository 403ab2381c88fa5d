//! The allocator of every binary (`common::memory`) hands what a load freed back to the system
//! while the process idles. A test binary of its own: the process's resident memory is the
//! measure, and other tests in the same process would allocate meanwhile.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// The tests of this binary measure one process's memory: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// This process's anonymous resident memory (`RssAnon`), in KiB.
fn rss_anon_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// No allocation after the frees triggers it: jemalloc's background thread returns the pages.
#[test]
fn memory_freed_after_a_load_goes_back_to_the_system_while_idle() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
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

/// An object of 8 MiB or more (a password hash's memory) goes back to the system as it is freed,
/// not a decay period later, in a process whose runtime `common::memory` built.
#[test]
fn a_large_object_goes_back_to_the_system_as_it_is_freed() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let _runtime = common::memory::runtime(Some(1)).unwrap();
    let before = rss_anon_kib();
    let large = vec![1u8; 32 << 20];
    let peak = rss_anon_kib();
    assert!(
        peak - before >= 32 * 1024,
        "{before} KiB before, {peak} KiB with the object"
    );
    drop(std::hint::black_box(large));
    let after = rss_anon_kib();
    assert!(
        after <= before + 1024,
        "RssAnon {after} KiB right after the free, {before} KiB before the object"
    );
}
