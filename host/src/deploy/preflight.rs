//! Pre-deployment checks, before anything changes: the database answers
//! and its migration history is sound, the configuration renders and
//! validates for the environment, the backup directory takes a file and
//! gives it back, and the health endpoints of what runs now answer. A
//! failed check refuses the deployment (exit 2, nothing changed); an
//! unhealthy running instance is reported, not refused — a deployment may
//! be its fix.

use super::error::DeployError;
use super::events::Event;
use super::plan::Plan;
use crate::migrate::Summary;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: String,
    pub ok: bool,
    pub detail: String,
}

impl Plan {
    fn checked(&self, checks: &mut Vec<Check>, check: &str, ok: bool, detail: String) {
        (self.sinks.deploy)(&Event::Preflight {
            check: check.into(),
            ok,
            detail: detail.clone(),
        });
        checks.push(Check {
            check: check.into(),
            ok,
            detail,
        });
    }

    pub async fn preflight(&self) -> Result<Vec<Check>, DeployError> {
        let mut checks = Vec::new();
        let refuse = |check: &str, reason: String| DeployError::Refused {
            check: check.into(),
            reason,
        };
        // The database.
        let status = self
            .migrator
            .status()
            .await
            .map_err(|e| refuse("database", format!("{e:#}")))?;
        if status.summary() == Summary::Attention {
            let rows: Vec<String> = status
                .rows
                .iter()
                .filter(|r| {
                    !matches!(
                        r.state,
                        crate::migrate::State::Applied | crate::migrate::State::Pending
                    )
                })
                .map(|r| format!("{} is {}", r.id, r.state.as_str()))
                .collect();
            return Err(refuse(
                "database",
                format!(
                    "the migration history needs attention ({}); see `gantry migrate status`",
                    rows.join(", ")
                ),
            ));
        }
        let pending = status
            .rows
            .iter()
            .filter(|r| r.state == crate::migrate::State::Pending)
            .count();
        self.checked(
            &mut checks,
            "database",
            true,
            format!(
                "{} answers; {pending} migration(s) pending",
                self.migrator.target()
            ),
        );
        // The configuration.
        if !self.sources.is_empty() {
            let (rendered, findings) = self
                .deployer
                .render(&self.sources, &self.environment)
                .await
                .map_err(|e| refuse("configuration", format!("{e:#}")))?;
            self.checked(
                &mut checks,
                "configuration",
                true,
                format!(
                    "{} valid for {} ({} warning(s))",
                    rendered
                        .iter()
                        .map(|r| r.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    self.environment,
                    findings.len()
                ),
            );
        }
        // The backup system.
        let dir = &self.deployer.settings().backup_dir;
        let probe = dir.join(format!(".gantry-probe-{}", std::process::id()));
        let written = crate::store::private::dir(dir)
            .and_then(|()| write_probe(&probe))
            .and_then(|()| std::fs::read(&probe));
        let _ = std::fs::remove_file(&probe);
        match written {
            Ok(bytes) if bytes == b"gantry backup probe" => self.checked(
                &mut checks,
                "backups",
                true,
                format!("{} takes a file and gives it back", dir.display()),
            ),
            Ok(_) => {
                return Err(refuse(
                    "backups",
                    format!("{} gave back other bytes than written", dir.display()),
                ));
            }
            Err(e) => return Err(refuse("backups", format!("{}: {e}", dir.display()))),
        }
        // Each service's public addresses: free, or its own.
        for service in &self.services {
            let rollout = self.rollout(service)?;
            rollout.check_addresses().await.map_err(DeployError::from)?;
        }
        // The health endpoints of what runs now.
        for service in &self.services {
            let status = self
                .rollout(service)?
                .status(true)
                .await
                .map_err(|e| refuse("health", format!("{service}: {e:#}")))?;
            let alive: Vec<_> = status.instances.iter().filter(|i| i.alive).collect();
            let healthy = alive.iter().filter(|i| i.healthy).count();
            let detail = if alive.is_empty() {
                format!("{service}: no instance runs yet")
            } else {
                format!(
                    "{service}: {healthy} of {} running instance(s) answer their checks",
                    alive.len()
                )
            };
            self.checked(&mut checks, "health", healthy == alive.len(), detail);
        }
        Ok(checks)
    }
}

/// The backup probe, private like the backups it stands for.
fn write_probe(path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(b"gantry backup probe")
}
