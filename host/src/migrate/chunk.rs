//! Several migrations in one round trip (PostgreSQL).
//!
//! A run of transactional SQL migrations is sent as one simple query of
//! steps. Each step is still its own transaction — `BEGIN`, the script,
//! its history, log and sqlx rows, `COMMIT` (`Migrator::pg_step`) — so
//! what is committed at any moment is what one step at a time would have
//! committed; what changes is that the server goes on to the next step
//! without waiting for the client to ask. A failing statement ends the
//! query there: the steps before it are committed, its own transaction is
//! rolled back, nothing after it runs.
//!
//! Chunks grow while they are quick (1, 2, 4, … up to 64 steps and 256 KiB
//! of script) and drop back to one step after a slow one, so migrations
//! that take time are sent, and reported as started, one at a time as
//! before. A chunked step's `Started` and `Finished` events come when the
//! chunk's answer does; `Finished` carries the step's own time as the
//! server measured it.
//!
//! A syntax error anywhere in the query stops it before any step runs:
//! then (and for any failure that cannot be pinned on the first step)
//! the steps go again one at a time, which finds the step at fault with
//! nothing run twice but a first step whose work was rolled back.
//!
//! What chunks change besides: every step of a chunk sees the query's
//! arrival as `now()` and `statement_timestamp()` (gantry's own columns
//! use `clock_timestamp()`), and a client killed mid-chunk leaves the
//! server to finish the chunk's remaining steps — each committed whole
//! with its history row, as `status` then shows — while it holds the
//! lock.

use super::error::MigrateError;
use super::events::{Direction, Event};
use super::history;
use super::runner::{Flush, Migrator};
use super::source::Migration;
use crate::db::Db;
use std::time::Duration;

const MAX_STEPS: usize = 64;
const MAX_SCRIPT_BYTES: usize = 256 << 10;
/// A chunk quicker than this lets the next one be twice as long.
const QUICK: Duration = Duration::from_millis(20);

/// How many steps the next chunk may hold.
#[derive(Debug)]
pub(super) struct Pace {
    size: usize,
}

impl Pace {
    pub fn new() -> Pace {
        Pace { size: 1 }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// After a chunk that must go again step by step.
    pub fn one_at_a_time(&mut self) {
        self.size = 1;
    }

    /// After a chunk that took `took`.
    pub fn after(&mut self, took: Duration) {
        self.size = if took < QUICK {
            (self.size * 2).min(MAX_STEPS)
        } else {
            1
        };
    }
}

/// The steps at the head of `pending` that go together: at most `limit`,
/// transactional SQL only, within the script budget. Always at least one
/// (which may be any kind of step, applied on its own).
pub(super) fn take<'a, 'm>(pending: &'a [&'m Migration], limit: usize) -> &'a [&'m Migration] {
    let mut bytes = 0;
    let steps = pending
        .iter()
        .take(limit)
        .take_while(|m| {
            // SQL only (a WASM step has no up script); a script that
            // cannot be read goes alone (and fails there).
            let Ok(Some(up)) = m.up() else {
                return false;
            };
            bytes += up.len();
            !m.no_transaction && bytes <= MAX_SCRIPT_BYTES
        })
        .count();
    &pending[..steps.clamp(1, pending.len().max(1))]
}

/// What the chunk's query said: each step's (version, milliseconds) as
/// its record statement returned them, and the error that ended it.
async fn run(db: &mut Db, text: &str) -> (Vec<(i64, f64)>, Option<sqlx::Error>) {
    use futures_util::StreamExt;
    use sqlx::Row;
    let Db::Postgres(conn) = db else {
        unreachable!("chunks are PostgreSQL's");
    };
    let mut timed = Vec::new();
    let mut rows = sqlx::raw_sql(text).fetch(conn);
    while let Some(row) = rows.next().await {
        match row {
            Ok(row) => {
                // A script's own SELECT returns rows too: only the tagged
                // record rows count.
                if let Ok(version) = row.try_get::<i64, _>("gantry_applied") {
                    let ms = row.try_get::<f64, _>("gantry_ms").unwrap_or(0.0);
                    timed.push((version, ms));
                }
            }
            Err(err) => return (timed, Some(err)),
        }
    }
    (timed, None)
}

/// What became of a chunk that did not fail.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Chunked {
    /// Every step committed.
    Applied,
    /// None of it committed and the failure cannot be pinned on the first
    /// step (a syntax error anywhere stops the whole query before anything
    /// runs): the steps go again one at a time.
    Retry,
}

/// The step whose text holds the error's position, if the error has one.
fn step_at(err: &sqlx::Error, spans: &[std::ops::Range<usize>]) -> Option<usize> {
    let at = super::apply::pg_position(err)?;
    spans.iter().position(|span| span.contains(&at))
}

impl Migrator {
    /// Applies `chunk` (from `take`, two steps or more) in one query;
    /// `flush_last`: its last step is the run's last (`Flush::Now`). Every
    /// step committed is pushed to `done`, whatever the outcome.
    pub(super) async fn apply_chunk(
        &self,
        db: &mut Db,
        chunk: &[&Migration],
        flush_last: bool,
        done: &mut Vec<i64>,
    ) -> Result<Chunked, MigrateError> {
        let last = chunk.len() - 1;
        let mut text = String::new();
        let mut chars = 0;
        let mut steps = Vec::with_capacity(chunk.len());
        let mut spans = Vec::with_capacity(chunk.len());
        for (index, m) in chunk.iter().enumerate() {
            let Some(up) = m.up()? else {
                unreachable!("take() groups SQL steps only");
            };
            let down = m.down()?;
            let flush = if flush_last && index == last {
                Flush::Now
            } else {
                Flush::Deferred
            };
            let step = self.pg_step(m, up, down, flush);
            let length = step.text.chars().count();
            steps.push((up, down, chars + step.before_script));
            spans.push(chars..chars + length);
            chars += length;
            text.push_str(&step.text);
        }
        let (timed, failure) = run(db, &text).await;
        let answered: Vec<i64> = timed.iter().map(|(version, _)| *version).collect();
        let versions: Vec<i64> = chunk.iter().map(|m| m.version).collect();
        if failure.is_none() && answered == versions {
            self.report_steps(chunk, &timed, done);
            return Ok(Chunked::Applied);
        }
        if failure.is_some() {
            let _ = db.batch("ROLLBACK").await;
        }
        // The history says which steps committed: a step's record row
        // comes before its COMMIT, which can still fail (a deferred
        // constraint).
        let applied = match history::applied_among(db, &versions).await {
            Ok(applied) => applied,
            Err(read) => {
                let context = format!(
                    "apply {} to {} (some may be applied: the history could not be read after the failure: {read})",
                    chunk[0].id(),
                    chunk[last].id()
                );
                return Err(match failure {
                    Some(err) => MigrateError::sql(context)(err),
                    None => MigrateError::sql(context)(read),
                });
            }
        };
        let committed = chunk
            .iter()
            .take_while(|m| applied.contains(&m.version))
            .count();
        self.report_steps(&chunk[..committed], &timed, done);
        let Some(err) = failure else {
            if committed == chunk.len() {
                return Ok(Chunked::Applied);
            }
            return Err(MigrateError::sql(format!(
                "apply {}: the server answered without recording it",
                chunk[committed].id()
            ))(sqlx::Error::RowNotFound));
        };
        let Some(&failed) = chunk.get(committed) else {
            return Err(MigrateError::sql("apply migrations")(err));
        };
        if committed == 0 && step_at(&err, &spans) != Some(0) {
            return Ok(Chunked::Retry);
        }
        self.emit(started(failed));
        let (up, down, before) = steps[committed];
        Err(self.step_failed(db, failed, up, down, &err, before).await)
    }

    /// `Started` and `Finished` for each committed step, in order.
    fn report_steps(&self, committed: &[&Migration], timed: &[(i64, f64)], done: &mut Vec<i64>) {
        for m in committed {
            self.emit(started(m));
            let duration_ms = timed
                .iter()
                .find(|(version, _)| *version == m.version)
                .map_or(0.0, |(_, ms)| *ms);
            self.emit(Event::Finished {
                version: m.version,
                id: m.id(),
                direction: Direction::Up,
                duration_ms,
            });
            done.push(m.version);
        }
    }
}

fn started(m: &Migration) -> Event {
    Event::Started {
        version: m.version,
        id: m.id(),
        direction: Direction::Up,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::source::Body;

    fn sql(version: i64, up: &str, no_transaction: bool) -> Migration {
        Migration {
            version,
            name: format!("m{version}"),
            body: Body::Sql {
                up: crate::migrate::source::UpFile::from_text(
                    std::path::PathBuf::new(),
                    up.to_string(),
                ),
                down: None,
            },
            checksum: String::new(),
            no_transaction,
            path: std::path::PathBuf::from(format!("{version:03}_m{version}.sql")),
        }
    }

    fn versions(chunk: &[&Migration]) -> Vec<i64> {
        chunk.iter().map(|m| m.version).collect()
    }

    #[test]
    fn a_chunk_is_transactional_sql_within_its_limits_and_never_empty() {
        let big = "x".repeat(MAX_SCRIPT_BYTES / 2 + 1);
        let steps = [
            sql(1, "a", false),
            sql(2, "b", false),
            sql(3, "c", true),
            sql(4, &big, false),
            sql(5, &big, false),
            sql(6, "f", false),
        ];
        let all: Vec<&Migration> = steps.iter().collect();
        assert_eq!(versions(take(&all, 64)), [1, 2]);
        assert_eq!(versions(take(&all, 1)), [1]);
        // A no-transaction step goes alone, as the first of its chunk.
        assert_eq!(versions(take(&all[2..], 64)), [3]);
        // The script budget: the second big one waits for the next chunk.
        assert_eq!(versions(take(&all[3..], 64)), [4]);
        assert_eq!(versions(take(&all[4..], 64)), [5, 6]);
    }

    #[test]
    fn pace_doubles_while_quick_and_drops_to_one_after_a_slow_chunk() {
        let mut pace = Pace::new();
        let sizes: Vec<usize> = (0..8)
            .map(|_| {
                let size = pace.size();
                pace.after(Duration::from_millis(1));
                size
            })
            .collect();
        assert_eq!(sizes, [1, 2, 4, 8, 16, 32, 64, 64]);
        pace.after(Duration::from_millis(500));
        assert_eq!(pace.size(), 1);
    }
}
