//! Paths to the test guests built by `build.rs`; for gantry's own tests
//! and benchmarks only (the `testing` feature, which a release never has).

use std::path::PathBuf;

/// The directory holding every built plugin (`NAME.wasm` + `NAME.toml`).
pub fn plugins_dir() -> PathBuf {
    PathBuf::from(env!("GANTRY_TEST_PLUGINS_DIR"))
}

/// `NAME.wasm` of a built plugin or test guest.
pub fn test_plugin(name: &str) -> PathBuf {
    let path = plugins_dir().join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "no test plugin {name} at {}",
        path.display()
    );
    path
}
