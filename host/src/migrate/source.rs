//! Finding migrations: a directory (or the auth schema built into the
//! binary) read into an ordered, validated set.
//!
//! Names: `NNN_name.up.sql` with an optional `NNN_name.down.sql`; sqlx's
//! up-only `NNN_name.sql`; a WASM step `NNN_name.toml` (its manifest) with
//! `NNN_name.wasm`, or naming a built-in migration plugin. Versions are
//! 64-bit integers. Duplicate versions, malformed names and a down without
//! an up are errors that name the file. Nothing here touches a database.

use super::checksum;
use super::index::{FolderIndex, Known, Learned};
use crate::db::Dialect;
use crate::db::split;
use crate::runtime::identity::{self, Stamp};
use crate::runtime::{Manifest, PluginKind, PluginSource};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

/// One migration, ready to run.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: i64,
    /// The description part of the name: `create_auth_tables`.
    pub name: String,
    pub body: Body,
    /// `v1:sha256:…` of the normalised up script, or of the component.
    pub checksum: String,
    pub no_transaction: bool,
    /// The file that defines it (the up script, or the manifest).
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub enum Body {
    Sql { up: UpFile, down: Option<DownFile> },
    Wasm(Box<WasmStep>),
}

impl Migration {
    /// The up script of an SQL migration, read now if the folder index
    /// let its reading wait; `None` for a WASM step.
    pub fn up(&self) -> Result<Option<&str>, SourceError> {
        match &self.body {
            Body::Sql { up, .. } => up.text().map(Some),
            Body::Wasm(_) => Ok(None),
        }
    }

    /// Reads (and checks) the scripts not read yet: what a run does before
    /// it runs or records this migration.
    pub fn read_scripts(&self) -> Result<(), SourceError> {
        self.up()?;
        self.down()?;
        Ok(())
    }

    /// The down script, read and checked now if its reading was deferred
    /// (`Reading::DownsWhenUsed`); `None` for a WASM step or an SQL
    /// migration without one.
    pub fn down(&self) -> Result<Option<&Script>, SourceError> {
        match &self.body {
            Body::Sql {
                down: Some(file), ..
            } => file.script().map(Some),
            _ => Ok(None),
        }
    }
}

/// An SQL migration's up script: read with the folder, or — when the
/// folder index knew the file unchanged — on first use, and then held to
/// the checksum the index gave.
#[derive(Debug, Clone)]
pub struct UpFile {
    path: PathBuf,
    /// What the text must be when it is read late: the checksum and the
    /// no-transaction mark the index gave, and the index to drop if not.
    expected: Option<(Known, PathBuf)>,
    read: OnceLock<String>,
}

impl UpFile {
    /// A script whose text is at hand.
    pub fn from_text(path: PathBuf, text: String) -> UpFile {
        UpFile {
            path,
            expected: None,
            read: OnceLock::from(text),
        }
    }

    fn known(path: PathBuf, known: Known, index: PathBuf) -> UpFile {
        UpFile {
            path,
            expected: Some((known, index)),
            read: OnceLock::new(),
        }
    }

    /// The script's text, read the first time it is asked for if it was
    /// not read with the folder.
    pub fn text(&self) -> Result<&str, SourceError> {
        if let Some(text) = self.read.get() {
            return Ok(text);
        }
        let text = read_text(&self.path)?;
        // Checked as the folder's reading checks it, and held to what the
        // index said; an index that was wrong is dropped, so the next run
        // reads the whole folder.
        check_script(&self.path, &text)?;
        if let Some((known, index)) = &self.expected
            && (known.checksum != checksum::of_text(&text)
                || known.no_transaction != no_transaction(&text))
        {
            let _ = std::fs::remove_file(index);
            return Err(file_error(
                &self.path,
                "changed while gantry was running; run the command again",
            ));
        }
        Ok(self.read.get_or_init(|| text))
    }
}

/// A `NNN_name.down.sql` beside its up: read with the folder, or on first
/// use.
#[derive(Debug, Clone)]
pub struct DownFile {
    path: PathBuf,
    read: OnceLock<Script>,
}

impl DownFile {
    fn read(script: Script) -> DownFile {
        DownFile {
            path: script.path.clone(),
            read: OnceLock::from(script),
        }
    }

    fn deferred(path: PathBuf) -> DownFile {
        DownFile {
            path,
            read: OnceLock::new(),
        }
    }

    /// The script: read and checked the first time it is asked for, with
    /// the errors reading the folder whole would have given.
    pub fn script(&self) -> Result<&Script, SourceError> {
        if let Some(script) = self.read.get() {
            return Ok(script);
        }
        let script = Script::checked(self.path.clone(), read_text(&self.path)?)?;
        Ok(self.read.get_or_init(|| script))
    }
}

/// How much of a folder `discover_with` reads up front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Every file, every one checked.
    Whole,
    /// Every file but the down scripts, which are read (and checked) when
    /// a run first needs one: applying that migration, reverting it. A
    /// no-op `migrate` reads half the files.
    DownsWhenUsed,
}

#[derive(Debug, Clone)]
pub struct Script {
    pub path: PathBuf,
    pub text: String,
    pub no_transaction: bool,
}

impl Script {
    /// `text` from `path`, refused when it holds transaction control
    /// without being a no-transaction script.
    fn checked(path: PathBuf, text: String) -> Result<Script, SourceError> {
        check_script(&path, &text)?;
        Ok(Script {
            no_transaction: no_transaction(&text),
            path,
            text,
        })
    }
}

#[derive(Debug, Clone)]
pub struct WasmStep {
    pub manifest: Manifest,
    pub component: Cow<'static, [u8]>,
    /// Where the component came from: a file, or `built-in NAME`.
    pub component_origin: String,
}

impl Migration {
    /// `001_create_auth_tables` (the version padded as the file had it is
    /// not kept; three digits at least).
    pub fn id(&self) -> String {
        format!("{:03}_{}", self.version, self.name)
    }

    pub fn kind(&self) -> &'static str {
        match self.body {
            Body::Sql { .. } => "sql",
            Body::Wasm(_) => "wasm",
        }
    }

    pub fn is_reversible(&self) -> bool {
        match &self.body {
            Body::Sql { down, .. } => down.is_some(),
            Body::Wasm(_) => true,
        }
    }
}

/// How an operator names a migration: a version, or a file stem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationId {
    Version(i64),
    Stem(String),
}

impl MigrationId {
    pub fn parse(text: &str) -> Result<MigrationId, String> {
        let text = text.trim();
        if let Ok(version) = text.parse::<i64>() {
            return Ok(MigrationId::Version(version));
        }
        let stem = text
            .trim_end_matches(".sql")
            .trim_end_matches(".up")
            .trim_end_matches(".down");
        match parse_stem(stem) {
            Some((_, _)) => Ok(MigrationId::Stem(stem.to_string())),
            None => Err(format!(
                "{text:?} is neither a version number nor a migration name like 001_create_auth_tables"
            )),
        }
    }

    /// The version this id stands for.
    pub fn version(&self) -> i64 {
        match self {
            MigrationId::Version(v) => *v,
            MigrationId::Stem(stem) => parse_stem(stem).map(|(v, _)| v).unwrap_or(-1),
        }
    }

    /// The name part, when the id gave one.
    pub fn name(&self) -> Option<String> {
        match self {
            MigrationId::Version(_) => None,
            MigrationId::Stem(stem) => parse_stem(stem).map(|(_, n)| n.to_string()),
        }
    }
}

impl fmt::Display for MigrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MigrationId::Version(v) => write!(f, "{v}"),
            MigrationId::Stem(s) => f.write_str(s),
        }
    }
}

/// Where migrations come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A directory holding dialect folders, or the files themselves.
    Dir(PathBuf),
    /// The auth schema built into this binary.
    Builtin,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Dir(dir) => write!(f, "{}", dir.display()),
            Source::Builtin => f.write_str("the built-in auth schema"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{} and {}: both are version {version}", first.display(), second.display())]
    Duplicate {
        version: i64,
        first: PathBuf,
        second: PathBuf,
    },
    #[error(transparent)]
    Manifest(#[from] crate::runtime::ManifestError),
}

fn file_error(path: &Path, message: impl Into<String>) -> SourceError {
    SourceError::File {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The migrations, ordered by version.
#[derive(Debug, Clone, Default)]
pub struct MigrationSet {
    pub migrations: Vec<Migration>,
}

impl MigrationSet {
    /// Reads (and checks) every script not read yet.
    pub fn read_scripts(&self) -> Result<(), SourceError> {
        self.migrations.iter().try_for_each(Migration::read_scripts)
    }

    pub fn get(&self, version: i64) -> Option<&Migration> {
        self.migrations
            .binary_search_by_key(&version, |m| m.version)
            .ok()
            .map(|i| &self.migrations[i])
    }
}

/// A file's text and path, from disk or from the binary.
struct RawFile {
    path: PathBuf,
    name: String,
    contents: FileContents,
    /// An up script read from disk: its identity and when it was read,
    /// for the folder index.
    read: Option<Stamp>,
}

enum FileContents {
    Text(Cow<'static, str>),
    Bytes(Cow<'static, [u8]>),
    /// A down script, read when used.
    Deferred,
    /// An up script the folder index knows unchanged, read when used
    /// (and the index file that said so).
    Known(Known, PathBuf),
}

/// Reads the migrations for `dialect` from `source`.
pub fn discover(source: &Source, dialect: Dialect) -> Result<MigrationSet, SourceError> {
    discover_with(source, dialect, Reading::Whole)
}

/// Reads the migrations for `dialect` from `source`, the down scripts
/// now or when used (`reading`).
pub fn discover_with(
    source: &Source,
    dialect: Dialect,
    reading: Reading,
) -> Result<MigrationSet, SourceError> {
    let files = match source {
        Source::Builtin => embedded_files(dialect),
        Source::Dir(dir) => dir_files(dir, dialect, reading, None)?,
    };
    assemble(files)
}

/// As `discover_with(…, Reading::DownsWhenUsed)`, with the folder index
/// kept in `index_dir`: an up script the index knows unchanged is not
/// read until a run uses it. The index is brought up to date after.
pub fn discover_indexed(
    source: &Source,
    dialect: Dialect,
    index_dir: &Path,
) -> Result<MigrationSet, SourceError> {
    let Source::Dir(dir) = source else {
        return discover_with(source, dialect, Reading::DownsWhenUsed);
    };
    let folder = folder_of(dir, dialect)?;
    let Some(index) = FolderIndex::open(index_dir, &folder) else {
        return discover_with(source, dialect, Reading::DownsWhenUsed);
    };
    let files = dir_files(dir, dialect, Reading::DownsWhenUsed, Some(&index))?;
    let read: Vec<(String, Stamp)> = files
        .iter()
        .filter_map(|f| f.read.map(|stamp| (f.name.clone(), stamp)))
        .collect();
    let names: std::collections::HashSet<String> = files.iter().map(|f| f.name.clone()).collect();
    let set = assemble(files)?;
    let learned = read
        .into_iter()
        .filter_map(|(name, stamp)| {
            let (version, _) = parse_stem(up_stem(&name)?)?;
            let m = set.get(version)?;
            Some(Learned {
                name,
                stamp,
                known: Known {
                    checksum: m.checksum.clone(),
                    no_transaction: m.no_transaction,
                },
            })
        })
        .collect();
    index.update(learned, &names);
    Ok(set)
}

/// The stem of an up script's name (`NNN_name.up.sql`, sqlx's
/// `NNN_name.sql`); `None` for any other file.
fn up_stem(name: &str) -> Option<&str> {
    if name.ends_with(".down.sql") {
        return None;
    }
    name.strip_suffix(".up.sql")
        .or_else(|| name.strip_suffix(".sql"))
}

fn embedded_files(dialect: Dialect) -> Vec<RawFile> {
    let list = match dialect {
        Dialect::Postgres => embedded::POSTGRES,
        Dialect::Sqlite => embedded::SQLITE,
    };
    list.iter()
        .map(|(name, text)| RawFile {
            path: PathBuf::from(format!("<built-in>/{}/{name}", dialect.as_str())),
            name: name.to_string(),
            contents: FileContents::Text(Cow::Borrowed(text)),
            read: None,
        })
        .collect()
}

/// The folder holding `dialect`'s files: its own subfolder, or `dir`.
fn folder_of(dir: &Path, dialect: Dialect) -> Result<PathBuf, SourceError> {
    if !dir.is_dir() {
        return Err(file_error(dir, "migrations directory does not exist"));
    }
    let dialect_dir = dir.join(dialect.as_str());
    let dir = if dialect_dir.is_dir() {
        dialect_dir
    } else {
        let other = match dialect {
            Dialect::Postgres => Dialect::Sqlite,
            Dialect::Sqlite => Dialect::Postgres,
        };
        if dir.join(other.as_str()).is_dir() {
            return Err(file_error(
                dir,
                format!("has a {other}/ folder but no {dialect}/ folder for this database"),
            ));
        }
        dir.to_path_buf()
    };
    Ok(dir)
}

fn dir_files(
    dir: &Path,
    dialect: Dialect,
    reading: Reading,
    index: Option<&FolderIndex>,
) -> Result<Vec<RawFile>, SourceError> {
    let dir = folder_of(dir, dialect)?;
    let read =
        std::fs::read_dir(&dir).map_err(|e| file_error(&dir, format!("cannot read: {e}")))?;
    let mut paths = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| file_error(&dir, format!("cannot read: {e}")))?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(String::from) else {
            continue;
        };
        if !(name.ends_with(".sql") || name.ends_with(".toml") || name.ends_with(".wasm")) {
            continue;
        }
        // The entry's type comes with the listing; only a link is followed.
        let file = match entry.file_type() {
            Ok(kind) if kind.is_symlink() => path.is_file(),
            Ok(kind) => kind.is_file(),
            Err(_) => path.is_file(),
        };
        if file {
            paths.push((path, name));
        }
    }
    let mut files = read_all(paths, reading, index)?;
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Reads every file, on a few threads: a folder of a thousand migrations
/// is thousands of small reads, and a no-op `migrate` waits for them all.
fn read_all(
    paths: Vec<(PathBuf, String)>,
    reading: Reading,
    index: Option<&FolderIndex>,
) -> Result<Vec<RawFile>, SourceError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
        .min(paths.len().div_ceil(64).max(1));
    let chunk = paths.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = paths
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|file| read_one(file, reading, index))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a migration reader panicked"))
            .collect()
    })
}

fn read_one(
    (path, name): &(PathBuf, String),
    reading: Reading,
    index: Option<&FolderIndex>,
) -> Result<RawFile, SourceError> {
    let mut read = None;
    let contents = if reading == Reading::DownsWhenUsed && name.ends_with(".down.sql") {
        FileContents::Deferred
    } else if name.ends_with(".wasm") {
        FileContents::Bytes(Cow::Owned(
            std::fs::read(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?,
        ))
    } else if let (Some(index), Some(_)) = (index, up_stem(name)) {
        let known = std::fs::metadata(path)
            .ok()
            .and_then(|meta| index.lookup(name, &meta));
        match known {
            Some(known) => FileContents::Known(known.clone(), index.file().to_path_buf()),
            None => {
                let (text, stamp) = identity::read(path, |file| std::io::read_to_string(file))
                    .map_err(|e| unreadable(path, e))?;
                read = Some(stamp);
                FileContents::Text(Cow::Owned(text))
            }
        }
    } else {
        FileContents::Text(Cow::Owned(read_text(path)?))
    };
    Ok(RawFile {
        path: path.clone(),
        name: name.clone(),
        contents,
        read,
    })
}

/// A script's text, or the error naming its file.
fn read_text(path: &Path) -> Result<String, SourceError> {
    std::fs::read_to_string(path).map_err(|e| unreadable(path, e))
}

fn unreadable(path: &Path, e: std::io::Error) -> SourceError {
    file_error(path, format!("cannot read as UTF-8 text: {e}"))
}

/// `001_create_auth_tables` → (1, "create_auth_tables").
pub fn parse_stem(stem: &str) -> Option<(i64, &str)> {
    let digits = stem.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let version: i64 = stem[..digits].parse().ok()?;
    let name = stem[digits..].strip_prefix('_')?;
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == ' ');
    ok.then_some((version, name))
}

#[derive(Default)]
struct Parts {
    up: Option<RawFile>,
    down: Option<RawFile>,
    manifest: Option<RawFile>,
    wasm: Option<RawFile>,
    name: String,
}

fn assemble(files: Vec<RawFile>) -> Result<MigrationSet, SourceError> {
    let mut by_version: BTreeMap<i64, Parts> = BTreeMap::new();
    for file in files {
        let (stem, role) = if let Some(stem) = file.name.strip_suffix(".up.sql") {
            (stem, "up")
        } else if let Some(stem) = file.name.strip_suffix(".down.sql") {
            (stem, "down")
        } else if let Some(stem) = file.name.strip_suffix(".sql") {
            (stem, "up")
        } else if let Some(stem) = file.name.strip_suffix(".toml") {
            (stem, "manifest")
        } else if let Some(stem) = file.name.strip_suffix(".wasm") {
            (stem, "wasm")
        } else {
            continue;
        };
        let Some((version, name)) = parse_stem(stem) else {
            return Err(file_error(
                &file.path,
                "malformed migration file name; expected NNN_name.up.sql, NNN_name.down.sql, NNN_name.sql, or NNN_name.toml/.wasm",
            ));
        };
        let name = name.to_string();
        let parts = by_version.entry(version).or_default();
        if !parts.name.is_empty() && parts.name != name {
            let first = [&parts.up, &parts.down, &parts.manifest, &parts.wasm]
                .into_iter()
                .flatten()
                .next()
                .map(|f| f.path.clone())
                .unwrap_or_default();
            return Err(SourceError::Duplicate {
                version,
                first,
                second: file.path,
            });
        }
        parts.name = name;
        let slot = match role {
            "up" => &mut parts.up,
            "down" => &mut parts.down,
            "manifest" => &mut parts.manifest,
            _ => &mut parts.wasm,
        };
        if let Some(existing) = slot {
            return Err(SourceError::Duplicate {
                version,
                first: existing.path.clone(),
                second: file.path,
            });
        }
        *slot = Some(file);
    }

    let mut migrations = Vec::new();
    for (version, parts) in by_version {
        migrations.push(build(version, parts)?);
    }
    Ok(MigrationSet { migrations })
}

fn text_of(file: &RawFile) -> &str {
    match &file.contents {
        FileContents::Text(text) => text,
        FileContents::Bytes(_) | FileContents::Deferred | FileContents::Known(..) => "",
    }
}

fn build(version: i64, parts: Parts) -> Result<Migration, SourceError> {
    let Parts {
        up,
        down,
        manifest,
        wasm,
        name,
    } = parts;
    match (up, manifest) {
        (Some(up), None) => {
            if let Some(wasm) = &wasm {
                return Err(file_error(
                    &wasm.path,
                    "a component needs its NNN_name.toml manifest beside it",
                ));
            }
            let (script, checksum, no_transaction) = match up.contents {
                // Checked when the index recorded it; unchanged since.
                FileContents::Known(known, index) => (
                    UpFile::known(up.path.clone(), known.clone(), index),
                    known.checksum,
                    known.no_transaction,
                ),
                _ => {
                    let text = text_of(&up).to_string();
                    check_script(&up.path, &text)?;
                    let checksum = checksum::of_text(&text);
                    let no_transaction = no_transaction(&text);
                    (
                        UpFile::from_text(up.path.clone(), text),
                        checksum,
                        no_transaction,
                    )
                }
            };
            let down = match down {
                Some(RawFile {
                    path,
                    contents: FileContents::Deferred,
                    ..
                }) => Some(DownFile::deferred(path)),
                Some(file) => {
                    let text = text_of(&file).to_string();
                    Some(DownFile::read(Script::checked(file.path, text)?))
                }
                None => None,
            };
            Ok(Migration {
                version,
                name,
                checksum,
                no_transaction,
                path: up.path,
                body: Body::Sql { up: script, down },
            })
        }
        (Some(up), Some(manifest)) => Err(SourceError::Duplicate {
            version,
            first: up.path,
            second: manifest.path,
        }),
        (None, Some(manifest_file)) => {
            if let Some(down) = down {
                return Err(file_error(
                    &down.path,
                    "a WASM migration's down is its component's `down`; remove this file",
                ));
            }
            let manifest = Manifest::parse(text_of(&manifest_file), &manifest_file.path)?;
            if manifest.kind != PluginKind::Migration {
                return Err(file_error(
                    &manifest_file.path,
                    format!(
                        "kind = \"{}\"; a migration step must be kind = \"migration\"",
                        manifest.kind
                    ),
                ));
            }
            if crate::capabilities::sql::level(&manifest.capabilities).is_none() {
                return Err(file_error(
                    &manifest_file.path,
                    "a migration step needs `sql = \"read\"`, `\"write\"` or `\"ddl\"` under [capabilities]",
                ));
            }
            let (component, component_origin) = match wasm {
                Some(RawFile {
                    contents: FileContents::Bytes(bytes),
                    path,
                    ..
                }) => {
                    // The operator's pins and grants go by the manifest's
                    // name: it is the file's, so a rename cannot dodge them.
                    let stem = manifest_file.name.trim_end_matches(".toml").to_string();
                    if manifest.name != stem {
                        return Err(file_error(
                            &manifest_file.path,
                            format!(
                                "`name` = {:?}, but a migration step's manifest is named for its file: write name = {stem:?}",
                                manifest.name
                            ),
                        ));
                    }
                    (bytes, path.display().to_string())
                }
                _ => match PluginSource::builtin(&manifest.name) {
                    Some(Ok(source)) if source.manifest.kind == PluginKind::Migration => {
                        (source.bytes, format!("built-in {}", manifest.name))
                    }
                    _ => {
                        return Err(file_error(
                            &manifest_file.path,
                            format!(
                                "no component: put NNN_name.wasm beside it, or name a built-in migration plugin (`{}` is none)",
                                manifest.name
                            ),
                        ));
                    }
                },
            };
            Ok(Migration {
                version,
                name,
                checksum: checksum::of_bytes(&component),
                no_transaction: false,
                path: manifest_file.path,
                body: Body::Wasm(Box::new(WasmStep {
                    manifest,
                    component,
                    component_origin,
                })),
            })
        }
        (None, None) => {
            let orphan = down.or(wasm).map(|f| f.path).unwrap_or_default();
            Err(file_error(
                &orphan,
                "has no up migration (NNN_name.up.sql) beside it",
            ))
        }
    }
}

/// Transactional scripts must not open or close transactions themselves.
fn check_script(path: &Path, text: &str) -> Result<(), SourceError> {
    if no_transaction(text) {
        return Ok(());
    }
    for statement in split::split(text) {
        if split::is_transaction_control(statement.text) {
            return Err(file_error(
                path,
                format!(
                    "line {}: `{}` — gantry runs each migration in its own transaction; remove it, or mark the file `-- gantry:no-transaction`",
                    statement.line,
                    split::first_word(statement.text)
                ),
            ));
        }
    }
    Ok(())
}

/// True when the file's header comments carry `-- gantry:no-transaction`,
/// or it starts with sqlx's `-- no-transaction`.
pub fn no_transaction(text: &str) -> bool {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.starts_with("-- no-transaction") {
        return true;
    }
    text.lines()
        .map(str::trim)
        .take_while(|l| l.is_empty() || l.starts_with("--"))
        .any(|l| l.trim_start_matches('-').trim() == "gantry:no-transaction")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(tmp.path().join(name), text).unwrap();
        }
        tmp
    }

    fn read(tmp: &tempfile::TempDir) -> Result<MigrationSet, SourceError> {
        discover(&Source::Dir(tmp.path().to_path_buf()), Dialect::Postgres)
    }

    #[test]
    fn the_builtin_schema_is_complete_for_both_dialects() {
        for dialect in [Dialect::Postgres, Dialect::Sqlite] {
            let set = discover(&Source::Builtin, dialect).unwrap();
            let ids: Vec<String> = set.migrations.iter().map(Migration::id).collect();
            assert_eq!(ids[0], "001_create_auth_tables", "{dialect}");
            assert!(
                set.migrations.iter().all(Migration::is_reversible),
                "{dialect}: every migration has a down"
            );
            assert!(
                set.migrations.iter().any(|m| m.kind() == "wasm"),
                "{dialect}: the backfill is there"
            );
        }
    }

    #[test]
    fn up_down_and_up_only_files_pair_up() {
        let tmp = dir(&[
            ("001_a.up.sql", "CREATE TABLE a (x int);"),
            ("001_a.down.sql", "DROP TABLE a;"),
            (
                "20250410000000_b.sql",
                "-- no-transaction\nCREATE INDEX CONCURRENTLY i ON a (x);",
            ),
            ("README.md", "ignored"),
        ]);
        let set = read(&tmp).unwrap();
        assert_eq!(set.migrations.len(), 2);
        assert!(set.migrations[0].is_reversible());
        assert_eq!(set.migrations[1].version, 20250410000000);
        assert!(set.migrations[1].no_transaction);
        assert!(!set.migrations[1].is_reversible());
    }

    #[test]
    fn duplicate_versions_name_both_files() {
        let tmp = dir(&[("001_a.up.sql", "SELECT 1;"), ("001_b.up.sql", "SELECT 2;")]);
        let err = read(&tmp).unwrap_err().to_string();
        assert!(
            err.contains("001_a.up.sql") && err.contains("001_b.up.sql"),
            "{err}"
        );
    }

    #[test]
    fn malformed_names_and_orphan_downs_are_named() {
        let tmp = dir(&[("create_table.sql", "SELECT 1;")]);
        assert!(
            read(&tmp)
                .unwrap_err()
                .to_string()
                .contains("create_table.sql")
        );
        let tmp = dir(&[("002_x.down.sql", "SELECT 1;")]);
        let err = read(&tmp).unwrap_err().to_string();
        assert!(
            err.contains("002_x.down.sql") && err.contains("no up"),
            "{err}"
        );
    }

    #[test]
    fn transaction_control_in_a_transactional_file_is_refused() {
        let tmp = dir(&[("001_a.up.sql", "BEGIN;\nCREATE TABLE a (x int);\nCOMMIT;\n")]);
        let err = read(&tmp).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("BEGIN"), "{err}");
    }

    #[test]
    fn ids_are_versions_or_stems() {
        assert_eq!(
            MigrationId::parse("001_create_auth_tables")
                .unwrap()
                .version(),
            1
        );
        assert_eq!(MigrationId::parse("0").unwrap(), MigrationId::Version(0));
        assert!(MigrationId::parse("create").is_err());
    }

    #[test]
    fn the_directive_must_be_in_the_header() {
        assert!(no_transaction(
            "-- gantry:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (x);"
        ));
        assert!(no_transaction(
            "-- why\n--   gantry:no-transaction\n\nSELECT 1;"
        ));
        assert!(!no_transaction("SELECT 1;\n-- gantry:no-transaction\n"));
    }
}
