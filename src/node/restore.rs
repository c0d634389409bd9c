//! Restoring saved cells when a node starts: every `*.colony` file (a shutdown file
//! written by the last host, or a backup) in the restore directories is read, its
//! cells fed into the cluster through a [`RestoreActor`], and the file renamed
//! `*.restored` so it is not applied twice. Clients are accepted only afterwards.
//!
//! A torn tail is cut off with a warning; corruption in the middle refuses the file
//! (it stays where it is, under its name, with the reason in the log) unless the node
//! runs with `--salvage`, which keeps every good record and reports what it skipped.

use crate::actors::host::{DirectoryReady, HostActor, Report};
use crate::actors::restore::{RestoreActor, RestoreCounts};
use crate::core::events::EventKind;
use crate::store::{self, ReadMode};
use actix::Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Cells handed to one restore actor at a time.
const BATCH: usize = 10_000;

/// The restore files in `dirs`, oldest name first.
pub fn pending_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "colony"))
        .collect();
    files.sort();
    files.dedup();
    files
}

/// Restores every pending file; returns when all are done (or refused).
pub async fn restore_at_start(host: &Addr<HostActor>, dirs: &[PathBuf], salvage: bool) {
    let files = pending_files(dirs);
    if files.is_empty() {
        return;
    }
    // Wait until every colony has a live primary somewhere.
    loop {
        if host.send(DirectoryReady).await.unwrap_or(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for file in files {
        match restore_file(host, &file, salvage).await {
            Ok((colonies, counts)) => {
                tracing::info!(
                    file = %file.display(),
                    colonies,
                    restored = counts.restored,
                    skipped_expired = counts.skipped,
                    failed = counts.failed,
                    "restored"
                );
                host.do_send(Report(EventKind::RestoreDone {
                    colonies,
                    cells: counts.restored,
                    skipped: counts.skipped,
                }));
                let done = file.with_extension("colony.restored");
                if let Err(e) = std::fs::rename(&file, &done) {
                    tracing::error!(file = %file.display(), error = %e, "could not rename a restored file; it would be applied again");
                }
            }
            Err(e) => tracing::error!(
                file = %file.display(),
                error = %e,
                "restore refused (run with --salvage to keep every good record)"
            ),
        }
    }
}

/// Reads one file (on a blocking thread) and restores its cells batch by batch.
async fn restore_file(
    host: &Addr<HostActor>,
    file: &Path,
    salvage: bool,
) -> Result<(u32, RestoreCounts), store::StoreError> {
    let mode = if salvage {
        ReadMode::Salvage
    } else {
        ReadMode::Strict
    };
    let join_error = |e: tokio::task::JoinError| store::StoreError::Io {
        path: file.to_path_buf(),
        op: "reading".into(),
        source: std::io::Error::other(e.to_string()),
    };
    if !salvage {
        // Check the whole file first: a file corrupt in the middle is refused before
        // any of its cells goes in.
        let path = file.to_path_buf();
        tokio::task::spawn_blocking(move || {
            store::read_dump(&path, ReadMode::Strict, |_, _, _, _, _| {})
        })
        .await
        .map_err(join_error)??;
    }
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<Vec<(crate::core::cell::Key, crate::core::cell::Cell)>>(2);
    let path = file.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(BATCH);
        let report = store::read_dump(&path, mode, |_, _, _, key, cell| {
            batch.push((key, cell));
            if batch.len() >= BATCH {
                let _ = tx.blocking_send(std::mem::take(&mut batch));
            }
        })?;
        if !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
        Ok::<_, store::StoreError>(report)
    });
    let mut total = RestoreCounts::default();
    while let Some(batch) = rx.recv().await {
        if let Ok(c) = RestoreActor::run(host.clone(), batch).await {
            total.restored += c.restored;
            total.skipped += c.skipped;
            total.failed += c.failed;
        }
    }
    let report = reader.await.map_err(join_error)??;
    if !report.problems.is_empty() {
        tracing::warn!(file = %file.display(), problems = ?report.problems, "salvaged");
    }
    Ok((report.colonies, total))
}
