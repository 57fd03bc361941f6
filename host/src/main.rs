//! The `gantry` binary: parse, run, map the outcome to an exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = gantry::cli::Cli::parse();
    gantry::cli::init_logging(&cli);
    match gantry::cli::run(cli) {
        Ok(exit) => exit.into(),
        Err(failure) if failure.is_broken_pipe() => gantry::Exit::Success.into(),
        Err(failure) => {
            eprintln!("error: {failure}");
            failure.exit.into()
        }
    }
}
