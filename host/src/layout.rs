//! Where gantry keeps its own files: `.gantry/` beside the deployment
//! config (in the working directory when there is none). One type names
//! each path, resolved once in `Settings`; engines ask it rather than
//! spell `.gantry/…` themselves.
//!
//! Never creates anything: whoever writes a path makes it (private, see
//! `store::private`).

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// `.gantry/` in `dir` (made absolute).
    pub fn beside(dir: &Path) -> Layout {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        Layout {
            root: dir.join(".gantry"),
        }
    }

    /// `.gantry/` itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// gantry's state store, when it is SQLite by default.
    pub fn state_db(&self) -> PathBuf {
        self.root.join("state.db")
    }

    /// The auth database of the embedded default.
    pub fn auth_db(&self) -> PathBuf {
        self.root.join("auth.db")
    }

    /// User plugins, by default.
    pub fn plugins(&self) -> PathBuf {
        self.root.join("plugins")
    }

    /// Config backups and the installation key, by default.
    pub fn backups(&self) -> PathBuf {
        self.root.join("backups")
    }

    /// JWT key material gantry made, one directory per environment.
    pub fn keys(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// Instance and front door output, one directory per service.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// Control sockets of running front doors.
    pub fn run(&self) -> PathBuf {
        self.root.join("run")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_under_the_configs_gantry_directory() {
        let layout = Layout::beside(Path::new("/srv/auth"));
        assert_eq!(layout.root(), Path::new("/srv/auth/.gantry"));
        for path in [
            layout.state_db(),
            layout.auth_db(),
            layout.plugins(),
            layout.backups(),
            layout.keys(),
            layout.logs(),
            layout.run(),
        ] {
            assert!(path.starts_with("/srv/auth/.gantry"), "{}", path.display());
        }
    }
}
