//! `ConfigDeployer`: render → validate → (dry run: diff) → take the
//! directory (lock + lease) → diff under it → backup → record the change →
//! write every file atomically → record the end → prune old backups.
//!
//! The set of changed files is computed only once the directory is ours,
//! so two deploys at once end as one whole or the other. Every step that
//! counts is in the state store before the next begins, so an interrupted
//! change can be explained (`history`) and undone (`rollback`).

use super::backup;
use super::diff::{FileChange, FileDiff, diff_for};
use super::error::{ConfigError, Finding, Severity};
use super::events::Event;
use super::guard::DirGuard;
use super::overlay::Overlay;
use super::paths;
use super::render::{self, Base, Rendered};
use super::validate::Validators;
use super::write::{self, Planned};
use crate::config::Environment;
use crate::events::{Sink, discard};
use crate::store::InstallationKey;
use crate::store::{BackupRecord, ChangeFile, ChangeKind, ChangeRecord, ChangeState, Store};
use chrono::Utc;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct DeployerSettings {
    pub config_dir: PathBuf,
    pub backup_dir: PathBuf,
    pub max_backups: u32,
    /// `environments`, overlay files' paths made absolute.
    pub environments: BTreeMap<String, Environment>,
    /// Values merged over every environment's (the deployment's own).
    pub extra: Map<String, Value>,
    /// Where `${file:…}` references are relative to.
    pub secrets_base: PathBuf,
    pub lock_timeout: Duration,
    pub actor: String,
    /// This host's name: recorded with every backup and change.
    pub host: String,
    /// Life of the directory's lease between heartbeats.
    pub lease_ttl: Duration,
    /// `secrets.age_identity`, a reference (opens SOPS files).
    pub age_identity: Option<String>,
}

impl DeployerSettings {
    /// From the resolved settings; `config_dir` overrides the config's.
    pub fn from_settings(
        settings: &crate::settings::Settings,
        config_dir: Option<&std::path::Path>,
    ) -> DeployerSettings {
        let config = &settings.config.config;
        let config_dir = match config_dir {
            Some(d) => d.to_path_buf(),
            None => settings.resolve_path(&config.config_dir),
        };
        DeployerSettings {
            config_dir: std::path::absolute(&config_dir).unwrap_or(config_dir),
            backup_dir: settings.backup_dir(),
            max_backups: config.deployment.max_backups,
            environments: config
                .environments
                .keys()
                .filter_map(|name| Some((name.clone(), settings.environment(name)?)))
                .collect(),
            extra: Map::new(),
            secrets_base: settings.secrets_base(),
            lock_timeout: Duration::from_secs(config.config_deploy.lock_timeout_seconds),
            actor: settings.actor.clone(),
            host: settings.host.clone(),
            lease_ttl: settings.lease_ttl,
            age_identity: config.secrets.age_identity.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub environment: String,
    pub dry_run: bool,
    pub files: Vec<FileDiff>,
    pub findings: Vec<Finding>,
    pub backup_id: Option<String>,
    pub change_id: Option<i64>,
}

pub struct ConfigDeployer {
    settings: DeployerSettings,
    validators: Arc<Validators>,
    store: Store,
    pub(super) sink: Sink<Event>,
}

impl ConfigDeployer {
    pub fn new(settings: DeployerSettings, validators: Validators, store: Store) -> Self {
        ConfigDeployer {
            settings,
            validators: Arc::new(validators),
            store,
            sink: discard(),
        }
    }

    /// Receives every event the deployer emits.
    pub fn with_sink(mut self, sink: Sink<Event>) -> Self {
        self.sink = sink;
        self
    }

    pub fn settings(&self) -> &DeployerSettings {
        &self.settings
    }

    /// The age identities that open SOPS files: the environment's, and
    /// `secrets.age_identity` resolved.
    fn sops_identities(&self) -> Result<super::sops::Identities, super::sops::SopsError> {
        super::sops::Identities::for_config(
            self.settings.age_identity.as_deref(),
            &self.settings.secrets_base,
        )
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub(super) fn emit(&self, event: Event) {
        (self.sink)(&event);
    }

    /// The environment's values (its overlay file read and, when SOPS
    /// wrote it, decrypted), with the deployment's own on top.
    fn overlay(&self, environment: &str) -> Result<Overlay, ConfigError> {
        if self.settings.environments.is_empty() {
            return Ok(Overlay::extra(self.settings.extra.clone()));
        }
        let source = self.settings.environments.get(environment).ok_or_else(|| {
            ConfigError::UnknownEnvironment {
                env: environment.to_string(),
                known: self
                    .settings
                    .environments
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        })?;
        let mut overlay = Overlay::load(environment, source, &|| self.sops_identities())?;
        overlay.extend(self.settings.extra.clone());
        Ok(overlay)
    }

    /// Renders and validates; writes nothing. `Err(Invalid)` when any
    /// finding is an error. Validator plugins run on a blocking thread.
    pub async fn render(
        &self,
        sources: &[PathBuf],
        environment: &str,
    ) -> Result<(Vec<Rendered>, Vec<Finding>), ConfigError> {
        let overlay = self.overlay(environment)?;
        let identities = || self.sops_identities();
        let bases: Vec<Base> = sources
            .iter()
            .map(|s| render::read_base(s, &identities))
            .collect::<Result<_, _>>()?;
        let mut seen = std::collections::HashSet::new();
        for base in &bases {
            if !seen.insert(base.name.clone()) {
                return Err(ConfigError::DuplicateName {
                    name: base.name.clone(),
                });
            }
            paths::target(&self.settings.config_dir, &base.name)?;
        }
        let rendered = render::render_all(&bases, &overlay, &self.settings.secrets_base)?;
        let ours: Vec<Finding> = bases.iter().flat_map(render::secret_findings).collect();
        let validators = Arc::clone(&self.validators);
        let (env, files) = (environment.to_string(), rendered.clone());
        let findings = tokio::task::spawn_blocking(move || validators.run(&files, &env))
            .await
            .map_err(|e| ConfigError::Validator {
                plugin: "(validators)".into(),
                message: e.to_string(),
                failed: true,
            })??;
        let findings: Vec<Finding> = ours.into_iter().chain(findings).collect();
        if findings.iter().any(|f| f.severity == Severity::Error) {
            return Err(ConfigError::Invalid(findings));
        }
        self.emit(Event::Rendered {
            environment: environment.to_string(),
            files: rendered.iter().map(|r| r.name.clone()).collect(),
            findings: findings.len(),
        });
        Ok((rendered, findings))
    }

    pub async fn deploy(
        &self,
        sources: &[PathBuf],
        environment: &str,
        dry_run: bool,
    ) -> Result<DeployReport, ConfigError> {
        let (rendered, findings) = self.render(sources, environment).await?;
        let config_dir = &self.settings.config_dir;
        let mut report = DeployReport {
            environment: environment.to_string(),
            dry_run,
            files: Vec::new(),
            findings,
            backup_id: None,
            change_id: None,
        };
        if dry_run {
            report.files = rendered.iter().map(|r| diff_for(config_dir, r)).collect();
            return Ok(report);
        }
        let guard = self.take_dir().await?;
        let result = async {
            // Under the lock: what differs now, not before another deploy.
            report.files = rendered.iter().map(|r| diff_for(config_dir, r)).collect();
            let plans: Vec<Planned> = rendered
                .iter()
                .zip(&report.files)
                .filter(|(_, d)| d.change != FileChange::Unchanged)
                .map(|(r, _)| Planned {
                    name: r.name.clone(),
                    contents: Some(r.text.clone().into_bytes()),
                    mode: if r.holds_secrets() { 0o600 } else { 0o644 },
                })
                .collect();
            self.emit(Event::Locked {
                config_dir: config_dir.display().to_string(),
                changed: plans.iter().map(|p| p.name.clone()).collect(),
            });
            if plans.is_empty() {
                self.settle_interrupted(&guard).await?;
                return Ok(());
            }
            let (backup_id, change_id) = self
                .apply_change(&guard, ChangeKind::Deploy, environment, None, &plans)
                .await?;
            report.backup_id = Some(backup_id);
            report.change_id = Some(change_id);
            Ok::<_, ConfigError>(())
        }
        .await;
        guard.release().await;
        result.map(|()| report)
    }

    /// Creates the config directory if needed and takes it (lock + lease).
    pub(super) async fn take_dir(&self) -> Result<DirGuard, ConfigError> {
        let dir = &self.settings.config_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| ConfigError::io(format!("create {}", dir.display()), e))?;
        DirGuard::acquire(
            &self.store,
            &self.settings.host,
            dir,
            self.settings.lock_timeout,
            self.settings.lease_ttl,
            |holder| {
                self.emit(Event::Waiting {
                    config_dir: dir.display().to_string(),
                    holder,
                })
            },
        )
        .await
    }

    /// The order that makes a kill at any moment safe, for deploys and
    /// rollbacks alike (the caller holds the directory): a backup of every
    /// target → in one transaction, the backup and the change `in_progress`
    /// with each file's old and new sha256, and older dead changes marked
    /// interrupted → the writes (the lease checked before each) →
    /// `completed` (or `failed`, with the files put back) → pruning.
    /// Returns the backup's and the change's ids.
    pub(super) async fn apply_change(
        &self,
        guard: &DirGuard,
        kind: ChangeKind,
        environment: &str,
        restored_from: Option<&str>,
        plans: &[Planned],
    ) -> Result<(String, i64), ConfigError> {
        let config_dir = &self.settings.config_dir;
        let names: Vec<String> = plans.iter().map(|p| p.name.clone()).collect();
        let digest = InstallationKey::open_or_create(&self.settings.backup_dir)
            .map_err(|e| ConfigError::io("use the installation key", e))?;
        let backup = backup::take(
            &self.settings.backup_dir,
            &digest,
            config_dir,
            &names,
            environment,
            kind.as_str(),
            &self.settings.host,
            Utc::now(),
        )?;
        self.emit(Event::BackedUp {
            backup_id: backup.id.clone(),
            files: backup.files.len(),
        });
        let files: Vec<ChangeFile> = plans
            .iter()
            .map(|p| ChangeFile {
                name: p.name.clone(),
                old_sha256: backup
                    .files
                    .iter()
                    .find(|f| f.name == p.name)
                    .and_then(|f| f.sha256.clone()),
                new_sha256: p.contents.as_deref().map(|c| digest.of(c)),
                secret: p.mode & 0o077 == 0,
            })
            .collect();
        let change = self.change(kind, environment, &backup.id, restored_from, files, guard);
        guard.lease.ensure_held().await?;
        let (change_id, superseded) = self
            .store
            .write(async |tx| {
                tx.insert_backup(&backup).await?;
                let id = tx.start_change(&change).await?;
                tx.set_backup_change(&backup.id, id).await?;
                let superseded = tx
                    .mark_interrupted(
                        &self.settings.host,
                        &self.dir_key(),
                        guard.lease.token(),
                        Some(id),
                    )
                    .await?;
                Ok::<_, ConfigError>((id, superseded))
            })
            .await?;
        self.emit(Event::Recorded { change_id });
        crate::test_points::point("config:recorded");
        if superseded > 0 {
            self.emit(Event::Superseded {
                changes: superseded,
            });
        }
        let written = write::apply(
            config_dir,
            plans,
            &backup,
            async |_| guard.lease.ensure_held().await.map_err(ConfigError::from),
            |i| {
                if i == 0 {
                    crate::test_points::point("config:wrote-first");
                }
                self.emit(Event::Wrote {
                    name: plans[i].name.clone(),
                    index: i + 1,
                    total: plans.len(),
                })
            },
        )
        .await;
        if let Err(err) = written {
            self.store
                .write(async |tx| {
                    tx.finish_change(change_id, ChangeState::Failed, Some(&err.to_string()))
                        .await
                })
                .await?;
            return Err(err);
        }
        self.store
            .write(async |tx| {
                tx.finish_change(change_id, ChangeState::Completed, None)
                    .await
            })
            .await?;
        self.emit(Event::Completed { change_id });
        self.prune().await?;
        Ok((backup.id, change_id))
    }

    pub(super) fn dir_key(&self) -> String {
        self.settings.config_dir.display().to_string()
    }

    /// A deploy that finds nothing to change still settles dead unfinished
    /// changes on its directory (it holds the directory, so none is live).
    async fn settle_interrupted(&self, guard: &DirGuard) -> Result<(), ConfigError> {
        let superseded = self
            .store
            .write(async |tx| {
                tx.mark_interrupted(
                    &self.settings.host,
                    &self.dir_key(),
                    guard.lease.token(),
                    None,
                )
                .await
                .map_err(ConfigError::from)
            })
            .await?;
        if superseded > 0 {
            self.emit(Event::Superseded {
                changes: superseded,
            });
        }
        Ok(())
    }

    fn change(
        &self,
        kind: ChangeKind,
        environment: &str,
        backup_id: &str,
        restored_from: Option<&str>,
        files: Vec<ChangeFile>,
        guard: &DirGuard,
    ) -> ChangeRecord {
        ChangeRecord {
            id: 0,
            kind,
            state: ChangeState::InProgress,
            environment: environment.to_string(),
            config_dir: self.dir_key(),
            backup_id: Some(backup_id.to_string()),
            restored_from: restored_from.map(String::from),
            files,
            actor: self.settings.actor.clone(),
            started_at: Utc::now(),
            finished_at: None,
            error: None,
            host: self.settings.host.clone(),
            owner: Some(guard.lease.token().to_string()),
        }
    }

    /// Keeps the newest `max_backups` of this host's config directory, and
    /// always the backup of the last good deployment and of any unfinished
    /// change. A backup's directory is removed before its record, so a kill
    /// between the two leaves a record that no longer verifies, never an
    /// unrecorded directory.
    async fn prune(&self) -> Result<(), ConfigError> {
        let dir = self.dir_key();
        let host = &self.settings.host;
        let mine_only =
            |cdir: &str, chost: &str| cdir == dir && (chost == host || chost.is_empty());
        let (changes, backups) = self
            .store
            .read(async |tx| Ok::<_, ConfigError>((tx.changes().await?, tx.backups().await?)))
            .await?;
        let mut protected: Vec<String> = changes
            .iter()
            .filter(|c| mine_only(&c.config_dir, &c.host) && c.state == ChangeState::InProgress)
            .filter_map(|c| c.backup_id.clone())
            .collect();
        if let Some(last_good) = changes.iter().rev().find(|c| {
            mine_only(&c.config_dir, &c.host)
                && c.kind == ChangeKind::Deploy
                && c.state == ChangeState::Completed
        }) {
            protected.extend(last_good.backup_id.clone());
        }
        let mut mine: Vec<BackupRecord> = backups
            .into_iter()
            .filter(|b| mine_only(&b.config_dir, &b.host))
            .collect();
        mine.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        let mut pruned = Vec::new();
        for old in mine.into_iter().skip(self.settings.max_backups as usize) {
            if protected.contains(&old.id) {
                continue;
            }
            backup::remove(&old)?;
            self.store
                .write(async |tx| tx.delete_backup(&old.id).await)
                .await?;
            pruned.push(old.id);
        }
        if !pruned.is_empty() {
            self.emit(Event::Pruned { backup_ids: pruned });
        }
        Ok(())
    }
}
