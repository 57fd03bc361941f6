//! The `supervised` driver: gantry runs the instances. Each instance is
//! started through `sh -c 'LISTEN_PID=$$ … exec "$0" "$@"'` (so
//! `LISTEN_PID` is its own pid, as systemd's protocol wants) in a session
//! of its own so it outlives the gantry that started it; its output goes
//! to `<log_dir>/<service>/<instance>.log`.
//!
//! Traffic: with the front door (default) an instance gets one private
//! socket (`LISTEN_FDNAMES=http`) and takes requests only once it passed
//! its gate and the front door has it in its pool; retiring takes it out
//! of the pool and waits for its last request before SIGTERM. With
//! `shared-socket` it gets the service's shared sockets at fds 3… and a
//! private one last (`http…:health`), and accepts from the start.
//!
//! Records before processes: an instance's row (name from a counter that
//! never goes back, a unique id) is committed before it is spawned, and the
//! process carries it (`GANTRY_INSTANCE_ID=<installation>:<service>:<id>`,
//! the installation being its state store's). A process
//! of this service that no row knows (its gantry was killed between spawn
//! and record) is found in `/proc` and stopped, named in the log.

use super::driver::Driver;
use super::error::RolloutError;
use super::events::Event;
use super::front::Front;
use super::health::InstanceView;
use super::sockets::{self, FIRST_FD};
use super::spec::{Revision, ServiceSpec, fill};
use crate::clock::now_ms;
use crate::events::Sink;
use crate::process::ProcessId;
use crate::store::InstanceState;
use crate::store::{InstanceRecord, Store};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Supervised {
    store: Store,
    spec: ServiceSpec,
    host: String,
    grace: Duration,
    sink: Sink<Event>,
    /// The shared sockets, once taken (from an instance, or bound).
    sockets: tokio::sync::Mutex<Option<Vec<OwnedFd>>>,
    /// Instances this process started, to reap them when they exit.
    children: Arc<Mutex<HashMap<String, std::process::Child>>>,
    /// Retirements under way: SIGTERM sent, waiting for the exit.
    stopping: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The service's front door (`traffic: front-door`), else `None`.
    front: Option<Front>,
    /// Which installation (state store) this is: two on one host may run
    /// services of the same name.
    installation: String,
}

impl Supervised {
    pub fn new(
        store: Store,
        spec: ServiceSpec,
        host: String,
        grace: Duration,
        sink: Sink<Event>,
        front: Option<Front>,
        installation: String,
    ) -> Supervised {
        Supervised {
            store,
            spec,
            host,
            grace,
            sink,
            sockets: tokio::sync::Mutex::new(None),
            children: Arc::new(Mutex::new(HashMap::new())),
            stopping: Mutex::new(Vec::new()),
            front,
            installation,
        }
    }

    /// What a process of this service carries in `GANTRY_INSTANCE_ID`:
    /// installation, service, id.
    fn tag(&self, instance_id: &str) -> String {
        format!("{}:{}:{instance_id}", self.installation, self.service())
    }

    /// Processes on this host carrying an instance id of this service:
    /// (pid, id). Read from `/proc/*/environ` (this user's processes).
    fn tagged_processes(&self) -> Vec<(u32, String)> {
        let prefix = format!(
            "GANTRY_INSTANCE_ID={}:{}:",
            self.installation,
            self.service()
        );
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            for var in environ.split(|b| *b == 0) {
                if let Some(id) = var.strip_prefix(prefix.as_bytes()) {
                    found.push((pid, String::from_utf8_lossy(id).into_owned()));
                }
            }
        }
        found
    }

    fn service(&self) -> &str {
        &self.spec.name
    }

    /// Copies of the shared sockets: from a live instance when one holds
    /// them, else bound now.
    async fn shared_sockets(&self, live: &[InstanceRecord]) -> Result<Vec<OwnedFd>, RolloutError> {
        let mut cached = self.sockets.lock().await;
        if cached.is_none() {
            *cached = Some(self.acquire(live)?);
        }
        let socket_error = |detail: String| RolloutError::Socket {
            service: self.service().to_string(),
            address: self.spec.config.listen.join(", "),
            detail,
        };
        cached
            .as_ref()
            .expect("just set")
            .iter()
            .map(|fd| fd.try_clone().map_err(|e| socket_error(e.to_string())))
            .collect()
    }

    fn acquire(&self, live: &[InstanceRecord]) -> Result<Vec<OwnedFd>, RolloutError> {
        let listen = &self.spec.config.listen;
        let mut refusals = Vec::new();
        for instance in live {
            let Some(pid) = instance.pid else { continue };
            let taken = sockets::take_listeners(pid, listen);
            match taken {
                Ok(fds) => {
                    tracing::info!(
                        service = self.service(),
                        pid,
                        "took the listening sockets over from a running instance"
                    );
                    return Ok(fds);
                }
                Err(why) => refusals.push(why),
            }
        }
        listen
            .iter()
            .map(|address| {
                sockets::bind(address).map_err(|e| RolloutError::Socket {
                    service: self.service().to_string(),
                    address: address.clone(),
                    detail: if refusals.is_empty() {
                        e.to_string()
                    } else {
                        format!(
                            "{e} (and no running instance gave it up: {})",
                            refusals.join("; ")
                        )
                    },
                })
            })
            .collect()
    }

    /// The next name: from a counter in the store that never goes back, so
    /// no two instances (or logs) ever share one.
    async fn next_name(&self, existing: &[InstanceRecord]) -> Result<String, RolloutError> {
        let prefix = format!("{}-", self.service());
        let at_least = existing
            .iter()
            .filter_map(|i| i.name.strip_prefix(&prefix)?.parse::<i64>().ok())
            .max()
            .map_or(1, |n| n + 1);
        let (service, host) = (self.service().to_string(), self.host.clone());
        let number = self
            .store
            .write(async |tx| tx.next_instance_number(&service, &host, at_least).await)
            .await?;
        Ok(format!("{prefix}{number}"))
    }

    fn log_file(&self, name: &str) -> Result<std::fs::File, RolloutError> {
        let dir = self.spec.log_dir.join(self.service());
        std::fs::create_dir_all(&dir).map_err(|e| RolloutError::Io {
            action: format!("create {}", dir.display()),
            source: e,
        })?;
        let path = dir.join(format!("{name}.log"));
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| RolloutError::Io {
                action: format!("open {}", path.display()),
                source: e,
            })
    }

    fn spawn(
        &self,
        name: &str,
        instance_id: &str,
        revision: &Revision,
        shared: Vec<OwnedFd>,
        private: OwnedFd,
    ) -> Result<std::process::Child, RolloutError> {
        use std::os::unix::process::CommandExt;
        let spawn_error = |detail: String| RolloutError::Spawn {
            service: self.service().to_string(),
            detail,
        };
        let values = [
            ("instance", name),
            ("version", revision.label.as_str()),
            ("service", self.service()),
        ];
        let argv: Vec<String> = revision
            .spec
            .command
            .iter()
            .map(|a| fill(a, &values))
            .collect();
        let Some((program, args)) = argv.split_first() else {
            return Err(spawn_error("the command is empty".into()));
        };
        let base = &self.spec.base_dir;
        let program = if program.contains('/') {
            base.join(program).display().to_string()
        } else {
            program.clone()
        };
        let working_dir: PathBuf = revision
            .spec
            .working_dir
            .as_ref()
            .map(|d| base.join(d))
            .unwrap_or_else(|| base.clone());
        let log = self.log_file(name)?;
        let log_err = log.try_clone().map_err(|e| spawn_error(e.to_string()))?;
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg("LISTEN_PID=$$; export LISTEN_PID; exec \"$0\" \"$@\"")
            .arg(&program)
            .args(args)
            .current_dir(&working_dir)
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log_err);
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            if key.starts_with("LISTEN_") || key.starts_with("GANTRY_") {
                cmd.env_remove(&key);
            }
        }
        for (key, value) in &revision.spec.env {
            let value = crate::secrets::resolve(value, base).map_err(|e| RolloutError::Secret {
                key: format!("services.{}.env.{key}", self.service()),
                source: e,
            })?;
            cmd.env(key, fill(&value, &values));
        }
        // With the front door the private socket is the only one, and it
        // serves; with shared sockets it comes last, for health checks.
        let names: Vec<String> = if self.front.is_some() {
            vec!["http".to_string()]
        } else {
            shared
                .iter()
                .map(|_| "http".to_string())
                .chain(["health".to_string()])
                .collect()
        };
        cmd.env("LISTEN_FDS", names.len().to_string())
            .env("LISTEN_FDNAMES", names.join(":"))
            .env("GANTRY_INSTANCE_ID", self.tag(instance_id));
        let mut fds: Vec<i32> = shared.iter().map(|fd| fd.as_raw_fd()).collect();
        fds.push(private.as_raw_fd());
        // SAFETY: only async-signal-safe calls (fcntl, dup2, setsid) between
        // fork and exec; `fds` is moved in and read, never allocated.
        unsafe {
            cmd.pre_exec(move || {
                // Out of the way first, so placing one cannot clobber another.
                let mut high = [0i32; 16];
                for (i, fd) in fds.iter().enumerate() {
                    let moved = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 100);
                    if moved < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    high[i] = moved;
                }
                for (i, fd) in high.iter().take(fds.len()).enumerate() {
                    if libc::dup2(*fd, FIRST_FD + i as i32) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| spawn_error(format!("{program}: {e}")))?;
        // The child holds its copies now; ours close here.
        drop(shared);
        drop(private);
        Ok(child)
    }

    fn stopper(&self) -> Stopper {
        Stopper {
            store: self.store.clone(),
            children: Arc::clone(&self.children),
            grace: self.grace,
            sink: self.sink.clone(),
        }
    }
}

/// What stopping an instance needs, owned, so it can finish in a task.
struct Stopper {
    store: Store,
    children: Arc<Mutex<HashMap<String, std::process::Child>>>,
    grace: Duration,
    sink: Sink<Event>,
}

impl Stopper {
    /// SIGTERM, then SIGKILL after the grace period; true when forced.
    async fn stop(&self, instance: &InstanceRecord) -> bool {
        let Some(pid) = instance.pid else {
            return false;
        };
        let process = ProcessId {
            pid: pid as u32,
            start: instance.process_start.clone().unwrap_or_default(),
        };
        if !alive(&self.children, &instance.name, &process) {
            return false;
        }
        // SAFETY: kill(2) on a process whose identity (pid + start time) we
        // checked just now.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if !alive(&self.children, &instance.name, &process) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        if alive(&self.children, &instance.name, &process) {
            // SAFETY: as above.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            for _ in 0..200 {
                if !alive(&self.children, &instance.name, &process) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            return true;
        }
        false
    }

    async fn forget(&self, instance: &InstanceRecord) -> Result<(), RolloutError> {
        self.children
            .lock()
            .expect("children")
            .remove(&instance.name);
        self.store
            .write(async |tx| {
                tx.delete_instance(&instance.service, &instance.host, &instance.name)
                    .await
            })
            .await?;
        Ok(())
    }

    /// Stops `instance`, forgets it, says so.
    async fn retire(&self, instance: &InstanceRecord) {
        let started = Instant::now();
        let forced = self.stop(instance).await;
        if let Err(e) = self.forget(instance).await {
            tracing::error!(instance = %instance.name, "cannot forget a stopped instance: {e}");
        }
        (self.sink)(&Event::Stopped {
            service: instance.service.clone(),
            instance: instance.name.clone(),
            forced,
            after_ms: started.elapsed().as_millis() as u64,
        });
    }
}

/// True while the process runs; reaps it if it is our child and exited.
fn alive(
    children: &Mutex<HashMap<String, std::process::Child>>,
    name: &str,
    process: &ProcessId,
) -> bool {
    if let Some(child) = children.lock().expect("children").get_mut(name)
        && let Ok(Some(_)) = child.try_wait()
    {
        return false;
    }
    process.is_running()
}

#[async_trait::async_trait]
impl Driver for Supervised {
    async fn live(&self) -> Result<Vec<InstanceRecord>, RolloutError> {
        let service = self.service().to_string();
        let all = self
            .store
            .read(async |tx| tx.instances(Some(&service)).await)
            .await?;
        let mut live = Vec::new();
        for instance in all.into_iter().filter(|i| i.host == self.host) {
            if instance.state == InstanceState::Spawning {
                // Recorded, not started (or not recorded as started yet):
                // `reap_orphans` adopts or forgets it.
                continue;
            }
            if instance.state == InstanceState::Stopping {
                // Retired and draining: no longer one of the service's
                // instances. One left behind by a gantry that died while it
                // drained is finished off by `reap_orphans` (under the lease).
                if !self.is_alive(&instance) {
                    self.stopper().forget(&instance).await?;
                }
                continue;
            }
            if self.is_alive(&instance) {
                live.push(instance);
            } else {
                tracing::info!(service, instance = %instance.name, "forgetting an instance whose process is gone");
                self.stopper().forget(&instance).await?;
            }
        }
        Ok(live)
    }

    fn desired(&self) -> usize {
        self.spec.config.instances as usize
    }

    async fn bring_up(
        &self,
        _old: Option<&InstanceRecord>,
        revision: &Revision,
        rollout_id: i64,
    ) -> Result<InstanceRecord, RolloutError> {
        let service = self.service().to_string();
        if let Some(front) = &self.front {
            front.ensure().await?;
        }
        let recorded = self
            .store
            .read(async |tx| tx.instances(Some(&service)).await)
            .await?;
        let live: Vec<InstanceRecord> = recorded
            .iter()
            .filter(|i| i.host == self.host && self.is_alive(i))
            .cloned()
            .collect();
        let shared = match &self.front {
            Some(_) => Vec::new(),
            None => self.shared_sockets(&live).await?,
        };
        let name = self.next_name(&recorded).await?;
        let listen_host = sockets::resolve(&self.spec.config.listen[0])
            .map(|a| {
                if a.ip().is_unspecified() {
                    "127.0.0.1".to_string()
                } else {
                    a.ip().to_string()
                }
            })
            .unwrap_or_else(|_| "127.0.0.1".into());
        let (private, health) =
            sockets::bind_private(&listen_host).map_err(|e| RolloutError::Socket {
                service: service.clone(),
                address: format!("{listen_host}:0"),
                detail: e.to_string(),
            })?;
        // The row first: a process started after it is always known.
        let instance_id = crate::identity::token();
        let mut record = InstanceRecord {
            service: service.clone(),
            host: self.host.clone(),
            name: name.clone(),
            driver: "supervised".into(),
            revision: revision.id.clone(),
            pid: None,
            process_start: None,
            address: match &self.front {
                Some(_) => health.to_string(),
                None => self.spec.config.listen[0].clone(),
            },
            health_address: health.to_string(),
            state: InstanceState::Spawning,
            rollout_id: Some(rollout_id),
            started_ms: now_ms(),
            updated_ms: now_ms(),
            instance_id: Some(instance_id.clone()),
        };
        self.store
            .write(async |tx| tx.save_instance(&record).await)
            .await?;
        crate::test_points::point("rollout:recorded-instance");
        (self.sink)(&Event::Starting {
            service: service.clone(),
            instance: name.clone(),
            revision: revision.label.clone(),
        });
        let child = match self.spawn(&name, &instance_id, revision, shared, private) {
            Ok(child) => child,
            Err(e) => {
                let _ = self
                    .store
                    .write(async |tx| tx.delete_instance(&service, &self.host, &name).await)
                    .await;
                return Err(e);
            }
        };
        crate::test_points::point("rollout:spawned");
        let pid = child.id();
        record.pid = Some(pid as i64);
        record.process_start = Some(ProcessId::of(pid).start);
        record.state = InstanceState::Starting;
        record.updated_ms = now_ms();
        self.children
            .lock()
            .expect("children")
            .insert(name.clone(), child);
        self.store
            .write(async |tx| tx.save_instance(&record).await)
            .await?;
        (self.sink)(&Event::Started {
            service,
            instance: name,
            pid: record.pid,
            health_address: record.health_address.clone(),
        });
        Ok(record)
    }

    async fn retire(
        &self,
        old: &InstanceRecord,
        _new: Option<&InstanceRecord>,
    ) -> Result<(), RolloutError> {
        let mut stopping = old.clone();
        stopping.state = InstanceState::Stopping;
        stopping.updated_ms = now_ms();
        self.store
            .write(async |tx| tx.save_instance(&stopping).await)
            .await?;
        (self.sink)(&Event::Stopping {
            service: old.service.clone(),
            instance: old.name.clone(),
            revision: old.revision.clone(),
        });
        // It drains in the background while the rollout goes on: out of
        // the front door's pool, its last request answered, then SIGTERM;
        // `settle` waits for it (and SIGKILLs it after the grace period).
        let (stopper, old) = (self.stopper(), old.clone());
        let (front, grace) = (self.front.clone(), self.grace);
        let task = tokio::spawn(async move {
            if let Some(front) = front {
                front.drain(&old.name, grace).await;
            }
            stopper.retire(&old).await
        });
        self.stopping.lock().expect("stopping").push(task);
        Ok(())
    }

    async fn settle(&self) {
        let tasks: Vec<_> = std::mem::take(&mut *self.stopping.lock().expect("stopping"));
        for task in tasks {
            let _ = task.await;
        }
    }

    async fn discard(&self, failed: &InstanceRecord) -> Result<bool, RolloutError> {
        self.retire(failed, None).await?;
        Ok(false)
    }

    async fn admit(&self, _healthy: &InstanceRecord) {
        // The front door's pool follows the store, where it is recorded
        // healthy now.
        if let Some(front) = &self.front {
            front.sync().await;
        }
    }

    async fn sync_traffic(&self) {
        if let Some(front) = &self.front {
            front.sync().await;
        }
    }

    async fn reap_orphans(&self) -> Result<Vec<String>, RolloutError> {
        // /proc first, then the rows: a process seen here had its row
        // committed before it started, so the read below finds it.
        let tagged = self.tagged_processes();
        let service = self.service().to_string();
        let recorded = self
            .store
            .read(async |tx| tx.instances(Some(&service)).await)
            .await?;
        let mut stopped = Vec::new();
        for (pid, id) in tagged {
            let owner = recorded
                .iter()
                .find(|r| r.host == self.host && r.instance_id.as_deref() == Some(id.as_str()));
            match owner {
                // Recorded before it was spawned, but not its pid yet (its
                // gantry was killed in between): adopt it.
                Some(row) if row.pid.is_none() => {
                    let mut row = row.clone();
                    row.pid = Some(i64::from(pid));
                    row.process_start = Some(ProcessId::of(pid).start);
                    row.state = InstanceState::Starting;
                    row.updated_ms = now_ms();
                    self.store
                        .write(async |tx| tx.save_instance(&row).await)
                        .await?;
                    tracing::info!(service, instance = %row.name, pid, "adopted an instance whose gantry stopped before recording its pid");
                }
                Some(_) => {}
                None => {
                    let orphan = InstanceRecord {
                        service: service.clone(),
                        host: self.host.clone(),
                        name: format!("unrecorded pid {pid}"),
                        driver: "supervised".into(),
                        revision: String::new(),
                        pid: Some(i64::from(pid)),
                        process_start: Some(ProcessId::of(pid).start),
                        address: String::new(),
                        health_address: String::new(),
                        state: InstanceState::Stopping,
                        rollout_id: None,
                        started_ms: now_ms(),
                        updated_ms: now_ms(),
                        instance_id: Some(id.clone()),
                    };
                    tracing::warn!(service, pid, instance_id = %id, "stopping a process of this service that no record knows");
                    self.stopper().stop(&orphan).await;
                    stopped.push(format!("pid {pid} ({id})"));
                }
            }
        }
        // Retiring, but whoever retired it is gone (we hold the lease now):
        // drained and stopped here, and `settle` waits for it.
        for row in recorded.iter().filter(|r| {
            r.host == self.host && r.state == InstanceState::Stopping && self.is_alive(r)
        }) {
            tracing::info!(service, instance = %row.name, "finishing the retirement of an instance its gantry left draining");
            self.retire(row, None).await?;
        }
        // Rows recorded before a spawn that never happened (or whose
        // process is gone before it was recorded): forgotten.
        let tagged_now: Vec<String> = self
            .tagged_processes()
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        for row in recorded.iter().filter(|r| {
            r.host == self.host && r.state == InstanceState::Spawning && r.pid.is_none()
        }) {
            if row
                .instance_id
                .as_ref()
                .is_some_and(|id| !tagged_now.contains(id))
            {
                self.stopper().forget(row).await?;
            }
        }
        Ok(stopped)
    }

    async fn check_addresses(&self) -> Result<(), RolloutError> {
        let mut ours: Option<bool> = None;
        for address in &self.spec.config.listen {
            let Err(e) = sockets::bind(address) else {
                continue;
            };
            if e.kind() != std::io::ErrorKind::AddrInUse {
                return Err(RolloutError::AddressTaken {
                    service: self.service().to_string(),
                    address: address.clone(),
                    detail: e.to_string(),
                });
            }
            // In use: by this service's front door, or its instances holding
            // the shared sockets, or by something else.
            if ours.is_none() {
                let front = match &self.front {
                    Some(front) => front.running().await?.is_some(),
                    None => false,
                };
                let shared = self.front.is_none() && !self.live().await?.is_empty();
                ours = Some(front || shared);
            }
            if ours != Some(true) {
                return Err(RolloutError::AddressTaken {
                    service: self.service().to_string(),
                    address: address.clone(),
                    detail: e.to_string(),
                });
            }
        }
        Ok(())
    }

    async fn ensure_front_door(&self) -> Result<bool, RolloutError> {
        let Some(front) = &self.front else {
            return Ok(false);
        };
        let before = front.running().await?.map(|r| r.pid);
        let now = front.ensure().await?.pid;
        Ok(before != Some(now))
    }

    async fn stop_front_door(&self) -> Result<(), RolloutError> {
        if let Some(front) = &self.front {
            front.stop(self.grace).await?;
        }
        Ok(())
    }

    fn is_alive(&self, instance: &InstanceRecord) -> bool {
        let Some(pid) = instance.pid else {
            return false;
        };
        alive(
            &self.children,
            &instance.name,
            &ProcessId {
                pid: pid as u32,
                start: instance.process_start.clone().unwrap_or_default(),
            },
        )
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
