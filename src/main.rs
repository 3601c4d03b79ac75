//! The `zoomcast` binary: parse the command line, run it, exit with the contract's code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = zoomcast::cli::Cli::parse();
    zoomcast::cli::init_logging();
    let runtime = tokio::runtime::Runtime::new().expect("the tokio runtime starts");
    let result = runtime.block_on(zoomcast::cli::run(cli));
    drop(runtime);
    zoomcast::cli::exit_code(&result)
}
