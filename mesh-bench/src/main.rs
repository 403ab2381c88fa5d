//! The `mesh-bench` binary: parses the command line and runs the benchmark on a tokio runtime of
//! `--threads` worker threads (1: a current-thread runtime). Everything else lives in the library.

use clap::Parser as _;
use mesh_bench::Cli;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(mesh_bench::run(cli))
}
