//! The process's memory allocator settings, applied first thing in `main`.

/// glibc's allocator, with fixed thresholds for trimming the heap and for serving large blocks
/// from `mmap` (128 KiB each, glibc's starting values). By default glibc raises both after the
/// first large block is freed, and freed memory then stays in the process (docs/src/performance.md
/// has the figures). A user's own `MALLOC_*` or `GLIBC_TUNABLES` settings
/// win.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn tune() {
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
pub fn tune() {}
