//! `gantry plugin inspect`: what a component is, without running it.

use super::error::LoadError;
use super::host::Runtime;
use super::manifest::{Manifest, PluginKind};
use super::source::{PluginSource, Provenance};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

#[derive(Debug, Serialize)]
pub struct Inspection {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    /// The operator's pin (`plugins.pins.NAME`) for this component with its
    /// manifest; none without a manifest.
    pub pin: Option<String>,
    /// The world its exports match, if any.
    pub world: Option<PluginKind>,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub manifest: Option<ManifestSummary>,
    /// The operator's `plugins.grants.NAME`, if any.
    pub operator: Option<super::narrow::OperatorGrant>,
    /// What the plugin gets: the manifest narrowed by the operator.
    pub effective: Option<ManifestSummary>,
    /// Whether it would load, and if not, why.
    pub loads: Result<(), String>,
}

#[derive(Debug, Serialize)]
pub struct ManifestSummary {
    pub path: PathBuf,
    pub name: String,
    pub kind: PluginKind,
    pub version: String,
    /// What it may reach, by capability, as each capability shows it
    /// (`http` and `tcp` lists, `smtp` a flag, `sql` a level or null).
    #[serde(flatten)]
    pub grants: std::collections::BTreeMap<&'static str, serde_json::Value>,
    pub memory_mib: u64,
    pub timeout_ms: u64,
    pub http_requests_per_call: Option<u32>,
    pub http_bytes_per_call: Option<u64>,
    pub settings: Vec<String>,
}

impl From<&Manifest> for ManifestSummary {
    fn from(m: &Manifest) -> Self {
        ManifestSummary {
            path: m.path.clone(),
            name: m.name.clone(),
            kind: m.kind,
            version: m.version.clone(),
            grants: crate::capabilities::summaries(&m.capabilities),
            memory_mib: m.limits.memory_mib,
            timeout_ms: m.limits.timeout_ms,
            http_requests_per_call: m.limits.http_requests_per_call,
            http_bytes_per_call: m.limits.http_bytes_per_call,
            settings: m.settings.keys().cloned().collect(),
        }
    }
}

/// Describes the component at `path` and its manifest (if beside it).
pub fn inspect(
    runtime: &Runtime,
    path: &Path,
    manifest: Option<&Path>,
) -> Result<Inspection, LoadError> {
    let plugin = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        plugin: plugin.clone(),
        path: path.to_path_buf(),
        source,
    })?;
    // Inspecting hashes what it reads: the load's sha256 is computed, not
    // remembered by the file's identity, so both halves describe one file.
    let source = PluginSource::from_path(path, manifest).map(|source| PluginSource {
        provenance: Provenance::Unknown,
        ..source
    });
    inspect_bytes(runtime, path, &plugin, &bytes, source)
}

/// Describes a built-in plugin by name; `None` when there is none.
pub fn inspect_builtin(runtime: &Runtime, name: &str) -> Option<Result<Inspection, LoadError>> {
    let source = match PluginSource::builtin(name)? {
        Ok(source) => source,
        Err(err) => return Some(Err(err)),
    };
    let bytes = source.bytes.clone();
    let path = PathBuf::from(format!("<built-in>/{name}.wasm"));
    Some(inspect_bytes(runtime, &path, name, &bytes, Ok(source)))
}

fn inspect_bytes(
    runtime: &Runtime,
    path: &Path,
    plugin: &str,
    bytes: &[u8],
    source: Result<PluginSource, LoadError>,
) -> Result<Inspection, LoadError> {
    let plugin = plugin.to_string();
    if !wasmparser::Parser::is_component(bytes) {
        return Err(LoadError::Malformed {
            plugin,
            path: path.to_path_buf(),
            detail: "it is not a component (build for wasm32-wasip2)".into(),
        });
    }
    let component = Component::new(runtime.engine(), bytes).map_err(|e| LoadError::Malformed {
        plugin: plugin.clone(),
        path: path.to_path_buf(),
        detail: format!("{e:#}"),
    })?;
    let ty = component.component_type();
    let imports = ty
        .imports(runtime.engine())
        .map(|(n, _)| n.to_string())
        .collect();
    let exports: Vec<String> = ty
        .exports(runtime.engine())
        .map(|(name, item)| match item.ty {
            ComponentItem::ComponentFunc(_) => format!("{name} (func)"),
            ComponentItem::ComponentInstance(_) => format!("{name} (instance)"),
            _ => name.to_string(),
        })
        .collect();
    let world = PluginKind::ALL.into_iter().find(|k| {
        k.exports()
            .iter()
            .all(|w| exports.iter().any(|e| e == &format!("{w} (func)")))
    });

    let sha256 = hex::encode(Sha256::digest(bytes));
    let pin = source.as_ref().ok().map(|s| s.manifest.pin(&sha256));
    let manifest = source
        .as_ref()
        .ok()
        .map(|s| ManifestSummary::from(&s.manifest));
    let operator = manifest
        .as_ref()
        .and_then(|m| runtime.operator_grant(&m.name).cloned());
    let loaded = source.and_then(|s| runtime.load(s, None));
    let effective = loaded
        .as_ref()
        .ok()
        .map(|p| ManifestSummary::from(&p.manifest));
    let loads = loaded.map(|_| ()).map_err(|e| e.to_string());
    Ok(Inspection {
        path: path.to_path_buf(),
        size: bytes.len() as u64,
        sha256,
        pin,
        world,
        imports,
        exports,
        manifest,
        operator,
        effective,
        loads,
    })
}
