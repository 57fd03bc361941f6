//! The config deployer's records: backups and changes, read and written
//! inside the caller's transaction so a backup, its change and the
//! superseding of older changes commit together.

use super::error::{StoreError, query_failed as fail};
use super::pool::Tx;
use super::records::{self, BackupRecord, ChangeRecord};
use super::states::ChangeState;
use crate::{exec_tx, on_tx};

const BACKUP_COLUMNS: &str =
    "id, created_at, environment, config_dir, path, files, total_size, change_id, purpose, host";
const CHANGE_COLUMNS: &str = "id, kind, state, environment, config_dir, backup_id, restored_from, \
                              files, actor, started_at, finished_at, error, host, owner";

impl Tx {
    pub async fn insert_backup(&mut self, b: &BackupRecord) -> Result<(), StoreError> {
        let sql = self
            .sql(&format!(
                "INSERT INTO gantry_config_backups ({BACKUP_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ))
            .into_owned();
        let files = serde_json::to_string(&b.files).expect("serialisable");
        exec_tx!(self, c => sqlx::query(&sql)
            .bind(&b.id)
            .bind(b.created_at)
            .bind(&b.environment)
            .bind(&b.config_dir)
            .bind(&b.path)
            .bind(&files)
            .bind(b.total_size)
            .bind(b.change_id)
            .bind(&b.purpose)
            .bind(&b.host)
            .execute(c)
            .await)
        .map(|_| ())
        .map_err(fail("record a backup"))
    }

    pub async fn set_backup_change(&mut self, id: &str, change_id: i64) -> Result<(), StoreError> {
        let sql = self.sql("UPDATE gantry_config_backups SET change_id = $1 WHERE id = $2");
        exec_tx!(self, c => sqlx::query(&sql).bind(change_id).bind(id).execute(c).await)
            .map(|_| ())
            .map_err(fail("link a backup to its change"))
    }

    pub async fn backups(&mut self) -> Result<Vec<BackupRecord>, StoreError> {
        let sql =
            format!("SELECT {BACKUP_COLUMNS} FROM gantry_config_backups ORDER BY created_at, id");
        let rows: Vec<records::RawBackup> =
            on_tx!(self, c => sqlx::query_as(&sql).fetch_all(c).await)
                .map_err(fail("read backups"))?;
        Ok(rows.into_iter().map(BackupRecord::from).collect())
    }

    pub async fn delete_backup(&mut self, id: &str) -> Result<(), StoreError> {
        let sql = self.sql("DELETE FROM gantry_config_backups WHERE id = $1");
        exec_tx!(self, c => sqlx::query(&sql).bind(id).execute(c).await)
            .map(|_| ())
            .map_err(fail("forget a backup"))
    }

    /// Records a change as started; returns its id.
    pub async fn start_change(&mut self, change: &ChangeRecord) -> Result<i64, StoreError> {
        let sql = self.sql(
            "INSERT INTO gantry_config_changes (kind, state, environment, config_dir, backup_id, \
             restored_from, files, actor, started_at, host, owner) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        ).into_owned();
        let files = serde_json::to_string(&change.files).expect("serialisable");
        on_tx!(self, c => sqlx::query_scalar(&sql)
            .bind(change.kind.as_str())
            .bind(change.state.as_str())
            .bind(&change.environment)
            .bind(&change.config_dir)
            .bind(&change.backup_id)
            .bind(&change.restored_from)
            .bind(&files)
            .bind(&change.actor)
            .bind(change.started_at)
            .bind(&change.host)
            .bind(&change.owner)
            .fetch_one(c)
            .await)
        .map_err(fail("record a config change"))
    }

    pub async fn finish_change(
        &mut self,
        id: i64,
        state: ChangeState,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let sql = self.sql(
            "UPDATE gantry_config_changes SET state = $1, error = $2, finished_at = $3 WHERE id = $4",
        );
        exec_tx!(self, c => sqlx::query(&sql)
            .bind(state.as_str())
            .bind(error)
            .bind(chrono::Utc::now())
            .bind(id)
            .execute(c)
            .await)
        .map(|_| ())
        .map_err(fail("record the end of a config change"))
    }

    /// Marks unfinished changes on `host`'s `config_dir` that do not belong
    /// to `owner` as interrupted, superseded by change `by`. Call only while
    /// holding that directory's lease: no other live process can own them.
    pub async fn mark_interrupted(
        &mut self,
        host: &str,
        config_dir: &str,
        owner: &str,
        by: Option<i64>,
    ) -> Result<u64, StoreError> {
        let note = match by {
            Some(id) => format!("interrupted; superseded by change #{id}"),
            None => {
                "interrupted; superseded by a later deploy that found nothing to change".to_string()
            }
        };
        // Rows from before hosts were recorded (host '') count as local.
        let sql = self.sql(
            "UPDATE gantry_config_changes SET state = 'interrupted', error = $1, finished_at = $2 \
             WHERE config_dir = $3 AND state = 'in_progress' AND (host = $4 OR host = '') \
             AND (owner IS NULL OR owner <> $5)",
        );
        exec_tx!(self, c => sqlx::query(&sql)
            .bind(&note)
            .bind(chrono::Utc::now())
            .bind(config_dir)
            .bind(host)
            .bind(owner)
            .execute(c)
            .await)
        .map_err(fail("mark interrupted changes"))
    }

    pub async fn changes(&mut self) -> Result<Vec<ChangeRecord>, StoreError> {
        let sql = format!("SELECT {CHANGE_COLUMNS} FROM gantry_config_changes ORDER BY id");
        let rows: Vec<records::RawChange> =
            on_tx!(self, c => sqlx::query_as(&sql).fetch_all(c).await)
                .map_err(fail("read config changes"))?;
        Ok(rows.into_iter().map(ChangeRecord::from).collect())
    }
}
