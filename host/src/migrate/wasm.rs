//! WASM migration steps: a `migration`-world component run inside the
//! step's own transaction, with the `sql` capability on that transaction
//! and nothing else. The runner opens the transaction, lends the
//! connection to the plugin call (on a blocking thread), takes it back and
//! commits only if `up`/`down` returned `Ok`; a trap, a timeout or an
//! `Err` rolls everything back.

use super::error::MigrateError;
use super::events::Direction;
use super::history::{self, RowState};
use super::runner::Migrator;
use super::source::{Migration, WasmStep};
use crate::capabilities::sql::SqlSession;
use crate::capabilities::sql::grant::Reserved;
use crate::db::Db;
use crate::runtime::{Manifest, Origin, PluginSource, Provenance};
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

impl Migrator {
    /// Applies a WASM step; false when another runner already had.
    pub(super) async fn apply_wasm(
        &self,
        slot: &mut Option<Db>,
        m: &Migration,
        step: &WasmStep,
    ) -> Result<bool, MigrateError> {
        let db = slot.as_mut().expect("connection");
        if !self.begin_step(db, m.version).await? {
            return Ok(false);
        }
        let started = std::time::Instant::now();
        let outcome = self
            .call_wasm(
                slot,
                m,
                step.component.clone(),
                &step.manifest,
                &step.component_origin,
                Direction::Up,
            )
            .await;
        let db = slot.as_mut().expect("connection back from the plugin");
        if let Err(message) = outcome {
            let _ = db.batch("ROLLBACK").await;
            let mut record = self.applied_record(m, "", None);
            record.up_script = None;
            record.state = RowState::Failed;
            record.error = Some(&message);
            let _ = history::upsert(db, &record, self.history_key()).await;
            let _ = history::log(db, m.version, "fail", &self.actor, Some(&message)).await;
            return Err(MigrateError::Failed {
                id: m.id(),
                path: m.path.clone(),
                line: None,
                message,
            });
        }
        let mut record = self.applied_record(m, "", None);
        record.up_script = None;
        record.duration_ms = Some(super::events::ms(started.elapsed()));
        record.artifact = Some(&step.component);
        record.manifest = Some(&step.manifest.source_text);
        let finish = async {
            history::upsert(db, &record, self.history_key()).await?;
            history::log(db, m.version, "apply", &self.actor, None).await?;
            db.batch("COMMIT").await
        };
        if let Err(err) = finish.await {
            let _ = db.batch("ROLLBACK").await;
            return Err(MigrateError::sql(format!("record {} as applied", m.id()))(
                err,
            ));
        }
        Ok(true)
    }

    /// Reverts a WASM step inside a transaction that also deletes its row.
    pub(super) async fn revert_wasm(
        &self,
        slot: &mut Option<Db>,
        m: &Migration,
        component: Cow<'static, [u8]>,
        manifest: &Manifest,
        origin: &str,
    ) -> Result<(), MigrateError> {
        let db = slot.as_mut().expect("connection");
        super::apply::begin(db).await?;
        let outcome = self
            .call_wasm(slot, m, component, manifest, origin, Direction::Down)
            .await;
        let db = slot.as_mut().expect("connection back from the plugin");
        if let Err(message) = outcome {
            let _ = db.batch("ROLLBACK").await;
            let _ = history::log(db, m.version, "revert-fail", &self.actor, Some(&message)).await;
            return Err(MigrateError::Failed {
                id: m.id(),
                path: m.path.clone(),
                line: None,
                message,
            });
        }
        let finish = async {
            history::delete(db, m.version).await?;
            history::log(db, m.version, "revert", &self.actor, None).await?;
            db.batch("COMMIT").await
        };
        if let Err(err) = finish.await {
            let _ = db.batch("ROLLBACK").await;
            return Err(MigrateError::sql(format!("record {} as reverted", m.id()))(
                err,
            ));
        }
        Ok(())
    }

    /// Loads the component and calls `up` or `down` with the connection; the
    /// connection is always put back in `slot`. `Err` carries the reason.
    pub(super) async fn call_wasm(
        &self,
        slot: &mut Option<Db>,
        m: &Migration,
        component: Cow<'static, [u8]>,
        manifest: &Manifest,
        origin: &str,
        direction: Direction,
    ) -> Result<(), String> {
        let runtime = self.runtime().map_err(|e| e.to_string())?;
        let source = PluginSource {
            origin: Origin::File(PathBuf::from(origin)),
            bytes: component,
            manifest: manifest.clone(),
            provenance: Provenance::Unknown,
        };
        // The operator's pin holds for a migration step as for any plugin.
        let pin = runtime.settings().pins.get(&manifest.name).cloned();
        let plugin = runtime
            .load(source, pin.as_deref())
            .map_err(|e| format!("cannot load the step's component: {e}"))?;
        let settings = plugin
            .settings(Vec::<(String, String)>::new())
            .map_err(|e| e.to_string())?;
        let session = SqlSession::new(
            slot.take().expect("connection"),
            tokio::runtime::Handle::current(),
            Reserved::new(&self.sqlx.table),
        );
        let plugin = Arc::new(plugin);
        let up = direction == Direction::Up;
        let joined =
            tokio::task::spawn_blocking(move || runtime.migrate(&plugin, &settings, up, session))
                .await;
        let (outcome, session) = match joined {
            Ok(done) => done,
            Err(err) => panic!("the plugin call for {} panicked in the host: {err}", m.id()),
        };
        *slot = Some(session.db);
        for line in &outcome.report.logs {
            tracing::info!(
                migration = %m.id(),
                "[{}] {}",
                line.level,
                crate::escape::one_line(&line.message)
            );
        }
        match outcome.result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(format!("the step returned an error: {message}")),
            Err(err) => Err(err.to_string()),
        }
    }
}
