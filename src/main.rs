//! The `zoomcast` binary: parse the command line, run it, exit with the contract's code.

use std::process::ExitCode;

use clap::Parser;
use zoomcast::render::{self, sandbox};

mod allocator;

fn main() -> ExitCode {
    // A child rendering one job's templates, its memory capped (zoomcast::render::sandbox).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == sandbox::WORKER_ARG)
    {
        return ExitCode::from(u8::try_from(render::worker()).unwrap_or(1));
    }
    // This very binary, even once an upgrade has replaced the file (Linux's /proc/self/exe is
    // the running image): a child of another version might not read what it is sent.
    let running = std::path::Path::new("/proc/self/exe");
    if running.exists() {
        sandbox::enable(running.to_owned());
    } else if let Ok(program) = std::env::current_exe() {
        sandbox::enable(program);
    }
    allocator::tune();
    // Everything zoomcast writes is created private, whatever umask it was started under,
    // and its memory stays its own: no core file, not dumpable (said in the log if refused).
    zoomcast::state::private::private_umask();
    let cli = zoomcast::cli::Cli::parse();
    zoomcast::cli::init_logging(cli.log_format);
    zoomcast::state::private::private_process();
    let runtime = tokio::runtime::Runtime::new().expect("the tokio runtime starts");
    let result = runtime.block_on(zoomcast::cli::run(cli));
    drop(runtime);
    zoomcast::cli::exit_code(&result)
}
