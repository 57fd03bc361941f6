//! A service as configured, and its revisions. A revision is what an
//! instance runs: the command, the environment (secrets as references),
//! the version label and the checksums of the config files the service
//! reads. Its id is a hash of that, so the same configuration is the same
//! revision wherever and whenever it is computed.

use super::error::RolloutError;
use crate::config::ServiceConfig;
use crate::store::RevisionRecord;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A service and where its relative paths resolve.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub name: String,
    pub config: ServiceConfig,
    /// The deployment config's directory: commands, working directories
    /// and `${file:…}` references resolve from here.
    pub base_dir: PathBuf,
    /// Where the service's deployed config files are.
    pub config_dir: PathBuf,
    /// Where supervised instances' logs go.
    pub log_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionSpec {
    pub command: Vec<String>,
    /// Values as configured: `${env:…}` references stay references.
    pub env: BTreeMap<String, String>,
    pub version: Option<String>,
    /// sha256 of each config file the service reads (`None`: absent).
    pub config_files: BTreeMap<String, Option<String>>,
    pub working_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub id: String,
    /// The version label, else `r-` and the id's first characters.
    pub label: String,
    pub spec: RevisionSpec,
}

impl Revision {
    /// The revision the service's configuration describes now.
    pub fn current(service: &ServiceSpec) -> Result<Revision, RolloutError> {
        let mut config_files = BTreeMap::new();
        for name in &service.config.config_files {
            let path = service.config_dir.join(name);
            let sum = match std::fs::read(&path) {
                Ok(bytes) => Some(hex::encode(Sha256::digest(&bytes))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(RolloutError::Io {
                        action: format!("read {}", path.display()),
                        source: e,
                    });
                }
            };
            config_files.insert(name.clone(), sum);
        }
        let spec = RevisionSpec {
            command: service.config.command.clone(),
            env: service.config.env.clone(),
            version: service.config.version.clone(),
            config_files,
            working_dir: service.config.working_dir.clone(),
        };
        Ok(Revision::of(spec))
    }

    pub fn of(spec: RevisionSpec) -> Revision {
        let json = serde_json::to_vec(&spec).expect("serialisable");
        let id = hex::encode(Sha256::digest(&json))[..12].to_string();
        let label = spec
            .version
            .clone()
            .unwrap_or_else(|| format!("r-{}", &id[..7]));
        Revision { id, label, spec }
    }

    pub fn record(&self, service: &str, now_ms: i64) -> RevisionRecord {
        RevisionRecord {
            service: service.to_string(),
            id: self.id.clone(),
            label: self.label.clone(),
            spec: serde_json::to_string(&self.spec).expect("serialisable"),
            created_ms: now_ms,
        }
    }

    pub fn from_record(record: &RevisionRecord) -> Result<Revision, RolloutError> {
        let spec: RevisionSpec =
            serde_json::from_str(&record.spec).map_err(|e| RolloutError::Corrupt {
                what: format!("revision {} of {}", record.id, record.service),
                detail: e.to_string(),
            })?;
        Ok(Revision {
            id: record.id.clone(),
            label: record.label.clone(),
            spec,
        })
    }

    /// Config files whose content differs from what this revision ran with.
    pub fn config_drift(&self, config_dir: &Path) -> Vec<String> {
        self.spec
            .config_files
            .iter()
            .filter(|(name, sum)| {
                let now = std::fs::read(config_dir.join(name))
                    .ok()
                    .map(|b| hex::encode(Sha256::digest(&b)));
                &now != *sum
            })
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// Fills `{key}` placeholders from `values`; unknown keys stay as written.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (key, value) in values {
        out = out.replace(&format!("{{{key}}}"), value);
    }
    out
}

/// A revision id as people read it: its first seven characters.
pub fn short_id(id: &str) -> &str {
    id.get(..7).unwrap_or(id)
}
