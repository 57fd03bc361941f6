//! The registry: one lookup by name, path or crate directory; slots that a
//! new version replaces atomically with the next generation; a broken new
//! version refused while the last good one keeps serving.

use gantry::bindings::types::HealthStatus;
use gantry::runtime::registry::{Registry, RegistryError, Reload};
use gantry::runtime::{Runtime, RuntimeSettings};
use gantry_runtime::testing::test_plugin;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

fn runtime() -> Arc<Runtime> {
    Arc::new(
        Runtime::new(RuntimeSettings {
            cache_dir: None,
            ..RuntimeSettings::default()
        })
        .expect("runtime"),
    )
}

fn install(dir: &Path, version: &str) {
    std::fs::copy(test_plugin("trivial"), dir.join("trivial.wasm")).unwrap();
    let manifest = std::fs::read_to_string(test_plugin("trivial").with_extension("toml"))
        .unwrap()
        .replace("version = \"0.1.0\"", &format!("version = \"{version}\""));
    std::fs::write(dir.join("trivial.toml"), manifest).unwrap();
}

fn answers_ok(runtime: &Runtime, plugin: &gantry::runtime::Plugin) -> bool {
    let settings = plugin.settings(Vec::<(String, String)>::new()).unwrap();
    runtime
        .check(plugin, &settings, "")
        .into_result()
        .is_ok_and(|r| r.status == HealthStatus::Ok)
}

#[test]
fn a_new_version_swaps_in_and_a_broken_one_leaves_the_last_good_serving() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "0.1.0");
    let rt = runtime();
    let registry = Registry::new(Arc::clone(&rt), Some(dir.path()), BTreeMap::new());

    let first = registry.plugin("trivial").unwrap();
    assert_eq!(first.manifest.version, "0.1.0");
    assert_eq!(registry.get("trivial").unwrap().generation, 1);

    install(dir.path(), "0.2.0");
    assert!(matches!(
        registry.reload("trivial"),
        Reload::Swapped { generation: 2 }
    ));
    let second = registry.plugin("trivial").unwrap();
    assert_eq!(second.manifest.version, "0.2.0");
    // A call holding the old version finishes on it.
    assert!(answers_ok(&rt, &first));

    std::fs::write(dir.path().join("trivial.wasm"), b"not a component").unwrap();
    match registry.reload("trivial") {
        Reload::Kept { error } => {
            assert!(error.to_string().contains("not a WebAssembly component"))
        }
        other => panic!("a broken file was not refused: {other:?}"),
    }
    let entry = registry.get("trivial").unwrap();
    assert_eq!(entry.generation, 2, "the last good version stays current");
    assert!(entry.failed_update.is_some(), "and the failure is recorded");
    let current = registry.plugin("trivial").unwrap();
    assert_eq!(current.manifest.version, "0.2.0");
    assert!(answers_ok(&rt, &current));

    install(dir.path(), "0.3.0");
    assert!(matches!(
        registry.reload("trivial"),
        Reload::Swapped { generation: 3 }
    ));
    assert!(registry.get("trivial").unwrap().failed_update.is_none());

    std::fs::remove_file(dir.path().join("trivial.wasm")).unwrap();
    assert!(matches!(registry.reload("trivial"), Reload::Removed));
    assert!(matches!(
        registry.plugin("trivial"),
        Err(RegistryError::Unknown { .. })
    ));
}

#[test]
fn one_lookup_finds_names_paths_and_refuses_a_file_taking_a_built_ins_name() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "0.1.0");
    // A file named like a built-in is listed as failed, never used.
    std::fs::copy(test_plugin("trivial"), dir.path().join("http-check.wasm")).unwrap();
    std::fs::write(
        dir.path().join("http-check.toml"),
        std::fs::read_to_string(dir.path().join("trivial.toml"))
            .unwrap()
            .replace("name = \"trivial\"", "name = \"http-check\""),
    )
    .unwrap();
    let registry = Registry::new(runtime(), Some(dir.path()), BTreeMap::new());
    assert_eq!(registry.lookup("trivial", None).unwrap().name(), "trivial");
    let by_path = dir.path().join("trivial.wasm");
    assert_eq!(
        registry
            .lookup(by_path.to_str().unwrap(), None)
            .unwrap()
            .name(),
        "trivial"
    );
    let builtin = registry.lookup("http-check", None).unwrap();
    assert_eq!(builtin.origin, gantry::runtime::Origin::Builtin);
    let shadow = registry
        .entries()
        .into_iter()
        .find(|e| e.name.starts_with("http-check ("))
        .expect("the shadowing file is listed");
    let Err(why) = &shadow.loaded else {
        panic!("a file shadowing a built-in loaded");
    };
    assert!(
        why.to_string()
            .contains("takes the name of the built-in `http-check`"),
        "{why}"
    );
    // So does a file named by a built-in's short name (`webhook` is what a
    // receiver writes for `webhook-notifier`): it would not be used.
    std::fs::copy(test_plugin("trivial"), dir.path().join("webhook.wasm")).unwrap();
    std::fs::write(
        dir.path().join("webhook.toml"),
        std::fs::read_to_string(dir.path().join("trivial.toml"))
            .unwrap()
            .replace("name = \"trivial\"", "name = \"webhook\""),
    )
    .unwrap();
    let registry = Registry::new(runtime(), Some(dir.path()), BTreeMap::new());
    let Err(why) = registry.lookup("webhook", None) else {
        panic!("a file named by a built-in's short name loaded");
    };
    assert!(
        why.to_string()
            .contains("takes the name of the built-in `webhook-notifier`"),
        "{why}"
    );
    assert!(matches!(
        registry.lookup("nothing-here", None),
        Err(RegistryError::Unknown { .. })
    ));
    let not_a_crate = tempfile::tempdir().unwrap();
    assert!(matches!(
        registry.lookup(not_a_crate.path().to_str().unwrap(), None),
        Err(RegistryError::NotAPlugin(_))
    ));
}
