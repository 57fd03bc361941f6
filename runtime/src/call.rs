//! Calling a loaded plugin: a fresh store per call, the deadline set on it,
//! the memory cap, the capabilities resolved for this call's settings, and
//! every failure turned into a typed `PluginError`.
//!
//! The call is synchronous on the caller's thread and is over (the store
//! dropped) when these functions return. From async code use
//! `tokio::task::spawn_blocking`.

use super::deadline::DeadlineExceeded;
use super::engine::ticks_for;
use super::error::PluginError;
use super::host::{Plugin, Runtime, WorldPre};
use super::limiter::MemoryCap;
use super::manifest::PluginKind;
use super::pipe::BoundedPipe;
use super::returned::Returned;
use super::state::CallState;
use crate::bindings::types::{CheckResult, DeliveryError, Finding, Notification};
use crate::capabilities::CallContext;
use crate::capabilities::config::Settings;
use crate::capabilities::log::LogLine;
use crate::capabilities::sql::SqlSession;
use crate::scrub::Scrubber;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, WasmBacktrace};

/// What happened during one call, whatever its result.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CallReport {
    pub elapsed: Duration,
    pub logs: Vec<LogLine>,
    pub dropped_logs: u64,
    pub stdout: String,
    pub stderr: String,
    pub dropped_output_bytes: u64,
    /// Destinations the plugin asked for and was refused.
    pub denials: Vec<String>,
}

/// What the operator adds to one call, beyond the plugin's own settings.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// A CA file (PEM) to trust for this call's HTTPS, beside the
    /// platform's trust store: a check's or receiver's `ca_file`.
    pub ca_file: Option<std::path::PathBuf>,
    /// Secrets the call's input holds (a validator's rendered file), to
    /// scrub from everything the plugin returns, logs or prints. The
    /// plugin's own secret settings are scrubbed without being listed.
    pub secrets: Vec<String>,
    /// A config validator's file: where each value came from (its
    /// `provenance` import).
    pub origins: Option<crate::capabilities::provenance::Origins>,
}

/// A call's result and its report.
#[derive(Debug)]
pub struct Outcome<T> {
    pub result: Result<T, PluginError>,
    pub report: CallReport,
}

impl<T> Outcome<T> {
    pub fn into_result(self) -> Result<T, PluginError> {
        self.result
    }
}

impl Plugin {
    /// Checks operator settings against the manifest's `[settings]`:
    /// unknown keys and missing required ones are errors; defaults fill in.
    pub fn settings<K, V>(
        &self,
        given: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Settings, PluginError>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let declared = &self.manifest.settings;
        let mut settings = BTreeMap::new();
        for (key, value) in given {
            let key = key.into();
            if !declared.contains_key(&key) {
                let known = if declared.is_empty() {
                    "no settings".to_string()
                } else {
                    declared.keys().cloned().collect::<Vec<_>>().join(", ")
                };
                return Err(PluginError::UnknownSetting {
                    plugin: self.name().to_string(),
                    key,
                    known,
                });
            }
            settings.insert(key, value.into());
        }
        for (key, spec) in declared {
            if settings.contains_key(key) {
                continue;
            }
            if let Some(default) = &spec.default {
                settings.insert(key.clone(), default.clone());
            } else if spec.required {
                return Err(PluginError::MissingSetting {
                    plugin: self.name().to_string(),
                    key: key.clone(),
                });
            }
        }
        Ok(Arc::new(settings))
    }

    fn wrong_kind(&self, expected: PluginKind) -> PluginError {
        PluginError::WrongKind {
            plugin: self.name().to_string(),
            expected: expected.as_str(),
            found: self.kind().as_str(),
        }
    }
}

impl Runtime {
    /// Runs a health check against `target`.
    pub fn check(
        &self,
        plugin: &Plugin,
        settings: &Settings,
        target: &str,
    ) -> Outcome<CheckResult> {
        self.check_with(plugin, settings, target, &CallOptions::default())
    }

    /// Runs a health check with the operator's call options.
    pub fn check_with(
        &self,
        plugin: &Plugin,
        settings: &Settings,
        target: &str,
        options: &CallOptions,
    ) -> Outcome<CheckResult> {
        let WorldPre::HealthCheck(pre) = &plugin.pre else {
            return failed(plugin.wrong_kind(PluginKind::HealthCheck));
        };
        self.run(plugin, settings, target, options, None, |store| {
            pre.instantiate(&mut *store)?
                .call_check(&mut *store, target)
        })
        .0
    }

    /// Delivers one notification through a notifier.
    pub fn notify(
        &self,
        plugin: &Plugin,
        settings: &Settings,
        notification: &Notification,
    ) -> Outcome<Result<(), DeliveryError>> {
        self.notify_with(plugin, settings, notification, &CallOptions::default())
    }

    /// Delivers one notification with the operator's call options.
    pub fn notify_with(
        &self,
        plugin: &Plugin,
        settings: &Settings,
        notification: &Notification,
        options: &CallOptions,
    ) -> Outcome<Result<(), DeliveryError>> {
        let WorldPre::Notifier(pre) = &plugin.pre else {
            return failed(plugin.wrong_kind(PluginKind::Notifier));
        };
        self.run(plugin, settings, "", options, None, |store| {
            pre.instantiate(&mut *store)?
                .call_notify(&mut *store, notification)
        })
        .0
    }

    /// Validates one rendered config file.
    pub fn validate(
        &self,
        plugin: &Plugin,
        settings: &Settings,
        environment: &str,
        file_name: &str,
        json: &str,
    ) -> Outcome<Vec<Finding>> {
        let options = CallOptions::default();
        self.validate_with(plugin, settings, environment, file_name, json, &options)
    }

    /// Validates one rendered config file; `options.secrets` are the
    /// file's resolved secrets.
    pub fn validate_with(
        &self,
        plugin: &Plugin,
        settings: &Settings,
        environment: &str,
        file_name: &str,
        json: &str,
        options: &CallOptions,
    ) -> Outcome<Vec<Finding>> {
        let WorldPre::ConfigValidator(pre) = &plugin.pre else {
            return failed(plugin.wrong_kind(PluginKind::ConfigValidator));
        };
        self.run(plugin, settings, "", options, None, |store| {
            pre.instantiate(&mut *store)?
                .call_validate(&mut *store, environment, file_name, json)
        })
        .0
    }

    /// Runs a migration step's `up` or `down` with `session` as its `sql`
    /// capability; gives the session back, whatever happened, so the
    /// caller can commit or roll back.
    pub fn migrate(
        &self,
        plugin: &Plugin,
        settings: &Settings,
        up: bool,
        session: SqlSession,
    ) -> (Outcome<Result<(), String>>, SqlSession) {
        let WorldPre::Migration(pre) = &plugin.pre else {
            return (failed(plugin.wrong_kind(PluginKind::Migration)), session);
        };
        let mut session = session;
        // The engine holds the plugin to its grant: SQLite's authorizer or
        // PostgreSQL's role, for exactly this call.
        let grant = crate::capabilities::sql::level(&plugin.manifest.capabilities);
        if let Err(why) = session.confine(grant, &self.settings.capabilities.sql.roles) {
            let _ = session.release();
            let error = PluginError::Confinement {
                plugin: plugin.name().to_string(),
                why,
            };
            return (failed(error), session);
        }
        let options = CallOptions::default();
        let (mut outcome, session) =
            self.run(plugin, settings, "", &options, Some(session), |store| {
                let instance = pre.instantiate(&mut *store)?;
                if up {
                    instance.call_up(&mut *store)
                } else {
                    instance.call_down(&mut *store)
                }
            });
        let mut session = session.expect("the session stays in the store for the whole call");
        // A failed step is rolled back, which ends SET LOCAL ROLE with it; a
        // step that succeeded commits only once the session is gantry's again.
        if let Err(why) = session.release()
            && matches!(outcome.result, Ok(Ok(())))
        {
            outcome.result = Err(PluginError::Confinement {
                plugin: plugin.name().to_string(),
                why: format!("leaving the plugin's confinement failed: {why}"),
            });
        }
        (outcome, session)
    }

    fn run<T: Returned>(
        &self,
        plugin: &Plugin,
        settings: &Settings,
        target: &str,
        options: &CallOptions,
        session: Option<SqlSession>,
        call: impl FnOnce(&mut Store<CallState>) -> wasmtime::Result<T>,
    ) -> (Outcome<T>, Option<SqlSession>) {
        let started = Instant::now();
        let limits = plugin.manifest.limits;
        let timeout = Duration::from_millis(limits.timeout_ms);
        let deadline = started + timeout;
        let secrets = Arc::new(secrets_of(plugin, settings, options));
        let mut state = self.call_state(plugin, settings, target, options, deadline, &secrets);
        // The grant came from the plugin's grants; the session is the caller's.
        state.caps.sql.session = session;
        state.caps.sql.deadline = Some(deadline);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(ticks_for(timeout));
        store.epoch_deadline_trap();

        let mut result = call(&mut store);
        if let Ok(value) = &mut result {
            value.tidy(&secrets);
        }
        let mut state = store.into_data();
        let (mut stdout, out_dropped) = state.stdout.take();
        let (mut stderr, err_dropped) = state.stderr.take();
        let mut collected = state.caps.collect();
        // Output past the capacity was cut before it was scrubbed: a
        // secret the cut split must not leave its first part.
        for (text, dropped) in [(&mut stdout, out_dropped), (&mut stderr, err_dropped)] {
            if dropped > 0 {
                secrets.scrub_cut_in_place(text);
            } else {
                secrets.scrub_in_place(text);
            }
        }
        for denial in &mut collected.denials {
            secrets.scrub_in_place(denial);
        }
        let report = CallReport {
            elapsed: started.elapsed(),
            logs: collected.logs,
            dropped_logs: collected.dropped_logs,
            stdout,
            stderr,
            dropped_output_bytes: out_dropped + err_dropped,
            denials: collected.denials,
        };
        forward_output(plugin.name(), &report);
        let result = result.map_err(|err| {
            let mut err = classify(plugin, err, state.limiter.hit, &report.stderr);
            if let PluginError::Trap {
                message, backtrace, ..
            } = &mut err
            {
                message.tidy(&secrets);
                if let Some(backtrace) = backtrace {
                    backtrace.tidy(&secrets);
                }
            }
            err
        });
        {
            let mut stats = self.stats.lock().expect("stats");
            let entry = match stats.get_mut(plugin.name()) {
                Some(entry) => entry,
                None => stats.entry(plugin.name().to_string()).or_default(),
            };
            entry.0 += 1;
            entry.1 += u64::from(result.is_err());
        }
        (Outcome { result, report }, state.caps.sql.session)
    }

    fn call_state(
        &self,
        plugin: &Plugin,
        settings: &Settings,
        target: &str,
        options: &CallOptions,
        deadline: Instant,
        secrets: &Arc<Scrubber>,
    ) -> CallState {
        let name: Arc<str> = Arc::from(plugin.name());
        let stdout = BoundedPipe::new(self.settings.output_capacity);
        let stderr = BoundedPipe::new(self.settings.output_capacity);
        let caps = self.caps.states(&CallContext {
            plugin: &name,
            grants: &plugin.manifest.capabilities,
            limits: &plugin.manifest.limits,
            secrets,
            settings,
            target,
            deadline,
            io: self.io(),
            ca_file: options.ca_file.as_deref(),
            origins: options.origins.as_ref(),
        });
        CallState {
            wasi: CallState::sandboxed_wasi(&stdout, &stderr),
            table: ResourceTable::new(),
            limiter: MemoryCap::new((plugin.manifest.limits.memory_mib << 20) as usize),
            stdout,
            stderr,
            caps,
            deadline,
        }
    }
}

fn failed<T>(error: PluginError) -> Outcome<T> {
    Outcome {
        result: Err(error),
        report: CallReport::default(),
    }
}

/// The secrets one call may see: its secret settings (declared so, or
/// under a secret-like key), what the caller lists, and every value
/// resolved from a secret reference.
fn secrets_of(plugin: &Plugin, settings: &Settings, options: &CallOptions) -> Scrubber {
    let declared = &plugin.manifest.settings;
    let own = settings.iter().filter_map(|(key, value)| {
        let secret =
            declared.get(key).is_some_and(|spec| spec.secret) || crate::scrub::is_secret_key(key);
        secret.then_some(value.as_str())
    });
    // And every value this process resolved from a secret reference,
    // whatever setting it landed in.
    let resolved = crate::scrub::remembered();
    Scrubber::new(
        own.chain(options.secrets.iter().map(String::as_str))
            .chain(resolved.iter().map(String::as_str)),
    )
}

/// Plugin stdout/stderr and dropped counts into the host's log.
fn forward_output(plugin: &str, report: &CallReport) {
    for line in report.stdout.lines() {
        let line = crate::escape::one_line(line);
        tracing::debug!(target: "gantry::plugin", plugin, stream = "stdout", "{line}");
    }
    for line in report.stderr.lines() {
        let line = crate::escape::one_line(line);
        tracing::debug!(target: "gantry::plugin", plugin, stream = "stderr", "{line}");
    }
    if report.dropped_logs > 0 || report.dropped_output_bytes > 0 {
        tracing::warn!(
            target: "gantry::plugin",
            plugin,
            "dropped {} log lines and {} bytes of output over the limits",
            report.dropped_logs,
            report.dropped_output_bytes
        );
    }
}

/// Turns a failed call into the error an operator can act on.
fn classify(plugin: &Plugin, err: wasmtime::Error, memory_hit: bool, stderr: &str) -> PluginError {
    let name = plugin.name().to_string();
    let limits = plugin.manifest.limits;
    // The host's own limiter says so, never text the guest wrote.
    if memory_hit {
        return PluginError::OutOfMemory {
            plugin: name,
            limit_mib: limits.memory_mib,
        };
    }
    if err
        .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return PluginError::Busy(format!("{err:#}"));
    }
    let trap = err.downcast_ref::<Trap>().copied();
    if trap == Some(Trap::Interrupt) || err.downcast_ref::<DeadlineExceeded>().is_some() {
        return PluginError::Timeout {
            plugin: name,
            limit: Duration::from_millis(limits.timeout_ms),
        };
    }
    let wasm_backtrace = err
        .downcast_ref::<WasmBacktrace>()
        .map(|bt| bt.to_string().trim_end().to_string())
        .filter(|bt| !bt.is_empty());
    if trap.is_none() && wasm_backtrace.is_none() {
        return PluginError::Host {
            plugin: name,
            source: anyhow::Error::from(err),
        };
    }
    // A Python guest's uncaught exception: its traceback says where, the
    // interpreter's wasm frames do not.
    let (message, backtrace) = match python_exception(stderr) {
        Some((exception, traceback)) => (
            format!("uncaught Python exception: {exception}"),
            Some(traceback),
        ),
        None => (
            panic_message(stderr).unwrap_or_else(|| match trap {
                Some(trap) => trap.to_string(),
                None => format!("{err:#}"),
            }),
            wasm_backtrace,
        ),
    };
    PluginError::Trap {
        plugin: name,
        message,
        backtrace,
    }
}

/// The last Python traceback a guest printed to stderr: the exception line
/// and the traceback's last frames.
fn python_exception(stderr: &str) -> Option<(String, String)> {
    const FRAMES: usize = 8;
    let (_, after) = stderr.rsplit_once("Traceback (most recent call last):")?;
    let lines: Vec<&str> = after
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("thread '"))
        .collect();
    let (exception, frames) = lines.split_last()?;
    let frames: Vec<&str> = frames.iter().map(|l| l.trim_end()).collect();
    let from = frames.len().saturating_sub(FRAMES);
    let mut traceback = String::from("Traceback (most recent call last):\n");
    if from > 0 {
        traceback.push_str(&format!("  ... {from} lines above\n"));
    }
    traceback.push_str(&frames[from..].join("\n"));
    Some((exception.trim().to_string(), traceback))
}

/// The panic message a Rust guest printed to stderr, if it panicked.
fn panic_message(stderr: &str) -> Option<String> {
    let mut lines = stderr.lines().skip_while(|l| !l.contains("panicked at"));
    let location = lines.next()?;
    let location = location
        .split_once("panicked at ")
        .map(|(_, loc)| loc.trim_end_matches(':'))
        .unwrap_or(location);
    let message: Vec<&str> = lines.take_while(|l| !l.starts_with("note:")).collect();
    Some(format!("panicked at {location}: {}", message.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::{panic_message, python_exception};

    #[test]
    fn finds_the_python_exception_and_its_frames() {
        let stderr = "Traceback (most recent call last):\n  File \"/0/app.py\", line 27, in check\n  File \"/0/app.py\", line 36, in explode\nValueError: no\n\nthread '<unnamed>' (1) panicked at runtime/src/lib.rs:1280:25:\nPython function threw an unexpected exception\n";
        let (exception, traceback) = python_exception(stderr).unwrap();
        assert_eq!(exception, "ValueError: no");
        assert!(traceback.ends_with("line 36, in explode"), "{traceback}");
        assert_eq!(python_exception("thread panicked at x"), None);
    }

    #[test]
    fn finds_the_panic_message() {
        let stderr = "thread '<unnamed>' panicked at src/lib.rs:17:25:\nboom here\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(stderr).as_deref(),
            Some("panicked at src/lib.rs:17:25: boom here")
        );
        assert_eq!(panic_message("nothing"), None);
    }
}
