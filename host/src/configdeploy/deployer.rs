//! `ConfigDeployer`: render → validate → (dry run: diff) → lock → backup →
//! record the change → write every file atomically → record the end →
//! prune old backups. A rollback verifies the backup, backs up the current
//! state, and restores. Every step that counts is in the state store
//! before the next begins, so an interrupted change can be explained
//! (`history`) and undone (`rollback`).

use super::backup::{self, sha256};
use super::error::{ConfigError, Finding, Severity};
use super::lock::DirLock;
use super::paths;
use super::render::{self, Base, Rendered};
use super::validate::Validators;
use super::write::{self, Planned};
use crate::db::DbTarget;
use crate::store::{BackupRecord, ChangeFile, ChangeKind, ChangeRecord, ChangeState, Store};
use chrono::Utc;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct DeployerSettings {
    pub config_dir: PathBuf,
    pub backup_dir: PathBuf,
    pub max_backups: u32,
    pub environments: BTreeMap<String, Map<String, Value>>,
    /// Where `${file:…}` references are relative to.
    pub secrets_base: PathBuf,
    pub lock_timeout: Duration,
    pub actor: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileChange {
    Added,
    Changed,
    Unchanged,
    Removed,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileDiff {
    pub name: String,
    pub change: FileChange,
    pub holds_secrets: bool,
    /// A unified diff with every secret masked.
    pub diff: String,
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

#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub restored_from: String,
    pub dry_run: bool,
    pub files: Vec<FileDiff>,
    pub backup_id: Option<String>,
    pub change_id: Option<i64>,
}

/// A backup and whether it still verifies.
#[derive(Debug, Clone, Serialize)]
pub struct BackupInfo {
    #[serde(flatten)]
    pub record: BackupRecord,
    pub verifies: bool,
    pub problems: Vec<String>,
    /// What the change that took it did: `deploy (completed)`.
    pub made_by: Option<String>,
}

/// Where a file of an interrupted change stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileNow {
    /// As the change wrote it.
    New,
    /// As it was before the change.
    Old,
    /// Neither: changed since.
    Other,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChangeInfo {
    #[serde(flatten)]
    pub record: ChangeRecord,
    /// For changes still `in_progress` (interrupted): each file's state now.
    pub files_now: Option<BTreeMap<String, FileNow>>,
}

pub struct ConfigDeployer {
    settings: DeployerSettings,
    validators: Validators,
    state: DbTarget,
}

impl ConfigDeployer {
    pub fn new(settings: DeployerSettings, validators: Validators, state: DbTarget) -> Self {
        ConfigDeployer {
            settings,
            validators,
            state,
        }
    }

    pub fn settings(&self) -> &DeployerSettings {
        &self.settings
    }

    fn overrides(&self, environment: &str) -> Result<Map<String, Value>, ConfigError> {
        if self.settings.environments.is_empty() {
            return Ok(Map::new());
        }
        self.settings
            .environments
            .get(environment)
            .cloned()
            .ok_or_else(|| ConfigError::UnknownEnvironment {
                env: environment.to_string(),
                known: self
                    .settings
                    .environments
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Renders and validates; writes nothing. `Err(Invalid)` when any
    /// finding is an error.
    pub fn render(
        &self,
        sources: &[PathBuf],
        environment: &str,
    ) -> Result<(Vec<Rendered>, Vec<Finding>), ConfigError> {
        let overrides = self.overrides(environment)?;
        let bases: Vec<Base> = sources
            .iter()
            .map(|s| render::read_base(s))
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
        let rendered = render::render_all(&bases, &overrides, &self.settings.secrets_base)?;
        let findings = self.validators.run(&rendered, environment)?;
        if findings.iter().any(|f| f.severity == Severity::Error) {
            return Err(ConfigError::Invalid(findings));
        }
        Ok((rendered, findings))
    }

    pub async fn deploy(
        &self,
        sources: &[PathBuf],
        environment: &str,
        dry_run: bool,
    ) -> Result<DeployReport, ConfigError> {
        let (rendered, findings) = self.render(sources, environment)?;
        let config_dir = &self.settings.config_dir;
        let mut report = DeployReport {
            environment: environment.to_string(),
            dry_run,
            files: rendered.iter().map(|r| diff_for(config_dir, r)).collect(),
            findings,
            backup_id: None,
            change_id: None,
        };
        let changed: Vec<&Rendered> = rendered
            .iter()
            .zip(&report.files)
            .filter(|(_, d)| d.change != FileChange::Unchanged)
            .map(|(r, _)| r)
            .collect();
        if dry_run {
            return Ok(report);
        }
        if changed.is_empty() {
            self.settle_interrupted().await?;
            return Ok(report);
        }

        let plans: Vec<Planned> = changed
            .iter()
            .map(|r| Planned {
                name: r.name.clone(),
                contents: Some(r.text.clone().into_bytes()),
                mode: if r.holds_secrets() { 0o600 } else { 0o644 },
            })
            .collect();
        let _lock = self.lock()?;
        let (backup_id, change_id) = Store::with(&self.state, async |store| {
            self.apply_change(store, ChangeKind::Deploy, environment, None, &plans)
                .await
        })
        .await?;
        report.backup_id = Some(backup_id);
        report.change_id = Some(change_id);
        Ok(report)
    }

    /// Creates the config directory if needed and takes its lock.
    fn lock(&self) -> Result<DirLock, ConfigError> {
        let dir = &self.settings.config_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| ConfigError::io(format!("create {}", dir.display()), e))?;
        DirLock::acquire(dir, self.settings.lock_timeout)
    }

    /// The order that makes a kill at any moment safe, for deploys and
    /// rollbacks alike (the caller holds the lock): a backup of every
    /// target (recorded) → the change `in_progress`, with each file's old
    /// and new sha256 (recorded) → the writes → `completed` (or `failed`,
    /// with the files put back) → pruning. Returns the backup's and the
    /// change's ids.
    async fn apply_change(
        &self,
        store: &mut Store,
        kind: ChangeKind,
        environment: &str,
        restored_from: Option<&str>,
        plans: &[Planned],
    ) -> Result<(String, i64), ConfigError> {
        let config_dir = &self.settings.config_dir;
        let names: Vec<String> = plans.iter().map(|p| p.name.clone()).collect();
        let backup = backup::take(
            &self.settings.backup_dir,
            config_dir,
            &names,
            environment,
            kind.as_str(),
            Utc::now(),
        )?;
        store.insert_backup(&backup).await?;
        let files: Vec<ChangeFile> = plans
            .iter()
            .map(|p| ChangeFile {
                name: p.name.clone(),
                old_sha256: backup
                    .files
                    .iter()
                    .find(|f| f.name == p.name)
                    .and_then(|f| f.sha256.clone()),
                new_sha256: p.contents.as_deref().map(sha256),
                secret: p.mode & 0o077 == 0,
            })
            .collect();
        let change_id = store
            .start_change(&self.change(kind, environment, &backup.id, restored_from, files))
            .await?;
        store.set_backup_change(&backup.id, change_id).await?;
        store
            .mark_interrupted(&self.dir_key(), Some(change_id))
            .await?;
        if let Err(err) = write::apply(config_dir, plans, &backup) {
            store
                .finish_change(change_id, ChangeState::Failed, Some(&err.to_string()))
                .await?;
            return Err(err);
        }
        store
            .finish_change(change_id, ChangeState::Completed, None)
            .await?;
        self.prune(store).await?;
        Ok((backup.id, change_id))
    }

    fn dir_key(&self) -> String {
        self.settings.config_dir.display().to_string()
    }

    /// A deploy that finds nothing to change still settles unfinished
    /// changes on its directory, under the lock (which proves no process
    /// is still running them).
    async fn settle_interrupted(&self) -> Result<(), ConfigError> {
        if !self.settings.config_dir.is_dir() {
            return Ok(());
        }
        let _lock = self.lock()?;
        Store::with(&self.state, async |store| {
            store
                .mark_interrupted(&self.dir_key(), None)
                .await
                .map_err(ConfigError::from)
        })
        .await?;
        Ok(())
    }

    fn change(
        &self,
        kind: ChangeKind,
        environment: &str,
        backup_id: &str,
        restored_from: Option<&str>,
        files: Vec<ChangeFile>,
    ) -> ChangeRecord {
        ChangeRecord {
            id: 0,
            kind,
            state: ChangeState::InProgress,
            environment: environment.to_string(),
            config_dir: self.settings.config_dir.display().to_string(),
            backup_id: Some(backup_id.to_string()),
            restored_from: restored_from.map(String::from),
            files,
            actor: self.settings.actor.clone(),
            started_at: Utc::now(),
            finished_at: None,
            error: None,
        }
    }

    /// Keeps the newest `max_backups` of this config directory, and always
    /// the backup of the last good deployment and of any unfinished change.
    async fn prune(&self, store: &mut Store) -> Result<(), ConfigError> {
        let dir = self.dir_key();
        let changes = store.changes().await?;
        let mut protected: Vec<String> = changes
            .iter()
            .filter(|c| c.config_dir == dir && c.state == ChangeState::InProgress)
            .filter_map(|c| c.backup_id.clone())
            .collect();
        if let Some(last_good) = changes.iter().rev().find(|c| {
            c.config_dir == dir && c.kind == ChangeKind::Deploy && c.state == ChangeState::Completed
        }) {
            protected.extend(last_good.backup_id.clone());
        }
        let mut mine: Vec<BackupRecord> = store
            .backups()
            .await?
            .into_iter()
            .filter(|b| b.config_dir == dir)
            .collect();
        mine.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        for old in mine.into_iter().skip(self.settings.max_backups as usize) {
            if protected.contains(&old.id) {
                continue;
            }
            backup::remove(&old)?;
            store.delete_backup(&old.id).await?;
        }
        Ok(())
    }

    async fn find_backup(&self, store: &mut Store, id: &str) -> Result<BackupRecord, ConfigError> {
        paths::check_backup_id(id)?;
        let all = store.backups().await?;
        let Some(record) = all.iter().find(|b| b.id == id).cloned() else {
            let mut ids: Vec<&str> = all.iter().rev().take(5).map(|b| b.id.as_str()).collect();
            ids.reverse();
            return Err(ConfigError::UnknownBackup {
                id: id.to_string(),
                known: ids.join(", "),
            });
        };
        // The recorded path must be the one this id names under backup_dir.
        let expected = self.settings.backup_dir.join(id);
        if Path::new(&record.path) != expected {
            return Err(ConfigError::UnsafePath {
                path: PathBuf::from(&record.path),
                why: format!(
                    "is not {} (the backup directory for this id)",
                    expected.display()
                ),
            });
        }
        Ok(record)
    }

    pub async fn rollback(&self, id: &str, dry_run: bool) -> Result<RollbackReport, ConfigError> {
        // A malformed id is refused before anything is opened.
        paths::check_backup_id(id)?;
        Store::with(&self.state, async |store| {
            self.rollback_in(store, id, dry_run).await
        })
        .await
    }

    async fn rollback_in(
        &self,
        store: &mut Store,
        id: &str,
        dry_run: bool,
    ) -> Result<RollbackReport, ConfigError> {
        let source = self.find_backup(store, id).await?;
        if Path::new(&source.config_dir) != self.settings.config_dir {
            return Err(ConfigError::UnsafePath {
                path: PathBuf::from(&source.config_dir),
                why: format!(
                    "is where backup {id} came from, not the config directory {}",
                    self.settings.config_dir.display()
                ),
            });
        }
        backup::verify(&source).map_err(|problems| ConfigError::Tampered {
            id: id.to_string(),
            problems,
        })?;
        let config_dir = &self.settings.config_dir;
        let mut plans = Vec::new();
        for file in &source.files {
            paths::target(config_dir, &file.name)?;
            let contents = if file.existed {
                let path = backup::copy_path(&source, &file.name);
                Some(
                    std::fs::read(&path)
                        .map_err(|e| ConfigError::io(format!("read {}", path.display()), e))?,
                )
            } else {
                None
            };
            plans.push(Planned {
                name: file.name.clone(),
                contents,
                mode: file.mode.unwrap_or(0o600),
            });
        }
        let files: Vec<FileDiff> = plans.iter().map(|p| restore_diff(config_dir, p)).collect();
        let mut report = RollbackReport {
            restored_from: id.to_string(),
            dry_run,
            files,
            backup_id: None,
            change_id: None,
        };
        if dry_run {
            return Ok(report);
        }

        let _lock = self.lock()?;
        // Verify again under the lock: nothing may have changed since.
        backup::verify(&source).map_err(|problems| ConfigError::Tampered {
            id: id.to_string(),
            problems,
        })?;
        let (backup_id, change_id) = self
            .apply_change(
                store,
                ChangeKind::Rollback,
                &source.environment,
                Some(id),
                &plans,
            )
            .await?;
        report.backup_id = Some(backup_id);
        report.change_id = Some(change_id);
        Ok(report)
    }

    /// Every backup, newest last, and whether it verifies.
    pub async fn backups(&self) -> Result<Vec<BackupInfo>, ConfigError> {
        let (changes, backups) = Store::with(&self.state, async |store| {
            Ok::<_, ConfigError>((store.changes().await?, store.backups().await?))
        })
        .await?;
        Ok(backups
            .into_iter()
            .map(|record| {
                let problems = backup::verify(&record).err().unwrap_or_default();
                let made_by = record
                    .change_id
                    .and_then(|id| changes.iter().find(|c| c.id == id))
                    .map(|c| format!("#{} {} ({})", c.id, c.kind.as_str(), c.state.as_str()));
                BackupInfo {
                    verifies: problems.is_empty(),
                    problems,
                    made_by,
                    record,
                }
            })
            .collect())
    }

    /// Every deploy and rollback; interrupted ones say where each file stands.
    pub async fn history(&self) -> Result<Vec<ChangeInfo>, ConfigError> {
        let changes = Store::with(&self.state, async |store| {
            store.changes().await.map_err(ConfigError::from)
        })
        .await?;
        Ok(changes.into_iter().map(with_files_now).collect())
    }
}

/// For an unfinished change, whether each file is as it wrote it, as it
/// was before, or something else.
pub fn with_files_now(record: ChangeRecord) -> ChangeInfo {
    let files_now = (record.state == ChangeState::InProgress).then(|| {
        let dir = Path::new(&record.config_dir);
        record
            .files
            .iter()
            .map(|f| {
                let now = std::fs::read(dir.join(&f.name)).ok().map(|b| sha256(&b));
                let state = if now == f.new_sha256 {
                    FileNow::New
                } else if now == f.old_sha256 {
                    FileNow::Old
                } else {
                    FileNow::Other
                };
                (f.name.clone(), state)
            })
            .collect()
    });
    ChangeInfo { record, files_now }
}

fn diff_for(config_dir: &Path, rendered: &Rendered) -> FileDiff {
    let path = config_dir.join(&rendered.name);
    let current = std::fs::read_to_string(&path).ok();
    let change = match &current {
        None => FileChange::Added,
        Some(text) if text == &rendered.text => FileChange::Unchanged,
        Some(_) => FileChange::Changed,
    };
    let new_masked =
        render::serialise(&rendered.masked(), rendered.format, &path).unwrap_or_default();
    let old_masked = current
        .as_deref()
        .map(|text| match render::parse(text, rendered.format, &path) {
            Ok(value) => render::serialise(
                &render::mask(&value, &rendered.secret_paths),
                rendered.format,
                &path,
            )
            .unwrap_or_default(),
            Err(_) => "(the current file does not parse; its text is not shown)\n".to_string(),
        })
        .unwrap_or_default();
    FileDiff {
        name: rendered.name.clone(),
        change,
        holds_secrets: rendered.holds_secrets(),
        diff: unified(&old_masked, &new_masked, &rendered.name),
    }
}

/// What a restore changes; contents are never shown (they may hold
/// secrets the backup does not say how to mask).
fn restore_diff(config_dir: &Path, plan: &Planned) -> FileDiff {
    let current = std::fs::read(config_dir.join(&plan.name)).ok();
    let change = match (&current, &plan.contents) {
        (None, None) => FileChange::Unchanged,
        (Some(_), None) => FileChange::Removed,
        (None, Some(_)) => FileChange::Added,
        (Some(a), Some(b)) if a == b => FileChange::Unchanged,
        _ => FileChange::Changed,
    };
    FileDiff {
        name: plan.name.clone(),
        change,
        holds_secrets: plan.mode & 0o077 == 0,
        diff: String::new(),
    }
}

fn unified(old: &str, new: &str, name: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(2)
        .header(&format!("{name} (deployed)"), &format!("{name} (rendered)"))
        .to_string()
}
