//! The state directory's lock: an exclusive `flock` on `state/lock`, which also records the
//! holder's pid so that a second process can say who holds it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::StateError;

/// Held for as long as a process uses the state directory; released when dropped (or when the
/// process dies, since the kernel drops flocks with the file descriptor).
#[derive(Debug)]
pub struct StateLock {
    file: File,
}

impl StateLock {
    /// Takes the lock, or reports the holder's pid.
    pub fn acquire(dir: &Path) -> Result<Self, StateError> {
        let path = dir.join("lock");
        let io = |source| StateError::Io {
            dir: dir.to_owned(),
            source,
        };
        // Never through a link, even one planted after the directory was checked.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits().cast_signed())
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let mut lines = text.lines();
                return Err(StateError::Locked {
                    dir: dir.to_owned(),
                    pid: lines.next().and_then(|pid| pid.trim().parse().ok()),
                    doing: lines.next().map(str::to_owned).filter(|d| !d.is_empty()),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(Self { file })
    }

    /// Records what the holder is doing, on the lock file's second line (best effort: the
    /// lock holds either way).
    pub fn announce(&self, doing: &str) {
        let line = doing.replace('\n', " ");
        // Written over the old text, then cut to length: a reader never sees it empty.
        let text = format!("{}\n{line}\n", std::process::id());
        let mut file = &self.file;
        let _ = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(text.as_bytes()))
            .and_then(|()| file.set_len(text.len() as u64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_told_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let _held = StateLock::acquire(dir.path()).unwrap();
        let err = StateLock::acquire(dir.path()).unwrap_err();
        assert!(
            matches!(err, StateError::Locked { pid: Some(p), .. } if p == std::process::id()),
            "{err}"
        );
    }

    #[test]
    fn second_holder_is_told_what_the_first_is_doing() {
        let dir = tempfile::tempdir().unwrap();
        let held = StateLock::acquire(dir.path()).unwrap();
        held.announce("running job `team`");
        let err = StateLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("(pid {}, running job `team`)", std::process::id())),
            "{err}"
        );
    }

    #[test]
    fn released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        drop(StateLock::acquire(dir.path()).unwrap());
        StateLock::acquire(dir.path()).unwrap();
    }
}
