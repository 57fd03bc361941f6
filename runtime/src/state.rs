//! The data of one call's store: WASI (with nothing granted), the memory
//! cap, captured stdout/stderr, and each capability's per-call state.
//!
//! A store lives for exactly one call and is dropped after it, trapped or
//! not; nothing in here outlives the call except what the report copies out.

use super::limiter::MemoryCap;
use super::pipe::BoundedPipe;
use crate::capabilities::{HasStates, States};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub struct CallState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryCap,
    pub(crate) stdout: BoundedPipe,
    pub(crate) stderr: BoundedPipe,
    pub(crate) caps: States,
    /// When the call must be over: WASI waits end here (see `deadline.rs`).
    pub(crate) deadline: std::time::Instant,
}

impl HasStates for CallState {
    fn states(&mut self) -> &mut States {
        &mut self.caps
    }
}

impl CallState {
    /// WASI with no files, no environment, no arguments and no sockets;
    /// stdout and stderr go to bounded in-memory pipes.
    pub fn sandboxed_wasi(stdout: &BoundedPipe, stderr: &BoundedPipe) -> WasiCtx {
        WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build()
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
