//! The plugins an operator has: the built-ins and a plugin directory.
//!
//! A plugin that fails to load is kept as a failed entry with its error, so
//! `gantry plugin list` can say why; it never stops the others loading.

use super::error::LoadError;
use super::host::{Plugin, Runtime};
use super::manifest::Manifest;
use super::source::{Origin, PluginSource};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct Entry {
    pub name: String,
    pub origin: Origin,
    pub manifest: Option<Manifest>,
    pub loaded: Result<Arc<Plugin>, Arc<LoadError>>,
}

#[derive(Default)]
pub struct Registry {
    entries: BTreeMap<String, Entry>,
}

impl Registry {
    /// Loads the built-ins, then every `NAME.wasm` in `dir` (if it exists).
    /// `pins` maps plugin names to the sha256 the operator requires.
    pub fn load(
        runtime: &Runtime,
        dir: Option<&Path>,
        pins: &BTreeMap<String, String>,
    ) -> Registry {
        let mut registry = Registry::default();
        for name in PluginSource::builtin_names() {
            let source = PluginSource::builtin(name).expect("listed built-in exists");
            registry.add(runtime, name.to_string(), Origin::Builtin, source, pins);
        }
        if let Some(dir) = dir {
            for wasm in wasm_files(dir) {
                let stem = wasm
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let source = PluginSource::from_path(&wasm, None).and_then(|source| {
                    if source.manifest.name != stem {
                        return Err(LoadError::Incompatible {
                            plugin: source.manifest.name.clone(),
                            expected: format!(
                                "the manifest's name to be `{stem}`, as the file is named"
                            ),
                            found: format!(
                                "name = {:?} in {}",
                                source.manifest.name,
                                source.manifest.path.display()
                            ),
                        });
                    }
                    if registry
                        .entries
                        .get(&stem)
                        .is_some_and(|e| e.origin == Origin::Builtin)
                    {
                        return Err(LoadError::Incompatible {
                            plugin: stem.clone(),
                            expected: "a name no built-in plugin has".into(),
                            found: format!("{} shadows the built-in `{stem}`", wasm.display()),
                        });
                    }
                    Ok(source)
                });
                registry.add(runtime, stem, Origin::File(wasm), source, pins);
            }
        }
        registry
    }

    fn add(
        &mut self,
        runtime: &Runtime,
        name: String,
        origin: Origin,
        source: Result<PluginSource, LoadError>,
        pins: &BTreeMap<String, String>,
    ) {
        let manifest = source.as_ref().ok().map(|s| s.manifest.clone());
        let loaded = source
            .and_then(|s| runtime.load(s, pins.get(&name).map(String::as_str)))
            .map(Arc::new)
            .map_err(Arc::new);
        if let Err(err) = &loaded {
            tracing::warn!(plugin = %name, "plugin failed to load: {err}");
        }
        // A failed entry never replaces a loaded built-in of the same name.
        if self.entries.get(&name).is_some_and(|e| e.loaded.is_ok()) && loaded.is_err() {
            let key = format!("{name} ({origin})");
            self.entries.insert(
                key,
                Entry {
                    name,
                    origin,
                    manifest,
                    loaded,
                },
            );
            return;
        }
        self.entries.insert(
            name.clone(),
            Entry {
                name,
                origin,
                manifest,
                loaded,
            },
        );
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// The loaded plugin called `name`, or why there is none.
    pub fn plugin(&self, name: &str) -> Result<Arc<Plugin>, RegistryError> {
        match self.entries.get(name) {
            Some(Entry {
                loaded: Ok(plugin), ..
            }) => Ok(Arc::clone(plugin)),
            Some(Entry {
                loaded: Err(err), ..
            }) => Err(RegistryError::Failed(Arc::clone(err))),
            None => Err(RegistryError::Unknown {
                name: name.to_string(),
                known: self.entries.keys().cloned().collect::<Vec<_>>().join(", "),
            }),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no plugin named `{name}` (known: {known})")]
    Unknown { name: String, known: String },
    #[error(transparent)]
    Failed(Arc<LoadError>),
}

fn wasm_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = read
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
        .collect();
    files.sort();
    files
}
