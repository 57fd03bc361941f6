//! Finding and reading the deployment config, with errors that name the
//! file, the line and column, and the key path at fault.

use super::model::DeploymentConfig;
use std::fmt;
use std::path::{Path, PathBuf};

/// The config as read, and where from (`None`: built-in defaults).
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: DeploymentConfig,
    pub path: Option<PathBuf>,
}

impl LoadedConfig {
    /// The config's file name for messages, or `the built-in defaults`.
    pub fn name(&self) -> String {
        self.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the built-in defaults".into())
    }

    /// Resolves a path from the config relative to the config file's
    /// directory (or the working directory for built-in defaults).
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            return path.to_path_buf();
        }
        match self.path.as_deref().and_then(Path::parent) {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line_col: Option<(usize, usize)>,
    /// Dotted key path, e.g. `monitoring.email_alerts.smtp_port`.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some((line, col)) = self.line_col {
            write!(f, ":{line}:{col}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The config file to use: `explicit`, else `./deployment_config.json` or
/// `./deployment_config.toml` when one exists, else none (defaults).
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    ["deployment_config.json", "deployment_config.toml"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Reads the config at `path`, or built-in defaults when `path` is `None`.
pub fn load(path: Option<&Path>) -> Result<LoadedConfig, ConfigError> {
    let Some(path) = path else {
        return Ok(LoadedConfig {
            config: DeploymentConfig::default(),
            path: None,
        });
    };
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        line_col: None,
        key: None,
        message: format!("cannot read the config: {e}"),
    })?;
    let config = if path.extension().is_some_and(|x| x == "toml") {
        parse_toml(&text, path)?
    } else {
        parse_json(&text, path)?
    };
    Ok(LoadedConfig {
        config,
        path: Some(path.to_path_buf()),
    })
}

fn parse_json(text: &str, path: &Path) -> Result<DeploymentConfig, ConfigError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let result: Result<DeploymentConfig, _> = serde_path_to_error::deserialize(&mut de);
    let err = match result {
        Ok(config) => return Ok(config),
        Err(err) => err,
    };
    let key = key_of(err.path());
    let inner = err.into_inner();
    Err(ConfigError {
        path: path.to_path_buf(),
        line_col: (inner.line() > 0).then(|| (inner.line(), inner.column())),
        key,
        message: strip_position(&inner.to_string()),
    })
}

fn parse_toml(text: &str, path: &Path) -> Result<DeploymentConfig, ConfigError> {
    let de = toml::Deserializer::parse(text).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        line_col: e.span().map(|s| crate::position::line_col(text, s.start)),
        key: None,
        message: e.message().trim_end().to_string(),
    })?;
    let result: Result<DeploymentConfig, _> = serde_path_to_error::deserialize(de);
    result.map_err(|err| {
        let key = key_of(err.path());
        let inner = err.into_inner();
        ConfigError {
            path: path.to_path_buf(),
            line_col: inner
                .span()
                .map(|s| crate::position::line_col(text, s.start)),
            key,
            message: inner.message().trim_end().to_string(),
        }
    })
}

fn key_of(path: &serde_path_to_error::Path) -> Option<String> {
    let text = path.to_string();
    (text != "." && !text.is_empty()).then_some(text)
}

/// serde_json appends " at line L column C"; we print that ourselves.
pub(crate) fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Result<DeploymentConfig, ConfigError> {
        parse_json(text, Path::new("deployment_config.json"))
    }

    #[test]
    fn the_spec_example_parses() {
        let config = json(
            r#"{
  "database": {"host": "localhost", "port": 5432, "user": "postgres", "password": "your_password", "database": "kari"},
  "monitoring": {
    "enabled": true, "success_rate_threshold": 0.95, "response_time_threshold_ms": 1000,
    "error_rate_threshold": 0.05,
    "email_alerts": {"enabled": true, "smtp_host": "smtp.gmail.com", "smtp_port": 587,
      "from_address": "alerts@example.com", "to_addresses": ["admin@example.com"]}
  },
  "environments": {
    "development": {"jwt_secret_key": "dev-secret-key", "token_expiry_minutes": 1440, "rate_limiting_enabled": false},
    "production": {"jwt_secret_key": "secure-production-key", "token_expiry_minutes": 60, "rate_limiting_enabled": true}
  }
}"#,
        )
        .unwrap();
        assert_eq!(config.database.unwrap().database.as_deref(), Some("kari"));
        assert_eq!(config.environments.len(), 2);
    }

    #[test]
    fn an_unknown_key_names_its_path_line_and_column() {
        let err =
            json("{\n  \"monitoring\": {\n    \"email_alerts\": {\"smtp_hots\": \"x\"}\n  }\n}")
                .unwrap_err();
        assert_eq!(
            err.key.as_deref(),
            Some("monitoring.email_alerts.smtp_hots"),
            "{err}"
        );
        assert_eq!(err.line_col.map(|(l, _)| l), Some(3), "{err}");
        assert!(
            err.to_string().starts_with("deployment_config.json:3:"),
            "{err}"
        );
    }

    #[test]
    fn an_environment_is_values_or_an_overlay_file() {
        let config = json(r#"{"environments": {"a": {"x": 1}, "b": "env/b.sops.yaml"}}"#).unwrap();
        assert_eq!(
            config.environments["b"],
            crate::config::Environment::File("env/b.sops.yaml".into())
        );
        for wrong in ["5", "\"\"", "[]"] {
            let err = json(&format!("{{\"environments\": {{\"b\": {wrong}}}}}")).unwrap_err();
            assert_eq!(err.key.as_deref(), Some("environments.b"), "{err}");
            assert!(err.to_string().contains("overlay file"), "{err}");
        }
    }

    #[test]
    fn a_wrong_type_names_its_key() {
        let err = json("{\"database\": {\"port\": \"fifty\"}}").unwrap_err();
        assert_eq!(err.key.as_deref(), Some("database.port"), "{err}");
    }

    #[test]
    fn toml_is_accepted_and_checked_too() {
        let ok = parse_toml(
            "config_dir = \"conf\"\n[plugins]\ndir = \"p\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(ok.config_dir, PathBuf::from("conf"));
        let err = parse_toml("[plugins]\ndri = \"p\"\n", Path::new("c.toml")).unwrap_err();
        assert_eq!(err.line_col.map(|(l, _)| l), Some(2), "{err}");
    }
}
