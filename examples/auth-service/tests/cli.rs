//! The binary's command line. (Its integration tests also make cargo build
//! the `auth-service` binary for `cargo test --workspace`, which the
//! end-to-end tests in `tests/` run.)

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_auth-service"))
}

#[test]
fn add_user_without_a_password_says_where_it_is_read_from() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .current_dir(dir.path())
        .env_remove("AUTH_SERVICE_PASSWORD")
        .args(["add-user", "--username", "someone"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("$AUTH_SERVICE_PASSWORD"), "{stderr}");
}

#[test]
fn a_missing_config_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .current_dir(dir.path())
        .args(["--config", "nowhere/auth.json", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nowhere/auth.json"), "{stderr}");
}
