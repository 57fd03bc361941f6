//! Splitting SQL text into statements, with the line each starts on.
//!
//! A lexer, not a parser: it knows strings (`'…'` with `''`, `E'…'` with
//! backslashes), quoted identifiers (`"…"`, `` `…` ``, `[…]`), comments
//! (`--`, nested `/* */`), dollar quoting (`$tag$…$tag$`) and the
//! `BEGIN … END` bodies of `CREATE TRIGGER` (and `BEGIN ATOMIC`), so a `;`
//! inside any of them never ends a statement.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    pub text: &'a str,
    /// 1-based line of the statement's first character.
    pub line: usize,
}

/// The statements of `sql`, without empty ones, leading comments or the `;`.
pub fn split(sql: &str) -> Vec<Statement<'_>> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut depth: i32 = 0;
    let mut in_create = None::<bool>;
    let mut lexer = Lexer::new(sql);
    while let Some((at, token)) = lexer.next() {
        if let Token::Semicolon = token
            && depth <= 0
        {
            if let Some(begin) = start.take() {
                push(sql, begin, at, &mut out);
            }
            depth = 0;
            in_create = None;
            continue;
        }
        start.get_or_insert(at);
        if let Token::Word(end) = token {
            let word = &sql[at..end];
            if in_create.is_none() {
                in_create = Some(word.eq_ignore_ascii_case("create"));
            }
            if in_create == Some(true) {
                if word.eq_ignore_ascii_case("begin") || word.eq_ignore_ascii_case("case") {
                    depth += 1;
                } else if word.eq_ignore_ascii_case("end") {
                    depth -= 1;
                }
            }
        }
    }
    if let Some(begin) = start {
        push(sql, begin, sql.len(), &mut out);
    }
    out
}

fn push<'a>(sql: &'a str, begin: usize, end: usize, out: &mut Vec<Statement<'a>>) {
    let line = sql[..begin].matches('\n').count() + 1;
    out.push(Statement {
        text: sql[begin..end].trim_end(),
        line,
    });
}

/// The first word of a statement, uppercased ("" if none).
pub fn first_word(statement: &str) -> String {
    let mut lexer = Lexer::new(statement);
    match lexer.next() {
        Some((from, Token::Word(to))) => statement[from..to].to_ascii_uppercase(),
        _ => String::new(),
    }
}

/// Statements that open or close a transaction themselves, which a
/// migration run in gantry's transaction must not contain.
pub fn is_transaction_control(statement: &str) -> bool {
    let word = first_word(statement);
    match word.as_str() {
        "COMMIT" | "ROLLBACK" | "ABORT" | "END" => true,
        "BEGIN" => true,
        "START" => statement.to_ascii_uppercase().split_whitespace().nth(1) == Some("TRANSACTION"),
        _ => false,
    }
}

/// Rewrites `$1`, `$2`, … placeholders as SQLite's `?1`, `?2`, … outside
/// strings and comments.
pub fn dollar_params_to_sqlite(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    let mut lexer = Lexer::new(sql);
    while let Some((at, token)) = lexer.next() {
        if let Token::Param = token {
            out.push_str(&sql[last..at]);
            out.push('?');
            last = at + 1;
        }
    }
    out.push_str(&sql[last..]);
    out
}

/// A token; `Lexer::next` gives it with its start offset.
#[derive(Debug)]
enum Token {
    Semicolon,
    /// A bare word ending at this offset.
    Word(usize),
    /// A `$N` placeholder.
    Param,
    Other,
}

struct Lexer<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer {
            text,
            bytes: text.as_bytes(),
            pos: 0,
        }
    }

    fn peek(&self, ahead: usize) -> u8 {
        self.bytes.get(self.pos + ahead).copied().unwrap_or(0)
    }

    fn skip_quoted(&mut self, close: u8, doubled: bool, backslash: bool) {
        while self.pos < self.bytes.len() {
            let c = self.bytes[self.pos];
            self.pos += 1;
            if backslash && c == b'\\' {
                self.pos += 1;
            } else if c == close {
                if doubled && self.peek(0) == close {
                    self.pos += 1;
                } else {
                    return;
                }
            }
        }
    }

    fn next(&mut self) -> Option<(usize, Token)> {
        loop {
            let c = *self.bytes.get(self.pos)?;
            let start = self.pos;
            match c {
                b';' => {
                    self.pos += 1;
                    return Some((start, Token::Semicolon));
                }
                c if c.is_ascii_whitespace() => self.pos += 1,
                b'-' if self.peek(1) == b'-' => {
                    while self.pos < self.bytes.len() && self.bytes[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                b'/' if self.peek(1) == b'*' => {
                    let mut depth = 0;
                    while self.pos < self.bytes.len() {
                        if self.peek(0) == b'/' && self.peek(1) == b'*' {
                            depth += 1;
                            self.pos += 2;
                        } else if self.peek(0) == b'*' && self.peek(1) == b'/' {
                            depth -= 1;
                            self.pos += 2;
                            if depth == 0 {
                                break;
                            }
                        } else {
                            self.pos += 1;
                        }
                    }
                }
                b'\'' => {
                    self.pos += 1;
                    self.skip_quoted(b'\'', true, false);
                    return Some((start, Token::Other));
                }
                b'"' => {
                    self.pos += 1;
                    self.skip_quoted(b'"', true, false);
                    return Some((start, Token::Other));
                }
                b'`' => {
                    self.pos += 1;
                    self.skip_quoted(b'`', true, false);
                    return Some((start, Token::Other));
                }
                b'[' => {
                    // SQLite's [identifier]; PostgreSQL's array subscript
                    // holds no `;`, so skipping to `]` is safe for both.
                    self.pos += 1;
                    self.skip_quoted(b']', false, false);
                    return Some((start, Token::Other));
                }
                b'$' if self.peek(1).is_ascii_digit() => {
                    self.pos += 1;
                    while self.peek(0).is_ascii_digit() {
                        self.pos += 1;
                    }
                    return Some((start, Token::Param));
                }
                b'$' => {
                    // $tag$ … $tag$
                    let mut end = self.pos + 1;
                    while end < self.bytes.len()
                        && (self.bytes[end].is_ascii_alphanumeric() || self.bytes[end] == b'_')
                    {
                        end += 1;
                    }
                    if self.bytes.get(end) == Some(&b'$') {
                        let tag = &self.text[start..=end];
                        self.pos = end + 1;
                        match self.text[self.pos..].find(tag) {
                            Some(close) => self.pos += close + tag.len(),
                            None => self.pos = self.bytes.len(),
                        }
                    } else {
                        self.pos += 1;
                    }
                    return Some((start, Token::Other));
                }
                c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                    while self.pos < self.bytes.len()
                        && (self.bytes[self.pos].is_ascii_alphanumeric()
                            || self.bytes[self.pos] == b'_'
                            || self.bytes[self.pos] == b'$'
                            || self.bytes[self.pos] >= 0x80)
                    {
                        self.pos += 1;
                    }
                    // E'…' strings take backslash escapes.
                    if self.pos - start == 1 && matches!(c, b'E' | b'e') && self.peek(0) == b'\'' {
                        self.pos += 1;
                        self.skip_quoted(b'\'', true, true);
                        return Some((start, Token::Other));
                    }
                    return Some((start, Token::Word(self.pos)));
                }
                _ => {
                    self.pos += 1;
                    return Some((start, Token::Other));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<(&str, usize)> {
        split(sql).into_iter().map(|s| (s.text, s.line)).collect()
    }

    #[test]
    fn splits_on_semicolons_with_lines() {
        let sql = "-- header\nCREATE TABLE a (x int);\n\nINSERT INTO a VALUES (1);\nSELECT 1";
        assert_eq!(
            texts(sql),
            vec![
                ("CREATE TABLE a (x int)", 2),
                ("INSERT INTO a VALUES (1)", 4),
                ("SELECT 1", 5)
            ]
        );
    }

    #[test]
    fn semicolons_in_strings_comments_and_bodies_do_not_split() {
        let sql = "INSERT INTO t VALUES ('a;b', E'c\\';d', \"we;ird\");\n\
                   /* a; /* nested; */ still; */ SELECT 1;\n\
                   CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END; $body$;\n\
                   CREATE TRIGGER t AFTER UPDATE ON x BEGIN UPDATE x SET a = CASE WHEN 1 THEN 2 END; SELECT 1; END;\n\
                   SELECT $1, $$;$$;";
        let got = split(sql);
        assert_eq!(got.len(), 5, "{got:#?}");
        assert!(got[2].text.ends_with("$body$"));
        assert!(got[3].text.ends_with("END"), "{}", got[3].text);
        assert_eq!(got[3].line, 4);
    }

    #[test]
    fn comment_only_pieces_are_dropped() {
        assert!(split("-- nothing\n/* here */\n;;").is_empty());
    }

    #[test]
    fn transaction_control_is_recognised() {
        assert!(is_transaction_control("COMMIT"));
        assert!(is_transaction_control("begin transaction"));
        assert!(is_transaction_control(
            "START TRANSACTION ISOLATION LEVEL SERIALIZABLE"
        ));
        assert!(!is_transaction_control(
            "CREATE TRIGGER t BEGIN SELECT 1; END"
        ));
        assert!(!is_transaction_control("START_X"));
    }

    #[test]
    fn dollar_params_become_sqlite_params() {
        assert_eq!(
            dollar_params_to_sqlite("UPDATE t SET a = $1 WHERE b = '$2' AND c = $2"),
            "UPDATE t SET a = ?1 WHERE b = '$2' AND c = ?2"
        );
    }
}
