//! The listening sockets of a supervised service. They are bound once and
//! never closed while any instance runs: every instance inherits the same
//! socket (`LISTEN_FDS`), so a replacement accepts from the queue its
//! predecessor leaves, and no connection is refused or reset.
//!
//! gantry need not have stayed alive since it bound them: a later gantry
//! process takes a copy of the socket from any running instance with
//! `pidfd_getfd(2)` (the instance holds it as fd 3, 4, …), and binds anew
//! only when no instance holds it.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The first fd number `LISTEN_FDS` hands over (systemd's SD_LISTEN_FDS_START).
pub const FIRST_FD: i32 = 3;

/// A copy of fd `target_fd` of process `pid`.
pub fn take_from(pid: i32, target_fd: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: raw syscalls with plain integer arguments; the returned fds
    // are owned here and closed on every path.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0);
        if pidfd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let pidfd = OwnedFd::from_raw_fd(pidfd as i32);
        let fd = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target_fd, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd as i32))
    }
}

/// Copies of the listening sockets process `pid` holds for `listen` (the
/// first at `FIRST_FD`, the next after it), each checked to listen on its
/// address's port; why not, when one is missing or another socket.
pub fn take_listeners(pid: i64, listen: &[String]) -> Result<Vec<OwnedFd>, String> {
    listen
        .iter()
        .enumerate()
        .map(|(i, address)| {
            let at = FIRST_FD + i as i32;
            let fd = take_from(pid as i32, at).map_err(|e| format!("pid {pid}: {e}"))?;
            let want = resolve(address).map_err(|e| e.to_string())?;
            match local_addr(&fd) {
                Some(have) if have.port() == want.port() => Ok(fd),
                other => Err(format!("pid {pid}'s fd {at} is {other:?}, not {address}")),
            }
        })
        .collect()
}

/// The address a socket fd is bound to, if it is a listening TCP socket.
pub fn local_addr(fd: &OwnedFd) -> Option<SocketAddr> {
    // Dropping the listener closes only the duplicate.
    TcpListener::from(fd.try_clone().ok()?).local_addr().ok()
}

/// Parses `host:port` into one socket address.
pub fn resolve(address: &str) -> std::io::Result<SocketAddr> {
    address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{address} resolves to nothing")))
}

/// Binds `address` (with SO_REUSEADDR, as std does) for instances to share.
pub fn bind(address: &str) -> std::io::Result<OwnedFd> {
    let listener = TcpListener::bind(resolve(address)?)?;
    Ok(OwnedFd::from(listener))
}

/// A private socket for one instance's health checks, on a free port of
/// the loopback interface (or of `host`).
pub fn bind_private(host: &str) -> std::io::Result<(OwnedFd, SocketAddr)> {
    let listener = TcpListener::bind((host, 0))?;
    let addr = listener.local_addr()?;
    Ok((OwnedFd::from(listener), addr))
}
