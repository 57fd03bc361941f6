//! Builds the `plugins/` workspace for `wasm32-wasip2` and embeds the
//! built-in plugins into the `gantry` binary.
//!
//! - Installs the `wasm32-wasip2` target with rustup when it is missing, so a
//!   fresh clone needs nothing but cargo.
//! - Builds with its own `--target-dir` (beside the host's target dir, shared
//!   by every profile) and a clean environment, as wasmtime builds its test
//!   programs.
//! - Writes `builtin_plugins.rs` into `OUT_DIR`: every plugin directly under
//!   `plugins/` that has a `NAME.toml` manifest is a built-in, with the
//!   sha256 of its component (so loading one does not hash it).
//! - Copies every built component, built-in or test guest, with its manifest
//!   into `OUT_DIR/plugins/`, exposed to tests as `GANTRY_TEST_PLUGINS_DIR`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let crate_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = crate_dir
        .parent()
        .expect("runtime/ has a parent")
        .to_path_buf();
    let plugins_dir = root.join("plugins");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));

    let builtins = plugin_dirs(&plugins_dir);
    let testing = plugin_dirs(&plugins_dir.join("testing"));
    watch(&root, &plugins_dir, builtins.iter().chain(&testing));

    ensure_target();
    let target_dir = plugin_target_dir(&out_dir);
    build_plugins(&plugins_dir, &target_dir);

    let release = target_dir.join(TARGET).join("release");
    let staged = out_dir.join("plugins");
    fs::create_dir_all(&staged).expect("create OUT_DIR/plugins");
    for dir in builtins.iter().chain(&testing) {
        stage(dir, &release, &staged);
    }
    write_builtin_table(&out_dir, &staged, &builtins);
    println!(
        "cargo:rustc-env=GANTRY_TEST_PLUGINS_DIR={}",
        staged.display()
    );
}

/// Plugin crates directly under `dir`: those with a `NAME/NAME.toml` manifest.
fn plugin_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| manifest_path(path).is_file())
        .collect();
    found.sort();
    found
}

fn plugin_name(dir: &Path) -> String {
    dir.file_name()
        .and_then(|n| n.to_str())
        .expect("plugin directory name is UTF-8")
        .to_string()
}

fn manifest_path(dir: &Path) -> PathBuf {
    dir.join(format!("{}.toml", plugin_name(dir)))
}

/// Rebuild when the contract, the SDK or any plugin's sources change. Not on
/// the whole `plugins/` tree: a stray `plugins/target` would retrigger us.
fn watch<'a>(root: &Path, plugins_dir: &Path, dirs: impl Iterator<Item = &'a PathBuf>) {
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    // A new plugin is a new folder: watch the folders that hold them.
    for dir in [plugins_dir.to_path_buf(), plugins_dir.join("testing")] {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    for file in ["Cargo.toml", "Cargo.lock"] {
        println!(
            "cargo:rerun-if-changed={}",
            plugins_dir.join(file).display()
        );
    }
    let sdk = plugins_dir.join("sdk");
    for path in [
        sdk.join("Cargo.toml"),
        sdk.join("src"),
        sdk.join("macros/Cargo.toml"),
        sdk.join("macros/src"),
    ] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    for dir in dirs {
        for path in [dir.join("Cargo.toml"), dir.join("src"), manifest_path(dir)] {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    println!("cargo:rerun-if-env-changed=GANTRY_PLUGINS_TARGET_DIR");
}

/// Installs the wasm target through rustup when the toolchain lacks it.
fn ensure_target() {
    let sysroot = Command::new(env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if sysroot.is_some_and(|root| root.join("lib/rustlib").join(TARGET).is_dir()) {
        return;
    }
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .unwrap_or_else(|e| {
            panic!("the {TARGET} target is missing and rustup could not be run to add it: {e}")
        });
    assert!(
        status.success(),
        "`rustup target add {TARGET}` failed; install the target and build again"
    );
}

/// `<host target dir>/gantry-plugins`, shared by debug, test and release
/// builds of the host, unless `GANTRY_PLUGINS_TARGET_DIR` says otherwise.
fn plugin_target_dir(out_dir: &Path) -> PathBuf {
    if let Some(dir) = env::var_os("GANTRY_PLUGINS_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    out_dir
        .ancestors()
        .nth(4)
        .map(|target| target.join("gantry-plugins"))
        .unwrap_or_else(|| out_dir.join("plugins-target"))
}

fn build_plugins(plugins_dir: &Path, target_dir: &Path) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--workspace", "--target", TARGET])
        .arg("--manifest-path")
        .arg(plugins_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_INCREMENTAL",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("failed to run cargo to build plugins/: {e}"));
    assert!(status.success(), "building plugins/ for {TARGET} failed");
}

fn stage(dir: &Path, release: &Path, staged: &Path) {
    let name = plugin_name(dir);
    let wasm = release.join(format!("{}.wasm", name.replace('-', "_")));
    copy_if_changed(&wasm, &staged.join(format!("{name}.wasm")));
    copy_if_changed(&manifest_path(dir), &staged.join(format!("{name}.toml")));
}

fn copy_if_changed(from: &Path, to: &Path) {
    let bytes = fs::read(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    if fs::read(to).ok().as_deref() != Some(bytes.as_slice()) {
        fs::write(to, bytes).unwrap_or_else(|e| panic!("write {}: {e}", to.display()));
    }
}

fn write_builtin_table(out_dir: &Path, staged: &Path, builtins: &[PathBuf]) {
    let mut code = String::from(
        "/// Built-in plugins embedded at build time: (name, component, manifest,\n\
         /// the component's sha256).\n\
         pub static BUILTINS: &[(&str, &[u8], &str, &str)] = &[\n",
    );
    for dir in builtins {
        let name = plugin_name(dir);
        let wasm = staged.join(format!("{name}.wasm"));
        let manifest = staged.join(format!("{name}.toml"));
        let bytes = fs::read(&wasm).expect("read a staged built-in");
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        code.push_str(&format!(
            "    ({name:?}, include_bytes!({wasm:?}), include_str!({manifest:?}), {sha256:?}),\n",
            wasm = wasm.display().to_string(),
            manifest = manifest.display().to_string(),
        ));
    }
    code.push_str("];\n");
    let path = out_dir.join("builtin_plugins.rs");
    if fs::read_to_string(&path).ok().as_deref() != Some(code.as_str()) {
        fs::write(&path, code).expect("write builtin_plugins.rs");
    }
}
