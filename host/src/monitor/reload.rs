//! Hot reload of plugins: a watcher on the plugin directory (notify),
//! debounced, once per content (a plugin whose files hash as they did at
//! its last reload is left alone); each changed plugin is loaded (compiled and checked) on a
//! blocking thread and swapped into the registry atomically — deliveries
//! in flight finish on the version they started with — or refused, the
//! last good version serving on. Only the changed plugin reloads.

use super::events::Event;
use crate::events::Sink;
use crate::runtime::Registry;
use crate::runtime::registry::Reload;
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Quiet time after the last change before reloading (a file being copied
/// in fires several events).
const DEBOUNCE: Duration = Duration::from_millis(50);

/// The plugin a changed file belongs to: `NAME.wasm` or `NAME.toml`.
fn plugin_of(path: &Path) -> Option<String> {
    let ext = path.extension()?.to_str()?;
    if ext != "wasm" && ext != "toml" {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    (!stem.starts_with('.')).then(|| stem.to_string())
}

/// Whether an event says a file's contents or name changed. Opening and
/// reading a file (as every reload does, or an operator's `cat`) and
/// metadata changes are not changes: treating them as such made each
/// reload's own read trigger the next, without end.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        // A file closed after writing: its contents are complete now.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

/// What a plugin's files hold now: the sha256 of its `NAME.wasm` and
/// `NAME.toml` (a missing file hashes as absent).
fn content_of(dir: &Path, name: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for ext in ["wasm", "toml"] {
        match std::fs::read(dir.join(format!("{name}.{ext}"))) {
            Ok(bytes) => {
                hash.update(b"present\0");
                hash.update((bytes.len() as u64).to_le_bytes());
                hash.update(&bytes);
            }
            Err(_) => hash.update(b"absent\0"),
        }
    }
    hash.finalize().into()
}

/// Starts watching `dir` at once (so a change that lands as soon as the
/// monitor says it has started is seen) and returns the loop that reloads
/// what changes until `stop` changes. `reloads` counts (swapped, refused).
/// `None` when the directory cannot be watched (logged).
pub fn watch_plugins(
    dir: PathBuf,
    registry: Arc<Registry>,
    sink: Sink<Event>,
    reloads: Arc<(AtomicU64, AtomicU64)>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && is_change(&event.kind)
        {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("cannot watch plugins: {e}");
            return None;
        }
    };
    if let Err(e) = std::fs::create_dir_all(&dir)
        .map_err(notify::Error::io)
        .and_then(|()| watcher.watch(&dir, RecursiveMode::NonRecursive))
    {
        tracing::warn!(dir = %dir.display(), "cannot watch the plugin directory: {e}");
        return None;
    }
    // What each plugin's files held when the monitor loaded them: a change
    // that leaves them so (a copy of the same file) reloads nothing.
    let mut seen = std::collections::HashMap::new();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if let Some(name) = plugin_of(&entry.path()) {
            seen.entry(name.clone())
                .or_insert_with(|| content_of(&dir, &name));
        }
    }
    Some(reload_changes(
        watcher, dir, seen, rx, registry, sink, reloads, stop,
    ))
}

#[expect(
    clippy::too_many_arguments,
    reason = "the loop's whole state, moved in once"
)]
async fn reload_changes(
    // Held for as long as the loop runs: dropping it stops the watch.
    _watcher: notify::RecommendedWatcher,
    dir: PathBuf,
    mut seen: std::collections::HashMap<String, [u8; 32]>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<PathBuf>,
    registry: Arc<Registry>,
    sink: Sink<Event>,
    reloads: Arc<(AtomicU64, AtomicU64)>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let first = tokio::select! {
            path = rx.recv() => path,
            _ = stop.changed() => return,
        };
        let Some(first) = first else { return };
        let mut changed: BTreeSet<String> = plugin_of(&first).into_iter().collect();
        // Debounce: take what else arrives until a quiet period.
        while let Ok(Some(path)) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {
            changed.extend(plugin_of(&path));
        }
        for name in changed {
            // One reload (or one refusal) per content.
            let content = content_of(&dir, &name);
            if seen.get(&name) == Some(&content) {
                continue;
            }
            seen.insert(name.clone(), content);
            let registry = Arc::clone(&registry);
            let plugin = name.clone();
            let outcome = tokio::task::spawn_blocking(move || registry.reload(&plugin)).await;
            match outcome {
                Ok(Reload::Swapped { generation }) => {
                    reloads.0.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(plugin = %name, generation, "plugin reloaded");
                    sink(&Event::Reloaded {
                        plugin: name,
                        generation,
                    });
                }
                Ok(Reload::Kept { error }) => {
                    reloads.1.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(plugin = %name, "new version refused: {error}");
                    sink(&Event::ReloadRefused {
                        plugin: name,
                        error: error.to_string(),
                    });
                }
                Ok(Reload::Removed) => tracing::info!(plugin = %name, "plugin removed"),
                Err(e) => tracing::error!(plugin = %name, "reload: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind, RenameMode};

    #[test]
    fn writes_renames_and_removals_are_changes_and_reads_are_not() {
        for kind in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Remove(RemoveKind::File),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
        ] {
            assert!(is_change(&kind), "{kind:?}");
        }
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)),
        ] {
            assert!(!is_change(&kind), "{kind:?}");
        }
    }
}
