//! The plugin runtime: one engine, one linker, the compile cache, and
//! loading a plugin from its source into something callable.
//!
//! Loading checks, in order: integrity (sha256 pins), that the bytes are a
//! component, compilation (through the cache), the contract version and
//! world of its imports and exports, and that this host provides every
//! capability it imports. A plugin that passes is pre-instantiated once;
//! each call then gets a fresh store (see `call.rs`).

use super::cache::{CacheOutcome, CompileCache};
use super::engine::{EngineSettings, EpochTicker, new_engine};
use super::error::LoadError;
use super::manifest::{Manifest, PluginKind};
use super::source::{Origin, PluginSource, Provenance};
use super::state::CallState;
use crate::bindings::{self, config_validator, health_check, migration, notifier};
use crate::capabilities;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};

/// Operator settings for the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    pub engine: EngineSettings,
    /// Compile cache directory; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    pub cache_max_bytes: u64,
    /// Each capability's operator limits.
    pub capabilities: capabilities::Limits,
    /// Bytes of stdout and of stderr kept per call.
    pub output_capacity: usize,
    /// The operator's narrower grants (`plugins.grants.NAME`).
    pub grants: std::collections::BTreeMap<String, super::narrow::OperatorGrant>,
    /// The operator's pins (`plugins.pins.NAME`), for loads that do not go
    /// through a registry (migration steps).
    pub pins: std::collections::BTreeMap<String, String>,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            engine: EngineSettings::default(),
            cache_dir: None,
            cache_max_bytes: 256 << 20,
            capabilities: capabilities::Limits::default(),
            output_capacity: 64 << 10,
            grants: Default::default(),
            pins: Default::default(),
        }
    }
}

pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<CallState>,
    cache: CompileCache,
    pub(crate) caps: capabilities::Shared,
    io_handle: tokio::runtime::Handle,
    /// Calls and failures by plugin, for `/metrics`.
    pub(crate) stats: std::sync::Mutex<std::collections::BTreeMap<String, (u64, u64)>>,
    pub(crate) settings: RuntimeSettings,
    // Dropped in declaration order: the ticker stops before the I/O threads.
    _ticker: EpochTicker,
    io: Option<tokio::runtime::Runtime>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(io) = self.io.take() {
            io.shutdown_background();
        }
    }
}

/// The pre-instantiated exports of a loaded plugin, by world.
pub(crate) enum WorldPre {
    HealthCheck(health_check::HealthCheckPre<CallState>),
    Notifier(notifier::NotifierPre<CallState>),
    ConfigValidator(config_validator::ConfigValidatorPre<CallState>),
    Migration(migration::MigrationPre<CallState>),
}

/// A loaded plugin, ready to be called any number of times.
pub struct Plugin {
    pub manifest: Manifest,
    pub sha256: String,
    /// What an operator pins (`plugins.pins.NAME`): component and manifest.
    pub pin: String,
    pub origin: Origin,
    pub cache: CacheOutcome,
    pub load_time: Duration,
    /// Every interface the component imports, e.g. `gantry:plugin/http@0.2.0`.
    pub imports: Vec<String>,
    pub(crate) pre: WorldPre,
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    pub fn kind(&self) -> PluginKind {
        self.manifest.kind
    }
}

impl Runtime {
    /// A runtime whose host I/O (HTTP, TCP) runs on the tokio runtime this
    /// is called from — the process's one runtime — or, called outside any
    /// (a library user, a benchmark), on two threads of its own.
    pub fn new(settings: RuntimeSettings) -> anyhow::Result<Runtime> {
        let engine = new_engine(&settings.engine)?;
        let (handle, io) = match tokio::runtime::Handle::try_current() {
            Ok(handle) => (handle, None),
            Err(_) => {
                let io = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("gantry-plugin-io")
                    .enable_all()
                    .build()?;
                (io.handle().clone(), Some(io))
            }
        };
        let caps = capabilities::Shared::new(&settings.capabilities, &handle)?;
        let cache = CompileCache::new(
            &engine,
            settings.cache_dir.clone(),
            settings.cache_max_bytes,
        );
        let linker = new_linker(&engine)?;
        let ticker = EpochTicker::start(&engine)?;
        Ok(Runtime {
            engine,
            linker,
            cache,
            caps,
            io_handle: handle,
            stats: Default::default(),
            settings,
            _ticker: ticker,
            io,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// (plugin, calls, failures) since this runtime started.
    pub fn plugin_stats(&self) -> Vec<(String, u64, u64)> {
        self.stats
            .lock()
            .expect("stats")
            .iter()
            .map(|(name, (calls, failures))| (name.clone(), *calls, *failures))
            .collect()
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &RuntimeSettings {
        &self.settings
    }

    /// Checks, before any call, that each URL `plugin` takes from
    /// `settings` as its destination is one its calls may reach (see
    /// `capabilities::http::check_destinations`); (setting, why) if not.
    pub fn check_destinations(
        &self,
        plugin: &Plugin,
        settings: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), (String, String)> {
        capabilities::http::check_destinations(
            &self.settings.capabilities.http,
            plugin.name(),
            &plugin.manifest.capabilities,
            settings,
        )
    }

    /// The operator's `plugins.grants.NAME` for a plugin, if any.
    pub fn operator_grant(&self, name: &str) -> Option<&super::narrow::OperatorGrant> {
        self.settings.grants.get(name)
    }

    pub fn cache_dir(&self) -> Option<&std::path::Path> {
        self.cache.dir()
    }

    pub(crate) fn io(&self) -> &tokio::runtime::Handle {
        &self.io_handle
    }

    /// Loads a plugin. `pin` is the operator's sha256 pin, if any.
    pub fn load(&self, source: PluginSource, pin: Option<&str>) -> Result<Plugin, LoadError> {
        let started = Instant::now();
        let PluginSource {
            origin,
            bytes,
            manifest,
            provenance,
        } = source;
        let name = manifest.name.clone();
        let path = match &origin {
            Origin::Builtin => PathBuf::from(format!("<built-in>/{name}.wasm")),
            Origin::File(path) => path.clone(),
        };

        // A built-in's sha256 came with this binary. A file the cache
        // remembers, unchanged, is not hashed again: its sha256 picks its
        // compiled entry, and the pins hold against it.
        let (sha256, remembered) = match (&origin, &provenance) {
            (Origin::Builtin, Provenance::Builtin(sha256)) => (sha256.to_string(), None),
            (Origin::File(path), Provenance::File(stamp)) => {
                self.cache
                    .identify(&self.engine, &bytes, Some((path.as_path(), stamp)))
            }
            _ => self.cache.identify(&self.engine, &bytes, None),
        };
        let plugin_pin = manifest.pin(&sha256);
        for (what, expected, actual) in [
            (
                "the manifest's sha256 (of the component)",
                manifest.sha256.as_deref(),
                &sha256,
            ),
            (
                "the operator's pin (plugins.pins: component and manifest, as `gantry plugin inspect` prints)",
                pin,
                &plugin_pin,
            ),
        ] {
            if let Some(expected) = expected
                && !expected.eq_ignore_ascii_case(actual)
            {
                return Err(LoadError::Integrity {
                    plugin: name,
                    what,
                    expected: expected.to_ascii_lowercase(),
                    actual: actual.clone(),
                });
            }
        }

        if !wasmparser::Parser::is_component(&bytes) {
            let detail = if wasmparser::Parser::is_core_wasm(&bytes) {
                "it is a core wasm module; build it for wasm32-wasip2 to get a component"
                    .to_string()
            } else {
                "it does not start with the WebAssembly component header".to_string()
            };
            return Err(LoadError::Malformed {
                plugin: name,
                path,
                detail,
            });
        }
        let (component, cache) = match remembered {
            Some(component) => (component, CacheOutcome::Hit),
            None => self
                .cache
                .load(&self.engine, &bytes, &sha256)
                .map_err(|e| LoadError::Malformed {
                    plugin: name.clone(),
                    path: path.clone(),
                    detail: format!("{e:#}"),
                })?,
        };

        let imports = self.check_imports(&manifest, &component)?;
        self.check_exports(&manifest, &component)?;
        let mut manifest = manifest;
        if let Some(operator) = self.settings.grants.get(&name) {
            let (grants, limits) =
                super::narrow::narrow(&manifest, operator).map_err(|w| LoadError::Narrowing {
                    plugin: name.clone(),
                    key: w.key,
                    why: w.why,
                })?;
            manifest.capabilities = grants;
            manifest.limits = limits;
        }
        self.check_http_budget(&manifest)?;
        let instance_pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| LoadError::Incompatible {
                    plugin: name.clone(),
                    expected: format!("imports that match {}", bindings::CONTRACT),
                    found: format!("{e:#}"),
                })?;
        let incompatible = |e: wasmtime::Error| LoadError::Incompatible {
            plugin: name.clone(),
            expected: format!("the {} world of {}", manifest.kind, bindings::CONTRACT),
            found: format!("{e:#}"),
        };
        let pre = match manifest.kind {
            PluginKind::HealthCheck => WorldPre::HealthCheck(
                health_check::HealthCheckPre::new(instance_pre).map_err(incompatible)?,
            ),
            PluginKind::Notifier => {
                WorldPre::Notifier(notifier::NotifierPre::new(instance_pre).map_err(incompatible)?)
            }
            PluginKind::ConfigValidator => WorldPre::ConfigValidator(
                config_validator::ConfigValidatorPre::new(instance_pre).map_err(incompatible)?,
            ),
            PluginKind::Migration => WorldPre::Migration(
                migration::MigrationPre::new(instance_pre).map_err(incompatible)?,
            ),
        };
        if manifest.limits.memory_mib << 20 > self.settings.engine.max_memory_bytes as u64 {
            return Err(LoadError::Incompatible {
                plugin: name,
                expected: format!(
                    "at most {} MiB of memory (the operator's limit)",
                    self.settings.engine.max_memory_bytes >> 20
                ),
                found: format!("limits.memory_mib = {}", manifest.limits.memory_mib),
            });
        }

        Ok(Plugin {
            manifest,
            sha256,
            pin: plugin_pin,
            origin,
            cache,
            load_time: started.elapsed(),
            imports,
            pre,
        })
    }

    /// A manifest's HTTP budget may be at most the operator's limit.
    fn check_http_budget(&self, manifest: &Manifest) -> Result<(), LoadError> {
        let operator = &self.settings.capabilities.http;
        let over = |key: &str, asked: u64, limit: u64| LoadError::Incompatible {
            plugin: manifest.name.clone(),
            expected: format!(
                "at most {limit} (the operator's plugins.capabilities.http.max_{key})"
            ),
            found: format!("limits.http_{key} = {asked}"),
        };
        if let Some(n) = manifest.limits.http_requests_per_call
            && n > operator.max_requests_per_call
        {
            return Err(over(
                "requests_per_call",
                n.into(),
                operator.max_requests_per_call.into(),
            ));
        }
        if let Some(n) = manifest.limits.http_bytes_per_call
            && n > operator.max_bytes_per_call
        {
            return Err(over("bytes_per_call", n, operator.max_bytes_per_call));
        }
        Ok(())
    }

    /// Every import must be WASI or an interface of this contract that the
    /// plugin's world may import and this host provides.
    fn check_imports(
        &self,
        manifest: &Manifest,
        component: &Component,
    ) -> Result<Vec<String>, LoadError> {
        let ty = component.component_type();
        let mut names = Vec::new();
        for (import, _) in ty.imports(&self.engine) {
            names.push(import.to_string());
            if import.starts_with("wasi:") {
                continue;
            }
            let Some(rest) = import.strip_prefix("gantry:plugin/") else {
                return Err(LoadError::CapabilityUnavailable {
                    plugin: manifest.name.clone(),
                    interface: import.to_string(),
                    why: "gantry provides only gantry:plugin and WASI interfaces".into(),
                });
            };
            let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
            if format!("gantry:plugin@{version}") != bindings::CONTRACT {
                return Err(LoadError::Incompatible {
                    plugin: manifest.name.clone(),
                    expected: bindings::CONTRACT.into(),
                    found: format!("gantry:plugin@{version} (from import `{import}`)"),
                });
            }
            if !capabilities::imports_of(manifest.kind).contains(&interface) {
                return Err(LoadError::Incompatible {
                    plugin: manifest.name.clone(),
                    expected: format!(
                        "a {} plugin, which may import {}",
                        manifest.kind,
                        capabilities::imports_of(manifest.kind).join(", ")
                    ),
                    found: format!("an import of `{interface}`"),
                });
            }
            match capabilities::granted(interface, &manifest.capabilities) {
                Some(true) => {}
                // Linked; each call answers that it is not granted.
                Some(false) if manifest.capabilities.refused(interface) => {}
                Some(false) => {
                    return Err(LoadError::Denied {
                        plugin: manifest.name.clone(),
                        interface: import.to_string(),
                        manifest_entry: format!(
                            "`{interface} = true` under [capabilities] in {} (or `{interface} = false` if it never calls it: it then loads and each call is refused)",
                            manifest.path.display()
                        ),
                    });
                }
                None => {
                    // In the contract (the world allows it), not provided here.
                    let granted = manifest.capabilities.flag(interface)
                        || !manifest.capabilities.list(interface).is_empty();
                    if !granted {
                        return Err(LoadError::Denied {
                            plugin: manifest.name.clone(),
                            interface: import.to_string(),
                            manifest_entry: format!(
                                "`{interface} = true` under [capabilities] in {}",
                                manifest.path.display()
                            ),
                        });
                    }
                    return Err(LoadError::CapabilityUnavailable {
                        plugin: manifest.name.clone(),
                        interface: import.to_string(),
                        why: format!(
                            "the {interface} capability is not available in this gantry host yet"
                        ),
                    });
                }
            }
        }
        Ok(names)
    }

    /// The component must export what its manifest's kind promises.
    fn check_exports(&self, manifest: &Manifest, component: &Component) -> Result<(), LoadError> {
        let ty = component.component_type();
        let exported: Vec<String> = ty
            .exports(&self.engine)
            .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
            .map(|(name, _)| name.to_string())
            .collect();
        let wanted = manifest.kind.exports();
        if wanted.iter().all(|w| exported.iter().any(|e| e == w)) {
            return Ok(());
        }
        let found = PluginKind::ALL
            .into_iter()
            .find(|k| k.exports().iter().all(|w| exported.iter().any(|e| e == w)))
            .map(|k| format!("a {k} component (exports {})", k.exports().join(", ")))
            .unwrap_or_else(|| format!("a component that exports [{}]", exported.join(", ")));
        Err(LoadError::Incompatible {
            plugin: manifest.name.clone(),
            expected: format!(
                "a {} component (kind in {}; exports {})",
                manifest.kind,
                manifest.path.display(),
                wanted.join(", ")
            ),
            found,
        })
    }
}

fn new_linker(engine: &Engine) -> anyhow::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    super::deadline::add_to_linker(&mut linker)?;
    capabilities::add_to_linker(&mut linker)?;
    Ok(linker)
}
