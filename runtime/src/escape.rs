//! Text from outside (a plugin's messages, logs and output; a receiver's
//! answer) made safe to show a person: control characters that a terminal
//! obeys (ESC sequences, carriage return, backspace), C1 controls and the
//! Unicode bidirectional overrides that reorder what is shown are written
//! as visible escapes (`\u{1b}`), so such text can neither repaint nor
//! reorder the operator's screen.
//!
//! Only for what a person reads: JSON output keeps the text as it is (JSON
//! escapes it) and nothing here changes what is stored.

use std::borrow::Cow;

/// Whether a character must not reach a terminal raw. Newline and tab are
/// decided by the caller.
fn hostile(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        // Bidirectional embeddings, overrides and isolates; marks.
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        | '\u{200e}' | '\u{200f}' | '\u{061c}'
        // Line and paragraph separators act as line breaks in some viewers.
        | '\u{2028}' | '\u{2029}')
}

fn escape(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let bad = |c: char| hostile(c) || (!keep_newlines && (c == '\n' || c == '\t'));
    if !text.chars().any(bad) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' if !keep_newlines => out.push_str("\\n"),
            '\t' if !keep_newlines => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if hostile(c) => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// For text printed as one or more lines: everything but newline and tab
/// escaped.
pub fn controls(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

/// For text that is one line by contract (a check's message, a log line, a
/// reason in an event line): newlines and tabs escaped as well, so it
/// cannot print a line of its own that looks like gantry's.
pub fn one_line(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_terminal_would_obey_is_shown_instead() {
        assert_eq!(controls("plain text, ünïcode"), "plain text, ünïcode");
        assert!(matches!(controls("ok"), Cow::Borrowed(_)));
        assert_eq!(controls("\u{1b}[2K\rOK"), "\\u{1b}[2K\\rOK");
        assert_eq!(controls("a\nb\tc"), "a\nb\tc");
        assert_eq!(one_line("CRITICAL\nOK: fine"), "CRITICAL\\nOK: fine");
        assert_eq!(controls("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(controls("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(controls("\u{7}\u{8}"), "\\u{7}\\u{8}");
        assert_eq!(one_line("a\u{2028}b"), "a\\u{2028}b");
    }
}
