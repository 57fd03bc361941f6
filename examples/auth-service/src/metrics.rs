//! The service's own counters, served at `/metrics` in Prometheus text.

use std::sync::atomic::{AtomicU64, Ordering};

/// Request latency buckets, in seconds.
const BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0];

#[derive(Default)]
pub struct Metrics {
    pub logins_ok: AtomicU64,
    pub logins_failed: AtomicU64,
    pub refreshes: AtomicU64,
    pub verifies_ok: AtomicU64,
    pub verifies_failed: AtomicU64,
    pub server_errors: AtomicU64,
    buckets: [AtomicU64; 8],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Metrics {
    pub fn observe(&self, seconds: f64) {
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn render(&self, version: &str, instance: &str) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        out.push_str(
            "# HELP auth_service_info The running version.\n# TYPE auth_service_info gauge\n",
        );
        out.push_str(&format!(
            "auth_service_info{{version=\"{version}\",instance=\"{instance}\"}} 1\n"
        ));
        out.push_str("# HELP auth_logins_total Login attempts by result.\n# TYPE auth_logins_total counter\n");
        out.push_str(&format!(
            "auth_logins_total{{result=\"ok\"}} {}\n",
            get(&self.logins_ok)
        ));
        out.push_str(&format!(
            "auth_logins_total{{result=\"failed\"}} {}\n",
            get(&self.logins_failed)
        ));
        out.push_str(
            "# HELP auth_refreshes_total Token refreshes.\n# TYPE auth_refreshes_total counter\n",
        );
        out.push_str(&format!("auth_refreshes_total {}\n", get(&self.refreshes)));
        out.push_str("# HELP auth_verifications_total Token verifications by result.\n# TYPE auth_verifications_total counter\n");
        out.push_str(&format!(
            "auth_verifications_total{{result=\"ok\"}} {}\n",
            get(&self.verifies_ok)
        ));
        out.push_str(&format!(
            "auth_verifications_total{{result=\"failed\"}} {}\n",
            get(&self.verifies_failed)
        ));
        out.push_str("# HELP auth_server_errors_total Answers with a 5xx status.\n# TYPE auth_server_errors_total counter\n");
        out.push_str(&format!(
            "auth_server_errors_total {}\n",
            get(&self.server_errors)
        ));
        out.push_str("# HELP auth_request_duration_seconds Request latency.\n# TYPE auth_request_duration_seconds histogram\n");
        for (i, le) in BUCKETS.iter().enumerate() {
            out.push_str(&format!(
                "auth_request_duration_seconds_bucket{{le=\"{le}\"}} {}\n",
                get(&self.buckets[i])
            ));
        }
        out.push_str(&format!(
            "auth_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\n",
            get(&self.count)
        ));
        out.push_str(&format!(
            "auth_request_duration_seconds_sum {}\n",
            get(&self.sum_micros) as f64 / 1e6
        ));
        out.push_str(&format!(
            "auth_request_duration_seconds_count {}\n",
            get(&self.count)
        ));
        out
    }
}
