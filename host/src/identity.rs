//! Who is acting and from where: the actor name recorded with every change,
//! this host's name, and fresh random tokens that name a lease, a run or
//! a record. (Which process, and whether it still runs, is `process.rs`.)
//!
//! Reads the environment only; never writes anything.

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
    fn tokens_differ() {
        assert_ne!(token(), token());
        assert_eq!(token().len(), 32);
    }
}
