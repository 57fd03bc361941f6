//! Names that cannot leave their directories: config file names are one
//! plain path component, backup ids match `backup_YYYYMMDD_HHMMSS[_N]`,
//! and gantry never writes through (or reads a backup through) a symlink.

use super::error::ConfigError;
use std::path::{Path, PathBuf};

/// `config_dir/name`, after checking `name` and refusing symlinks.
pub fn target(config_dir: &Path, name: &str) -> Result<PathBuf, ConfigError> {
    check_name(name)?;
    let path = config_dir.join(name);
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        let points_to = std::fs::read_link(&path)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        return Err(ConfigError::UnsafePath {
            path,
            why: format!(
                "is a symlink (to {points_to}); gantry replaces only regular files in the config directory"
            ),
        });
    }
    if path.is_dir() {
        return Err(ConfigError::UnsafePath {
            path,
            why: "is a directory".into(),
        });
    }
    Ok(path)
}

/// A config file name: one component, no `..`, not hidden, printable.
pub fn check_name(name: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| ConfigError::UnsafePath {
        path: PathBuf::from(name),
        why: why.to_string(),
    };
    if name.is_empty() {
        return Err(bad("is empty"));
    }
    if name.contains(['/', '\\', '\0']) || Path::new(name).is_absolute() {
        return Err(bad("must be a file name, not a path"));
    }
    if name == "." || name == ".." || name.starts_with('.') {
        return Err(bad("must not start with a dot"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("contains control characters"));
    }
    Ok(())
}

/// A backup id as gantry makes them.
pub fn check_backup_id(id: &str) -> Result<(), ConfigError> {
    let ok = (|| {
        let rest = id.strip_prefix("backup_")?;
        let (date, rest) = rest.split_at_checked(8)?;
        let rest = rest.strip_prefix('_')?;
        let (time, suffix) = rest.split_at_checked(6)?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let suffix_ok = suffix.is_empty() || suffix.strip_prefix('_').is_some_and(digits);
        (digits(date) && digits(time) && suffix_ok).then_some(())
    })();
    ok.ok_or_else(|| ConfigError::BadBackupId(id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_in_their_directory() {
        assert!(check_name("auth.json").is_ok());
        for bad in [
            "",
            "../auth.json",
            "a/b.json",
            "/etc/passwd",
            "..",
            ".hidden",
            "a\\b",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn backup_ids_have_one_shape() {
        assert!(check_backup_id("backup_20241027_143022").is_ok());
        assert!(check_backup_id("backup_20241027_143022_3").is_ok());
        for bad in [
            "backup_2024_1",
            "../backup_20241027_143022",
            "backup_20241027_143022/..",
            "backup_20241027_143022_",
        ] {
            assert!(check_backup_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn symlinks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("auth.json")).unwrap();
        let err = target(dir.path(), "auth.json").unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
    }
}
