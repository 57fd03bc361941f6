//! The `gantry` binary: parse, run on one tokio runtime, map the outcome to
//! an exit code.

use clap::Parser;
use std::time::Duration;

fn main() -> std::process::ExitCode {
    let cli = gantry::cli::Cli::parse();
    gantry::cli::init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("gantry")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return gantry::Exit::Failed.into();
        }
    };
    let outcome = runtime.block_on(gantry::cli::run(cli));
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(exit) => exit.into(),
        Err(failure) if failure.is_broken_pipe() => gantry::Exit::Success.into(),
        Err(failure) => {
            eprintln!("error: {}", gantry::escape::controls(&failure.to_string()));
            failure.exit.into()
        }
    }
}
