//! Every `bindgen!` of the contract, in one place.
//!
//! The `imports` world generates each interface once (types and host
//! traits); each plugin world maps its imports onto those, so a type such as
//! `types::CheckResult` is one Rust type whatever world it travels through.
//! Host functions are trappable: a WIT-level error (a denied destination)
//! is the inner `Result`, a host fault the outer one.

/// The contract's text (`wit/plugin.wit`), for plugin authors' tools.
pub const CONTRACT_TEXT: &str = include_str!("../../wit/plugin.wit");

mod imports {
    wasmtime::component::bindgen!({
        world: "gantry:plugin/imports",
        path: "../wit",
        imports: { default: trappable },
    });
}

pub use imports::gantry::plugin::{config, http, log, provenance, smtp, sql, tcp, types};

pub mod health_check {
    wasmtime::component::bindgen!({
        world: "gantry:plugin/health-check",
        path: "../wit",
        with: {
            "gantry:plugin/types": super::types,
            "gantry:plugin/log": super::log,
            "gantry:plugin/config": super::config,
            "gantry:plugin/http": super::http,
            "gantry:plugin/tcp": super::tcp,
        },
    });
}

pub mod notifier {
    wasmtime::component::bindgen!({
        world: "gantry:plugin/notifier",
        path: "../wit",
        with: {
            "gantry:plugin/types": super::types,
            "gantry:plugin/log": super::log,
            "gantry:plugin/config": super::config,
            "gantry:plugin/http": super::http,
            "gantry:plugin/smtp": super::smtp,
        },
    });
}

pub mod config_validator {
    wasmtime::component::bindgen!({
        world: "gantry:plugin/config-validator",
        path: "../wit",
        with: {
            "gantry:plugin/types": super::types,
            "gantry:plugin/log": super::log,
            "gantry:plugin/config": super::config,
            "gantry:plugin/provenance": super::provenance,
        },
    });
}

pub mod migration {
    wasmtime::component::bindgen!({
        world: "gantry:plugin/migration",
        path: "../wit",
        with: {
            "gantry:plugin/types": super::types,
            "gantry:plugin/log": super::log,
            "gantry:plugin/config": super::config,
            "gantry:plugin/sql": super::sql,
        },
    });
}

/// The contract version this host speaks.
pub const CONTRACT: &str = "gantry:plugin@0.2.0";

/// Every interface of the contract (whether or not this host provides it).
pub const INTERFACES: &[&str] = &["types", "log", "config", "http", "tcp", "smtp", "sql"];
