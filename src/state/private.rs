//! Keeping the state directory private: it holds refresh tokens for a whole Zoom account.
//!
//! zoomcast guarantees mode 0700 for every directory and 0600 for every file under the state
//! directory (the directory itself included), whatever the umask and whatever existed before:
//! - [`private_umask`] sets the process's umask to 077, so a file sled or the control socket
//!   creates is never, even for an instant, open to others;
//! - [`secure`] creates the directory 0700, or takes over an existing one: it tightens every
//!   entry the user owns that others could read, and refuses, with the fix, an entry another
//!   user owns (zoomcast cannot make that private, and its owner could read the tokens).
//!
//! Symbolic links inside the directory are neither followed nor changed.

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

/// The effective user id of this process.
fn me() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Creates `dir` (mode 0700) or makes an existing one private; [`secure_contents`] does the
/// same for what is in it, once the caller holds the directory's lock.
pub fn secure(dir: &Path) -> Result<(), StateError> {
    private_umask();
    let io = |source| StateError::Io {
        dir: dir.to_owned(),
        source,
    };
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => return Err(StateError::NotADirectory(dir.to_owned())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?,
        Err(e) => return Err(io(e)),
    }
    tighten(dir, &fs::metadata(dir).map_err(io)?)
}

/// Makes every entry below `dir` private (or refuses one another user owns).
pub fn secure_contents(dir: &Path) -> Result<(), StateError> {
    walk(dir)
}

/// Tightens every entry below `dir`, depth first, without following links.
fn walk(dir: &Path) -> Result<(), StateError> {
    let io = |source| StateError::Io {
        dir: dir.to_owned(),
        source,
    };
    for entry in fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            // Gone since the listing (a process that just ended removing its socket).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(e)),
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        tighten(&path, &meta)?;
        if meta.is_dir() {
            walk(&path)?;
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
    fn an_existing_open_directory_and_its_files_are_made_private() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("state");
        fs::create_dir_all(dir.join("db")).unwrap();
        fs::write(dir.join("db/db"), "token").unwrap();
        fs::write(dir.join("README.md"), "hi").unwrap();
        for (path, m) in [
            (dir.clone(), 0o755),
            (dir.join("db"), 0o775),
            (dir.join("db/db"), 0o644),
            (dir.join("README.md"), 0o666),
        ] {
            fs::set_permissions(&path, fs::Permissions::from_mode(m)).unwrap();
        }
        std::os::unix::fs::symlink("/etc", dir.join("link")).unwrap();
        secure(&dir).unwrap();
        assert_eq!(
            mode(&dir.join("db/db")),
            0o644,
            "contents wait for the lock"
        );
        secure_contents(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("db")), 0o700);
        assert_eq!(mode(&dir.join("db/db")), 0o600);
        assert_eq!(mode(&dir.join("README.md")), 0o600);
        assert_eq!(
            mode(Path::new("/etc")) & 0o005,
            0o005,
            "a link is not followed"
        );
    }

    #[test]
    fn a_new_directory_is_private_whatever_the_umask_was() {
        let base = tempfile::tempdir().unwrap();
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0));
        let dir = base.path().join("a/b/state");
        secure(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        fs::write(dir.join("file"), "x").unwrap();
        assert_eq!(mode(&dir.join("file")), 0o600, "the umask is 077 now");
    }

    #[test]
    fn a_file_in_place_of_the_directory_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let file = base.path().join("state");
        fs::write(&file, "").unwrap();
        let err = secure(&file).unwrap_err();
        assert!(matches!(err, StateError::NotADirectory(_)), "{err}");
    }
}
