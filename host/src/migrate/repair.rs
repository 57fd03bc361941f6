//! `repair`: the way out of a failed, interrupted or drifted state. The
//! history row's change and its log entry (who, when, why) commit
//! together, under the migration lock.

use super::checksum;
use super::error::MigrateError;
use super::history::{self, RowState};
use super::runner::Migrator;
use super::source::{Body, MigrationId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RepairAction {
    /// It did take effect: record it as applied.
    MarkApplied,
    /// It did not take effect (or was undone by hand): forget it.
    MarkReverted,
    /// The file changed on purpose: record its new checksum.
    AcceptChecksum,
}

impl RepairAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RepairAction::MarkApplied => "mark-applied",
            RepairAction::MarkReverted => "mark-reverted",
            RepairAction::AcceptChecksum => "accept-checksum",
        }
    }
}

impl Migrator {
    /// The way out of a failed, interrupted or drifted state; recorded in
    /// the log with who, when and `note`.
    pub async fn repair(
        &self,
        action: RepairAction,
        id: &MigrationId,
        note: Option<&str>,
    ) -> Result<(), MigrateError> {
        let repair_error = |message: String| MigrateError::Repair {
            action: action.as_str(),
            id: id.to_string(),
            message,
        };
        // The scripts the repair records are read (and checked) before
        // anything is written.
        if action == RepairAction::MarkApplied
            && let Some(m) = self.set.get(id.version())
        {
            m.read_scripts()?;
        }
        self.locked(async |slot| {
            let db = slot.as_mut().expect("connection");
            // sqlx's history follows gantry's (created only to record an
            // applied migration).
            self.prepare_sqlx(db, action == RepairAction::MarkApplied)
                .await
                .map_err(MigrateError::sql("look for sqlx's history table"))?;
            // The row change, sqlx's row and the log entry commit together.
            super::apply::begin(db).await?;
            let done = async {
                let version = id.version();
                let file = self
                    .set
                    .get(version)
                    .filter(|m| id.name().is_none_or(|n| n == m.name));
                let row = history::load_one(db, version)
                    .await
                    .map_err(MigrateError::sql("read the migration history"))?;
                let detail = match action {
                    RepairAction::MarkApplied => {
                        let Some(m) = file else {
                            return Err(repair_error(
                                "no such migration file to record as applied".into(),
                            ));
                        };
                        if row.as_ref().is_some_and(|r| {
                            r.state == RowState::Applied && r.checksum == m.checksum
                        }) {
                            return Err(repair_error("it is already recorded as applied".into()));
                        }
                        let (up, down) = match &m.body {
                            Body::Sql { up, .. } => (Some(up.text()?), m.down()?),
                            Body::Wasm(_) => (None, None),
                        };
                        let mut record = self.applied_record(m, up.unwrap_or(""), down);
                        record.up_script = up;
                        if let Body::Wasm(step) = &m.body {
                            record.artifact = Some(&step.component);
                            record.manifest = Some(&step.manifest.source_text);
                        }
                        history::upsert(db, &record, self.history_key())
                            .await
                            .map_err(MigrateError::sql("record it as applied"))?;
                        if self.sqlx_on() {
                            super::sqlx_history::record(db, &self.sqlx, m, up, 0)
                                .await
                                .map_err(MigrateError::sql("record it in sqlx's history"))?;
                        }
                        format!(
                            "was {}",
                            row.map(|r| r.state.as_str().to_string())
                                .unwrap_or_else(|| "not recorded".into())
                        )
                    }
                    RepairAction::MarkReverted => {
                        let Some(row) = row else {
                            return Err(repair_error(
                                "it is not in the history; nothing to forget".into(),
                            ));
                        };
                        history::delete(db, version)
                            .await
                            .map_err(MigrateError::sql("forget it"))?;
                        if self.sqlx_on() {
                            super::sqlx_history::forget(db, &self.sqlx, version)
                                .await
                                .map_err(MigrateError::sql("forget it in sqlx's history"))?;
                        }
                        format!("was {}", row.state.as_str())
                    }
                    RepairAction::AcceptChecksum => {
                        let (Some(m), Some(row)) = (file, row) else {
                            return Err(repair_error(
                                "needs both the file and its history row".into(),
                            ));
                        };
                        if row.checksum == m.checksum {
                            return Err(repair_error("the checksum already matches".into()));
                        }
                        let up = match &m.body {
                            Body::Sql { up, .. } => Some(up.text()?),
                            Body::Wasm(_) => None,
                        };
                        history::set_checksum(db, version, &m.checksum, up)
                            .await
                            .map_err(MigrateError::sql("record the new checksum"))?;
                        if self.sqlx_on()
                            && let Some(up) = up
                        {
                            super::sqlx_history::set_checksum(db, &self.sqlx, version, up)
                                .await
                                .map_err(MigrateError::sql("record the new checksum for sqlx"))?;
                        }
                        let ws = up.is_some_and(|u| checksum::normalise(u).is_empty());
                        format!(
                            "{} -> {}{}",
                            row.checksum,
                            m.checksum,
                            if ws { " (empty file)" } else { "" }
                        )
                    }
                };
                let detail = match note {
                    Some(note) => format!("{detail}; {note}"),
                    None => detail,
                };
                history::log(db, version, action.as_str(), &self.actor, Some(&detail))
                    .await
                    .map_err(MigrateError::sql("log the repair"))?;
                Ok(())
            }
            .await;
            super::apply::commit_or_rollback(db, done, "commit the repair").await
        })
        .await
    }
}
