//! The allocator of every binary of the mesh, and the tokio runtime whose threads cache.
//!
//! jemalloc replaces the C library's `malloc` too (the `unprefixed_malloc_on_supported_platforms`
//! feature), so SQLite's memory and Rust's share one allocator, one arena (`narenas:1`), and one
//! background thread that hands freed pages back to the system within seconds of the load that
//! freed them (`dirty_decay_ms:1000,muzzy_decay_ms:0`; `.cargo/config.toml`). Thread caches are
//! off by default (`tcache:false`): a thread that is not the runtime's (SQLite's connection
//! threads, the background thread) allocates from the arena directly, and what it frees goes back
//! at once instead of staying in a cache that an idle thread never empties. The runtime's threads,
//! where the per-event work allocates, get a cache as they start ([`cache_this_thread`]).
//! `docs/benchmarks.md` ("jemalloc, one arena") has the measurements, and `tests/memory.rs`
//! shows an idle process giving freed memory back; `MALLOC_CONF` in a process's
//! environment overrides the built-in settings.

use tikv_jemalloc_ctl::{Access, AsName};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Whether the calling thread has a thread cache (read and written per thread).
const THREAD_CACHE: &[u8] = b"thread.tcache.enabled\0";

/// Gives the calling thread a jemalloc thread cache (if it has none yet): allocations and frees
/// of small objects without the arena's lock. For threads that allocate per event.
pub fn cache_this_thread() {
    // Fails only if jemalloc was built without thread caches; allocating still works then.
    let _ = THREAD_CACHE.name().write(true);
}

/// Objects of jemalloc's `opt.oversize_threshold` (8 MiB) and more — the user service's
/// argon2id memory, 19 MiB per hash — live in an arena of their own, which jemalloc purges at
/// once only when it runs without background threads; with them, it kept each hash's memory for
/// the 1 s decay of the rest (the soak's samples caught a service at +38 MB after two logins).
/// Setting that arena's decay to 0 returns such an object to the system as it is freed. jemalloc
/// makes the arena with the first such object: one is allocated and freed untouched (mapped
/// zero pages, no memory) to have it. Once per process; errors leave the default decay.
fn return_large_objects_at_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let threshold: usize = b"opt.oversize_threshold\0".name().read().unwrap_or(8 << 20);
        drop(std::hint::black_box(vec![0u8; threshold]));
        // The arenas of ordinary objects are 0..narenas; the one of large objects follows them.
        let Ok(large_objects) = tikv_jemalloc_ctl::opt::narenas::read() else {
            return;
        };
        for decay in ["dirty_decay_ms", "muzzy_decay_ms"] {
            let key = format!("arena.{large_objects}.{decay}\0");
            let _ = key.name().write(0isize);
        }
    });
}

/// A tokio runtime (`worker_threads` 1: current-thread, on the calling thread; otherwise
/// multi-thread, `None` for one worker per core) whose threads, the calling one included, have
/// a thread cache ([`cache_this_thread`]), in a process that returns large objects to the system
/// as they are freed ([`return_large_objects_at_once`]).
pub fn runtime(worker_threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    return_large_objects_at_once();
    cache_this_thread();
    let mut builder = match worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder
        .enable_all()
        .on_thread_start(cache_this_thread)
        .build()
}

#[cfg(test)]
mod tests {
    use tikv_jemalloc_ctl::{Access, AsName, opt};

    use super::*;

    fn caches() -> bool {
        THREAD_CACHE.name().read().unwrap()
    }

    #[test]
    fn the_built_in_settings_are_in_effect() {
        assert_eq!(opt::narenas::read().unwrap(), 1);
        assert!(!opt::tcache::read().unwrap());
        assert!(opt::background_thread::read().unwrap());
        let dirty: isize = b"opt.dirty_decay_ms\0".name().read().unwrap();
        let muzzy: isize = b"opt.muzzy_decay_ms\0".name().read().unwrap();
        assert_eq!((dirty, muzzy), (1000, 0));
    }

    #[test]
    fn the_runtimes_threads_cache_and_other_threads_do_not() {
        assert!(!std::thread::spawn(caches).join().unwrap());
        std::thread::spawn(|| {
            let runtime = runtime(Some(2)).unwrap();
            assert!(caches(), "the thread that built the runtime");
            let on_a_worker = runtime.block_on(async { tokio::spawn(async { caches() }).await });
            assert!(on_a_worker.unwrap(), "a worker thread");
            let blocking = runtime.block_on(runtime.spawn_blocking(caches));
            assert!(blocking.unwrap(), "a blocking-pool thread");
        })
        .join()
        .unwrap();
        let current = std::thread::spawn(|| {
            let runtime = runtime(Some(1)).unwrap();
            runtime.block_on(async { caches() })
        });
        assert!(current.join().unwrap(), "a current-thread runtime");
    }
}
