//! Files and directories that hold gantry's state, keys and backups are
//! the owner's alone: databases 0600, their directories and the backup and
//! key directories 0700. Made so when created; checked each time they are
//! opened, and a wider mode (from an older gantry, a copy, a umask) is
//! narrowed with a log line saying so.
//!
//! Never widens a mode, and never changes a path that is not this user's.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and missing parents) 0700, or narrows an existing one.
pub fn dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => narrow(dir, &meta, 0o700),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} is not a directory", dir.display()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir),
        Err(e) => Err(e),
    }
}

/// Narrows an existing file to 0600; a missing one is left to be created.
pub fn file(path: &Path) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => narrow(path, &meta, 0o600),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates `path` empty and 0600 when missing (so whatever opens it next
/// finds it private from the first byte), else narrows it.
pub fn create_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => file(path),
        Err(e) => Err(e),
    }
}

/// Why a file (its `symlink_metadata`) cannot be trusted to hold what
/// this user wrote: not a regular file, another user's, or writable by
/// group or others; `None` when it can.
pub fn untrusted(meta: &std::fs::Metadata) -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.file_type().is_file() {
        Some("it is not a regular file")
    } else if meta.uid() != me {
        Some("it is owned by another user")
    } else if meta.mode() & 0o022 != 0 {
        Some("it is writable by group or others")
    } else {
        None
    }
}

fn narrow(path: &Path, meta: &std::fs::Metadata, mode: u32) -> std::io::Result<()> {
    let current = meta.permissions().mode() & 0o777;
    // SAFETY: geteuid has no preconditions.
    let mine = meta.uid() == unsafe { libc::geteuid() };
    if current & 0o077 == 0 || !mine {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(current & mode))?;
    tracing::warn!(
        path = %path.display(),
        "narrowed mode {current:o} to {:o}: others could read it",
        current & mode
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn made_private_and_narrowed_when_wider() {
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join(".gantry/backups");
        dir(&state).unwrap();
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&root.path().join(".gantry")), 0o700);
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir(&state).unwrap();
        assert_eq!(mode(&state), 0o700);

        let db = root.path().join("state.db");
        create_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        create_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        // Never widened.
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o400)).unwrap();
        file(&db).unwrap();
        assert_eq!(mode(&db), 0o400);
    }
}
