//! The `mesh-bench` binary: parses the command line and runs the benchmark on a tokio runtime of
//! `--threads` worker threads (1: a current-thread runtime; `common::memory::runtime`).
//! Everything else lives in the library.

use clap::Parser as _;
use mesh_bench::Cli;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = common::memory::runtime(Some(cli.threads.max(1)))?;
    runtime.block_on(mesh_bench::run(cli))
}
