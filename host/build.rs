//! Embeds what the `gantry` binary carries besides its plugins (those are
//! the runtime crate's, built by its build.rs):
//!
//! - the auth schema in `migrations/` (`migrations.rs`);
//! - the SDK's sources (`sdk_files.rs`), so `gantry plugin new` can vendor
//!   the SDK where gantry's source tree is not at hand.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let host_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = host_dir.parent().expect("host/ has a parent").to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let sdk = root.join("plugins/sdk");
    for path in [
        sdk.join("Cargo.toml"),
        sdk.join("src"),
        sdk.join("macros/Cargo.toml"),
        sdk.join("macros/src"),
        root.join("wit"),
    ] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    write_sdk_table(&out_dir, &sdk);
    write_migrations_table(&out_dir, &root.join("migrations"));
    println!("cargo:rustc-env=GANTRY_SDK_DIR={}", sdk.display());
    pack_relative_relocations();
}

/// The binary is position-independent, so the loader patches about 88,000
/// pointers at every start; packed (DT_RELR, glibc 2.36+, binutils 2.38+)
/// their table shrinks from 2 MB to a few KB and is applied in a fraction
/// of the time — every `gantry` command starts faster.
fn pack_relative_relocations() {
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let libc = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && libc == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Every SDK source file (following the `wit` link), for vendoring.
fn write_sdk_table(out_dir: &Path, sdk: &Path) {
    let mut files = Vec::new();
    collect_files(sdk, sdk, &mut files);
    files.sort();
    let mut code = String::from(
        "/// The SDK's files: (path relative to the SDK root, contents).\n\
         pub static SDK_FILES: &[(&str, &str)] = &[\n",
    );
    for (rel, abs) in files {
        code.push_str(&format!(
            "    ({rel:?}, include_str!({:?})),\n",
            abs.display().to_string()
        ));
    }
    code.push_str("];\n");
    let path = out_dir.join("sdk_files.rs");
    if fs::read_to_string(&path).ok().as_deref() != Some(code.as_str()) {
        fs::write(&path, code).expect("write sdk_files.rs");
    }
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name == "target" || name.starts_with('.') || name == "Cargo.lock" {
            continue;
        }
        if path.is_dir() {
            collect_files(root, &path, out);
        } else {
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            out.push((rel, path));
        }
    }
}

/// The built-in auth schema: every file of migrations/<dialect>/.
fn write_migrations_table(out_dir: &Path, migrations: &Path) {
    println!("cargo:rerun-if-changed={}", migrations.display());
    let mut code = String::new();
    for (dialect, constant) in [("postgres", "POSTGRES"), ("sqlite", "SQLITE")] {
        let dir = migrations.join(dialect);
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        code.push_str(&format!(
            "/// migrations/{dialect}/: (file name, text).\npub static {constant}: &[(&str, &str)] = &[\n"
        ));
        for path in files {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("UTF-8 name");
            code.push_str(&format!(
                "    ({name:?}, include_str!({:?})),\n",
                path.display().to_string()
            ));
        }
        code.push_str("];\n");
    }
    let path = out_dir.join("migrations.rs");
    if fs::read_to_string(&path).ok().as_deref() != Some(code.as_str()) {
        fs::write(&path, code).expect("write migrations.rs");
    }
}
