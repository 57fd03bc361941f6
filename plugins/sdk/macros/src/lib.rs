//! Export macros for `gantry-plugin`, one per world of the contract.
//!
//! Each macro expands, in the plugin's own crate, to a `wit_bindgen::generate!`
//! of that world's exports only (the imports are mapped onto the SDK's
//! bindings with `with`), plus an adapter from the SDK's plain trait to the
//! generated `Guest` trait. Generating the exports in the plugin crate keeps
//! the other worlds' type sections out of the component, so a health check
//! does not have to export `notify`.
//!
//! The WIT path is the SDK's `wit/` folder, fixed when the macro crate is
//! compiled; this crate never reads files at expansion time.

use proc_macro::TokenStream;

/// Where the contract lives, relative to this crate's manifest.
const WIT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../wit");

struct World {
    name: &'static str,
    imports: &'static [&'static str],
    sdk_trait: &'static str,
    /// The `Guest` impl body; `{ty}` is replaced by the user's type.
    adapter: &'static str,
}

const HEALTH_CHECK: World = World {
    name: "health-check",
    imports: &["log", "config", "http", "tcp"],
    sdk_trait: "HealthCheck",
    adapter:
        "fn check(target: ::std::string::String) -> ::gantry_plugin::bindings::types::CheckResult {
        <{ty} as ::gantry_plugin::HealthCheck>::check(target)
    }",
};

const NOTIFIER: World = World {
    name: "notifier",
    imports: &["log", "config", "http", "smtp"],
    sdk_trait: "Notifier",
    adapter: "fn notify(
        notification: ::gantry_plugin::bindings::types::Notification,
    ) -> ::std::result::Result<(), ::gantry_plugin::bindings::types::DeliveryError> {
        <{ty} as ::gantry_plugin::Notifier>::notify(notification)
    }",
};

const CONFIG_VALIDATOR: World = World {
    name: "config-validator",
    imports: &["log", "config"],
    sdk_trait: "ConfigValidator",
    adapter: "fn validate(
        environment: ::std::string::String,
        file_name: ::std::string::String,
        json: ::std::string::String,
    ) -> ::std::vec::Vec<::gantry_plugin::bindings::types::Finding> {
        <{ty} as ::gantry_plugin::ConfigValidator>::validate(environment, file_name, json)
    }",
};

const MIGRATION: World = World {
    name: "migration",
    imports: &["log", "config", "sql"],
    sdk_trait: "Migration",
    adapter: "fn up() -> ::std::result::Result<(), ::std::string::String> {
        <{ty} as ::gantry_plugin::Migration>::up()
    }
    fn down() -> ::std::result::Result<(), ::std::string::String> {
        <{ty} as ::gantry_plugin::Migration>::down()
    }",
};

fn expand(world: &World, input: TokenStream) -> TokenStream {
    let ty = input.to_string();
    if ty.trim().is_empty() {
        return format!(
            "::core::compile_error!(\"name the type that implements gantry_plugin::{}\");",
            world.sdk_trait
        )
        .parse()
        .expect("compile_error tokens");
    }
    let mut with = String::from("\"gantry:plugin/types@0.2.0\": ::gantry_plugin::bindings::types,");
    for import in world.imports {
        with.push_str(&format!(
            "\"gantry:plugin/{import}@0.2.0\": ::gantry_plugin::bindings::{import},"
        ));
    }
    let adapter = world.adapter.replace("{ty}", &format!("super::{ty}"));
    let code = format!(
        "#[doc(hidden)]
        #[allow(unsafe_code)]
        mod __gantry_plugin_export {{
            ::gantry_plugin::__wit_bindgen::generate!({{
                world: \"gantry:plugin/{name}\",
                path: {path:?},
                runtime_path: \"::gantry_plugin::__wit_bindgen::rt\",
                with: {{ {with} }},
            }});
            struct Adapter;
            impl Guest for Adapter {{
                {adapter}
            }}
            export!(Adapter);
        }}",
        name = world.name,
        path = WIT_DIR,
    );
    code.parse().expect("generated export tokens")
}

/// Exports a type that implements `gantry_plugin::HealthCheck`.
#[proc_macro]
pub fn health_check(input: TokenStream) -> TokenStream {
    expand(&HEALTH_CHECK, input)
}

/// Exports a type that implements `gantry_plugin::Notifier`.
#[proc_macro]
pub fn notifier(input: TokenStream) -> TokenStream {
    expand(&NOTIFIER, input)
}

/// Exports a type that implements `gantry_plugin::ConfigValidator`.
#[proc_macro]
pub fn config_validator(input: TokenStream) -> TokenStream {
    expand(&CONFIG_VALIDATOR, input)
}

/// Exports a type that implements `gantry_plugin::Migration`.
#[proc_macro]
pub fn migration(input: TokenStream) -> TokenStream {
    expand(&MIGRATION, input)
}
