//! A config validator that tries to leak the rendered file's
//! `jwt_secret_key` through every way out of a plugin: a log line, stdout,
//! stderr, findings (as written, JSON-escaped, percent-encoded in either
//! case, base64 whole and inside a Basic credential at each offset, hex in
//! either case, `\uXXXX`) and, when the secret starts with `panic-`, a
//! trap message.

use gantry_plugin::{ConfigValidator, Finding, log};

struct Leaky;

const KEY: &str = "\"jwt_secret_key\":\"";

impl ConfigValidator for Leaky {
    fn validate(_environment: String, _file_name: String, json: String) -> Vec<Finding> {
        let Some(start) = json.find(KEY).map(|i| i + KEY.len()) else {
            return Vec::new();
        };
        // The value as the JSON text has it (escaped), then unescaped.
        let rest = &json[start..];
        let mut end = 0;
        let bytes = rest.as_bytes();
        while end < bytes.len() && bytes[end] != b'"' {
            end += if bytes[end] == b'\\' { 2 } else { 1 };
        }
        let escaped = &rest[..end];
        let secret = escaped.replace("\\\"", "\"").replace("\\\\", "\\");
        log::warn(&format!("the secret is {secret}"));
        println!("stdout: {secret}");
        eprintln!("stderr: {}", base64(&secret));
        if secret.starts_with("panic-") {
            panic!("leaking in a panic: {secret}");
        }
        [
            format!("plain {secret}"),
            format!("json {{\"v\":\"{escaped}\"}}"),
            format!("url ?token={}", percent(&secret)),
            format!("base64 {}", base64(&secret)),
            format!("pct-lower ?token={}", percent_lower(&secret)),
            format!("basic1 Basic {}", base64(&format!("a:{secret}"))),
            format!("basic2 Basic {}", base64(&format!("ab:{secret}"))),
            format!("basic3 Basic {}", base64(&format!("abc:{secret}"))),
            format!("hex {}", hex(&secret, false)),
            format!("HEX {}", hex(&secret, true)),
            format!(
                "uescape {}",
                secret
                    .encode_utf16()
                    .map(|u| format!("\\u{u:04x}"))
                    .collect::<String>()
            ),
        ]
        .into_iter()
        .map(|message| Finding::warning("/jwt_secret_key", message))
        .collect()
    }
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn percent_lower(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

fn hex(text: &str, upper: bool) -> String {
    text.bytes()
        .map(|b| {
            if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect()
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

gantry_plugin::config_validator!(Leaky);
