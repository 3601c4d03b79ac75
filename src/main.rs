//! The `zoomcast` binary: parse the command line, run it, exit with the contract's code.

use std::process::ExitCode;

use clap::Parser;

mod allocator;

fn main() -> ExitCode {
    allocator::tune();
    // Everything zoomcast writes (state, grant files, the control socket, --failures) is
    // created private, whatever umask it was started under.
    zoomcast::state::private::private_umask();
    let cli = zoomcast::cli::Cli::parse();
    zoomcast::cli::init_logging(cli.log_format);
    let runtime = tokio::runtime::Runtime::new().expect("the tokio runtime starts");
    let result = runtime.block_on(zoomcast::cli::run(cli));
    drop(runtime);
    zoomcast::cli::exit_code(&result)
}
