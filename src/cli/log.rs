//! `colony log compact DIR` and `colony restore ADDR --from-log DIR`: the tools around a
//! logging node's directory.
//!
//! Compaction rewrites the finished segments (and an earlier compacted file) into one
//! compacted file holding only the last entry of every live cell; the segment a running
//! logger is writing is left alone, so it can run while the logger does. Restoring reads
//! a log directory or a single log file (compacted or not), works out the final live
//! state (two passes: memory bounded by the keys, not the values) and sends it to a
//! running cluster through `POST /restore`, like a backup.

use super::backup::post_batch;
use super::http;
use anyhow::{bail, Context, Result};
use colony::core::cell::{Cell, Key};
use colony::core::types::{ColonyId, Version};
use colony::store::log::{compact as compact_dir, replay, ReplayReport};
use colony::store::{ColonyDump, ReadMode};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// Cells per `POST /restore`.
const RESTORE_BATCH: usize = 5_000;

fn mode(salvage: bool) -> ReadMode {
    if salvage {
        ReadMode::Salvage
    } else {
        ReadMode::Strict
    }
}

fn now_ms() -> u64 {
    colony::actors::host::now_ms()
}

fn print_problems(report: &ReplayReport) {
    for f in &report.files {
        if let Some(t) = &f.frames.torn_tail {
            println!(
                "{}: torn tail at byte {} cut off",
                f.path.display(),
                t.offset
            );
        }
        for r in &f.frames.skipped {
            println!(
                "{}: salvage skipped bytes {}..{}",
                f.path.display(),
                r.start,
                r.end
            );
        }
    }
    for p in &report.problems {
        println!("salvage: {p}");
    }
}

/// `colony log compact DIR`.
pub fn compact(dir: &Path, salvage: bool) -> Result<()> {
    let started = Instant::now();
    let report = compact_dir(dir, mode(salvage), now_ms()).with_context(|| {
        format!(
            "compacting {} (--salvage keeps every good record of a damaged file)",
            dir.display()
        )
    })?;
    print_problems(&report.replay);
    for l in &report.leftovers {
        println!("removed leftover {}", l.display());
    }
    let Some(output) = &report.output else {
        println!(
            "{}: nothing to compact (no finished segment after the last compaction)",
            dir.display()
        );
        return Ok(());
    };
    let ratio = report.output_bytes as f64 / report.input_bytes.max(1) as f64;
    println!(
        "compacted {} files ({} bytes) into {} ({} bytes, {:.1}% of the input): {} cells kept, {} entries dropped ({} deleted, {} expired), in {:.2} s",
        report.inputs.len(),
        report.input_bytes,
        output.display(),
        report.output_bytes,
        ratio * 100.0,
        report.replay.cells,
        report.dropped(),
        report.replay.deleted,
        report.replay.expired,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `colony restore ADDR --from-log DIR`.
pub fn restore(addr: &str, path: &Path, salvage: bool) -> Result<()> {
    let started = Instant::now();
    // Refuse a damaged log before sending anything (replay is two passes anyway).
    let mode = mode(salvage);
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("restore {spinner} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let mut batch: BTreeMap<ColonyId, Vec<(Key, Cell)>> = BTreeMap::new();
    let mut in_batch = 0usize;
    let (mut restored, mut skipped, mut failed) = (0u64, 0u64, 0u64);
    let mut colonies: BTreeMap<ColonyId, ()> = BTreeMap::new();
    let mut error: Option<anyhow::Error> = None;
    let mut flush =
        |batch: &mut BTreeMap<ColonyId, Vec<(Key, Cell)>>, in_batch: &mut usize| -> Result<()> {
            if *in_batch == 0 {
                return Ok(());
            }
            let chunk: Vec<(ColonyDump, Vec<(Key, Cell)>)> = std::mem::take(batch)
                .into_iter()
                .map(|(colony, cells)| {
                    let top = cells
                        .iter()
                        .map(|(_, c)| c.version)
                        .max()
                        .unwrap_or(Version::default());
                    let h = ColonyDump {
                        colony,
                        epoch: top.epoch,
                        seq: top.seq,
                        cells: cells.len() as u64,
                    };
                    (h, cells)
                })
                .collect();
            let (r, s, f) = post_batch(addr, &chunk)?;
            restored += r;
            skipped += s;
            failed += f;
            bar.set_message(format!(
                "{restored} restored, {skipped} expired, {failed} failed"
            ));
            *in_batch = 0;
            Ok(())
        };
    let report = replay(path, mode, now_ms(), |colony, key, cell| {
        if error.is_some() {
            return;
        }
        colonies.insert(colony, ());
        batch.entry(colony).or_default().push((key, cell));
        in_batch += 1;
        if in_batch >= RESTORE_BATCH {
            if let Err(e) = flush(&mut batch, &mut in_batch) {
                error = Some(e);
            }
        }
    })
    .with_context(|| {
        format!(
            "reading the log {} (--salvage keeps every good record of a damaged file)",
            path.display()
        )
    })?;
    if let Some(e) = error {
        return Err(e);
    }
    flush(&mut batch, &mut in_batch)?;
    bar.finish_and_clear();
    print_problems(&report);
    let _ = http::post(
        addr,
        &format!(
            "/restore/report?colonies={}&cells={restored}&skipped={skipped}",
            colonies.len()
        ),
    );
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "restore {} (log): {} files, {} entries, {} colonies, {} cells restored, {} expired skipped, {} deleted dropped, {} failed, in {:.2} s ({:.0} cells/s)",
        path.display(),
        report.files.len(),
        report.entries + report.snapshot_cells,
        colonies.len(),
        restored,
        skipped + report.expired,
        report.deleted,
        failed,
        secs,
        restored as f64 / secs
    );
    if failed > 0 {
        bail!("{failed} cells were not restored");
    }
    Ok(())
}
