//! Keeping the state directory private: it holds refresh tokens for a whole Zoom account; and
//! the process too ([`private_process`]: no core file, not dumpable).
//!
//! Nothing zoomcast keeps in the state directory is open to group or others, whatever the
//! umask and whatever existed before:
//! - [`private_umask`] sets the process's umask to 077, so what sled, the lock, the grant files
//!   and the control socket create is 0600 (directories 0700) from the first instant;
//! - [`secure`] creates the directory 0700, or takes over an existing one: it removes the group
//!   and other bits from the directory and from zoomcast's own entries in it (`lock`,
//!   `control.sock`, `db/` and `grants/` with everything below them), and refuses, with the
//!   fix, an entry another user owns or a symbolic link among them (another user could have
//!   planted one while the directory was open, to have the tokens written where they can read
//!   them). Other files in the directory are left alone.
//!
//! Once the directory is 0700 and the caller's, nobody else can add or swap an entry, so the
//! check holds for as long as the process runs.

use std::fs::{self, DirBuilder, Metadata};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use super::StateError;

/// The only permission bits zoomcast leaves on what it owns: the owner's.
const OWNER_ONLY: u32 = 0o077;

/// Sets the process's umask to 077 (files 0600, directories 0700 at creation), for the life of
/// the process: everything zoomcast writes is private.
pub fn private_umask() {
    use rustix::fs::Mode;
    let _previous = rustix::process::umask(Mode::from_raw_mode(OWNER_ONLY));
}

/// Keeps the process's memory (tokens, the client secret, the state key) to itself: it writes
/// no core file, whatever `ulimit -c` it was started under (the hard limit too, so nothing it
/// runs can raise it), and it is not dumpable, so no other process of its user can attach to
/// it or read `/proc/PID/mem` or `/proc/PID/environ`. Best effort: a kernel that refuses says
/// so in the log. Run once, first thing.
pub fn private_process() {
    use rustix::process::{DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit};
    let no_core = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    if let Err(e) = setrlimit(Resource::Core, no_core) {
        tracing::warn!("could not forbid core dumps (setrlimit): {e}");
    }
    if let Err(e) = set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        tracing::warn!("could not make the process undumpable (prctl): {e}");
    }
}

/// The effective user id of this process: the one user allowed near the state.
pub fn me() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The entries of the state directory that are zoomcast's: each, and everything below it.
pub const OWN_ENTRIES: [&str; 4] = ["lock", "control.sock", "db", "grants"];

/// Creates `dir` (mode 0700) or makes an existing one and zoomcast's entries in it private.
pub fn secure(dir: &Path) -> Result<(), StateError> {
    private_umask();
    let io = |source| StateError::Io {
        dir: dir.to_owned(),
        source,
    };
    let meta = match fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
            fs::metadata(dir).map_err(io)?
        }
        other => other.map_err(io)?,
    };
    if !meta.is_dir() {
        return Err(StateError::NotADirectory(dir.to_owned()));
    }
    tighten(dir, &meta)?;
    for name in OWN_ENTRIES {
        secure_entry(&dir.join(name))?;
    }
    Ok(())
}

/// Tightens `path` and, for a directory, everything below it, depth first; refuses a link.
fn secure_entry(path: &Path) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        dir: path.to_owned(),
        source,
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        // Not there (yet), or gone since the listing (a process that ended removing its socket).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    if meta.file_type().is_symlink() {
        return Err(StateError::Link(path.to_owned()));
    }
    tighten(path, &meta)?;
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(io)? {
            secure_entry(&entry.map_err(io)?.path())?;
        }
    }
    Ok(())
}

/// Removes the group and other bits of `path`, or refuses when another user owns it.
fn tighten(path: &Path, meta: &Metadata) -> Result<(), StateError> {
    if meta.uid() != me() {
        return Err(StateError::Foreign {
            path: path.to_owned(),
            owner: meta.uid(),
            me: me(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & OWNER_ONLY == 0 {
        return Ok(());
    }
    let private = mode & !OWNER_ONLY;
    fs::set_permissions(path, fs::Permissions::from_mode(private)).map_err(|source| {
        StateError::Io {
            dir: path.to_owned(),
            source,
        }
    })?;
    tracing::info!(
        "{} was readable by others (mode {mode:o}); made it private ({private:o})",
        path.display()
    );
    Ok(())
}

/// The fix for an entry another user owns.
pub(super) fn foreign_help(path: &Path, owner: u32, me: u32) -> String {
    format!(
        "{} belongs to uid {owner}, not to this user (uid {me}), and its owner could read the \
         refresh tokens stored there; run zoomcast as uid {owner}, or `chown -R {me} {}` if it \
         is yours, or use another --state directory",
        path.display(),
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn an_existing_open_directory_and_zoomcasts_files_in_it_are_made_private() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("state");
        fs::create_dir_all(dir.join("db/blobs")).unwrap();
        fs::write(dir.join("db/db"), "token").unwrap();
        fs::write(dir.join("lock"), "1").unwrap();
        fs::write(dir.join("notes.md"), "mine").unwrap();
        for (path, m) in [
            (dir.clone(), 0o755),
            (dir.join("db"), 0o775),
            (dir.join("db/blobs"), 0o777),
            (dir.join("db/db"), 0o644),
            (dir.join("lock"), 0o666),
            (dir.join("notes.md"), 0o644),
        ] {
            fs::set_permissions(&path, fs::Permissions::from_mode(m)).unwrap();
        }
        secure(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("db")), 0o700);
        assert_eq!(mode(&dir.join("db/blobs")), 0o700);
        assert_eq!(mode(&dir.join("db/db")), 0o600);
        assert_eq!(mode(&dir.join("lock")), 0o600);
        assert_eq!(
            mode(&dir.join("notes.md")),
            0o644,
            "not zoomcast's, left alone"
        );
    }

    #[test]
    fn a_link_among_zoomcasts_entries_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("state");
        fs::create_dir_all(dir.join("db")).unwrap();
        let elsewhere = base.path().join("theirs");
        fs::write(&elsewhere, "").unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join("db/db")).unwrap();
        let err = secure(&dir).unwrap_err();
        assert!(matches!(err, StateError::Link(_)), "{err}");
        assert!(err.to_string().contains("db/db"), "{err}");
    }

    #[test]
    fn a_new_directory_is_created_private() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a/b/state");
        secure(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn a_file_in_place_of_the_directory_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let file = base.path().join("state");
        fs::write(&file, "").unwrap();
        let err = secure(&file).unwrap_err();
        assert!(matches!(err, StateError::NotADirectory(_)), "{err}");
    }

    #[test]
    fn a_private_process_writes_no_core_and_cannot_be_dumped() {
        use rustix::process::{DumpableBehavior, Resource, dumpable_behavior, getrlimit};
        private_process();
        let core = getrlimit(Resource::Core);
        assert_eq!((core.current, core.maximum), (Some(0), Some(0)));
        assert_eq!(dumpable_behavior().unwrap(), DumpableBehavior::NotDumpable);
    }
}
