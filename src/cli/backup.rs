//! `colony backup ADDR --to FILE` and `colony restore ADDR FILE`: online backup and
//! restore through the admin API of a running cluster.
//!
//! Backup: every node sends a consistent snapshot of the primaries it holds
//! (`GET /backup/local`: each colony's cells at one instant with its epoch and seq,
//! taken while the node keeps serving writes); the CLI checks that every colony is there
//! exactly once (asking a colony's new primary again if it moved meanwhile, keeping the
//! most advanced copy if two answered) and writes one file atomically: a temporary
//! file, fsync, rename. Any write acknowledged before the backup started is in it.
//!
//! Restore: the file is read (refused if corrupt in the middle, unless `--salvage`) and
//! sent in batches to `POST /restore`; cells whose TTL has passed are skipped.

use super::http;
use anyhow::{bail, Context, Result};
use colony::core::cell::{Cell, Key};
use colony::store::{self, ColonyDump, DumpReader, DumpRecord, DumpWriter, FileKind, ReadMode};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Cells per `POST /restore`.
const RESTORE_BATCH: usize = 5_000;

type Colony = (ColonyDump, Vec<(Key, Cell)>);

fn fetch_local(admin: &str) -> Result<Vec<Colony>> {
    let resp = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(2))
        .timeout_read(Duration::from_secs(300))
        .build()
        .get(&http::url(admin, "/backup/local"))
        .call()
        .with_context(|| format!("backup from {admin}"))?;
    let mut out: Vec<Colony> = Vec::new();
    let reader = DumpReader::open(resp.into_reader(), admin.to_string(), ReadMode::Strict)?;
    for record in reader {
        match record? {
            DumpRecord::Colony(h) => out.push((h, Vec::new())),
            DumpRecord::Cells { cells, .. } => {
                if let Some(last) = out.last_mut() {
                    last.1.extend(cells);
                }
            }
            DumpRecord::End { .. } => {}
        }
    }
    Ok(out)
}

pub fn backup(addr: &str, to: &Path) -> Result<()> {
    let started = Instant::now();
    let status = http::status(addr)?;
    let colonies = status.colonies;
    let mut have: BTreeMap<u32, Colony> = BTreeMap::new();
    let bar = indicatif::ProgressBar::new(u64::from(colonies));
    bar.set_style(
        indicatif::ProgressStyle::with_template("backup {bar:40} {pos}/{len} colonies {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    for round in 0..10 {
        let status = if round == 0 {
            status.clone()
        } else {
            http::status(addr)?
        };
        // Ask every live node (first round) or the nodes that now lead missing colonies.
        let mut admins: Vec<String> = Vec::new();
        for m in status
            .members
            .iter()
            .filter(|m| m.state == "alive" || m.state == "leaving")
        {
            let leads_missing = status
                .directory
                .iter()
                .any(|d| d.primary == m.id && !have.contains_key(&d.colony));
            if round == 0 || leads_missing {
                if let Some(a) = &m.addrs {
                    admins.push(a.admin.clone());
                }
            }
        }
        for admin in admins {
            let got = match fetch_local(&admin) {
                Ok(g) => g,
                Err(e) => {
                    bar.println(format!("{admin}: {e:#}; will ask again"));
                    continue;
                }
            };
            for (h, cells) in got {
                let newer = have
                    .get(&h.colony)
                    .is_none_or(|(old, _)| (h.epoch, h.seq) > (old.epoch, old.seq));
                if newer {
                    have.insert(h.colony, (h, cells));
                }
            }
            bar.set_position(have.len() as u64);
        }
        if have.len() as u32 >= colonies {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    bar.finish_and_clear();
    if (have.len() as u32) < colonies {
        let missing: Vec<u32> = (0..colonies).filter(|c| !have.contains_key(c)).collect();
        bail!("no primary answered for colonies {missing:?}; no backup written");
    }
    let cells: u64 = have.values().map(|(_, c)| c.len() as u64).sum();
    let created = colony::actors::host::now_ms();
    store::write_atomically(to, |w| {
        let mut dump = DumpWriter::new(w, FileKind::Backup, created)?;
        for (h, list) in have.values() {
            dump.begin_colony(ColonyDump {
                cells: list.len() as u64,
                ..*h
            })?;
            dump.cells(list)?;
        }
        dump.finish()?;
        Ok(())
    })?;
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "backup {}: {} colonies, {} cells, {:.1} MB in {:.2} s ({:.1} MB/s, {:.0} cells/s)",
        to.display(),
        have.len(),
        cells,
        bytes as f64 / 1e6,
        secs,
        bytes as f64 / 1e6 / secs,
        cells as f64 / secs
    );
    Ok(())
}

/// Sends one batch of colonies to `POST /restore`; returns (restored, expired, failed).
pub fn post_batch(addr: &str, batch: &[(ColonyDump, Vec<(Key, Cell)>)]) -> Result<(u64, u64, u64)> {
    let mut dump = DumpWriter::new(Vec::new(), FileKind::Backup, 0)?;
    for (h, cells) in batch {
        dump.begin_colony(ColonyDump {
            cells: cells.len() as u64,
            ..*h
        })?;
        dump.cells(cells)?;
    }
    let body = dump.finish()?;
    let resp = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(2))
        .timeout_read(Duration::from_secs(600))
        .build()
        .post(&http::url(addr, "/restore"))
        .send_bytes(&body)
        .with_context(|| format!("restore batch to {addr}"))?
        .into_string()?;
    let v: serde_json::Value = serde_json::from_str(&resp)?;
    let n = |k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
    Ok((n("restored"), n("skipped"), n("failed")))
}

pub fn restore(addr: &str, file: &Path, salvage: bool) -> Result<()> {
    let started = Instant::now();
    let mode = if salvage {
        ReadMode::Salvage
    } else {
        ReadMode::Strict
    };
    if !salvage {
        // Refuse a file corrupt in the middle before sending anything.
        store::read_dump(file, ReadMode::Strict, |_, _, _, _, _| {}).with_context(|| {
            format!(
                "{} is damaged (--salvage keeps every good record)",
                file.display()
            )
        })?;
    }
    let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let bar = indicatif::ProgressBar::new(bytes);
    bar.set_style(
        indicatif::ProgressStyle::with_template("restore {bar:40} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut reader = DumpReader::open_path(file, mode)?;
    let mut batch: Vec<Colony> = Vec::new();
    let mut in_batch = 0usize;
    let (mut restored, mut skipped, mut failed, mut colonies) = (0u64, 0u64, 0u64, 0u32);
    let mut flush = |batch: &mut Vec<Colony>, in_batch: &mut usize| -> Result<()> {
        if *in_batch == 0 {
            return Ok(());
        }
        let (r, s, f) = post_batch(addr, batch)?;
        restored += r;
        skipped += s;
        failed += f;
        bar.set_message(format!(
            "{restored} restored, {skipped} expired, {failed} failed"
        ));
        batch.clear();
        *in_batch = 0;
        Ok(())
    };
    for record in reader.by_ref() {
        match record? {
            DumpRecord::Colony(h) => {
                colonies += 1;
                batch.push((h, Vec::new()));
            }
            DumpRecord::Cells { cells, .. } => {
                in_batch += cells.len();
                if let Some(last) = batch.last_mut() {
                    last.1.extend(cells);
                }
                if in_batch >= RESTORE_BATCH {
                    let header = batch.last().map(|(h, _)| *h);
                    flush(&mut batch, &mut in_batch)?;
                    // The rest of this colony's cells go under its header again.
                    if let Some(h) = header {
                        batch.push((h, Vec::new()));
                    }
                }
            }
            DumpRecord::End { .. } => {}
        }
    }
    flush(&mut batch, &mut in_batch)?;
    bar.finish_and_clear();
    let report = reader.report();
    if !report.problems.is_empty() {
        println!(
            "salvaged {}: {}",
            file.display(),
            report.problems.join("; ")
        );
    }
    let _ = http::post(
        addr,
        &format!("/restore/report?colonies={colonies}&cells={restored}&skipped={skipped}"),
    );
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "restore {}: {} colonies, {} cells restored, {} expired skipped, {} failed, in {:.2} s ({:.1} MB/s, {:.0} cells/s)",
        file.display(),
        colonies,
        restored,
        skipped,
        failed,
        secs,
        bytes as f64 / 1e6 / secs,
        restored as f64 / secs
    );
    if failed > 0 {
        bail!("{failed} cells were not restored");
    }
    Ok(())
}
