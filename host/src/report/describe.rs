//! How each engine's events read to a person: a line, and what they mean
//! for a progress bar. The JSON reporter serialises the events as they are.

use crate::configdeploy::Event as ConfigEvent;
use crate::deploy::Event as DeployEvent;
use crate::escape::one_line;
use crate::migrate::{Direction, Event as MigrateEvent};
use crate::monitor::Event as MonitorEvent;
use crate::rollout::Event as RolloutEvent;

/// What an event does to a progress bar.
pub enum Progress {
    None,
    /// A bar of `total` steps starts.
    Begin {
        key: String,
        total: u64,
        label: String,
    },
    /// One step of bar `key` is done.
    Step {
        key: String,
        label: String,
    },
    End {
        key: String,
    },
}

pub trait Describe {
    /// The engine's name, as the JSON lines carry it.
    fn engine(&self) -> &'static str;
    /// The line a person reads, if the event deserves one.
    fn line(&self) -> Option<String>;
    fn progress(&self) -> Progress {
        Progress::None
    }
}

impl Describe for MigrateEvent {
    fn engine(&self) -> &'static str {
        "migrate"
    }

    fn line(&self) -> Option<String> {
        Some(match self {
            MigrateEvent::LockWaiting {
                holder_pid,
                waited_ms,
            } => format!(
                "waiting for the migration lock{} ({:.1} s)",
                holder_pid
                    .map(|p| format!(" held by pid {p}"))
                    .unwrap_or_default(),
                *waited_ms as f64 / 1000.0
            ),
            MigrateEvent::LockAcquired { waited_ms } => format!(
                "took the migration lock after {:.1} s",
                *waited_ms as f64 / 1000.0
            ),
            MigrateEvent::Planned { direction, steps } => {
                let verb = match direction {
                    Direction::Up => "apply",
                    Direction::Down => "revert",
                };
                if steps.is_empty() {
                    format!("nothing to {verb}")
                } else {
                    let mut text = format!(
                        "plan: {verb} {} migration{}",
                        steps.len(),
                        if steps.len() == 1 { "" } else { "s" }
                    );
                    for step in steps {
                        let mut notes = vec![step.kind.to_string()];
                        if step.no_transaction {
                            notes.push("no transaction".into());
                        }
                        if !step.source.is_empty() {
                            notes.push(step.source.clone());
                        }
                        text.push_str(&format!("\n  {} ({})", step.id, notes.join(", ")));
                    }
                    text
                }
            }
            MigrateEvent::Started { id, direction, .. } => {
                let verb = match direction {
                    Direction::Up => "applying",
                    Direction::Down => "reverting",
                };
                format!("{verb} {id}")
            }
            MigrateEvent::Statement { index, total, .. } => {
                format!("  statement {index}/{total} done")
            }
            MigrateEvent::Finished {
                id, duration_ms, ..
            } => format!("  {id} done in {duration_ms:.1} ms"),
            MigrateEvent::Skipped { id, .. } => format!("  {id} was applied by another runner"),
            MigrateEvent::Warning { message } => format!("warning: {message}"),
        })
    }

    fn progress(&self) -> Progress {
        match self {
            MigrateEvent::Planned { direction, steps } if !steps.is_empty() => Progress::Begin {
                key: "migrate".into(),
                total: steps.len() as u64,
                label: match direction {
                    Direction::Up => "migrating".into(),
                    Direction::Down => "rolling back".into(),
                },
            },
            MigrateEvent::Finished { id, .. } | MigrateEvent::Skipped { id, .. } => {
                Progress::Step {
                    key: "migrate".into(),
                    label: id.clone(),
                }
            }
            _ => Progress::None,
        }
    }
}

impl Describe for ConfigEvent {
    fn engine(&self) -> &'static str {
        "config"
    }

    fn line(&self) -> Option<String> {
        Some(match self {
            ConfigEvent::Rendered {
                environment,
                files,
                findings,
            } => format!(
                "rendered {} for {environment}: valid{}",
                files.join(", "),
                if *findings > 0 {
                    format!(" ({findings} warning(s))")
                } else {
                    String::new()
                }
            ),
            ConfigEvent::Waiting { config_dir, holder } => {
                format!("waiting for {config_dir}: held by {holder}")
            }
            ConfigEvent::Locked { changed, .. } if changed.is_empty() => {
                "every file is already as rendered".into()
            }
            ConfigEvent::Locked { changed, .. } => format!("to change: {}", changed.join(", ")),
            ConfigEvent::BackedUp { backup_id, files } => {
                format!("backed up {files} file(s) as {backup_id}")
            }
            ConfigEvent::Recorded { change_id } => format!("change #{change_id} recorded"),
            ConfigEvent::Wrote { name, index, total } => {
                format!("  wrote {name} ({index}/{total})")
            }
            ConfigEvent::Completed { change_id } => format!("change #{change_id} completed"),
            ConfigEvent::Superseded { changes } => {
                format!("{changes} interrupted change(s) superseded")
            }
            ConfigEvent::Pruned { backup_ids } => {
                format!("removed old backups: {}", backup_ids.join(", "))
            }
        })
    }

    fn progress(&self) -> Progress {
        match self {
            ConfigEvent::Locked { changed, .. } if !changed.is_empty() => Progress::Begin {
                key: "config".into(),
                total: changed.len() as u64,
                label: "writing".into(),
            },
            ConfigEvent::Wrote { name, .. } => Progress::Step {
                key: "config".into(),
                label: name.clone(),
            },
            ConfigEvent::Completed { .. } => Progress::End {
                key: "config".into(),
            },
            _ => Progress::None,
        }
    }
}

impl Describe for RolloutEvent {
    fn engine(&self) -> &'static str {
        "rollout"
    }

    fn line(&self) -> Option<String> {
        Some(match self {
            RolloutEvent::Reaped { service, processes } => format!(
                "{service}: stopped {} process(es) no record knew: {}",
                processes.len(),
                processes.join(", ")
            ),
            RolloutEvent::Planned {
                service,
                from,
                to,
                replace,
                keep,
                max_parallel,
            } => format!(
                "plan: {service} {} → {to}: start {replace}, keep {keep}, {max_parallel} at a time",
                from.as_deref().unwrap_or("nothing")
            ),
            RolloutEvent::Starting {
                instance, revision, ..
            } => format!("  starting {instance} ({revision})"),
            RolloutEvent::Started {
                instance,
                pid,
                health_address,
                ..
            } => format!(
                "  {instance} up{}, checked at {health_address}",
                pid.map(|p| format!(" as pid {p}")).unwrap_or_default()
            ),
            RolloutEvent::Healthy {
                instance, after_ms, ..
            } => format!(
                "  {instance} healthy after {:.1} s",
                *after_ms as f64 / 1000.0
            ),
            RolloutEvent::Unhealthy { reason, .. } => format!("  unhealthy: {}", one_line(reason)),
            RolloutEvent::Stopping {
                instance, revision, ..
            } => format!(
                "  stopping {instance} ({})",
                crate::rollout::short_id(revision)
            ),
            RolloutEvent::Stopped {
                instance, forced, ..
            } => format!(
                "  {instance} stopped{}",
                if *forced {
                    " (killed after the grace period)"
                } else {
                    ""
                }
            ),
            RolloutEvent::Progress { done, total, .. } => format!("  {done}/{total} replaced"),
            RolloutEvent::RollingBack { to, reason, .. } => {
                format!("rolling back to {to}: {}", one_line(reason))
            }
            RolloutEvent::Step {
                step,
                of,
                weight,
                resumed,
                ..
            } => format!(
                "step {}/{of}: {weight}% of requests to the new revision{}",
                step + 1,
                if *resumed { " (resumed)" } else { "" }
            ),
            RolloutEvent::Analysis {
                step,
                verdict,
                summary,
                ..
            } => format!(
                "  analysis of step {}: {verdict}{}",
                step + 1,
                if summary.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", one_line(summary))
                }
            ),
            RolloutEvent::Aborted { step, reason, .. } => {
                format!("aborted at step {}: {}", step + 1, one_line(reason))
            }
            RolloutEvent::Finished {
                service,
                state,
                revision,
                duration_ms,
            } => format!(
                "{service}: {state} ({revision}) in {:.1} s",
                *duration_ms as f64 / 1000.0
            ),
        })
    }

    fn progress(&self) -> Progress {
        match self {
            RolloutEvent::Planned {
                service, replace, ..
            } if *replace > 0 => Progress::Begin {
                key: format!("rollout:{service}"),
                total: *replace as u64,
                label: format!("rolling {service}"),
            },
            RolloutEvent::Healthy {
                service, instance, ..
            } => Progress::Step {
                key: format!("rollout:{service}"),
                label: instance.clone(),
            },
            RolloutEvent::Finished { service, .. } => Progress::End {
                key: format!("rollout:{service}"),
            },
            _ => Progress::None,
        }
    }
}

impl Describe for MonitorEvent {
    fn engine(&self) -> &'static str {
        "monitor"
    }

    fn line(&self) -> Option<String> {
        Some(match self {
            MonitorEvent::Started {
                node,
                rules,
                receivers,
                ..
            } => format!(
                "monitor {node}: {rules} rule(s), receivers: {}",
                if receivers.is_empty() {
                    "none".to_string()
                } else {
                    receivers.join(", ")
                }
            ),
            MonitorEvent::Leading { node, leading } => {
                if *leading {
                    format!("{node} leads rule evaluation")
                } else {
                    format!("{node} no longer leads")
                }
            }
            MonitorEvent::Alert {
                change,
                id,
                name,
                value,
                queued_for,
            } => format!(
                "alert {name} {change} ({id}){}{}",
                value.map(|v| format!(", value {v:.4}")).unwrap_or_default(),
                if queued_for.is_empty() {
                    String::new()
                } else {
                    format!("; notice queued for {}", queued_for.join(", "))
                }
            ),
            MonitorEvent::Delivered {
                receiver,
                notice,
                alerts,
                status,
                attempts,
            } => format!(
                "notice #{notice} ({status}, {alerts} alert(s)) delivered to {receiver} after {attempts} attempt(s)"
            ),
            MonitorEvent::DeliveryFailed {
                receiver,
                notice,
                error,
                retry_in_ms,
            } => format!(
                "notice #{notice} to {receiver} failed: {}{}",
                one_line(error),
                retry_in_ms
                    .map(|ms| format!("; retrying in {:.1} s", ms as f64 / 1000.0))
                    .unwrap_or_default()
            ),
            MonitorEvent::Reloaded { plugin, generation } => {
                format!("plugin {plugin} reloaded (generation {generation})")
            }
            MonitorEvent::ReloadRefused { plugin, error } => {
                format!(
                    "new version of {plugin} refused; the last good one keeps serving: {}",
                    one_line(error)
                )
            }
            MonitorEvent::Stopped { node } => format!("monitor {node} stopped"),
        })
    }
}

impl Describe for DeployEvent {
    fn engine(&self) -> &'static str {
        "deploy"
    }

    fn line(&self) -> Option<String> {
        Some(match self {
            DeployEvent::Preflight { check, ok, detail } => {
                format!(
                    "preflight {check}: {} {detail}",
                    if *ok { "ok," } else { "WARNING:" }
                )
            }
            DeployEvent::Planned {
                id,
                environment,
                steps,
                done,
            } => {
                if *done > 0 {
                    format!(
                        "deployment {id} of {environment}: resuming after {done} of {} step(s): {}",
                        steps.len(),
                        steps.join(" → ")
                    )
                } else {
                    format!("deployment {id} of {environment}: {}", steps.join(" → "))
                }
            }
            DeployEvent::StepStarted { step, .. } => format!("{step}…"),
            DeployEvent::StepFinished {
                step,
                state,
                duration_ms,
                summary,
                ..
            } => format!(
                "{step} {state} in {:.1} s: {}",
                *duration_ms as f64 / 1000.0,
                one_line(summary)
            ),
            DeployEvent::RollingBack { reason, .. } => {
                format!("rolling back: {}", one_line(reason))
            }
            DeployEvent::Undone { step, summary, .. } => {
                format!("undo {step}: {}", one_line(summary))
            }
            DeployEvent::Finished {
                id,
                state,
                duration_ms,
                ..
            } => format!(
                "deployment {id} {} after {:.1} s",
                state.as_str().replace('_', " "),
                *duration_ms as f64 / 1000.0
            ),
        })
    }

    fn progress(&self) -> Progress {
        match self {
            DeployEvent::Planned { id, steps, .. } => Progress::Begin {
                key: format!("deploy:{id}"),
                total: steps.len() as u64,
                label: "deploying".into(),
            },
            DeployEvent::StepFinished { id, step, .. } => Progress::Step {
                key: format!("deploy:{id}"),
                label: step.clone(),
            },
            DeployEvent::Finished { id, .. } => Progress::End {
                key: format!("deploy:{id}"),
            },
            _ => Progress::None,
        }
    }
}
