//! The `zoomcast` binary: parse the command line, run it, exit with the contract's code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tune_allocator();
    // Everything zoomcast writes (state, grant files, the control socket, --failures) is
    // created private, whatever umask it was started under.
    zoomcast::state::private::private_umask();
    let cli = zoomcast::cli::Cli::parse();
    zoomcast::cli::init_logging();
    let runtime = tokio::runtime::Runtime::new().expect("the tokio runtime starts");
    let result = runtime.block_on(zoomcast::cli::run(cli));
    drop(runtime);
    zoomcast::cli::exit_code(&result)
}

/// glibc's allocator, with fixed thresholds for trimming the heap and for serving large blocks
/// from `mmap` (128 KiB each, glibc's starting values). By default glibc raises both after the
/// first large block is freed, and freed memory then stays in the process: a 100,000-recipient
/// run peaked at 61 to 63 MiB with the defaults and at 52 to 53 MiB with these (`cargo bench
/// --bench delivery -- 4`). A user's own `MALLOC_*` or `GLIBC_TUNABLES` settings win.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_allocator() {
    const THRESHOLD: libc::c_int = 128 * 1024;
    let user_tuned = std::env::vars_os().any(|(name, _)| {
        let name = name.to_string_lossy();
        name.starts_with("MALLOC_") || name == "GLIBC_TUNABLES"
    });
    if user_tuned {
        return;
    }
    // SAFETY: mallopt only sets allocator parameters, with valid values, and runs first thing
    // in main, before this process has another thread.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, THRESHOLD);
        libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
    }
}

/// Other platforms keep their allocator's defaults.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
