//! End-to-end tests of the mesh live in `tests/`: they start the five real service binaries
//! (built by `cargo test --workspace`, which `scripts/test.sh` runs) against one real
//! `redis-server` and drive the ordering saga over HTTP. Its one binary, `bench-orders`, is the
//! end-to-end ordering benchmark (`scripts/bench-orders.sh`); `hops` splits its latency by hop.

pub mod hops;
pub mod procs;
