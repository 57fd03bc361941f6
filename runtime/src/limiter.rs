//! Caps the total memory of one plugin instance.
//!
//! A component may hold several linear memories (its own, an adapter's);
//! the cap is on their sum. A refused growth is remembered, so the caller
//! can report "out of memory" whatever the guest did next (trap, abort,
//! or an allocation-failure message on stderr).

use wasmtime::ResourceLimiter;

pub struct MemoryCap {
    limit: usize,
    in_use: usize,
    /// Set when a growth was refused.
    pub hit: bool,
}

impl MemoryCap {
    pub fn new(limit_bytes: usize) -> Self {
        MemoryCap {
            limit: limit_bytes,
            in_use: 0,
            hit: false,
        }
    }
}

/// Table elements one instance may hold; generous for real guests.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.in_use - current.min(self.in_use) + desired;
        if total > self.limit || maximum.is_some_and(|max| desired > max) {
            self.hit = true;
            return Ok(false);
        }
        self.in_use = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_on_the_sum_of_memories() {
        let mut cap = MemoryCap::new(100);
        assert!(cap.memory_growing(0, 60, None).unwrap());
        assert!(cap.memory_growing(0, 30, None).unwrap());
        assert!(!cap.memory_growing(30, 50, None).unwrap());
        assert!(cap.hit);
    }
}
