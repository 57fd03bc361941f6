//! A config validator that spins until the host stops it.

use gantry_plugin::{ConfigValidator, Finding};

struct Stuck;

impl ConfigValidator for Stuck {
    fn validate(_environment: String, _file_name: String, _json: String) -> Vec<Finding> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

gantry_plugin::config_validator!(Stuck);
