//! `gantry rotate jwt-key`: a new signing key without logging anyone out,
//! in three journaled deployments of the environment's key set (kept in
//! the store as references, merged over the config when it renders):
//!
//! 1. the new key added, verify-only — every instance learns it and, for
//!    an asymmetric key, publishes it in its JWKS;
//! 2. once every JWKS client's cache has had time to fetch it (the
//!    service's `jwks_max_age_seconds`, its `Cache-Control: max-age`), the
//!    new key signs, the old one verifies only;
//! 3. once the longest token signed by the old key has expired and JWKS
//!    caches have turned over (recorded in the store as the earliest time
//!    phase 3 may run), the old key is removed.
//!
//! The new key has the set's algorithm (HS256, EdDSA, ES256, RS256), or
//! `--alg`'s.
//!
//! The rotation row is committed before each phase's deployment starts
//! (naming that deployment's id), so a kill at any moment leaves a phase
//! whose deployment is finished (`gantry rotate` moves on), interrupted
//! (resumed), or never started (started). A phase that fails is rolled
//! back by its deployment; the phases before it stand.

use super::engine::{DeployReport, new_id};
use super::error::DeployError;
use super::generate::{ALGORITHMS, generate};
use super::keys::{Key, KeySet, fingerprint};
use super::plan::Plan;
use crate::clock::now_ms;
use crate::clock::when;
use crate::configdeploy::ConfigError;
use crate::configdeploy::overlay::Overlay;
use crate::configdeploy::render::read_document;
use crate::store::{DeployOutcome, RotationState};
use crate::store::{RotationRecord, Store, StoreError};
use serde::Serialize;
use serde_json::{Map, Value};
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct RotateOptions {
    /// The new key's material, as a reference the operator has updated
    /// (`${env:JWT_SECRET_NEXT}`, `${file:…}`); generated when absent.
    pub key: Option<String>,
    pub kid: Option<String>,
    /// The new key's algorithm [default: the active key's].
    pub alg: Option<String>,
    /// Run phase 3 of a waiting rotation (when its time has come).
    pub finish: bool,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RotationReport {
    pub id: String,
    pub environment: String,
    pub phase: i32,
    pub state: RotationState,
    pub old_kid: String,
    pub new_kid: String,
    pub fingerprint: String,
    pub next_after: Option<String>,
    pub deployments: Vec<DeployReport>,
    pub reason: Option<String>,
}

/// Margin past the longest token lifetime before the old key goes.
const MARGIN: Duration = Duration::from_secs(5);
/// Margin past the JWKS cache lifetime before the new key signs.
const JWKS_MARGIN: Duration = Duration::from_secs(1);
/// The example service's JWKS cache lifetime when its config names none.
const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(300);
/// The longest wait a configured lifetime or max-age stands for: a day
/// for JWKS caches, thirty days for tokens (the schema refuses more).
const LONGEST_JWKS_MAX_AGE: u64 = 86_400;
const LONGEST_TOKEN_LIFETIME: u64 = 30 * 86_400;

/// A kid gantry will name files after: `[A-Za-z0-9._-]`, 1–64, not
/// starting with a dot.
fn check_kid(kid: &str) -> Result<(), DeployError> {
    let fine = !kid.is_empty()
        && kid.len() <= 64
        && !kid.starts_with('.')
        && kid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if fine {
        Ok(())
    } else {
        Err(refused(format!(
            "key id {kid:?}: use 1 to 64 of A-Z a-z 0-9 . _ - (not starting with a dot)"
        )))
    }
}

/// The plan as the environment's deployments render: with the key set a
/// rotation manages, or, resuming deployment `resume`, the overrides it
/// ran with.
pub async fn prepare(mut plan: Plan, resume: Option<&str>) -> Result<Plan, DeployError> {
    let overrides = match resume {
        Some(id) => {
            let record = plan.store.read(async |tx| tx.deployment(id).await).await?;
            record
                .and_then(|r| serde_json::from_str::<Value>(&r.options).ok())
                .and_then(|o| o.get("overrides").and_then(Value::as_object).cloned())
                .unwrap_or_default()
        }
        None => {
            let environment = plan.environment.clone();
            let keys = plan
                .store
                .read(async |tx| tx.key_set(&environment).await)
                .await?;
            let mut map = Map::new();
            if let Some(keys) = keys {
                map.insert(
                    "jwt_keys".into(),
                    serde_json::from_str(&keys).unwrap_or(Value::Null),
                );
            }
            map
        }
    };
    if !overrides.is_empty() {
        plan.set_overrides(overrides)?;
    }
    Ok(plan)
}

/// One key of a set as `--status` shows it: never its material.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    pub kid: String,
    pub alg: String,
    pub status: String,
    /// Of the public key, or of the HS256 secret (`-` when the reference
    /// does not resolve here).
    pub fingerprint: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    pub environment: String,
    /// The set gantry last deployed (else the deployment config's).
    pub deployed: bool,
    pub keys: Vec<KeyView>,
    pub rotation: Option<RotationReport>,
}

/// The newest rotation of each environment.
pub async fn rotations(store: &Store) -> Result<Vec<RotationRecord>, StoreError> {
    store.read(async |tx| tx.latest_rotations(None).await).await
}

fn refused(reason: impl Into<String>) -> DeployError {
    DeployError::Refused {
        check: "key rotation".into(),
        reason: reason.into(),
    }
}

impl Plan {
    /// Runs the rotation's next phases (see the module's text).
    pub async fn rotate(&mut self, options: RotateOptions) -> Result<RotationReport, DeployError> {
        let environment = self.environment.clone();
        let latest = self
            .store
            .read(async |tx| tx.latest_rotations(Some(&environment)).await)
            .await?
            .into_iter()
            .next();
        match latest {
            Some(r) if r.state == RotationState::Running => {
                self.continue_rotation(r, options).await
            }
            // Waiting for JWKS caches before phase 2: continue (it sleeps
            // out what is left of the wait).
            Some(r) if r.state == RotationState::Waiting && r.phase == 1 => {
                self.continue_rotation(r, options).await
            }
            Some(r) if r.state == RotationState::Waiting => {
                if !options.finish {
                    let mut report = report_of(&r);
                    report.reason = Some(format!(
                        "a rotation is waiting for its last phase; `--finish` runs it after {}",
                        report.next_after.clone().unwrap_or_default()
                    ));
                    return Ok(report);
                }
                let due = r.next_after_ms.unwrap_or(0);
                if now_ms() < due {
                    return Err(refused(format!(
                        "the old key `{}` may still have live tokens: phase 3 may run after {}",
                        r.old_kid,
                        when(Some(due))
                    )));
                }
                self.continue_rotation(r, options).await
            }
            _ if options.finish => Err(refused(format!(
                "no rotation of `{environment}` is waiting to finish"
            ))),
            _ => self.start_rotation(options).await,
        }
    }

    /// The environment's key set and its newest rotation.
    pub async fn key_status(&self) -> Result<KeyStatus, DeployError> {
        let environment = self.environment.clone();
        let (stored, latest) = self
            .store
            .read(async |tx| {
                Ok::<_, StoreError>((
                    tx.key_set(&environment).await?,
                    tx.latest_rotations(Some(&environment)).await?,
                ))
            })
            .await?;
        let deployed = stored.is_some();
        let set = self.current_keys(stored)?;
        let base = self.settings.secrets_base();
        let keys = set
            .0
            .iter()
            .map(|k| KeyView {
                kid: k.kid.clone(),
                alg: k.alg.clone(),
                status: k.status.clone(),
                fingerprint: match (&k.public_key_pem, &k.secret) {
                    (Some(public), _) => fingerprint(public),
                    (None, Some(secret)) => crate::secrets::resolve(secret, &base)
                        .map(|m| fingerprint(&m))
                        .unwrap_or_else(|_| "-".into()),
                    (None, None) => "-".into(),
                },
            })
            .collect();
        Ok(KeyStatus {
            environment,
            deployed,
            keys,
            rotation: latest.first().map(report_of),
        })
    }

    /// When a waiting rotation of this environment may finish (for `up`).
    pub async fn rotation_due(&self) -> Result<bool, DeployError> {
        let environment = self.environment.clone();
        let latest = self
            .store
            .read(async |tx| tx.latest_rotations(Some(&environment)).await)
            .await?;
        Ok(latest.first().is_some_and(|r| {
            r.state == RotationState::Running
                || (r.state == RotationState::Waiting && r.next_after_ms.unwrap_or(0) <= now_ms())
        }))
    }

    fn current_keys(&self, stored: Option<String>) -> Result<KeySet, DeployError> {
        if let Some(stored) = stored {
            return serde_json::from_str(&stored)
                .map_err(|e| refused(format!("the stored key set is unreadable: {e}")));
        }
        // The environment's values and the base files, read as config
        // deploy reads them (any format, SOPS decrypted).
        let config = &self.settings.config.config;
        let identities = || {
            crate::configdeploy::sops::Identities::for_config(
                config.secrets.age_identity.as_deref(),
                &self.settings.secrets_base(),
            )
        };
        let mut places = Vec::new();
        if let Some(environment) = self.settings.environment(&self.environment) {
            let overlay = Overlay::load(&self.environment, &environment, &identities)
                .map_err(|e| refused(e.to_string()))?;
            places.push(overlay.values);
        }
        for source in &self.sources {
            // A base file that is not there yet holds no keys; one that
            // cannot be read or opened stops the rotation (a later file's
            // keys are not the set in use).
            match read_document(source, &identities) {
                Ok(document) => places.push(document.values),
                Err(ConfigError::Read { source: e, .. })
                    if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(refused(e.to_string())),
            }
        }
        KeySet::from_config(&places).map_err(refused)
    }

    async fn start_rotation(
        &mut self,
        options: RotateOptions,
    ) -> Result<RotationReport, DeployError> {
        let environment = self.environment.clone();
        let stored = self
            .store
            .read(async |tx| tx.key_set(&environment).await)
            .await?;
        let mut current = self.current_keys(stored)?;
        current
            .check()
            .map_err(|e| refused(format!("the current key set: {e}")))?;
        let base = self.settings.secrets_base();
        let keys = self
            .settings
            .resolve_path(std::path::Path::new(".gantry/keys"));
        crate::store::private::dir(&keys)
            .map_err(|e| refused(format!("make {} private: {e}", keys.display())))?;
        let dir = keys.join(&environment);
        let old = current.active().clone();
        let alg = options.alg.clone().unwrap_or_else(|| old.alg.clone());
        if !ALGORITHMS.contains(&alg.as_str()) {
            return Err(refused(format!(
                "`--alg {alg}`: a key is one of {}",
                ALGORITHMS.join(", ")
            )));
        }
        if options.key.is_some() && alg != "HS256" {
            return Err(refused(format!(
                "`--key` gives an HS256 secret; an {alg} key pair is generated (leave out `--key`)"
            )));
        }
        let kid = options.kid.clone().unwrap_or_else(|| {
            format!(
                "{environment}-{}",
                chrono::Utc::now().format("%Y%m%d%H%M%S")
            )
        });
        check_kid(&kid)?;
        if current.0.iter().any(|k| k.kid == kid) {
            return Err(refused(format!("key id `{kid}` is in the set already")));
        }
        if alg == "HS256" && old.alg != "HS256" {
            return Err(refused(format!(
                "`{}` is {} and published in the JWKS; an HS256 key never is, so relying parties that verify through the JWKS would refuse every token it signs (rotate to EdDSA, ES256 or RS256)",
                old.kid, old.alg
            )));
        }
        let dry = RotationReport {
            id: String::new(),
            environment: environment.clone(),
            phase: 0,
            state: RotationState::Planned,
            old_kid: old.kid.clone(),
            new_kid: kid.clone(),
            fingerprint: String::new(),
            next_after: None,
            deployments: Vec::new(),
            reason: Some(format!(
                "1: add `{kid}` ({alg}) verify-only and roll; 2: `{kid}` signs, `{}` verifies only, roll; 3: after the longest token lifetime, remove `{}` and roll",
                old.kid, old.kid
            )),
        };
        if options.dry_run {
            return Ok(dry);
        }
        // What this run writes, so a rotation refused before its first
        // deployment can take it all back.
        let dir_existed = dir.exists();
        let mut written: Vec<std::path::PathBuf> = current
            .0
            .iter()
            .flat_map(|k| {
                [("secret", &k.secret), ("private", &k.private_key_pem)]
                    .into_iter()
                    .filter(|(_, v)| {
                        v.as_ref()
                            .is_some_and(|t| !crate::secrets::has_reference(t))
                    })
                    .map(|(field, _)| dir.join(format!("{}.{field}", k.kid)))
            })
            .collect();
        if options.key.is_none() {
            let file = if alg == "HS256" { "secret" } else { "private" };
            written.push(dir.join(format!("{kid}.{file}")));
        }
        let (new, print) = match &options.key {
            Some(reference) => {
                if !crate::secrets::has_reference(reference) {
                    return Err(refused(
                        "`--key` takes a reference (${env:NAME} or ${file:PATH}), never the key itself",
                    ));
                }
                let material = crate::secrets::resolve(reference, &base)
                    .map_err(|e| refused(format!("`--key`: {e}")))?;
                if material.len() < 32 {
                    return Err(refused(format!(
                        "`--key`: an HS256 secret needs at least 32 bytes, this has {}",
                        material.len()
                    )));
                }
                (
                    Key {
                        kid: kid.clone(),
                        alg: "HS256".into(),
                        secret: Some(reference.clone()),
                        private_key_pem: None,
                        public_key_pem: None,
                        status: "verify".into(),
                    },
                    fingerprint(&material),
                )
            }
            None => generate(&alg, &kid, &dir, &base)
                .map_err(|e| refused(format!("the new key: {e}")))?,
        };
        current.externalize(&dir, &base).map_err(|e| {
            refused(format!(
                "cannot move key material to {}: {e}",
                dir.display()
            ))
        })?;
        let mut target = current.clone();
        target.0.push(new);
        target
            .check()
            .map_err(|e| refused(format!("the new key set: {e}")))?;
        let record = RotationRecord {
            id: format!(
                "rotate_{}_{}",
                chrono::Utc::now().format("%Y%m%d_%H%M%S"),
                &crate::identity::token()[..6]
            ),
            environment,
            phase: 1,
            state: RotationState::Running,
            old_kid: old.kid,
            new_kid: kid,
            fingerprint: print,
            target: serde_json::to_string(&target).expect("serialises"),
            deployment: Some(new_id()),
            reason: None,
            next_after_ms: None,
            started_ms: now_ms(),
            updated_ms: now_ms(),
        };
        self.store
            .write(async |tx| tx.save_rotation(&record).await)
            .await?;
        let (id, deployment) = (record.id.clone(), record.deployment.clone());
        let outcome = self.continue_rotation(record, options).await;
        if let Err(e) = &outcome
            && let Some(deployment) = deployment
            && crate::deploy::find(&self.store, &deployment)
                .await?
                .is_none()
        {
            // Refused before its first deployment (a validator, the
            // preflight): nothing ran, so nothing of it stays — no pending
            // rotation for `gantry up` to retry, no key file.
            self.store
                .write(async |tx| tx.delete_rotation(&id).await)
                .await?;
            for path in &written {
                let _ = std::fs::remove_file(path);
            }
            if !dir_existed {
                let _ = std::fs::remove_dir(&dir);
            }
            tracing::debug!("rotation {id} refused before its first deployment: {e}");
        }
        outcome
    }

    /// Runs `record`'s phase (finishing its deployment if a kill cut it
    /// short), then the phases after it that may run now.
    async fn continue_rotation(
        &mut self,
        mut record: RotationRecord,
        options: RotateOptions,
    ) -> Result<RotationReport, DeployError> {
        let mut deployments = Vec::new();
        loop {
            if record.state == RotationState::Waiting && record.phase == 1 {
                // Phase 2 waits for JWKS caches to hold the new key.
                let due = record.next_after_ms.unwrap_or(0);
                let left = due - now_ms();
                // `gantry up` (and `--finish`) come back when it is due;
                // only an operator's `gantry rotate` waits here.
                if left > 0 && options.finish {
                    break;
                }
                if left > 0 {
                    tracing::info!(
                        "key rotation: `{}` signs after {} (JWKS caches)",
                        record.new_kid,
                        when(Some(due))
                    );
                    tokio::time::sleep(Duration::from_millis(left as u64)).await;
                }
                self.begin_phase_2(&mut record)?;
                let r = record.clone();
                self.store
                    .write(async |tx| tx.save_rotation(&r).await)
                    .await?;
            }
            if record.state == RotationState::Waiting {
                if now_ms() < record.next_after_ms.unwrap_or(0) {
                    break;
                }
                // Phase 3: the old key goes.
                let mut target: KeySet = serde_json::from_str(&record.target)
                    .map_err(|e| refused(format!("the rotation's key set: {e}")))?;
                target.0.retain(|k| k.kid != record.old_kid);
                record.phase = 3;
                record.state = RotationState::Running;
                record.target = serde_json::to_string(&target).expect("serialises");
                record.deployment = Some(new_id());
                record.updated_ms = now_ms();
                let r = record.clone();
                self.store
                    .write(async |tx| tx.save_rotation(&r).await)
                    .await?;
            }
            if record.state != RotationState::Running {
                break;
            }
            crate::test_points::point(match record.phase {
                1 => "rotate:phase-1",
                2 => "rotate:phase-2",
                _ => "rotate:phase-3",
            });
            let report = self
                .run_phase(&record)
                .await
                .map_err(|e| DeployError::Phase {
                    rotation: record.id.clone(),
                    phase: record.phase,
                    source: Box::new(e),
                })?;
            let succeeded = report.state == DeployOutcome::Succeeded;
            let reason = report.reason.clone();
            deployments.push(report);
            if !succeeded {
                record.state = RotationState::RolledBack;
                record.reason = Some(format!(
                    "phase {} failed and was rolled back: {}",
                    record.phase,
                    reason.unwrap_or_default()
                ));
                record.updated_ms = now_ms();
                let r = record.clone();
                self.store
                    .write(async |tx| tx.save_rotation(&r).await)
                    .await?;
                break;
            }
            // The phase's key set is now what runs.
            let deployed = record.target.clone();
            let published = self.publishes(&record)?;
            match record.phase {
                1 if published => {
                    // The new public key is in every instance's JWKS now;
                    // clients that cached the set before keep it for its
                    // max-age.
                    record.state = RotationState::Waiting;
                    record.next_after_ms =
                        Some(now_ms() + (self.jwks_max_age() + JWKS_MARGIN).as_millis() as i64);
                }
                1 => self.begin_phase_2(&mut record)?,
                2 => {
                    let mut wait = self.token_lifetime();
                    if published {
                        wait = wait.max(self.jwks_max_age());
                    }
                    record.state = RotationState::Waiting;
                    record.next_after_ms = Some(now_ms() + (wait + MARGIN).as_millis() as i64);
                }
                _ => {
                    record.state = RotationState::Done;
                }
            }
            record.updated_ms = now_ms();
            let (r, environment) = (record.clone(), self.environment.clone());
            self.store
                .write(async |tx| {
                    tx.save_key_set(&environment, &deployed, now_ms()).await?;
                    tx.save_rotation(&r).await
                })
                .await?;
            // Phase 3's wait (token lifetimes) is the operator's or `gantry
            // up`'s to see out; phase 2's (JWKS caches) is slept here.
            if record.state == RotationState::Waiting && record.phase == 2 && !options.finish {
                break;
            }
        }
        let mut report = report_of(&record);
        report.deployments = deployments;
        Ok(report)
    }

    /// Prepares phase 2: the new key signs, the old one verifies only.
    fn begin_phase_2(&self, record: &mut RotationRecord) -> Result<(), DeployError> {
        let mut target: KeySet = serde_json::from_str(&record.target)
            .map_err(|e| refused(format!("the rotation's key set: {e}")))?;
        for key in &mut target.0 {
            if key.kid == record.new_kid {
                key.status = "active".into();
            } else if key.kid == record.old_kid {
                key.status = "verify".into();
                // Verifying needs only the public half.
                if key.alg != "HS256" {
                    key.private_key_pem = None;
                }
            }
        }
        record.phase = 2;
        record.state = RotationState::Running;
        record.target = serde_json::to_string(&target).expect("serialises");
        record.deployment = Some(new_id());
        record.updated_ms = now_ms();
        Ok(())
    }

    /// True when the rotation's key set holds a key the service publishes
    /// in its JWKS (an asymmetric one): then JWKS caches must turn over.
    fn publishes(&self, record: &RotationRecord) -> Result<bool, DeployError> {
        let target: KeySet = serde_json::from_str(&record.target)
            .map_err(|e| refused(format!("the rotation's key set: {e}")))?;
        Ok(target.0.iter().any(|k| k.alg != "HS256"))
    }

    /// Deploys `record.target` as its phase's deployment: started, resumed
    /// after a kill, or read back when it had finished.
    async fn run_phase(&mut self, record: &RotationRecord) -> Result<DeployReport, DeployError> {
        let target: Value = serde_json::from_str(&record.target)
            .map_err(|e| refused(format!("the rotation's key set: {e}")))?;
        let mut overrides = Map::new();
        overrides.insert("jwt_keys".into(), target);
        self.set_overrides(overrides)?;
        let id = record.deployment.clone().unwrap_or_else(new_id);
        let existing = super::status::find(&self.store, &id).await?;
        match existing {
            None => self.deploy_as(Some(id), false).await,
            Some(view) if view.interrupted => self.resume(&id).await,
            Some(view) if view.running => Err(DeployError::NotResumable {
                id,
                state: view.record.state,
                what: "its gantry is still running it".into(),
            }),
            Some(view) => Ok(DeployReport {
                id: view.record.id.clone(),
                environment: view.record.environment.clone(),
                dry_run: false,
                state: view.record.state.outcome(),
                reason: view.record.reason.clone(),
                preflight: Vec::new(),
                steps: view.steps,
                duration_ms: 0,
                report_file: None,
            }),
        }
    }

    /// The deployed auth config files: the deployed copies of this
    /// plan's sources that hold a key set (`jwt_keys` or `jwt_secret_key`).
    fn deployed_auth_docs(&self) -> Vec<Value> {
        let dir = &self.deployer.settings().config_dir;
        self.sources
            .iter()
            .filter_map(|source| source.file_name())
            .filter_map(|name| std::fs::read_to_string(dir.join(name)).ok())
            .filter_map(|text| serde_json::from_str::<Value>(&text).ok())
            .filter(|doc| doc.get("jwt_keys").is_some() || doc.get("jwt_secret_key").is_some())
            .collect()
    }

    /// How long the service lets JWKS clients cache its key set (its
    /// `Cache-Control: max-age`): the deployed auth config's
    /// `jwks_max_age_seconds`, else the service's default.
    fn jwks_max_age(&self) -> Duration {
        self.deployed_auth_docs()
            .iter()
            .filter(|doc| doc.get("jwt_keys").is_some())
            .map(|doc| {
                doc["jwks_max_age_seconds"]
                    .as_u64()
                    .map(|s| Duration::from_secs(s.min(LONGEST_JWKS_MAX_AGE)))
                    .unwrap_or(DEFAULT_JWKS_MAX_AGE)
            })
            .max()
            .unwrap_or(DEFAULT_JWKS_MAX_AGE)
    }

    /// The longest a token signed by the old key can live: the deployed
    /// auth config's `token_expiry_seconds`, else `token_expiry_minutes`,
    /// else an hour. (The example service's refresh tokens are opaque,
    /// stored rows, never signed: they do not outlive the key.)
    fn token_lifetime(&self) -> Duration {
        const HOUR: Duration = Duration::from_secs(60 * 60);
        self.deployed_auth_docs()
            .iter()
            .map(|doc| {
                match (
                    doc["token_expiry_seconds"].as_u64(),
                    doc["token_expiry_minutes"].as_u64(),
                ) {
                    (Some(s), _) => Duration::from_secs(s.min(LONGEST_TOKEN_LIFETIME)),
                    (None, Some(m)) => {
                        Duration::from_secs(m.saturating_mul(60).min(LONGEST_TOKEN_LIFETIME))
                    }
                    (None, None) => HOUR,
                }
            })
            .max()
            .filter(|d| !d.is_zero())
            .unwrap_or(HOUR)
    }
}

fn report_of(r: &RotationRecord) -> RotationReport {
    RotationReport {
        id: r.id.clone(),
        environment: r.environment.clone(),
        phase: r.phase,
        state: r.state,
        old_kid: r.old_kid.clone(),
        new_kid: r.new_kid.clone(),
        fingerprint: r.fingerprint.clone(),
        next_after: r.next_after_ms.map(|ms| when(Some(ms))),
        deployments: Vec::new(),
        reason: r.reason.clone(),
    }
}
