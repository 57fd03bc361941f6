//! Secrets out of text: every resolved secret, in each form a plugin (or
//! a message built from one) could carry it, becomes `********`.
//!
//! Forms: as written; JSON-escaped, and with every character as `\uXXXX`
//! (either case); percent-encoded (`%2F` or `%2f`, and `+` for a space as
//! forms write it); hex (either case); base64 and base64url, padded or
//! not, whole and *inside a longer encoding* — the part of the encoding
//! that only the secret's bytes decide, at each of the three offsets it
//! can start at (so `Basic dXNlcjpodW50ZXIy` loses the password it
//! carries). A secret shorter than [`Scrubber::MIN_LEN`] is not scrubbed:
//! it would turn ordinary words into stars and protect nothing.
//!
//! Values resolved from `${env:…}` / `${file:…}` are remembered for the
//! process ([`remember`]), so every plugin call scrubs them wherever they
//! landed — a webhook `url` with a token in its query as much as a
//! `password`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use std::sync::{LazyLock, RwLock};

pub const MASK: &str = "********";

/// Base64 runs shorter than this, cut from inside a longer encoding, are
/// not needles: they would match by chance.
const MIN_B64_RUN: usize = 6;

/// The forms of a set of secrets, longest first.
#[derive(Debug, Clone, Default)]
pub struct Scrubber {
    needles: Vec<String>,
}

impl Scrubber {
    pub const MIN_LEN: usize = 3;

    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Scrubber {
        let mut needles = Vec::new();
        for secret in secrets {
            let secret = secret.as_ref();
            if secret.len() < Self::MIN_LEN {
                continue;
            }
            for form in forms(secret) {
                if form.len() >= Self::MIN_LEN && !needles.contains(&form) {
                    needles.push(form);
                }
            }
        }
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        Scrubber { needles }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every form of every secret masked.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        self.scrub_in_place(&mut out);
        out
    }

    pub fn scrub_in_place(&self, text: &mut String) {
        for needle in &self.needles {
            if text.contains(needle.as_str()) {
                *text = text.replace(needle.as_str(), MASK);
            }
        }
    }

    /// For `text` cut short at a limit (captured output): after
    /// [`scrub_in_place`](Self::scrub_in_place), also masks an end that is
    /// the beginning of a secret's form ([`Self::MIN_LEN`] characters or
    /// more), which the cut left without its rest.
    pub fn scrub_cut_in_place(&self, text: &mut String) {
        self.scrub_in_place(text);
        let longest = self
            .needles
            .iter()
            .filter_map(|needle| {
                (Self::MIN_LEN..needle.len())
                    .rev()
                    .filter(|&k| needle.is_char_boundary(k))
                    .find(|&k| text.ends_with(&needle[..k]))
            })
            .max();
        if let Some(k) = longest {
            text.truncate(text.len() - k);
            text.push_str(MASK);
        }
    }
}

/// Every form of one secret.
fn forms(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).unwrap_or_default();
    let mut forms = vec![
        secret.to_string(),
        json[1..json.len() - 1].to_string(),
        unicode_escaped(secret, false),
        unicode_escaped(secret, true),
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        percent_all(secret, false),
        percent_all(secret, true),
        hex::encode(secret),
        hex::encode_upper(secret),
        STANDARD.encode(secret),
        STANDARD_NO_PAD.encode(secret),
        URL_SAFE.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
    ];
    for offset in 0..3 {
        for run in base64_runs(secret.as_bytes(), offset) {
            if run.len() >= MIN_B64_RUN {
                forms.push(run);
            }
        }
    }
    forms
}

/// What base64 (standard and URL-safe) writes for `secret` when it starts
/// `offset` bytes into a 3-byte group of a longer input: only the
/// characters no byte outside the secret touches.
fn base64_runs(secret: &[u8], offset: usize) -> Vec<String> {
    let mut input = vec![0u8; offset];
    input.extend_from_slice(secret);
    let whole_groups = input.len() / 3;
    // Characters of the first group that mix in the bytes before it.
    let skip = match offset {
        0 => 0,
        1 => 2,
        _ => 3,
    };
    let end = whole_groups * 4;
    if end <= skip {
        return Vec::new();
    }
    let standard = STANDARD_NO_PAD.encode(&input[..whole_groups * 3]);
    let url_safe = URL_SAFE_NO_PAD.encode(&input[..whole_groups * 3]);
    vec![
        standard[skip..end].to_string(),
        url_safe[skip..end].to_string(),
    ]
}

/// Every character as `\uXXXX` (UTF-16 units, surrogate pairs for the
/// rest), as some JSON encoders write all non-ASCII or all text.
fn unicode_escaped(secret: &str, upper: bool) -> String {
    let mut out = String::new();
    for unit in secret.encode_utf16() {
        if upper {
            out.push_str(&format!("\\u{unit:04X}"));
        } else {
            out.push_str(&format!("\\u{unit:04x}"));
        }
    }
    out
}

/// Percent-encodes every byte outside the unreserved set (`%20` for a
/// space), as URL path and query encoders do, in either hex case.
fn percent_all(secret: &str, lower: bool) -> String {
    let mut out = String::new();
    for b in secret.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else if lower {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Values resolved from secret references in this process.
static RESOLVED: LazyLock<RwLock<Vec<String>>> = LazyLock::new(RwLock::default);

/// Most values remembered; a process resolves a handful.
const MAX_REMEMBERED: usize = 1024;

/// Remembers a value resolved from a secret reference, so every plugin
/// call scrubs it from what it returns, logs or prints.
pub fn remember(value: &str) {
    if value.len() < Scrubber::MIN_LEN {
        return;
    }
    let mut resolved = RESOLVED.write().unwrap_or_else(|e| e.into_inner());
    if resolved.len() < MAX_REMEMBERED && !resolved.iter().any(|v| v == value) {
        resolved.push(value.to_string());
    }
}

/// Every value remembered so far.
pub fn remembered() -> Vec<String> {
    RESOLVED.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A key that names a secret (`db_password`, `apiToken`, `private_key`):
/// its value is masked wherever it is shown, even written literally.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('-', "_");
    [
        "secret",
        "password",
        "passwd",
        "private_key",
        "privatekey",
        "api_key",
        "apikey",
    ]
    .iter()
    .any(|word| key.contains(word))
        || key.ends_with("token")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_cut_by_the_output_limit_is_masked_too() {
        let secret = "hunter2-correct-horse";
        let s = Scrubber::new([secret]);
        let mut cut = "token=hunter2-corr".to_string();
        s.scrub_cut_in_place(&mut cut);
        assert_eq!(cut, format!("token={MASK}"));
        let mut whole = format!("a {secret} b {}", &secret[..9]);
        s.scrub_cut_in_place(&mut whole);
        assert_eq!(whole, format!("a {MASK} b {MASK}"));
        // Its base64 form, cut as well.
        let mut b64 = format!("Basic {}", &STANDARD.encode(secret)[..12]);
        s.scrub_cut_in_place(&mut b64);
        assert!(b64.ends_with(MASK) && !b64.contains("aHVudGVy"), "{b64}");
        // Text that ends in no secret's beginning is left as it is.
        let mut plain = "all went well".to_string();
        s.scrub_cut_in_place(&mut plain);
        assert_eq!(plain, "all went well");
    }

    #[test]
    fn every_form_is_masked() {
        let secret = "p@ss w\"rd/+?";
        let s = Scrubber::new([secret]);
        let json = serde_json::to_string(secret).unwrap();
        for text in [
            format!("plain {secret} end"),
            format!("json {json} end"),
            format!(
                "form {} end",
                url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>()
            ),
            format!("path {} end", percent_all(secret, false)),
            format!("path {} end", percent_all(secret, true)),
            format!("b64 {} end", STANDARD.encode(secret)),
            format!("b64url {} end", URL_SAFE_NO_PAD.encode(secret)),
        ] {
            let out = s.scrub(&text);
            assert!(out.contains(MASK), "{text} -> {out}");
            assert!(!out.contains("ss w"), "{text} -> {out}");
        }
    }

    #[test]
    fn encodings_inside_longer_text_are_masked() {
        let secret = "hunter2-correct-horse";
        let s = Scrubber::new([secret]);
        // Basic auth: the password sits at an offset inside the encoding.
        for user in ["u", "us", "use", "user", "admin1"] {
            let basic = STANDARD.encode(format!("{user}:{secret}"));
            let out = s.scrub(&format!("Authorization: Basic {basic}"));
            assert!(out.contains(MASK), "{user}: {basic} -> {out}");
            assert!(!out.contains(&basic), "{user}: {basic} -> {out}");
            let url_safe = URL_SAFE_NO_PAD.encode(format!("{user}:{secret}?x"));
            assert!(s.scrub(&url_safe).contains(MASK), "{url_safe}");
        }
        for text in [
            hex::encode(secret),
            hex::encode_upper(secret),
            secret
                .chars()
                .map(|c| format!("\\u{:04x}", c as u32))
                .collect::<String>(),
            secret
                .chars()
                .map(|c| format!("\\u{:04X}", c as u32))
                .collect::<String>(),
        ] {
            let out = s.scrub(&text);
            assert!(
                out.contains(MASK) && !out.contains("756e74"),
                "{text} -> {out}"
            );
        }
        let slash = Scrubber::new(["pa/ss/word"]);
        assert_eq!(slash.scrub("q=pa%2fss%2fword"), "q=********");
        assert_eq!(slash.scrub("q=pa%2Fss%2Fword"), "q=********");
    }

    #[test]
    fn remembered_values_are_the_processes_secrets() {
        remember("resolved-from-env-xyz");
        remember("ab");
        let all = remembered();
        assert!(all.iter().any(|v| v == "resolved-from-env-xyz"));
        assert!(!all.iter().any(|v| v == "ab"));
    }

    #[test]
    fn short_values_and_other_text_are_left() {
        let s = Scrubber::new(["ab", "hunter22"]);
        assert_eq!(s.scrub("ab cd hunter2"), "ab cd hunter2");
        assert_eq!(s.scrub("x hunter22 y"), "x ******** y");
    }

    #[test]
    fn secret_keys() {
        for key in [
            "password",
            "db_password",
            "apiToken",
            "private_key",
            "client-secret",
            "API_KEY",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["username", "port", "token_expiry_minutes"] {
            assert!(!is_secret_key(key), "{key}");
        }
    }
}
