//! Validating rendered files before anything is written: a JSON Schema per
//! file where one exists (the operator's `<stem>.schema.json` in the
//! schemas directory, else a built-in one for `auth` and `extensions`),
//! then every configured config-validator plugin. Messages are scrubbed of
//! secret values before they leave this module.

use super::error::{ConfigError, Finding, Severity};
use super::render::{Origin, Rendered, scrub};
use crate::bindings::types::FindingSeverity;
use crate::runtime::{Plugin, Runtime};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const AUTH_SCHEMA: &str = include_str!("schemas/auth.schema.json");
const EXTENSIONS_SCHEMA: &str = include_str!("schemas/extensions.schema.json");

/// The built-in schema for a file name, by stem.
pub fn builtin_schema(name: &str) -> Option<&'static str> {
    match Path::new(name).file_stem()?.to_str()? {
        "auth" => Some(AUTH_SCHEMA),
        "extensions" => Some(EXTENSIONS_SCHEMA),
        _ => None,
    }
}

pub struct Validators {
    pub schemas_dir: Option<PathBuf>,
    /// Config-validator plugins, with the runtime they run in; `None`
    /// when there are none (no runtime is built then).
    pub plugins: Option<PluginValidators>,
}

pub struct PluginValidators {
    pub runtime: Arc<Runtime>,
    pub plugins: Vec<Arc<Plugin>>,
}

impl Validators {
    /// The validators the deployment config names (`config_deploy`):
    /// its schemas directory and config-validator plugins from `registry`.
    /// `Err` names a plugin that is unknown or of another kind.
    pub fn from_settings(
        settings: &crate::settings::Settings,
        registry: Option<&crate::runtime::Registry>,
    ) -> Result<Validators, anyhow::Error> {
        let config = &settings.config.config.config_deploy;
        let plugins = match registry {
            Some(registry) if !config.validators.is_empty() => {
                let mut plugins = Vec::new();
                for name in &config.validators {
                    let plugin = registry.plugin(name)?;
                    if plugin.kind() != crate::runtime::PluginKind::ConfigValidator {
                        anyhow::bail!(
                            "`config_deploy.validators` names `{name}`, a {} plugin; it must be a config-validator",
                            plugin.kind()
                        );
                    }
                    plugins.push(plugin);
                }
                Some(PluginValidators {
                    runtime: Arc::clone(registry.runtime()),
                    plugins,
                })
            }
            _ => None,
        };
        Ok(Validators {
            schemas_dir: config
                .schemas_dir
                .as_ref()
                .map(|d| settings.resolve_path(d)),
            plugins,
        })
    }

    /// Every finding for every file; `Err` only when a validator itself
    /// cannot run.
    pub fn run(&self, files: &[Rendered], environment: &str) -> Result<Vec<Finding>, ConfigError> {
        let mut findings = Vec::new();
        for file in files {
            findings.extend(self.schema_findings(file)?);
            if let Some(PluginValidators { runtime, plugins }) = &self.plugins {
                for plugin in plugins {
                    findings.extend(plugin_findings(runtime, plugin, file, environment)?);
                }
            }
        }
        Ok(findings)
    }

    fn schema_findings(&self, file: &Rendered) -> Result<Vec<Finding>, ConfigError> {
        let stem = Path::new(&file.name)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let operator = self
            .schemas_dir
            .as_ref()
            .map(|dir| dir.join(format!("{stem}.schema.json")))
            .filter(|p| p.is_file());
        let (text, origin) = match &operator {
            Some(path) => (
                std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                    path: path.clone(),
                    source: e,
                })?,
                path.display().to_string(),
            ),
            None => match builtin_schema(&file.name) {
                Some(text) => (text.to_string(), format!("built-in {stem} schema")),
                None => return Ok(Vec::new()),
            },
        };
        let schema: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ConfigError::Syntax {
                path: PathBuf::from(&origin),
                line_col: Some((e.line(), e.column())),
                message: e.to_string(),
            })?;
        let validator = jsonschema::validator_for(&schema).map_err(|e| ConfigError::Syntax {
            path: PathBuf::from(&origin),
            line_col: None,
            message: format!("not a usable JSON Schema: {e}"),
        })?;
        Ok(validator
            .iter_errors(&file.value)
            .map(|error| Finding {
                file: file.name.clone(),
                path: error.instance_path().to_string(),
                severity: Severity::Error,
                message: scrub(&error.to_string(), &file.secret_values),
                source: "schema".into(),
            })
            .collect())
    }
}

fn plugin_findings(
    runtime: &Runtime,
    plugin: &Plugin,
    file: &Rendered,
    environment: &str,
) -> Result<Vec<Finding>, ConfigError> {
    let failed = |err: crate::runtime::PluginError| ConfigError::Validator {
        plugin: plugin.name().to_string(),
        message: scrub(&err.to_string(), &file.secret_values),
        failed: !err.is_usage(),
    };
    let settings = plugin
        .settings(Vec::<(String, String)>::new())
        .map_err(failed)?;
    let json = file.value.to_string();
    use crate::bindings::provenance::Origin as Wit;
    let origins = file
        .origins
        .iter()
        .map(|(pointer, origin)| {
            let origin = match origin {
                Origin::BaseFile => Wit::BaseFile,
                Origin::Environment => Wit::Environment,
                Origin::OverlayFile => Wit::OverlayFile,
                Origin::Encrypted => Wit::Encrypted,
                Origin::Reference => Wit::Reference,
            };
            (pointer.clone(), origin)
        })
        .collect();
    let options = crate::runtime::CallOptions {
        secrets: file.secret_values.clone(),
        origins: Some(Arc::new(origins)),
        ..Default::default()
    };
    let outcome =
        runtime.validate_with(plugin, &settings, environment, &file.name, &json, &options);
    let found = outcome.result.map_err(failed)?;
    Ok(found
        .into_iter()
        .map(|f| Finding {
            file: file.name.clone(),
            path: f.path,
            severity: match f.severity {
                FindingSeverity::Error => Severity::Error,
                FindingSeverity::Warning => Severity::Warning,
                FindingSeverity::Info => Severity::Info,
            },
            message: scrub(&f.message, &file.secret_values),
            source: plugin.name().to_string(),
        })
        .collect())
}
