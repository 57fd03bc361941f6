//! Helpers for end-to-end tests: run the real `gantry` binary in a temp
//! directory, and serve real HTTP on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod auth;
pub mod canary;
pub mod http;
pub mod load;
pub mod monitor;
pub mod paused;
pub mod pg;
pub mod python;
pub mod tls;

/// The `gantry` binary built beside these tests.
pub fn gantry_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/gantry
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir");
    let bin = dir.join("gantry");
    assert!(
        bin.is_file(),
        "{} is missing; run the tests with `cargo test --workspace`",
        bin.display()
    );
    assert_fresh(&bin);
    bin
}

/// For the benchmarks that run both: gantry and the example service must
/// be release builds beside them, or the bench says how to make them.
pub fn require_release_bins() {
    for bin in [gantry_bin(), auth_service_bin()] {
        assert!(
            bin.is_file(),
            "{} is missing: cargo build --release -p gantry -p auth-service",
            bin.display()
        );
    }
}

/// The example auth service built beside these tests.
pub fn auth_service_bin() -> PathBuf {
    let bin = gantry_bin().with_file_name("auth-service");
    assert!(
        bin.is_file(),
        "{} is missing; run the tests with `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// Fails when a source is newer than the binary: `cargo test -p
/// gantry-tests` alone does not rebuild it, and a stale binary fails tests
/// in confusing ways.
fn assert_fresh(bin: &Path) {
    let built = std::fs::metadata(bin)
        .and_then(|m| m.modified())
        .expect("binary mtime");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut stack: Vec<PathBuf> = [
        "host/src",
        "host/build.rs",
        "runtime/src",
        "runtime/build.rs",
        "wit",
        "migrations",
        "plugins",
        "examples/auth-service/src",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    while let Some(path) = stack.pop() {
        if path.file_name().is_some_and(|n| n == "target") {
            continue;
        }
        if path.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            }
        } else if let Ok(modified) = std::fs::metadata(&path).and_then(|m| m.modified()) {
            assert!(
                modified <= built,
                "{} is older than {}; run `cargo test --workspace` (or `cargo build`) so it is rebuilt",
                bin.display(),
                path.display()
            );
        }
    }
}

/// A file's permission bits (`0o600`).
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Copies the tree at `from` to `to` (created as needed).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A scratch directory with its own plugin cache, where gantry runs.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A `gantry` command run in the sandbox with a clean environment.
    pub fn gantry(&self) -> Command {
        let mut cmd = Command::new(gantry_bin());
        cmd.current_dir(self.path())
            .env("GANTRY_CACHE_DIR", self.path().join(".cache"))
            .env_remove("GANTRY_CONFIG")
            .env_remove("GANTRY_STATE_URL")
            .env_remove("GANTRY_PLUGIN_DIR")
            .env_remove("DATABASE_URL")
            .env_remove("RUST_LOG")
            .env_remove("GANTRY_LOG");
        cmd
    }

    /// Runs gantry with `args`; returns the finished process.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.gantry().args(args).output().expect("run gantry"))
    }

    /// SIGKILLs every process whose working directory is in the sandbox:
    /// the instances gantry started there (they outlive gantry on purpose).
    pub fn kill_processes(&self) {
        let root = self
            .path()
            .canonicalize()
            .unwrap_or_else(|_| self.path().to_path_buf());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid == std::process::id() as i32 {
                continue;
            }
            if std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(&root))
            {
                // SAFETY: kill(2) on a process this test's sandbox started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }

    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, contents).unwrap();
        path
    }
}

/// A finished gantry process.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts the exit code, showing both streams when it differs.
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code {} (wanted {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// With `--json`, stdout is JSON lines: the events, then the result.
    /// Checks every line parses and returns the result (the last line).
    pub fn json(&self) -> serde_json::Value {
        self.json_lines()
            .pop()
            .unwrap_or_else(|| panic!("stdout has no JSON:\n{}", self.stdout))
    }

    /// Every line of stdout, each parsed as JSON.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!(
                        "a line of stdout is not JSON ({e}): {line}\n{}",
                        self.stdout
                    )
                })
            })
            .collect()
    }
}

/// A `cargo` command for building plugin crates inside a test: the outer
/// build's flags and target dir removed, one shared target dir for speed.
pub fn plugin_cargo(crate_dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(crate_dir)
        .env("CARGO_TARGET_DIR", plugin_target_dir())
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    cmd
}

/// Where test-built plugin crates put their output.
pub fn plugin_target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .nth(3)
        .expect("target dir")
        .join("e2e-plugins")
}

/// Hex sha256 of bytes, as gantry records file checksums.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
