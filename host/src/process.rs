//! A process's identity on this host — pid plus its start time, so a
//! reused pid is never mistaken for the process that held a lease or ran
//! an instance — and whether it still runs. Reads `/proc` only.

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
}
