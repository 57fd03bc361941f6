//! Secrets out of text: every resolved secret, in each form a plugin (or
//! a message built from one) could carry it, becomes `********`.
//!
//! Forms: as written, JSON-escaped, percent-encoded (`%40`, and `+` for a
//! space as forms write it), and base64 (standard and URL-safe, padded or
//! not). A secret shorter than [`Scrubber::MIN_LEN`] is not scrubbed: it
//! would turn ordinary words into stars and protect nothing.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

pub const MASK: &str = "********";

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
            let json = serde_json::to_string(secret).unwrap_or_default();
            let forms = [
                secret.to_string(),
                json[1..json.len() - 1].to_string(),
                url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
                percent_all(secret),
                STANDARD.encode(secret),
                STANDARD_NO_PAD.encode(secret),
                URL_SAFE.encode(secret),
                URL_SAFE_NO_PAD.encode(secret),
            ];
            for form in forms {
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
}

/// Percent-encodes every byte outside the unreserved set (`%20` for a
/// space), as URL path and query encoders do.
fn percent_all(secret: &str) -> String {
    let mut out = String::new();
    for b in secret.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
            format!("path {} end", percent_all(secret)),
            format!("b64 {} end", STANDARD.encode(secret)),
            format!("b64url {} end", URL_SAFE_NO_PAD.encode(secret)),
        ] {
            let out = s.scrub(&text);
            assert!(out.contains(MASK), "{text} -> {out}");
            assert!(!out.contains("ss w"), "{text} -> {out}");
        }
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
