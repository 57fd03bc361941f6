//! The `exec` driver: instances gantry does not run — systemd units,
//! containers, an orchestrator's pods, other hosts. Each instance is a
//! fixed slot (`services.NAME.hosts`); replacing it runs the operator's
//! commands in place: `drain`, then `restart` (or `stop` then `start`)
//! with the new `{version}`; retiring it runs `undrain`. Commands run
//! through `sh -c` with `{instance}`, `{host}`, `{address}`, `{version}`
//! and `{service}` filled in (each value shell-quoted), bounded by
//! `exec.timeout_seconds`. Instances are recorded in the state store with
//! the revision they were last moved to.

use super::driver::Driver;
use super::error::RolloutError;
use super::events::Event;
use super::health::InstanceView;
use super::spec::{Revision, ServiceSpec};
use crate::clock::now_ms;
use crate::config::{ExecCommands, ExecInstance};
use crate::events::Sink;
use crate::store::InstanceState;
use crate::store::{InstanceRecord, Store};

pub struct Exec {
    store: Store,
    spec: ServiceSpec,
    commands: ExecCommands,
    sink: Sink<Event>,
    /// The label of each revision id, for `{version}`.
    labels: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

/// `'…'` with embedded quotes escaped, for `sh -c`.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

impl Exec {
    pub fn new(store: Store, spec: ServiceSpec, sink: Sink<Event>) -> Exec {
        let commands = spec
            .config
            .exec
            .clone()
            .expect("checked: exec has commands");
        Exec {
            store,
            spec,
            commands,
            sink,
            labels: Default::default(),
        }
    }

    fn slot(&self, name: &str) -> Option<&ExecInstance> {
        self.spec.config.hosts.iter().find(|h| h.name == name)
    }

    async fn run(
        &self,
        what: &str,
        template: &str,
        slot: &ExecInstance,
        version: &str,
    ) -> Result<(), RolloutError> {
        let values = [
            ("instance", slot.name.as_str()),
            ("host", slot.host.as_str()),
            ("address", slot.address.as_str()),
            ("version", version),
            ("service", self.spec.name.as_str()),
        ];
        let quoted: Vec<(&str, String)> = values.iter().map(|(k, v)| (*k, quote(v))).collect();
        let pairs: Vec<(&str, &str)> = quoted.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let command = super::spec::fill(template, &pairs);
        let failed = |detail: String| RolloutError::Spawn {
            service: self.spec.name.clone(),
            detail: format!("{what} {}: {detail}", slot.name),
        };
        let child = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&command)
            .current_dir(&self.spec.base_dir)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let timeout = crate::clock::seconds(self.commands.timeout_seconds);
        let output = tokio::time::timeout(timeout, child)
            .await
            .map_err(|_| failed(format!("`{command}` did not finish within {timeout:?}")))?
            .map_err(|e| failed(format!("`{command}`: {e}")))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            return Err(failed(format!(
                "`{command}` exited with {}: {}",
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )));
        }
        Ok(())
    }

    fn label(&self, revision_id: &str) -> String {
        self.labels
            .lock()
            .expect("labels")
            .get(revision_id)
            .cloned()
            .unwrap_or_else(|| revision_id.to_string())
    }
}

#[async_trait::async_trait]
impl Driver for Exec {
    async fn live(&self) -> Result<Vec<InstanceRecord>, RolloutError> {
        let service = self.spec.name.clone();
        let recorded = self
            .store
            .read(async |tx| tx.instances(Some(&service)).await)
            .await?;
        // Every configured slot is an instance; its revision is what the
        // store last recorded for it (unknown: never rolled by gantry).
        Ok(self
            .spec
            .config
            .hosts
            .iter()
            .map(|slot| {
                recorded
                    .iter()
                    .find(|r| r.name == slot.name && r.host == slot.host)
                    .cloned()
                    .unwrap_or_else(|| InstanceRecord {
                        service: service.clone(),
                        host: slot.host.clone(),
                        name: slot.name.clone(),
                        driver: "exec".into(),
                        revision: String::new(),
                        pid: None,
                        process_start: None,
                        address: slot.address.clone(),
                        health_address: slot.address.clone(),
                        state: InstanceState::Unknown,
                        rollout_id: None,
                        started_ms: now_ms(),
                        updated_ms: now_ms(),
                        instance_id: None,
                    })
            })
            .collect())
    }

    fn desired(&self) -> usize {
        self.spec.config.hosts.len()
    }

    async fn bring_up(
        &self,
        old: Option<&InstanceRecord>,
        revision: &Revision,
        rollout_id: i64,
    ) -> Result<InstanceRecord, RolloutError> {
        let old = old.expect("exec instances are fixed slots");
        let slot = self.slot(&old.name).expect("a configured slot").clone();
        self.labels
            .lock()
            .expect("labels")
            .insert(revision.id.clone(), revision.label.clone());
        (self.sink)(&Event::Starting {
            service: self.spec.name.clone(),
            instance: slot.name.clone(),
            revision: revision.label.clone(),
        });
        if let Some(drain) = &self.commands.drain {
            self.run("drain", drain, &slot, &revision.label).await?;
        }
        let mut record = old.clone();
        record.revision = revision.id.clone();
        record.state = InstanceState::Starting;
        record.rollout_id = Some(rollout_id);
        record.started_ms = now_ms();
        record.updated_ms = now_ms();
        // Recorded before the restart: a kill during it leaves the slot
        // named with the revision it was moving to.
        self.store
            .write(async |tx| tx.save_instance(&record).await)
            .await?;
        match (
            &self.commands.restart,
            &self.commands.start,
            &self.commands.stop,
        ) {
            (Some(restart), _, _) => self.run("restart", restart, &slot, &revision.label).await?,
            (None, Some(start), Some(stop)) => {
                self.run("stop", stop, &slot, &revision.label).await?;
                self.run("start", start, &slot, &revision.label).await?;
            }
            _ => unreachable!("checked: restart, or start and stop"),
        }
        (self.sink)(&Event::Started {
            service: self.spec.name.clone(),
            instance: slot.name.clone(),
            pid: None,
            health_address: slot.address.clone(),
        });
        Ok(record)
    }

    async fn retire(
        &self,
        _old: &InstanceRecord,
        new: Option<&InstanceRecord>,
    ) -> Result<(), RolloutError> {
        if let (Some(undrain), Some(new)) = (&self.commands.undrain, new) {
            let slot = self.slot(&new.name).expect("a configured slot").clone();
            self.run("undrain", undrain, &slot, &self.label(&new.revision))
                .await?;
        }
        Ok(())
    }

    async fn discard(&self, _failed: &InstanceRecord) -> Result<bool, RolloutError> {
        // It stays where it is, at the failed revision: rolled back in place.
        Ok(true)
    }

    fn is_alive(&self, _instance: &InstanceRecord) -> bool {
        // gantry cannot see the process; the health checks speak for it.
        true
    }

    fn view(&self, instance: &InstanceRecord, revision_label: &str) -> InstanceView {
        InstanceView {
            service: instance.service.clone(),
            name: instance.name.clone(),
            host: instance.host.clone(),
            address: instance.address.clone(),
            health_address: instance.health_address.clone(),
            version: revision_label.to_string(),
        }
    }
}
