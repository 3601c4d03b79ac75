//! The `zoomcast` binary: parse the command line, run it, exit with the contract's code.

use std::process::ExitCode;

use clap::Parser;
use zoomcast::render::{self, sandbox};
use zoomcast::state::private;

mod allocator;

fn main() -> ExitCode {
    // A child rendering one job's templates, its memory capped (zoomcast::render::sandbox).
    if sandbox::is_worker() {
        return ExitCode::from(u8::try_from(render::worker()).unwrap_or(1));
    }
    sandbox::enable_self();
    allocator::tune();
    // Everything zoomcast writes is created private, whatever umask it was started under,
    // and its memory stays its own: no core file, not dumpable (said in the log if refused).
    private::private_umask();
    let cli = zoomcast::cli::Cli::parse();
    zoomcast::cli::init_logging(cli.log_format);
    private::private_process();
    let runtime = tokio::runtime::Runtime::new().expect("the tokio runtime starts");
    let result = runtime.block_on(zoomcast::cli::run(cli));
    drop(runtime);
    zoomcast::cli::exit_code(&result)
}
