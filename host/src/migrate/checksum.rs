//! Migration checksums: sha256 over normalised text, with a format tag.
//!
//! Normalising removes a UTF-8 BOM, turns CRLF (and lone CR) into LF, and
//! ignores trailing whitespace at the end of the file, so an editor's line
//! endings never count as a change.

use sha2::{Digest, Sha256};

pub const TAG: &str = "v1:sha256:";

pub fn normalise(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .trim_end()
        .to_string()
}

/// `v1:sha256:<hex>` of the normalised text.
pub fn of_text(text: &str) -> String {
    format!(
        "{TAG}{}",
        hex::encode(Sha256::digest(normalise(text).as_bytes()))
    )
}

/// `v1:sha256:<hex>` of raw bytes (a WASM component).
pub fn of_bytes(bytes: &[u8]) -> String {
    format!("{TAG}{}", hex::encode(Sha256::digest(bytes)))
}

/// True when two texts differ only in the spacing between words: the
/// same words in the same order, and every quoted string or identifier
/// (`'…'`, `"…"`) the same to the byte. `a b` → `ab`, or a space added
/// inside a string literal, is a real edit.
pub fn only_whitespace_differs(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace()) && quoted(a) == quoted(b)
}

/// The quoted segments of SQL text, in order.
fn quoted(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut open: Option<(char, usize)> = None;
    for (i, c) in text.char_indices() {
        match open {
            None if c == '\'' || c == '"' => open = Some((c, i)),
            Some((q, start)) if c == q => {
                out.push(&text[start..=i]);
                open = None;
            }
            _ => {}
        }
    }
    if let Some((_, start)) = open {
        out.push(&text[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_bom_and_trailing_space_do_not_count() {
        let unix = "CREATE TABLE t (id int);\nSELECT 1;\n";
        let windows = "\u{feff}CREATE TABLE t (id int);\r\nSELECT 1;\r\n\r\n  ";
        assert_eq!(of_text(unix), of_text(windows));
        assert!(of_text(unix).starts_with("v1:sha256:"));
        assert_ne!(
            of_text(unix),
            of_text("CREATE TABLE t (id bigint);\nSELECT 1;\n")
        );
    }

    #[test]
    fn whitespace_only_changes_are_recognised() {
        assert!(only_whitespace_differs("SELECT  1;\n", "SELECT\n1;"));
        assert!(!only_whitespace_differs("SELECT 1;", "SELECT 2;"));
    }

    #[test]
    fn a_real_edit_is_never_called_whitespace_only() {
        // Words joined or split.
        assert!(!only_whitespace_differs("SELECT a b;", "SELECT ab;"));
        // Spacing inside a string literal or a quoted identifier.
        assert!(!only_whitespace_differs(
            "INSERT INTO t VALUES ('a b');",
            "INSERT INTO t VALUES ('a  b');"
        ));
        assert!(!only_whitespace_differs(
            "SELECT \"my col\" FROM t;",
            "SELECT \"my  col\" FROM t;"
        ));
        // Indentation and line breaks around a literal are fine.
        assert!(only_whitespace_differs(
            "INSERT INTO t\nVALUES ('a b');",
            "INSERT INTO t VALUES ('a b');"
        ));
    }
}
