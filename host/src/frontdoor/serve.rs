//! The front door process itself: accepts on the service's public
//! addresses, sends each request (HTTP) or connection (TCP) to an instance
//! of the pool, and answers its control socket.
//!
//! The pool follows the state store (the instances recorded healthy on
//! this host, re-read every second and whenever a command says `sync`), so
//! a front door restarted after a crash, or a gantry killed between
//! recording a gate and telling the front door, ends in the same pool.
//!
//! On `stop` (or SIGTERM) it stops accepting, lets what is in flight
//! finish within the grace period, and exits. It never closes a listening
//! socket a successor may still be taking over: the successor takes copies
//! first (`pidfd_getfd`), then asks it to stop.

use super::control::{self, Answer, Request, Status};
use super::http::HttpProxy;
use super::pool::{Member, Pool};
use super::stats::{HttpSecond, HttpStats};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// What the front door carries: requests, or raw connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Http,
    Tcp,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Http => "http",
            Mode::Tcp => "tcp",
        }
    }
}

/// Reads the pool from wherever the truth is (the state store).
pub type Loader = Arc<
    dyn Fn() -> Pin<
            Box<dyn Future<Output = Result<(Vec<Member>, BTreeMap<String, u32>), String>> + Send>,
        > + Send
        + Sync,
>;

/// Writes finished seconds of what each revision answered (revision,
/// second, counts) wherever analyses read them (the state store).
pub type Publisher = Arc<
    dyn Fn(
            Vec<(String, u64, HttpSecond)>,
        ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

pub struct FrontDoor {
    pub service: String,
    pub mode: Mode,
    pub listen: Vec<String>,
    pub control: PathBuf,
    pub binary: String,
    pub load: Loader,
    pub publish: Option<Publisher>,
}

impl FrontDoor {
    /// Serves until stopped. `listeners` are the public sockets (bound,
    /// listening; taken from a predecessor or bound anew).
    pub async fn run(
        self,
        listeners: Vec<std::net::TcpListener>,
        stop_signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let pool = Arc::new(Pool::default());
        let stats = Arc::new(HttpStats::default());
        let sync = Arc::new(Notify::new());
        let (stopping, stopped) = watch::channel::<Option<Duration>>(None);
        let this = Arc::new(self);

        // The pool follows the store.
        {
            let (this, pool, sync) = (Arc::clone(&this), Arc::clone(&pool), Arc::clone(&sync));
            let initial = (this.load)().await;
            match initial {
                Ok((members, weights)) => pool.set(members, weights),
                Err(e) => tracing::warn!(service = %this.service, "cannot read the pool yet: {e}"),
            }
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = sync.notified() => {}
                    }
                    match (this.load)().await {
                        Ok((members, weights)) => pool.set(members, weights),
                        Err(e) => {
                            tracing::warn!(service = %this.service, "cannot read the pool: {e}")
                        }
                    }
                }
            });
        }

        // What each revision answered, published once a second.
        if let Some(publish) = this.publish.clone() {
            let stats = Arc::clone(&stats);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let taken = stats.take_finished(crate::monitor::recorder::now_second());
                    if taken.is_empty() {
                        continue;
                    }
                    if let Err(e) = publish(taken.clone()).await {
                        tracing::warn!("cannot publish what each revision answered: {e}");
                        stats.restore(taken);
                    }
                }
            });
        }

        // The control socket.
        {
            let (this2, pool, sync, stopping) = (
                Arc::clone(&this),
                Arc::clone(&pool),
                Arc::clone(&sync),
                stopping.clone(),
            );
            let path = this.control.clone();
            tokio::spawn(async move {
                let handler = move |request: Request| {
                    let (this, pool, sync, stopping) = (
                        Arc::clone(&this2),
                        Arc::clone(&pool),
                        Arc::clone(&sync),
                        stopping.clone(),
                    );
                    async move { answer(&this, &pool, &sync, &stopping, request).await }
                };
                if let Err(e) = control::serve(&path, handler).await {
                    tracing::error!("the control socket {} failed: {e}", path.display());
                }
            });
        }

        // SIGTERM or the caller's signal: stop with the default grace.
        {
            let stopping = stopping.clone();
            tokio::spawn(async move {
                stop_signal.await;
                let _ = stopping.send(Some(Duration::from_secs(30)));
            });
        }

        // One single-threaded runtime per core, each accepting from every
        // listener with its own connections to the instances, as nginx's
        // workers do: no task moves between threads on the request path.
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(1);
        let mut threads = Vec::with_capacity(workers);
        for worker in 0..workers {
            let copies: Vec<std::net::TcpListener> = listeners
                .iter()
                .map(|l| l.try_clone())
                .collect::<std::io::Result<_>>()?;
            let (pool, stats, stopped, mode) = (
                Arc::clone(&pool),
                Arc::clone(&stats),
                stopped.clone(),
                this.mode,
            );
            threads.push(
                std::thread::Builder::new()
                    .name(format!("front-door-{worker}"))
                    .spawn(move || -> std::io::Result<()> {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()?;
                        rt.block_on(accept_loop(copies, pool, stats, stopped, mode))
                    })?,
            );
        }
        // The originals stay open for the process's life: their fd numbers
        // are what a successor takes over (`listen_fds`).
        let _originals = listeners;
        let mut stopped = stopped;
        let grace = loop {
            if let Some(grace) = *stopped.borrow() {
                break grace;
            }
            if stopped.changed().await.is_err() {
                break Duration::from_secs(30);
            }
        };
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        });
        let _ = tokio::time::timeout(grace + Duration::from_secs(1), joined).await;
        // What is in flight finishes, within the grace period.
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            let status = pool.status();
            let busy: usize = status
                .serving
                .iter()
                .chain(&status.draining)
                .map(|m| m.in_flight)
                .sum();
            if busy == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_file(&this.control);
        Ok(())
    }
}

async fn answer(
    this: &FrontDoor,
    pool: &Pool,
    sync: &Notify,
    stopping: &watch::Sender<Option<Duration>>,
    request: Request,
) -> Answer {
    match request {
        Request::Status => Answer {
            status: Some(Status {
                pid: std::process::id(),
                service: this.service.clone(),
                mode: this.mode.as_str().into(),
                listen: this.listen.clone(),
                pool: pool.status(),
                binary: this.binary.clone(),
            }),
            ..Answer::ok()
        },
        Request::Sync => match (this.load)().await {
            Ok((members, weights)) => {
                pool.set(members, weights);
                sync.notify_one();
                Answer::ok()
            }
            Err(e) => Answer::error(e),
        },
        Request::Set { members, weights } => {
            pool.set(members, weights);
            Answer::ok()
        }
        Request::Drain { name, timeout_ms } => match pool.remove(&name) {
            None => Answer {
                drained: Some(true),
                ..Answer::ok()
            },
            Some(backend) => {
                let drained = pool
                    .drained(&backend, Duration::from_millis(timeout_ms))
                    .await;
                Answer {
                    drained: Some(drained),
                    ..Answer::ok()
                }
            }
        },
        Request::Stop { grace_ms } => {
            let _ = stopping.send(Some(Duration::from_millis(grace_ms)));
            Answer::ok()
        }
    }
}

/// One worker: accepts on its copies of the listeners until stopped, then
/// lets its keep-alive connections finish the request they carry and close
/// (within the grace the stop names).
async fn accept_loop(
    listeners: Vec<std::net::TcpListener>,
    pool: Arc<Pool>,
    stats: Arc<HttpStats>,
    stopped: watch::Receiver<Option<Duration>>,
    mode: Mode,
) -> std::io::Result<()> {
    let graceful = Arc::new(hyper_util::server::graceful::GracefulShutdown::new());
    let http = HttpProxy::new(Arc::clone(&pool), stats);
    async {
        let mut accepting = Vec::new();
        for listener in listeners {
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let mut stopped = stopped.clone();
            let (pool, http, graceful) = (Arc::clone(&pool), http.clone(), Arc::clone(&graceful));
            accepting.push(tokio::spawn(async move {
                loop {
                    let accepted = tokio::select! {
                        accepted = listener.accept() => accepted,
                        _ = stopped.changed() => break,
                    };
                    let Ok((stream, peer)) = accepted else {
                        continue;
                    };
                    match mode {
                        Mode::Http => {
                            let http = http.clone();
                            let watcher = graceful.watcher();
                            tokio::spawn(async move { http.serve(stream, peer, watcher).await });
                        }
                        Mode::Tcp => {
                            let pool = Arc::clone(&pool);
                            tokio::spawn(async move { relay(&pool, stream, peer).await });
                        }
                    }
                }
                // Dropped here: this worker's copy of the socket only.
            }));
        }
        for task in accepting {
            let _ = task.await;
        }
        let grace = stopped.borrow().unwrap_or(Duration::from_secs(30));
        // A connection accepted a moment ago may not have sent its request
        // yet; closing it now would fail that request. Serve on for a
        // moment (a successor already accepts the new ones), then close
        // each connection after the request it carries.
        tokio::time::sleep(grace.min(Duration::from_secs(1))).await;
        if let Ok(graceful) = Arc::try_unwrap(graceful) {
            let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
        }
        Ok(())
    }
    .await
}

/// TCP mode: one connection to an instance, bytes both ways; an instance
/// that refuses is passed over for another.
async fn relay(pool: &Pool, mut client: tokio::net::TcpStream, peer: SocketAddr) {
    let _ = client.set_nodelay(true);
    let mut tried = Vec::new();
    while let Some(backend) = pool.choose(&tried) {
        let guard = backend.enter();
        let address = backend.member.address;
        let connect = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(address),
        );
        match connect.await {
            Ok(Ok(mut upstream)) => {
                let _ = upstream.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                drop(guard);
                return;
            }
            _ => {
                tracing::debug!(%peer, backend = %address, "instance refused; trying another");
                tried.push(address);
            }
        }
    }
}
