//! A monitor's name in claims and published seconds: its host, its process
//! (pid and start time, as leases name theirs, plus the boot and the pid
//! namespace it counts pids in) and a random tag — so a claim whose
//! process died on this very machine and namespace can be released at
//! once, while one from anywhere else (another host, a container sharing
//! the hostname, a clone) waits for its expiry.

use crate::identity;
use crate::process::ProcessId;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub host: String,
    pub process: ProcessId,
    /// This boot (`/proc/sys/kernel/random/boot_id`, shortened).
    pub boot: String,
    /// The pid namespace (`/proc/self/ns/pid`'s inode).
    pub pid_ns: String,
    pub tag: String,
}

/// This machine's boot and this process's pid namespace, or empty.
fn here() -> (String, String) {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|b| b.trim().replace('-', "").chars().take(12).collect())
        .unwrap_or_default();
    let pid_ns = std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|l| {
            l.to_string_lossy()
                .trim_start_matches("pid:[")
                .trim_end_matches(']')
                .parse::<u64>()
                .ok()
        })
        .map(|n| n.to_string())
        .unwrap_or_default();
    (boot, pid_ns)
}

impl Node {
    /// This process, on `host`.
    pub fn current(host: &str) -> Node {
        let (boot, pid_ns) = here();
        Node {
            host: host.to_string(),
            process: ProcessId::current(),
            boot,
            pid_ns,
            tag: identity::token()[..8].to_string(),
        }
    }

    /// A node's text (`host:pid.start.boot.ns:tag`); `None` when it is not
    /// one (an older monitor's name, which says too little to judge).
    pub fn parse(text: &str) -> Option<Node> {
        let mut parts = text.rsplitn(3, ':');
        let tag = parts.next()?;
        let mut process = parts.next()?.split('.');
        let (pid, start, boot, pid_ns) = (
            process.next()?,
            process.next()?,
            process.next()?,
            process.next()?,
        );
        if process.next().is_some() {
            return None;
        }
        let host = parts.next()?;
        Some(Node {
            host: host.to_string(),
            process: ProcessId {
                pid: pid.parse().ok()?,
                start: start.to_string(),
            },
            boot: boot.to_string(),
            pid_ns: pid_ns.to_string(),
            tag: tag.to_string(),
        })
    }

    /// True only when this node ran on this host, this boot and this pid
    /// namespace, and its process is certainly gone: its `/proc` entry is
    /// missing, or holds another process (a reused pid). Anything it
    /// cannot tell (no boot id, a `/proc` it may not read) is alive.
    pub fn is_dead_here(&self) -> bool {
        let (boot, pid_ns) = here();
        if self.host != identity::host()
            || self.boot.is_empty()
            || self.pid_ns.is_empty()
            || self.boot != boot
            || self.pid_ns != pid_ns
            || self.process.start.is_empty()
        {
            return false;
        }
        match std::fs::read_to_string(format!("/proc/{}/stat", self.process.pid)) {
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
            Ok(_) => ProcessId::of(self.process.pid).start != self.process.start,
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}.{}.{}.{}:{}",
            self.host, self.process.pid, self.process.start, self.boot, self.pid_ns, self.tag
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_reads_back_as_itself() {
        let me = Node::current("db-1:eu");
        assert!(!me.boot.is_empty() && !me.pid_ns.is_empty(), "{me:?}");
        assert_eq!(Node::parse(&me.to_string()), Some(me.clone()));
        assert!(!me.is_dead_here(), "this process runs");
    }

    #[test]
    fn only_a_gone_process_of_this_boot_and_namespace_is_dead() {
        let me = Node::current(&identity::host());
        let reused = Node {
            process: ProcessId {
                pid: std::process::id(),
                start: "1".into(),
            },
            ..me.clone()
        };
        assert!(reused.is_dead_here(), "same pid, other start time");
        let gone = Node {
            process: ProcessId {
                pid: u32::MAX - 7,
                start: "1".into(),
            },
            ..me.clone()
        };
        assert!(gone.is_dead_here(), "no such pid");
        for other in [
            Node {
                host: format!("{}-other", identity::host()),
                ..gone.clone()
            },
            Node {
                boot: "0000".into(),
                ..gone.clone()
            },
            Node {
                pid_ns: "1".into(),
                ..gone.clone()
            },
        ] {
            assert!(!other.is_dead_here(), "{other:?}");
        }
        assert_eq!(Node::parse("host:123:abcd"), None, "an older name");
        assert_eq!(Node::parse("host:123.9:abcd"), None, "an older name");
    }
}
