//! WASI waits that end at the call's deadline.
//!
//! Epoch interruption stops a guest only while it runs wasm: a guest
//! blocked in a host call — a sleep, a poll on a pollable that is never
//! ready — would hold its call (and its pool slot) past the deadline. Every
//! blocking wait in WASI 0.2 goes through `wasi:io/poll`'s `poll` or
//! `pollable.block`, so both are replaced here by versions that give up at
//! the call's deadline with [`DeadlineExceeded`], which the call reports as
//! a timeout. gantry's own capabilities bound their waits by the same
//! deadline themselves.

use super::state::CallState;
use std::future::Future;
use std::time::Instant;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::io::poll as async_poll;
use wasmtime_wasi::runtime::in_tokio;

/// The instance `wasmtime_wasi::p2::add_to_linker_sync` defines `poll` in.
const POLL: &str = "wasi:io/poll@0.2.12";

pub use crate::limits::DeadlineExceeded;

/// Replaces WASI's blocking waits in `linker` (after WASI was added).
pub fn add_to_linker(linker: &mut Linker<CallState>) -> anyhow::Result<()> {
    linker.allow_shadowing(true);
    let mut poll = linker.instance(POLL)?;
    poll.func_wrap(
        "poll",
        |mut store: StoreContextMut<'_, CallState>, (list,): (Vec<Resource<DynPollable>>,)| {
            let state = store.data_mut();
            let ready = until(
                state.deadline,
                async_poll::Host::poll(&mut state.table, list),
            )??;
            Ok((ready,))
        },
    )?;
    poll.func_wrap(
        "[method]pollable.block",
        |mut store: StoreContextMut<'_, CallState>, (pollable,): (Resource<DynPollable>,)| {
            let state = store.data_mut();
            until(
                state.deadline,
                async_poll::HostPollable::block(&mut state.table, pollable),
            )??;
            Ok(())
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Runs `wait` until it finishes or `deadline` passes.
fn until<F: Future>(deadline: Instant, wait: F) -> Result<F::Output, DeadlineExceeded> {
    let left = deadline.saturating_duration_since(Instant::now());
    // The timer is made inside the runtime `in_tokio` enters.
    in_tokio(async move { tokio::time::timeout(left, wait).await }).map_err(|_| DeadlineExceeded)
}
