//! Who is acting and from where: the actor name recorded with every change,
//! this host's name, and this process's identity (pid plus its start time,
//! so a reused pid is never mistaken for the process that held a lease).
//!
//! Reads the environment and `/proc` only; never writes anything.

use std::sync::OnceLock;

/// The person or process recorded as doing things: `GANTRY_ACTOR`, else
/// `user@host`.
pub fn actor() -> String {
    if let Ok(actor) = std::env::var("GANTRY_ACTOR")
        && !actor.trim().is_empty()
    {
        return actor;
    }
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.trim().is_empty())
        .or_else(user_of_uid)
        .unwrap_or_else(|| "unknown".into());
    format!("{user}@{}", host())
}

/// The name of this process's user, from the password database (cron,
/// containers and systemd units often run without `USER`).
fn user_of_uid() -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes into `pwd` and `buf` (whose length we pass)
    // and sets `result` to `&pwd` on success; nothing is kept past here.
    let rc = unsafe {
        libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name points into `buf`, NUL-terminated.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// This host's name as gantry records it: `GANTRY_HOST` when set (for
/// containers whose hostname changes on every start), else the kernel's
/// hostname.
pub fn host() -> String {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        if let Ok(host) = std::env::var("GANTRY_HOST")
            && !host.trim().is_empty()
        {
            return host.trim().to_string();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into())
    })
    .clone()
}

/// A process on this host: its pid and its start time in clock ticks since
/// boot (`/proc/PID/stat` field 22), which together name it uniquely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessId {
    pub pid: u32,
    pub start: String,
}

impl ProcessId {
    pub fn current() -> ProcessId {
        let pid = std::process::id();
        ProcessId {
            pid,
            start: start_time(pid).unwrap_or_default(),
        }
    }

    /// Process `pid` as it is now (empty start time when it is gone).
    pub fn of(pid: u32) -> ProcessId {
        ProcessId {
            pid,
            start: start_time(pid).unwrap_or_default(),
        }
    }

    /// True when this very process (same pid, same start time) still runs.
    pub fn is_running(&self) -> bool {
        match start_time(self.pid) {
            Some(start) => self.start.is_empty() || start == self.start,
            None => false,
        }
    }
}

fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; the
    // fields after the last ')' start at field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // A zombie has exited; it only waits to be reaped.
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(22 - 3).map(|s| s.to_string())
}

/// A random token (128 bits, hex) naming one lease, delivery or run.
pub fn token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_runs_and_a_made_up_one_does_not() {
        let me = ProcessId::current();
        assert!(!me.start.is_empty());
        assert!(me.is_running());
        let reused = ProcessId {
            pid: me.pid,
            start: "1".into(),
        };
        assert!(!reused.is_running(), "same pid, other start time");
        let gone = ProcessId {
            pid: u32::MAX - 1,
            start: String::new(),
        };
        assert!(!gone.is_running());
    }

    #[test]
    fn tokens_differ() {
        assert_ne!(token(), token());
        assert_eq!(token().len(), 32);
    }
}
