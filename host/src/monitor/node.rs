//! A monitor's name in claims and published seconds: its host, its process
//! (pid and start time, as leases name theirs) and a random tag — so a
//! claim whose process died on this host can be released at once, while
//! one from another host waits for its expiry.

use crate::identity;
use crate::process::ProcessId;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub host: String,
    pub process: ProcessId,
    pub tag: String,
}

impl Node {
    /// This process, on `host`.
    pub fn current(host: &str) -> Node {
        Node {
            host: host.to_string(),
            process: ProcessId::current(),
            tag: identity::token()[..8].to_string(),
        }
    }

    /// A node's text (`host:pid.start:tag`); `None` when it is not one
    /// (an older monitor's `host:pid:tag`, which names no start time).
    pub fn parse(text: &str) -> Option<Node> {
        let mut parts = text.rsplitn(3, ':');
        let tag = parts.next()?;
        let (pid, start) = parts.next()?.split_once('.')?;
        let host = parts.next()?;
        Some(Node {
            host: host.to_string(),
            process: ProcessId {
                pid: pid.parse().ok()?,
                start: start.to_string(),
            },
            tag: tag.to_string(),
        })
    }

    /// True when this node ran on this host and its process is gone.
    pub fn is_dead_here(&self) -> bool {
        self.host == identity::host()
            && !self.process.start.is_empty()
            && !self.process.is_running()
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}.{}:{}",
            self.host, self.process.pid, self.process.start, self.tag
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_reads_back_as_itself() {
        let me = Node::current("db-1:eu");
        assert_eq!(Node::parse(&me.to_string()), Some(me.clone()));
        assert!(!me.is_dead_here(), "this process runs");
    }

    #[test]
    fn a_gone_process_on_this_host_is_dead_and_one_elsewhere_is_not() {
        let gone = Node {
            host: identity::host(),
            process: ProcessId {
                pid: std::process::id(),
                start: "1".into(),
            },
            tag: "abcd".into(),
        };
        assert!(gone.is_dead_here(), "same pid, other start time");
        let elsewhere = Node {
            host: format!("{}-other", identity::host()),
            ..gone
        };
        assert!(!elsewhere.is_dead_here());
        assert_eq!(Node::parse("host:123:abcd"), None, "no start time");
    }
}
