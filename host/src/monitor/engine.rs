//! `AuthMonitor`: the library face of monitoring, after the original
//! `auth_monitoring.py` — `record_auth_event`, `start`, `alerts`,
//! `acknowledge` — and what `gantry monitor` runs: a publisher of this
//! monitor's seconds, a leader loop (rules evaluated, alerts moved, notices
//! queued, repeats) that only the holder of the `monitor:leader` lease
//! runs, a delivery worker, and a watcher that hot-reloads notifier
//! plugins. `stop` ends them in order and releases the lease.

use super::auth_event::{Kind, UnknownKind};
use super::cluster::{Remote, publish};
use super::delivery::{Delivery, DeliveryCounters};
use super::evaluator::{Evaluator, RuleState, Transition};
use super::events::Event;
use super::export::AlertLog;
use super::lifecycle::{Lifecycle, Timing};
use super::node::Node;
use super::receivers::{Receiver, ReceiverError, receivers};
use super::recorder::{Recorder, now_second};
use super::reload::watch_plugins;
use super::revisions::ByRevision;
use super::rules::{Rule, RuleError, rules};
use super::trend::Trend;
use crate::clock::now_ms;
use crate::config::{DeliveryConfig, MonitoringConfig};
use crate::events::{Sink, discard};
use crate::runtime::Registry;
use crate::settings::Settings;
use crate::store::AlertState;
use crate::store::{AlertRecord, Lease, Store, StoreError};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("{0}")]
    Rule(#[from] RuleError),
    #[error("{0}")]
    Receiver(#[from] ReceiverError),
    #[error("`{key}`: {message}")]
    Config { key: String, message: String },
    #[error("no alert {0}")]
    UnknownAlert(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The monitor's settings, resolved.
#[derive(Debug, Clone)]
pub struct MonitorSettings {
    pub rules: Vec<Rule>,
    pub receivers: Vec<Receiver>,
    pub group_by: Vec<String>,
    pub timing: Timing,
    pub delivery: DeliveryConfig,
    pub evaluation_interval: Duration,
    pub external_url: String,
    pub alert_log: PathBuf,
    pub plugin_dir: Option<PathBuf>,
    pub secrets_base: PathBuf,
    pub lease_ttl: Duration,
    pub host: String,
}

fn secs(s: f64) -> Duration {
    crate::clock::seconds(s)
}

impl MonitorSettings {
    /// From the resolved settings; bad rules and receivers are refused
    /// with their key path.
    pub fn from_settings(settings: &Settings) -> Result<MonitorSettings, MonitorError> {
        let m: &MonitoringConfig = &settings.config.config.monitoring;
        let base = settings.secrets_base();
        for (key, v) in [
            ("monitoring.group_wait_seconds", m.group_wait_seconds),
            (
                "monitoring.group_interval_seconds",
                m.group_interval_seconds,
            ),
            (
                "monitoring.repeat_interval_seconds",
                m.repeat_interval_seconds,
            ),
            (
                "monitoring.delivery.max_age_seconds",
                m.delivery.max_age_seconds,
            ),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(MonitorError::Config {
                    key: key.into(),
                    message: format!("{v} is not a duration in seconds"),
                });
            }
        }
        Ok(MonitorSettings {
            rules: rules(m)?,
            receivers: receivers(m, &base)?,
            group_by: m.group_by.clone(),
            timing: Timing {
                group_wait: secs(m.group_wait_seconds),
                group_interval: secs(m.group_interval_seconds),
                repeat_interval: secs(m.repeat_interval_seconds),
            },
            delivery: m.delivery.clone(),
            evaluation_interval: secs(m.evaluation_interval_seconds),
            external_url: m
                .external_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", m.api.listen)),
            alert_log: settings.resolve_path(&m.alert_log),
            plugin_dir: Some(settings.plugin_dir.clone()),
            secrets_base: base,
            lease_ttl: settings.lease_ttl,
            host: settings.host.clone(),
        })
    }
}

/// Each rule's name and its last value.
type RuleValues = Vec<(String, Option<f64>)>;

pub struct AuthMonitor {
    recorder: Recorder,
    by_revision: ByRevision,
    trend: Trend,
    store: Store,
    registry: Arc<Registry>,
    settings: MonitorSettings,
    node: String,
    sink: Sink<Event>,
    pub(crate) counters: Arc<DeliveryCounters>,
    pub(crate) reloads: Arc<(AtomicU64, AtomicU64)>,
    pub(crate) ingested: AtomicU64,
    pub(crate) rejected: AtomicU64,
    leading: Arc<AtomicBool>,
    /// The leader lease's freshness, while this monitor holds it.
    lease_watch: std::sync::Mutex<Option<crate::store::LeaseWatch>>,
    /// Wakes the leader to evaluate now (new events arrived).
    evaluate_now: Arc<tokio::sync::Notify>,
    /// Wakes the delivery worker (notices were queued).
    deliver_now: Arc<tokio::sync::Notify>,
    api: Option<String>,
    values: Arc<std::sync::Mutex<RuleValues>>,
    /// The second the published seconds were last pruned.
    pruned: AtomicU64,
}

/// The tasks `start` spawned; `stop` ends them.
pub struct MonitorHandle {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl MonitorHandle {
    /// Stops taking work, lets each task finish what it holds, and returns
    /// when all have ended (the leader lease released).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

use super::revisions::SECONDS_KEPT as REVISION_SECONDS_KEPT;

/// The shortest gap between two evaluations when events keep arriving.
const NUDGE_GAP: Duration = Duration::from_millis(50);

impl AuthMonitor {
    pub fn new(settings: MonitorSettings, store: Store, registry: Arc<Registry>) -> AuthMonitor {
        let node = Node::current(&settings.host).to_string();
        AuthMonitor {
            recorder: Recorder::default(),
            by_revision: ByRevision::default(),
            trend: Trend::default(),
            store,
            registry,
            values: Arc::new(std::sync::Mutex::new(
                settings
                    .rules
                    .iter()
                    .map(|r| (r.name.clone(), None))
                    .collect(),
            )),
            settings,
            node,
            sink: discard(),
            counters: Arc::default(),
            reloads: Arc::default(),
            ingested: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            leading: Arc::default(),
            lease_watch: Default::default(),
            api: None,
            evaluate_now: Arc::default(),
            deliver_now: Arc::default(),
            pruned: AtomicU64::new(0),
        }
    }

    pub fn with_sink(mut self, sink: Sink<Event>) -> Self {
        self.sink = sink;
        self
    }

    /// Where this monitor's API listens (reported when it starts).
    pub fn with_api(mut self, address: impl Into<String>) -> Self {
        self.api = Some(address.into());
        self
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn settings(&self) -> &MonitorSettings {
        &self.settings
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The last hour of figures, for the console.
    pub fn trend(&self) -> &Trend {
        &self.trend
    }

    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Leads now: holds the leader lease, renewed within its life (a
    /// leader whose heartbeat was starved stops saying so at once, not at
    /// its next evaluation).
    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
            && self
                .lease_watch
                .lock()
                .expect("lease watch")
                .as_ref()
                .is_some_and(|w| w.is_fresh())
    }

    /// Each rule and its last value (leader only).
    pub fn rule_values(&self) -> Vec<(String, Option<f64>)> {
        self.values.lock().expect("values").clone()
    }

    /// The spec's `record_auth_event('auth_attempt', success=True,
    /// response_time_ms=250)`. An unknown kind is an error, never dropped.
    pub fn record_auth_event(
        &self,
        kind: &str,
        success: bool,
        response_time_ms: Option<f64>,
    ) -> Result<(), UnknownKind> {
        let kind: Kind = kind.parse()?;
        self.record(
            kind,
            success,
            response_time_ms
                .filter(|ms| ms.is_finite() && *ms >= 0.0)
                .map(|ms| crate::clock::seconds(ms / 1000.0)),
        );
        Ok(())
    }

    /// Records one event (the typed form).
    #[inline]
    pub fn record(&self, kind: Kind, success: bool, response_time: Option<Duration>) {
        self.recorder.record(kind, success, response_time);
    }

    /// Records one event `instance` sent: in the global windows and in its
    /// revision's (see `revisions.rs`).
    #[inline]
    pub fn record_from(
        &self,
        instance: &str,
        kind: Kind,
        success: bool,
        response_time: Option<Duration>,
    ) {
        self.recorder.record(kind, success, response_time);
        self.by_revision
            .record(instance, kind, success, response_time);
    }

    /// The per-revision windows.
    pub fn by_revision(&self) -> &ByRevision {
        &self.by_revision
    }

    /// Alerts, newest first (`states` only, when not empty).
    pub async fn alerts(&self, states: &[AlertState]) -> Result<Vec<AlertRecord>, MonitorError> {
        Ok(self
            .store
            .read(async |tx| tx.alerts(states, 1000).await)
            .await?)
    }

    /// Acknowledges an alert (by id or fingerprint): it stops repeating
    /// until `expires` (if given) or until it resolves.
    pub async fn acknowledge(
        &self,
        id: &str,
        who: &str,
        comment: Option<&str>,
        expires: Option<Duration>,
    ) -> Result<AlertRecord, MonitorError> {
        super::admin::acknowledge(&self.store, id, who, comment, expires).await
    }

    /// Asks the leader to evaluate soon (at most every `NUDGE_GAP`) rather
    /// than at its next interval: the API calls this after each batch, so
    /// a breach is judged within milliseconds of arriving.
    pub fn nudge(&self) {
        self.evaluate_now.notify_one();
    }

    /// Starts the monitor's tasks on the current tokio runtime.
    pub fn start(self: &Arc<Self>) -> MonitorHandle {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        (self.sink)(&Event::Started {
            node: self.node.clone(),
            api: self.api.clone(),
            rules: self.settings.rules.len(),
            receivers: self
                .settings
                .receivers
                .iter()
                .map(|r| r.name.clone())
                .collect(),
        });
        let me = Arc::clone(self);
        let mut rx = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = now_second().saturating_sub(1);
            loop {
                let stopping = tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => false,
                    _ = rx.changed() => true,
                };
                let upto = if stopping {
                    now_second()
                } else {
                    now_second() - 1
                };
                me.trend.update(me.recorder.windows(), upto);
                match publish(&me.store, &me.node, me.recorder.windows(), last, upto).await {
                    Ok(done) => last = done,
                    Err(e) => tracing::warn!("publishing metrics: {e}"),
                }
                if let Err(e) = me.by_revision.publish(&me.store, &me.node, upto).await {
                    tracing::warn!("publishing revision metrics: {e}");
                }
                if let Err(e) = me.by_revision.refresh(&me.store, upto + 1).await {
                    tracing::warn!("reading which instance runs which revision: {e}");
                }
                if stopping {
                    return;
                }
            }
        }));
        let me = Arc::clone(self);
        let rx = stopped.clone();
        tasks.push(tokio::spawn(async move { me.lead(rx).await }));
        let me = Arc::clone(self);
        let mut rx = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let delivery = me.delivery();
            let poll = secs(me.settings.delivery.poll_seconds.max(0.01));
            loop {
                match delivery.tick().await {
                    Ok(n) if n > 0 => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!("delivery: {e}"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = me.deliver_now.notified() => {}
                    _ = rx.changed() => return,
                }
            }
        }));
        if let Some(dir) = self.settings.plugin_dir.clone()
            && let Some(watching) = watch_plugins(
                dir,
                Arc::clone(&self.registry),
                self.sink.clone(),
                Arc::clone(&self.reloads),
                stopped.clone(),
            )
        {
            tasks.push(tokio::spawn(watching));
        }
        MonitorHandle { stop, tasks }
    }

    fn delivery(&self) -> Delivery {
        Delivery {
            store: self.store.clone(),
            registry: Arc::clone(&self.registry),
            receivers: self.settings.receivers.clone(),
            group_by: self.settings.group_by.clone(),
            external_url: self.settings.external_url.clone(),
            config: self.settings.delivery.clone(),
            node: self.node.clone(),
            secrets_base: self.settings.secrets_base.clone(),
            sink: self.sink.clone(),
            counters: Arc::clone(&self.counters),
        }
    }

    /// Sends a test notice to every receiver (see `Delivery::send_test`):
    /// each receiver's name and the outcome.
    pub async fn send_test_notices(&self, reference: &str) -> Vec<(String, Result<(), String>)> {
        let delivery = self.delivery();
        let mut outcomes = Vec::new();
        for receiver in &self.settings.receivers {
            outcomes.push((
                receiver.name.clone(),
                delivery.send_test(receiver, reference).await,
            ));
        }
        outcomes
    }

    /// The leader loop: take (or keep) the lease; while held, evaluate the
    /// rules every interval over this monitor's windows and the others'
    /// published seconds, apply what changed, queue repeats.
    async fn lead(&self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        let lifecycle = Lifecycle {
            store: self.store.clone(),
            receivers: self.settings.receivers.clone(),
            group_by: self.settings.group_by.clone(),
            timing: self.settings.timing.clone(),
        };
        let log = AlertLog {
            path: self.settings.alert_log.clone(),
        };
        let remote = Remote::default();
        let mut lease: Option<Lease> = None;
        let mut evaluator = Evaluator::new(self.settings.rules.clone());
        loop {
            if lease.is_none() {
                match self
                    .store
                    .try_lease(
                        "monitor:leader",
                        "monitor leadership",
                        self.settings.lease_ttl,
                    )
                    .await
                {
                    Ok(held) => {
                        evaluator = Evaluator::new(self.settings.rules.clone());
                        if let Err(e) = self.resume(&mut evaluator).await {
                            tracing::warn!("resuming alert states: {e}");
                        }
                        *self.lease_watch.lock().expect("lease watch") = Some(held.watch());
                        self.leading.store(true, Ordering::Relaxed);
                        (self.sink)(&Event::Leading {
                            node: self.node.clone(),
                            leading: true,
                        });
                        lease = Some(held);
                    }
                    Err(crate::store::LeaseError::Held { .. }) => {}
                    Err(e) => tracing::warn!("monitor leadership: {e}"),
                }
            } else if let Some(held) = &lease
                && held.ensure_held().await.is_err()
            {
                self.leading.store(false, Ordering::Relaxed);
                (self.sink)(&Event::Leading {
                    node: self.node.clone(),
                    leading: false,
                });
                lease = None;
            }
            if lease.is_some()
                && let Err(e) = self
                    .evaluate(&mut evaluator, &lifecycle, &log, &remote)
                    .await
            {
                tracing::warn!("evaluating rules: {e}");
            }
            let evaluated = std::time::Instant::now();
            let stop = tokio::select! {
                _ = tokio::time::sleep(self.settings.evaluation_interval) => false,
                _ = self.evaluate_now.notified(), if lease.is_some() => {
                    // Nudged: evaluate again, but not more often than this.
                    let since = evaluated.elapsed();
                    if since < NUDGE_GAP {
                        tokio::select! {
                            _ = tokio::time::sleep(NUDGE_GAP - since) => false,
                            _ = stopped.changed() => true,
                        }
                    } else {
                        false
                    }
                }
                _ = stopped.changed() => true,
            };
            if stop {
                if let Some(held) = lease.take() {
                    held.release().await;
                }
                self.leading.store(false, Ordering::Relaxed);
                (self.sink)(&Event::Stopped {
                    node: self.node.clone(),
                });
                return;
            }
        }
    }

    /// A new leader picks up pending and firing alerts where they are.
    async fn resume(&self, evaluator: &mut Evaluator) -> Result<(), StoreError> {
        let open = self
            .store
            .read(async |tx| tx.alerts(AlertState::OPEN, 10_000).await)
            .await?;
        for alert in open {
            let state = if alert.state == AlertState::Firing {
                RuleState::Firing {
                    since_ms: alert.firing_ms.unwrap_or(alert.started_ms),
                    resolving_since_ms: None,
                }
            } else {
                RuleState::Pending {
                    since_ms: alert.started_ms,
                }
            };
            evaluator.resume(&alert.rule, state);
        }
        Ok(())
    }

    async fn evaluate(
        &self,
        evaluator: &mut Evaluator,
        lifecycle: &Lifecycle,
        log: &AlertLog,
        remote: &Remote,
    ) -> Result<(), StoreError> {
        let now = now_second();
        remote.refresh(&self.store, &self.node, now).await?;
        let windows = self.recorder.windows();
        let transitions = evaluator.evaluate(now_ms(), |window| {
            let seconds = window.as_secs();
            let mut totals = windows.totals(now, seconds);
            remote.add_to(&mut totals, now, seconds);
            totals
        });
        *self.values.lock().expect("values") = evaluator
            .rules
            .iter()
            .zip(&evaluator.values)
            .map(|(r, v)| (r.name.clone(), *v))
            .collect();
        let ruled: Vec<(&Rule, &Transition)> = transitions
            .iter()
            .map(|transition| {
                let rule = match transition {
                    Transition::Pending { rule, .. }
                    | Transition::Cancelled { rule }
                    | Transition::Firing { rule, .. }
                    | Transition::Resolved { rule, .. } => &evaluator.rules[*rule],
                };
                (rule, transition)
            })
            .collect();
        let applied = lifecycle.apply(&ruled, now_ms()).await?;
        if applied.iter().any(|a| !a.queued.is_empty()) {
            self.deliver_now.notify_one();
        }
        for applied in applied {
            log.append(applied.event.as_str(), &applied.alert);
            (self.sink)(&Event::Alert {
                change: applied.event.to_string(),
                id: applied.alert.id.clone(),
                name: applied.alert.rule.clone(),
                value: applied.alert.value,
                queued_for: applied.queued,
            });
        }
        lifecycle.repeat(now_ms()).await?;
        if now >= self.pruned.load(Ordering::Relaxed) + 60 {
            self.pruned.store(now, Ordering::Relaxed);
            let before = now.saturating_sub(super::window::SLOTS as u64) as i64;
            self.store
                .write(async |tx| tx.prune_seconds(before).await)
                .await?;
            // A canary step's analysis reads up to its deadline back.
            let before = now.saturating_sub(REVISION_SECONDS_KEPT) as i64;
            self.store
                .write(async |tx| tx.prune_revision_seconds(before).await)
                .await?;
        }
        Ok(())
    }
}
