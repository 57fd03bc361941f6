//! `gantry front-door run --service NAME`: the front door process, started
//! detached by the commands that roll a supervised service (never by hand,
//! though it may be). It takes the service's public sockets — from the
//! front door it succeeds, else from a running instance that holds them
//! (a service moving off `shared-socket`), else by binding — records
//! itself, and serves until stopped. `gantry front-door status` shows each
//! service's.

use super::Context;
use crate::error::{CliResult, Exit, Failure};
use crate::frontdoor::{FrontDoor, Loader, Member, Mode, Publisher};
use crate::process::ProcessId;
use crate::rollout::front::{Front, Launcher, binary_id};
use crate::rollout::sockets;
use crate::store::InstanceState;
use crate::store::{FrontDoorRecord, Store};
use anyhow::anyhow;
use clap::{Args, Subcommand};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Subcommand)]
pub enum FrontDoorCommand {
    /// Run a service's front door (gantry starts it; this is that process)
    Run(RunArgs),
    /// Each supervised service's front door: process, addresses, pool
    Status,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[arg(long)]
    pub service: String,
    /// The pid of the front door this one succeeds (its sockets are taken over)
    #[arg(long, value_name = "PID")]
    pub take_over: Option<i64>,
}

pub async fn run(ctx: &Context, command: FrontDoorCommand) -> CliResult {
    match command {
        FrontDoorCommand::Run(args) => serve(ctx, args).await,
        FrontDoorCommand::Status => status(ctx).await,
    }
}

async fn status(ctx: &Context) -> CliResult {
    let mut all = Vec::new();
    for (name, service) in &ctx.settings.config.config.services {
        if service.driver != crate::config::DriverKind::Supervised {
            continue;
        }
        let front = front(ctx, name);
        let status = front.status().await?;
        all.push(serde_json::json!({"service": name, "front_door": status}));
    }
    if ctx.out.is_json() {
        ctx.out.json(&all)?;
        return Ok(Exit::Success);
    }
    let mut text = String::new();
    for entry in &all {
        let name = entry["service"].as_str().unwrap_or_default();
        match entry["front_door"].as_object() {
            None => text.push_str(&format!("{name}: no front door running\n")),
            Some(status) => {
                let serving = status["pool"]["serving"].as_array().map_or(0, Vec::len);
                text.push_str(&format!(
                    "{name}: front door pid {} on {} ({}), {serving} instance(s) serving\n",
                    status["pid"],
                    status["listen"]
                        .as_array()
                        .map(|l| l
                            .iter()
                            .filter_map(|a| a.as_str())
                            .collect::<Vec<_>>()
                            .join(", "))
                        .unwrap_or_default(),
                    status["mode"].as_str().unwrap_or_default(),
                ));
            }
        }
    }
    ctx.out.text(text.trim_end())?;
    Ok(Exit::Success)
}

/// The front door of service `name` on this host, as commands see it.
pub fn front(ctx: &Context, name: &str) -> Front {
    Front {
        store: ctx.store.clone(),
        service: name.to_string(),
        host: ctx.settings.host.clone(),
        launcher: Launcher::from_settings(&ctx.settings),
        log: ctx.settings.layout.logs().join(name).join("front-door.log"),
    }
}

async fn serve(ctx: &Context, args: RunArgs) -> CliResult {
    let spec = crate::rollout::build::service_spec(&ctx.settings, &args.service)?;
    let service = args.service.clone();
    let host = ctx.settings.host.clone();
    let mode = match spec.config.front_door.mode {
        crate::config::FrontDoorMode::Http => Mode::Http,
        crate::config::FrontDoorMode::Tcp => Mode::Tcp,
    };
    let store = ctx.store.clone();
    let predecessor = match args.take_over {
        Some(pid) => {
            let (s, h) = (service.clone(), host.clone());
            store
                .read(async |tx| tx.front_door(&s, &h).await)
                .await?
                .filter(|r| r.pid == pid)
        }
        None => None,
    };
    let fds = take_sockets(
        &store,
        &spec.config.listen,
        &service,
        &host,
        predecessor.as_ref(),
    )
    .await?;
    let me = ProcessId::current();
    let control = control_path(ctx, &service, me.pid);
    let listeners: Vec<std::net::TcpListener> =
        fds.into_iter().map(std::net::TcpListener::from).collect();
    let record = FrontDoorRecord {
        service: service.clone(),
        host: host.clone(),
        pid: i64::from(me.pid),
        process_start: me.start.clone(),
        control: control.display().to_string(),
        listen: spec.config.listen.join(","),
        listen_fds: listeners
            .iter()
            .map(|l| l.as_raw_fd().to_string())
            .collect::<Vec<_>>()
            .join(","),
        mode: mode.as_str().into(),
        binary_id: binary_id(),
        started_ms: chrono::Utc::now().timestamp_millis(),
    };
    let door = FrontDoor {
        service: service.clone(),
        mode,
        listen: spec.config.listen.clone(),
        control: control.clone(),
        binary: record.binary_id.clone(),
        load: loader(store.clone(), service.clone(), host.clone()),
        // The pid in the name: a successor taking over publishes beside
        // its predecessor, never over its seconds.
        publish: Some(publisher(
            store.clone(),
            format!("front-door:{host}:{service}:{}", me.pid),
        )),
    };
    // Recorded once it answers: commands wait for the record and a status.
    let recorded = {
        let (store, record, predecessor) = (store.clone(), record.clone(), predecessor.clone());
        let front = front(ctx, &service);
        async move {
            for _ in 0..500 {
                if control_answers(&record.control).await {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            if let Err(e) = store
                .write(async |tx| tx.save_front_door(&record).await)
                .await
            {
                tracing::error!("cannot record the front door: {e}");
            }
            // The predecessor stops accepting only now: the sockets are
            // ours as well, so no connection is refused meanwhile.
            if let Some(old) = predecessor {
                let request = crate::frontdoor::Request::Stop { grace_ms: 30_000 };
                let _ = crate::frontdoor::control::call(
                    std::path::Path::new(&old.control),
                    &request,
                    std::time::Duration::from_secs(5),
                )
                .await;
                let _ = front;
            }
        }
    };
    tokio::spawn(recorded);
    tracing::info!(
        service,
        pid = me.pid,
        "front door on {}",
        spec.config.listen.join(", ")
    );
    door.run(listeners, crate::cli::termination())
        .await
        .map_err(|e| Failure::failed(anyhow!("the front door of {service}: {e}")))?;
    let pid = i64::from(me.pid);
    let _ = store
        .write(async |tx| tx.delete_front_door(&service, &host, pid).await)
        .await;
    Ok(Exit::Success)
}

async fn control_answers(path: &str) -> bool {
    crate::frontdoor::control::call(
        std::path::Path::new(path),
        &crate::frontdoor::Request::Status,
        std::time::Duration::from_millis(500),
    )
    .await
    .is_ok()
}

/// Where the control socket goes: `.gantry/run/` beside the config (0700),
/// or a per-user directory in /tmp when that path is too long for a Unix
/// socket.
fn control_path(ctx: &Context, service: &str, pid: u32) -> PathBuf {
    let dir = ctx
        .settings
        .resolve_path(std::path::Path::new(".gantry/run"));
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let file = format!("front-door-{service}-{pid}.sock");
    let path = dir.join(&file);
    if path.as_os_str().len() < 100 && crate::store::private::dir(&dir).is_ok() {
        return path;
    }
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let short = PathBuf::from(format!("/tmp/gantry-{uid}"));
    let _ = crate::store::private::dir(&short);
    short.join(file)
}

/// The public sockets: copies from the predecessor, else from a running
/// instance that holds them (at fds 3…), else bound now.
async fn take_sockets(
    store: &Store,
    listen: &[String],
    service: &str,
    host: &str,
    predecessor: Option<&FrontDoorRecord>,
) -> Result<Vec<OwnedFd>, Failure> {
    if let Some(old) = predecessor {
        let fds: Vec<i32> = old
            .listen_fds
            .split(',')
            .filter_map(|f| f.parse().ok())
            .collect();
        let taken: Result<Vec<OwnedFd>, String> = fds
            .iter()
            .zip(listen)
            .map(|(fd, address)| {
                let taken = sockets::take_from(old.pid as i32, *fd).map_err(|e| e.to_string())?;
                let want = sockets::resolve(address).map_err(|e| e.to_string())?;
                match sockets::local_addr(&taken) {
                    Some(have) if have.port() == want.port() => Ok(taken),
                    other => Err(format!("its fd {fd} is {other:?}, not {address}")),
                }
            })
            .collect();
        match taken {
            Ok(taken) if taken.len() == listen.len() => return Ok(taken),
            Ok(_) => tracing::warn!("the predecessor holds other sockets; looking elsewhere"),
            Err(e) => {
                tracing::warn!("cannot take the predecessor's sockets: {e}; looking elsewhere")
            }
        }
    }
    let (s, h) = (service.to_string(), host.to_string());
    let instances = store
        .read(async |tx| tx.instances(Some(&s)).await)
        .await
        .map_err(|e| Failure::failed(anyhow!(e)))?;
    for instance in instances
        .iter()
        .filter(|i| i.host == h && i.driver == "supervised")
    {
        let Some(pid) = instance.pid else { continue };
        let taken = sockets::take_listeners(pid, listen);
        if let Ok(fds) = taken {
            tracing::info!(pid, "took the listening sockets from a running instance");
            return Ok(fds);
        }
    }
    listen
        .iter()
        .map(|address| {
            sockets::bind(address)
                .map_err(|e| Failure::failed(anyhow!("cannot listen on {address}: {e}")))
        })
        .collect()
}

/// The pool as the store has it: this host's instances of the service that
/// passed their gate.
fn loader(store: Store, service: String, host: String) -> Loader {
    Arc::new(move || {
        let (store, service, host) = (store.clone(), service.clone(), host.clone());
        Box::pin(async move {
            // Members and weights from one snapshot: a split cleared
            // between two reads would give a retired canary a share.
            let (instances, weights) = store
                .read(async |tx| {
                    let instances = tx.instances(Some(&service)).await?;
                    let weights = tx.traffic_weights(&service, &host).await?;
                    Ok::<_, crate::store::StoreError>((instances, weights))
                })
                .await
                .map_err(|e| e.to_string())?;
            let members = instances
                .into_iter()
                .filter(|i| {
                    i.host == host && i.driver == "supervised" && i.state == InstanceState::Healthy
                })
                .filter_map(|i| {
                    Some(Member {
                        address: i.health_address.parse().ok()?,
                        name: i.name,
                        revision: i.revision,
                    })
                })
                .collect();
            Ok((members, weights))
        })
    })
}

/// How long per-revision seconds are kept: longer than any canary step.
const REVISION_SECONDS_KEPT: u64 = crate::monitor::revisions::SECONDS_KEPT;

/// What each revision answered, into the store as `node`'s seconds.
fn publisher(store: Store, node: String) -> Publisher {
    let pruned = Arc::new(AtomicU64::new(0));
    Arc::new(move |taken| {
        let (store, node, pruned) = (store.clone(), node.clone(), Arc::clone(&pruned));
        Box::pin(async move {
            let seconds: Vec<(String, i64, String)> = taken
                .into_iter()
                .map(|(revision, second, data)| {
                    let data = serde_json::to_string(&data).expect("json");
                    (revision, second as i64, data)
                })
                .collect();
            store
                .write(async |tx| tx.publish_revision_seconds("http", &node, &seconds).await)
                .await
                .map_err(|e| e.to_string())?;
            // The front door prunes too (with no monitor running, nothing
            // else would), every ten minutes, apart from the publishing.
            let now = crate::monitor::recorder::now_second();
            if now >= pruned.load(Ordering::Relaxed) + 600 {
                pruned.store(now, Ordering::Relaxed);
                let before = now.saturating_sub(REVISION_SECONDS_KEPT) as i64;
                if let Err(e) = store
                    .write(async |tx| tx.prune_revision_seconds(before).await)
                    .await
                {
                    tracing::warn!("cannot prune old revision seconds: {e}");
                }
            }
            Ok(())
        })
    })
}
