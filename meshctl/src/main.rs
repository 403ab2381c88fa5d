//! The `meshctl` binary: parses the command line, runs the command on a single-threaded runtime
//! and exits with its code (`meshctl::exit`). Everything else lives in the library (`lib.rs`).

use std::process::ExitCode;

use meshctl::{Cli, exit};

fn main() -> ExitCode {
    let (cli, repeat) = match Cli::parse_args() {
        Ok(parsed) => parsed,
        Err(e) => {
            // clap's own code for a usage error is 2, which `check` uses for "critical".
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("meshctl: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match runtime.block_on(meshctl::run(cli, repeat)) {
        Ok(code) => ExitCode::from(code),
        Err(error) if meshctl::is_broken_pipe(&error) => ExitCode::from(exit::OK),
        Err(error) => {
            eprintln!("meshctl: error: {error:#}");
            ExitCode::from(exit::code_of(&error))
        }
    }
}
