//! Secret references in config values: `${env:NAME}` and `${file:PATH}`,
//! resolved at the moment of use. A resolved value is never printed or
//! logged; errors name the reference, never a value.

use std::path::Path;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("secret reference `{reference}` is unresolved: environment variable {name} is not set")]
    MissingEnv { reference: String, name: String },
    #[error("secret reference `{reference}` is unresolved: cannot read {path}: {why}")]
    UnreadableFile {
        reference: String,
        path: String,
        why: String,
    },
    #[error("`{reference}` is not a secret reference; use ${{env:NAME}} or ${{file:PATH}}")]
    Malformed { reference: String },
}

/// True when `text` contains a `${…}` reference.
pub fn has_reference(text: &str) -> bool {
    text.contains("${")
}

/// Replaces every reference in `text`. Files are read relative to `base`;
/// one trailing newline of a file is dropped.
pub fn resolve(text: &str, base: &Path) -> Result<String, SecretError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("${") {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}').map(|c| c + open) else {
            return Err(SecretError::Malformed {
                reference: rest[open..].to_string(),
            });
        };
        let reference = &rest[open..=close];
        let inner = &rest[open + 2..close];
        let value = match inner.split_once(':') {
            Some(("env", name)) if !name.is_empty() => {
                std::env::var(name).map_err(|_| SecretError::MissingEnv {
                    reference: reference.to_string(),
                    name: name.to_string(),
                })?
            }
            Some(("file", path)) if !path.is_empty() => {
                let full = base.join(path);
                let mut value =
                    std::fs::read_to_string(&full).map_err(|e| SecretError::UnreadableFile {
                        reference: reference.to_string(),
                        path: full.display().to_string(),
                        why: e.kind().to_string(),
                    })?;
                if value.ends_with('\n') {
                    value.pop();
                    if value.ends_with('\r') {
                        value.pop();
                    }
                }
                value
            }
            _ => {
                return Err(SecretError::Malformed {
                    reference: reference.to_string(),
                });
            }
        };
        crate::scrub::remember(&value);
        out.push_str(&value);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_and_file_references_resolve() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jwt"), "from-file\n").unwrap();
        // SAFETY: tests in this module do not read this variable concurrently.
        unsafe { std::env::set_var("GANTRY_TEST_SECRET_A", "from-env") };
        let got = resolve("a=${env:GANTRY_TEST_SECRET_A} b=${file:jwt}", dir.path()).unwrap();
        assert_eq!(got, "a=from-env b=from-file");
        assert_eq!(resolve("plain", dir.path()).unwrap(), "plain");
    }

    #[test]
    fn unresolved_references_are_named() {
        let err = resolve("${env:GANTRY_TEST_SURELY_UNSET}", Path::new(".")).unwrap_err();
        assert!(
            err.to_string().contains("${env:GANTRY_TEST_SURELY_UNSET}"),
            "{err}"
        );
        assert!(matches!(
            resolve("${vault:x}", Path::new(".")),
            Err(SecretError::Malformed { .. })
        ));
    }
}
