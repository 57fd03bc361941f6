//! The functions a migration plugin's SQL may call: an allowlist per
//! dialect, the usual scalar, aggregate, window, date, string, JSON and
//! math functions. Anything else — reading files, other connections,
//! session state (advisory locks, settings), SQL given as text, extensions
//! — is refused because it is not here, not because someone thought of it.
//!
//! Shared by the parser's check (`grant.rs`, PostgreSQL and SQLite) and
//! SQLite's authorizer (`authorizer.rs`), which asks the engine itself.

use super::grant::SqlGrant;
use crate::db::Dialect;

/// Functions both dialects spell the same way.
const COMMON: &[&str] = &[
    "abs", "avg", "ceil", "ceiling", "coalesce", "concat", "concat_ws", "count", "degrees",
    "exp", "floor", "format", "length", "ln", "log", "log10", "lower", "ltrim", "max", "min",
    "mod", "nullif", "octet_length", "pi", "power", "radians", "random", "replace", "round",
    "rtrim", "sign", "sqrt", "substr", "substring", "sum", "trim", "trunc", "upper", "acos",
    "asin", "atan", "atan2", "cos", "sin", "tan", "cosh", "sinh", "tanh", "row_number", "rank",
    "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead", "first_value",
    "last_value", "nth_value", "string_agg",
];

const POSTGRES: &[&str] = &[
    // math
    "cbrt", "div", "factorial", "gcd", "lcm", "scale", "width_bucket", "cot", "greatest",
    "least",
    // strings
    "ascii", "bit_length", "btrim", "char_length", "character_length", "chr", "initcap", "left",
    "lpad", "md5", "normalize", "overlay", "position", "quote_ident", "quote_literal",
    "quote_nullable", "regexp_count", "regexp_instr", "regexp_like", "regexp_match",
    "regexp_matches", "regexp_replace", "regexp_split_to_array", "regexp_split_to_table",
    "regexp_substr", "repeat", "reverse", "right", "rpad", "split_part", "starts_with",
    "string_to_array", "string_to_table", "strpos", "to_ascii", "to_hex", "translate", "unistr",
    "encode", "decode", "sha224", "sha256", "sha384", "sha512", "convert_from", "convert_to",
    // formatting and dates
    "to_char", "to_date", "to_number", "to_timestamp", "age", "clock_timestamp", "current_date",
    "current_time", "current_timestamp", "date_bin", "date_part", "date_trunc", "extract",
    "isfinite", "justify_days", "justify_hours", "justify_interval", "localtime",
    "localtimestamp", "make_date", "make_interval", "make_time", "make_timestamp",
    "make_timestamptz", "now", "statement_timestamp", "timeofday", "transaction_timestamp",
    "timezone",
    // aggregates
    "array_agg", "bit_and", "bit_or", "bool_and", "bool_or", "every", "json_agg", "jsonb_agg",
    "json_object_agg", "jsonb_object_agg", "stddev", "stddev_pop", "stddev_samp", "variance",
    "var_pop", "var_samp", "corr", "covar_pop", "covar_samp", "mode", "percentile_cont",
    "percentile_disc",
    // arrays
    "array_append", "array_cat", "array_dims", "array_fill", "array_length", "array_lower",
    "array_upper", "array_ndims", "array_position", "array_positions", "array_prepend",
    "array_remove", "array_replace", "array_to_string", "cardinality", "unnest", "trim_array",
    "array_to_json",
    // JSON
    "to_json", "to_jsonb", "row_to_json", "json_build_array", "jsonb_build_array",
    "json_build_object", "jsonb_build_object", "json_object", "jsonb_object",
    "json_array_length", "jsonb_array_length", "json_each", "jsonb_each", "json_each_text",
    "jsonb_each_text", "json_extract_path", "jsonb_extract_path", "json_extract_path_text",
    "jsonb_extract_path_text", "json_object_keys", "jsonb_object_keys", "json_array_elements",
    "jsonb_array_elements", "json_array_elements_text", "jsonb_array_elements_text",
    "json_typeof", "jsonb_typeof", "json_strip_nulls", "jsonb_strip_nulls", "jsonb_set",
    "jsonb_set_lax", "jsonb_insert", "jsonb_pretty", "jsonb_path_exists", "jsonb_path_match",
    "jsonb_path_query", "jsonb_path_query_array", "jsonb_path_query_first", "json_to_record",
    "jsonb_to_record", "json_to_recordset", "jsonb_to_recordset",
    // sets, identifiers, text search, addresses
    "generate_series", "generate_subscripts", "gen_random_uuid", "pg_typeof", "num_nonnulls",
    "num_nulls", "currval", "to_tsvector", "to_tsquery", "plainto_tsquery",
    "websearch_to_tsquery", "ts_rank", "setweight", "host", "family", "masklen", "network",
    "broadcast", "netmask", "abbrev", "current_database", "current_schema",
    // Blocks only until the call's deadline (statement_timeout).
    "pg_sleep",
];

const SQLITE: &[&str] = &[
    "char", "glob", "hex", "ifnull", "iif", "if", "instr", "like", "likelihood", "likely",
    "printf", "quote", "randomblob", "soundex", "typeof", "unhex", "unicode", "unlikely",
    "zeroblob", "changes", "total_changes", "last_insert_rowid", "date", "time", "datetime",
    "julianday", "unixepoch", "strftime", "timediff", "group_concat", "total", "acosh", "asinh",
    "atanh", "log2", "pow", "json", "jsonb", "json_array", "jsonb_array", "json_array_length",
    "json_error_position", "json_extract", "jsonb_extract", "json_insert", "jsonb_insert",
    "json_object", "jsonb_object", "json_patch", "jsonb_patch", "json_pretty", "json_remove",
    "jsonb_remove", "json_replace", "jsonb_replace", "json_set", "jsonb_set", "json_type",
    "json_valid", "json_quote", "json_group_array", "jsonb_group_array", "json_group_object",
    "jsonb_group_object", "json_each", "json_tree",
    // The JSON operators, which SQLite authorizes as functions.
    "->", "->>",
];

/// Functions that change the database, admitted from `write` up.
const WRITING: &[&str] = &["nextval", "setval"];

/// Why a function is not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunctionRefusal {
    /// A wider grant would admit it.
    Needs(SqlGrant),
    /// No grant admits it.
    Never(String),
}

/// Whether `grant` may call the function `name` (its plain, lowercased
/// name) in `dialect`.
pub fn admit(dialect: Dialect, grant: SqlGrant, name: &str) -> Result<(), FunctionRefusal> {
    let name = name.to_ascii_lowercase();
    let listed = COMMON.contains(&name.as_str())
        || match dialect {
            Dialect::Postgres => POSTGRES.contains(&name.as_str()),
            Dialect::Sqlite => SQLITE.contains(&name.as_str()),
        };
    if listed {
        return Ok(());
    }
    if dialect == Dialect::Postgres && WRITING.contains(&name.as_str()) {
        return if grant >= SqlGrant::Write {
            Ok(())
        } else {
            Err(FunctionRefusal::Needs(SqlGrant::Write))
        };
    }
    Err(FunctionRefusal::Never(format!(
        "the function {name} is not one a migration step may call"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_functions_are_admitted_and_nothing_else() {
        for name in ["lower", "COUNT", "jsonb_set", "date_trunc", "pg_sleep"] {
            assert_eq!(admit(Dialect::Postgres, SqlGrant::Read, name), Ok(()), "{name}");
        }
        for name in ["lower", "json_extract", "strftime", "group_concat"] {
            assert_eq!(admit(Dialect::Sqlite, SqlGrant::Read, name), Ok(()), "{name}");
        }
        for name in [
            "pg_read_file",
            "pg_advisory_unlock_all",
            "pg_advisory_unlock",
            "set_config",
            "query_to_xml",
            "database_to_xml",
            "table_to_xml",
            "ts_stat",
            "dblink",
            "lo_import",
            "pg_ls_dir",
            "current_setting",
            "setseed",
        ] {
            assert!(
                matches!(admit(Dialect::Postgres, SqlGrant::Ddl, name), Err(FunctionRefusal::Never(_))),
                "{name}"
            );
        }
        for name in ["load_extension", "readfile", "writefile", "fts3_tokenizer", "sqlite_offset"] {
            assert!(
                matches!(admit(Dialect::Sqlite, SqlGrant::Ddl, name), Err(FunctionRefusal::Never(_))),
                "{name}"
            );
        }
        assert_eq!(
            admit(Dialect::Postgres, SqlGrant::Read, "nextval"),
            Err(FunctionRefusal::Needs(SqlGrant::Write))
        );
        assert_eq!(admit(Dialect::Postgres, SqlGrant::Write, "setval"), Ok(()));
    }
}
