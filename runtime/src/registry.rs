//! The plugins an operator has: the built-ins and a plugin directory, and
//! the one lookup every command uses (a name, a `NAME.wasm` path, or a
//! plugin crate's directory).
//!
//! Each named plugin sits in a slot that can be replaced atomically: a new
//! version that loads becomes current with the next generation number;
//! calls already holding the old `Arc<Plugin>` finish on it. A new version
//! that fails to load leaves the last good one current and records the
//! failure, so `gantry plugin list` says why. Slots load lazily: a command
//! that needs one plugin compiles (or reads from the cache) only that one.

use super::error::LoadError;
use super::host::{Plugin, Runtime};
use super::manifest::Manifest;
use super::source::{Origin, PluginSource};
use crate::folder::Folder;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// What a slot holds at one moment.
#[derive(Clone)]
pub struct Entry {
    pub name: String,
    pub origin: Origin,
    pub manifest: Option<Manifest>,
    /// The current version, or why there is none.
    pub loaded: Result<Arc<Plugin>, Arc<LoadError>>,
    /// Bumped each time a new version becomes current (0: never loaded).
    pub generation: u64,
    /// The newest attempt's failure while an older version stays current.
    pub failed_update: Option<Arc<LoadError>>,
}

struct Slot {
    origin: Origin,
    state: Mutex<Option<Entry>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no plugin named `{name}` (known: {known})")]
    Unknown { name: String, known: String },
    #[error(transparent)]
    Failed(Arc<LoadError>),
    #[error("{0}")]
    NotAPlugin(String),
}

/// The outcome of replacing a plugin with what is on disk now.
#[derive(Debug, Clone)]
pub enum Reload {
    /// The new version is current.
    Swapped { generation: u64 },
    /// The new version failed; the last good one (if any) stays.
    Kept { error: Arc<LoadError> },
    /// The file is gone; the slot is removed.
    Removed,
}

pub struct Registry {
    runtime: Arc<Runtime>,
    dir: Option<PathBuf>,
    pins: BTreeMap<String, String>,
    /// Where cargo puts a plugin crate's build (`CARGO_TARGET_DIR`).
    cargo_target_dir: Option<PathBuf>,
    slots: RwLock<BTreeMap<String, Arc<Slot>>>,
}

impl Registry {
    /// The built-ins and every `NAME.wasm` in `dir` (if it exists), not yet
    /// loaded. `pins` maps plugin names to the sha256 the operator requires.
    pub fn new(
        runtime: Arc<Runtime>,
        dir: Option<&Path>,
        pins: BTreeMap<String, String>,
    ) -> Registry {
        let registry = Registry {
            runtime,
            dir: dir.map(Path::to_path_buf),
            pins,
            cargo_target_dir: None,
            slots: RwLock::new(BTreeMap::new()),
        };
        {
            let mut slots = registry.slots.write().expect("registry");
            for name in PluginSource::builtin_names() {
                slots.insert(name.to_string(), Slot::new(Origin::Builtin));
            }
            if let Some(dir) = dir {
                for wasm in wasm_files(dir) {
                    let stem = stem(&wasm);
                    // A file may not take a built-in's name: it gets its own
                    // failed slot, so `list` shows why it is not used.
                    let key = if slots.contains_key(&stem) {
                        format!("{stem} ({})", wasm.display())
                    } else {
                        stem
                    };
                    slots.insert(key, Slot::new(Origin::File(wasm)));
                }
            }
        }
        registry
    }

    pub fn with_cargo_target_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cargo_target_dir = dir;
        self
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Every slot, loaded now if it was not yet.
    pub fn entries(&self) -> Vec<Entry> {
        let slots: Vec<(String, Arc<Slot>)> = self
            .slots
            .read()
            .expect("registry")
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        slots
            .into_iter()
            .map(|(key, slot)| self.entry(&key, &slot))
            .collect()
    }

    /// The slot `name` as it is now, loaded if it was not yet.
    pub fn get(&self, name: &str) -> Option<Entry> {
        let slot = self.slots.read().expect("registry").get(name).cloned()?;
        Some(self.entry(name, &slot))
    }

    /// The current version of the plugin called `name`, or why there is none.
    pub fn plugin(&self, name: &str) -> Result<Arc<Plugin>, RegistryError> {
        match self.get(name) {
            Some(entry) => entry.loaded.map_err(RegistryError::Failed),
            None => Err(RegistryError::Unknown {
                name: name.to_string(),
                known: self
                    .slots
                    .read()
                    .expect("registry")
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// The one lookup: a plugin crate's directory (its built component and
    /// manifest), a `.wasm` path (`manifest` or `NAME.toml` beside it), or a
    /// name in this registry.
    pub fn lookup(
        &self,
        what: &str,
        manifest: Option<&Path>,
    ) -> Result<Arc<Plugin>, RegistryError> {
        let path = Path::new(what);
        if path.is_dir() {
            let (wasm, own_manifest) = folder_build(path, self.cargo_target_dir.as_deref())?;
            let manifest = manifest.map(Path::to_path_buf).unwrap_or(own_manifest);
            return self.load_file(&wasm, Some(&manifest));
        }
        if path.extension().is_some_and(|x| x == "wasm") || path.is_file() {
            return self.load_file(path, manifest);
        }
        self.plugin(what)
    }

    fn load_file(
        &self,
        wasm: &Path,
        manifest: Option<&Path>,
    ) -> Result<Arc<Plugin>, RegistryError> {
        let fail = |e: LoadError| RegistryError::Failed(Arc::new(e));
        let source = PluginSource::from_path(wasm, manifest).map_err(fail)?;
        let pin = self.pins.get(&source.manifest.name).map(String::as_str);
        self.runtime.load(source, pin).map(Arc::new).map_err(fail)
    }

    /// Loads what is on disk for `name` now and, if it loads, makes it
    /// current (a new generation); otherwise keeps the last good version.
    /// A new file in the plugin directory gets a slot.
    pub fn reload(&self, name: &str) -> Reload {
        let slot = {
            let mut slots = self.slots.write().expect("registry");
            match (slots.get(name), &self.dir) {
                (Some(slot), _) => Arc::clone(slot),
                (None, Some(dir)) => {
                    let slot = Slot::new(Origin::File(dir.join(format!("{name}.wasm"))));
                    slots.insert(name.to_string(), Arc::clone(&slot));
                    slot
                }
                (None, None) => {
                    return Reload::Kept {
                        error: Arc::new(LoadError::Incompatible {
                            plugin: name.to_string(),
                            expected: "a plugin directory".into(),
                            found: "none configured".into(),
                        }),
                    };
                }
            }
        };
        if let Origin::File(path) = &slot.origin
            && !path.exists()
        {
            self.slots.write().expect("registry").remove(name);
            return Reload::Removed;
        }
        let (manifest, loaded) = self.load_slot(name, &slot.origin);
        let mut state = slot.state.lock().expect("registry slot");
        let previous = state.take();
        let generation = previous.as_ref().map(|e| e.generation).unwrap_or(0);
        let (entry, outcome) = match (loaded, previous) {
            (Ok(plugin), _) => (
                Entry {
                    name: name.to_string(),
                    origin: slot.origin.clone(),
                    manifest,
                    loaded: Ok(plugin),
                    generation: generation + 1,
                    failed_update: None,
                },
                Reload::Swapped {
                    generation: generation + 1,
                },
            ),
            (Err(error), Some(mut old)) if old.loaded.is_ok() => {
                old.failed_update = Some(Arc::clone(&error));
                (old, Reload::Kept { error })
            }
            (Err(error), _) => (
                Entry {
                    name: name.to_string(),
                    origin: slot.origin.clone(),
                    manifest,
                    loaded: Err(Arc::clone(&error)),
                    generation,
                    failed_update: None,
                },
                Reload::Kept { error },
            ),
        };
        *state = Some(entry);
        outcome
    }

    fn entry(&self, key: &str, slot: &Slot) -> Entry {
        let mut state = slot.state.lock().expect("registry slot");
        if let Some(entry) = state.as_ref() {
            return entry.clone();
        }
        let (manifest, loaded) = self.load_slot(key, &slot.origin);
        let entry = Entry {
            name: key.to_string(),
            origin: slot.origin.clone(),
            manifest,
            generation: u64::from(loaded.is_ok()),
            loaded,
            failed_update: None,
        };
        *state = Some(entry.clone());
        entry
    }

    fn load_slot(
        &self,
        key: &str,
        origin: &Origin,
    ) -> (Option<Manifest>, Result<Arc<Plugin>, Arc<LoadError>>) {
        let source = match origin {
            Origin::Builtin => PluginSource::builtin(key).expect("a listed built-in"),
            Origin::File(wasm) => {
                let stem = stem(wasm);
                PluginSource::from_path(wasm, None).and_then(|source| {
                    // A built-in is replaced by naming another plugin in
                    // its place (a receiver's `plugin`), never by a file
                    // that takes its name: that would change what a
                    // configuration means without a word in it.
                    let taken = PluginSource::builtin(&stem)
                        .map(|_| stem.as_str())
                        .or_else(|| PluginSource::builtin_alias(&stem));
                    if let Some(builtin) = taken {
                        return Err(LoadError::Incompatible {
                            plugin: stem.clone(),
                            expected: "a name no built-in plugin has".into(),
                            found: format!(
                                "{} takes the name of the built-in `{builtin}`; name the file otherwise and set the receiver's `plugin` to that name",
                                wasm.display()
                            ),
                        });
                    }
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
                    Ok(source)
                })
            }
        };
        let manifest = source.as_ref().ok().map(|s| s.manifest.clone());
        let name = manifest
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let loaded = source
            .and_then(|s| {
                self.runtime
                    .load(s, self.pins.get(&name).map(String::as_str))
            })
            .map(Arc::new)
            .map_err(Arc::new);
        if let Err(err) = &loaded {
            tracing::warn!(plugin = %key, "plugin failed to load: {err}");
        }
        (manifest, loaded)
    }
}

impl Slot {
    fn new(origin: Origin) -> Arc<Slot> {
        Arc::new(Slot {
            origin,
            state: Mutex::new(None),
        })
    }
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
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

/// A plugin folder's built component and manifest (see
/// [`crate::folder`]); an error saying how to build it when it has
/// not been built.
fn folder_build(
    dir: &Path,
    target_dir: Option<&Path>,
) -> Result<(PathBuf, PathBuf), RegistryError> {
    let folder = Folder::detect(dir).map_err(|e| RegistryError::NotAPlugin(e.to_string()))?;
    let built = folder.output(target_dir);
    if !built.wasm.is_file() {
        return Err(RegistryError::NotAPlugin(format!(
            "{} does not exist; build the plugin first: {}",
            built.wasm.display(),
            folder.build_hint()
        )));
    }
    if let Some(source) = folder.newer_source(&built) {
        return Err(RegistryError::NotAPlugin(format!(
            "{} changed after {} was built; rebuild it: {}",
            source.display(),
            built.wasm.display(),
            folder.build_hint()
        )));
    }
    Ok((built.wasm, built.manifest))
}
