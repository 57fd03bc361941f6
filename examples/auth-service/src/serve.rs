//! Serving with a drain: the listeners come from `LISTEN_FDS` (systemd's
//! protocol, as gantry's supervised driver hands them over: the shared
//! service socket, and one private to this instance for its health
//! checks) or one is bound here. On SIGTERM the service stops accepting — other instances share
//! the same socket and take the new connections — answers every request
//! still arriving on open connections with `Connection: close` for the
//! drain period (so clients stop reusing them without a race), then
//! closes what is left gracefully and exits.

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;

/// Every listener gantry passed (fds 3… with `LISTEN_FDS`), else one
/// bound to `addr`. True when they were handed over.
pub async fn listeners(addr: &str) -> anyhow::Result<(Vec<TcpListener>, bool)> {
    let mut fds = listenfd::ListenFd::from_env();
    let mut out = Vec::new();
    for i in 0..fds.len() {
        if let Some(std) = fds.take_tcp_listener(i)? {
            std.set_nonblocking(true)?;
            out.push(TcpListener::from_std(std)?);
        }
    }
    if !out.is_empty() {
        return Ok((out, true));
    }
    Ok((vec![TcpListener::bind(addr).await?], false))
}

/// Serves `app` on every listener until `stop` resolves, then drains.
pub async fn serve(
    listeners: Vec<TcpListener>,
    app: Router,
    draining: Arc<AtomicBool>,
    drain: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    let builder = Arc::new(Builder::new(TokioExecutor::new()));
    let graceful = Arc::new(GracefulShutdown::new());
    let (stop_tx, _) = tokio::sync::watch::channel(false);
    let mut loops = Vec::new();
    for listener in listeners {
        let (builder, graceful, app) = (Arc::clone(&builder), Arc::clone(&graceful), app.clone());
        let mut stopped = stop_tx.subscribe();
        loops.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let _ = stream.set_nodelay(true);
                        let service = TowerToHyperService::new(app.clone());
                        let conn = builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .into_owned();
                        let conn = graceful.watch(conn);
                        tokio::spawn(async move {
                            let _ = conn.await;
                        });
                    }
                    _ = stopped.changed() => break,
                }
            }
            // Stop accepting: the shared socket stays open in the other
            // instances, which take the new connections.
            drop(listener);
        }));
    }
    stop.await;
    let _ = stop_tx.send(true);
    for accept_loop in loops {
        let _ = accept_loop.await;
    }
    let graceful =
        Arc::try_unwrap(graceful).unwrap_or_else(|_| unreachable!("the accept loops ended"));
    draining.store(true, Ordering::SeqCst);
    tracing::info!("draining for {drain:?}");
    tokio::time::sleep(drain).await;
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain; closing them");
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
