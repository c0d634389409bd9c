//! A storage node's value logs: one file per colony replica it holds, where the
//! replica's cells live instead of memory.
//!
//! `DIR/colony-<c>.values` is a store file of kind [`FileKind::ValueLog`]: the usual
//! header, then one record per write, each `(key, cell)` in msgpack behind its length
//! and CRC32C (see the [module docs](super)). The replica keeps an index in memory
//! (`core::cell_store`) and reads a cell back with one positioned read, checking the
//! record's CRC and that it holds the key the index expects.
//!
//! The file belongs to the replica: it is created empty when the replica is, rewritten
//! (to `<file>.tmp-<pid>`, fsynced, renamed) when mostly garbage, and deleted when the
//! replica is dropped. A node that restarts is a new incarnation whose replicas start
//! over (the undead rule), so the files of an earlier run are removed at start
//! ([`FileValueStorage::open_dir`]).
//!
//! Writes are not fsynced one by one: the copy on disk is one of the colony's
//! replicas, kept in sync by the primary's stream, not a durability log.

use super::error::StoreError;
use super::frame::{read_record_at, FileKind, RecordWriter, HEADER_LEN};
use crate::core::cell::{Cell, Key};
use crate::core::cell_store::{ValueLoc, ValueLog, ValueLogError, ValueStorage};
use crate::core::types::ColonyId;
use std::fs::{self, File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// The file of `colony` in `dir`.
pub fn value_log_path(dir: &Path, colony: ColonyId) -> PathBuf {
    dir.join(format!("colony-{colony}.values"))
}

fn io_error(path: &Path, op: String, source: std::io::Error) -> ValueLogError {
    ValueLogError(
        StoreError::Io {
            path: path.to_owned(),
            op,
            source,
        }
        .to_string(),
    )
}

/// Opens one [`FileValueLog`] per colony in a directory.
#[derive(Debug)]
pub struct FileValueStorage {
    dir: PathBuf,
}

impl FileValueStorage {
    /// Uses `dir` (created if missing) for value logs; value logs left there by an
    /// earlier run are removed (their replicas are gone). Returns how many it removed.
    pub fn open_dir(dir: &Path) -> Result<(FileValueStorage, usize), StoreError> {
        let io = |op: &str, source| StoreError::Io {
            path: dir.to_owned(),
            op: op.into(),
            source,
        };
        fs::create_dir_all(dir).map_err(|e| io("creating the directory", e))?;
        let mut removed = 0;
        for entry in fs::read_dir(dir).map_err(|e| io("listing", e))? {
            let path = entry.map_err(|e| io("listing", e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("colony-") && name.contains(".values") {
                fs::remove_file(&path).map_err(|e| io("removing an old value log", e))?;
                removed += 1;
            }
        }
        Ok((
            FileValueStorage {
                dir: dir.to_owned(),
            },
            removed,
        ))
    }
}

impl ValueStorage for FileValueStorage {
    fn open(&mut self, colony: ColonyId) -> Result<Box<dyn ValueLog>, ValueLogError> {
        Ok(Box::new(FileValueLog::create(value_log_path(
            &self.dir, colony,
        ))?))
    }
}

/// One replica's value log on disk.
pub struct FileValueLog {
    path: PathBuf,
    /// Appends (buffered, flushed after every record so reads see it).
    writer: RecordWriter<BufWriter<File>>,
    /// Positioned reads.
    reader: File,
    /// Whether dropping this value removes the file (not when a newer one replaced it
    /// under the same name).
    remove_on_drop: bool,
}

impl FileValueLog {
    /// A new, empty log at `path` (anything there is replaced).
    pub fn create(path: PathBuf) -> Result<FileValueLog, ValueLogError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_error(&path, "creating".into(), e))?;
        let reader = file
            .try_clone()
            .map_err(|e| io_error(&path, "opening for reads".into(), e))?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let writer = RecordWriter::new(BufWriter::new(file), FileKind::ValueLog, now_ms)
            .map_err(|e| ValueLogError(format!("{}: {e}", path.display())))?;
        Ok(FileValueLog {
            path,
            writer,
            reader,
            remove_on_drop: true,
        })
    }

    /// Becomes `next`, which already holds this log's name.
    fn become_(&mut self, next: FileValueLog) {
        let mut old = std::mem::replace(self, next);
        old.remove_on_drop = false;
    }

    fn err(&self, e: impl std::fmt::Display) -> ValueLogError {
        ValueLogError(format!("{}: {e}", self.path.display()))
    }

    fn corrupt(&self, at: u64, expected: &str, found: String) -> ValueLogError {
        ValueLogError(
            StoreError::Corrupt {
                path: self.path.clone(),
                offset: at,
                expected: expected.into(),
                found,
            }
            .to_string(),
        )
    }
}

impl ValueLog for FileValueLog {
    fn append(&mut self, key: &[u8], cell: &Cell) -> Result<ValueLoc, ValueLogError> {
        let data = rmp_serde::to_vec(&(serde_bytes::Bytes::new(key), cell))
            .map_err(|e| self.err(format!("encoding a cell: {e}")))?;
        let at = self.writer.append(&data).map_err(|e| self.err(e))?;
        self.writer.flush().map_err(|e| self.err(e))?;
        let len =
            u32::try_from(self.writer.offset() - at).map_err(|_| self.err("record too large"))?;
        Ok(ValueLoc { at, len })
    }

    fn read(&self, at: ValueLoc) -> Result<(Key, Cell), ValueLogError> {
        let data = read_record_at(&self.reader, &self.path, at.at, at.len)
            .map_err(|e| ValueLogError(e.to_string()))?;
        let (key, cell): (Key, Cell) = super::dump::decode_exact(&data)
            .map_err(|e| self.corrupt(at.at, "a (key, cell) record", e))?;
        Ok((key, cell))
    }

    fn clear(&mut self) -> Result<(), ValueLogError> {
        let next = FileValueLog::create(self.path.clone())?;
        self.become_(next);
        Ok(())
    }

    fn bytes(&self) -> u64 {
        self.writer.offset().saturating_sub(HEADER_LEN as u64)
    }

    fn rewrite(&mut self, live: &[ValueLoc]) -> Result<Vec<ValueLoc>, ValueLogError> {
        let tmp = super::atomic::temp_path(&self.path)
            .ok_or_else(|| self.err("no temporary name for the rewrite"))?;
        let mut next = FileValueLog::create(tmp.clone())?;
        let moved = live
            .iter()
            .map(|&at| {
                let (key, cell) = self.read(at)?;
                next.append(&key, &cell)
            })
            .collect::<Result<Vec<_>, _>>();
        let moved = match moved {
            Ok(m) => m,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        next.writer
            .get_ref()
            .get_ref()
            .sync_data()
            .map_err(|e| io_error(&tmp, "syncing".into(), e))?;
        fs::rename(&tmp, &self.path).map_err(|e| io_error(&tmp, "renaming".into(), e))?;
        next.path = self.path.clone();
        // The old file's handles close here; the name now holds the new one.
        self.become_(next);
        Ok(moved)
    }
}

/// A dropped replica's file goes with it.
impl Drop for FileValueLog {
    fn drop(&mut self) {
        if !self.remove_on_drop {
            return;
        }
        if let Err(e) = fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(file = %self.path.display(), error = %e, "could not remove a value log");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::cell::{Dna, Op};
    use crate::core::cell_store::CellStore;
    use crate::core::types::{Epoch, Version};
    use crate::store::frame_tests::TempDir;

    fn cell(v: &str, seq: u64) -> Cell {
        Cell {
            dna: Dna::Value(v.into()),
            version: Version {
                epoch: Epoch::default(),
                seq,
            },
            expires_at: None,
        }
    }

    #[test]
    fn cells_written_read_back_and_the_file_goes_with_the_replica() {
        let dir = TempDir::new("values-rw");
        let (mut storage, removed) = FileValueStorage::open_dir(dir.path()).unwrap();
        assert_eq!(removed, 0);
        let path = value_log_path(dir.path(), 7);
        {
            let mut store = CellStore::on_disk(storage.open(7).unwrap());
            for i in 0..100u64 {
                store.apply(&Op::Put {
                    key: format!("k{}", i % 10).into(),
                    cell: cell(&format!("v{i}"), i + 1),
                });
            }
            assert!(path.exists());
            assert_eq!(store.len(), 10);
            assert_eq!(store.get(b"k3").unwrap().dna, Dna::Value(b"v93".into()));
            assert!(store.take_failure().is_none());
        }
        assert!(!path.exists(), "dropping the replica removes its file");
    }

    #[test]
    fn a_rewrite_keeps_the_live_cells_in_a_smaller_file() {
        let dir = TempDir::new("values-rewrite");
        let mut log = FileValueLog::create(dir.path().join("c.values")).unwrap();
        let big = "x".repeat(10_000);
        let mut live = Vec::new();
        for i in 0..50u64 {
            let at = log
                .append(format!("k{i}").as_bytes(), &cell(&big, i))
                .unwrap();
            if i % 10 == 0 {
                live.push(at);
            }
        }
        let before = log.bytes();
        let moved = log.rewrite(&live).unwrap();
        assert_eq!(moved.len(), 5);
        assert!(log.bytes() * 9 < before, "{} of {before}", log.bytes());
        for (n, at) in moved.into_iter().enumerate() {
            let (key, c) = log.read(at).unwrap();
            assert_eq!(key, format!("k{}", n * 10).into_bytes());
            assert_eq!(c.version.seq, n as u64 * 10);
        }
        assert_eq!(dir.entries(), vec!["c.values"], "no temporary file left");
    }

    #[test]
    fn a_flipped_bit_is_an_error_not_a_wrong_cell() {
        let dir = TempDir::new("values-flip");
        let path = dir.path().join("c.values");
        let mut log = FileValueLog::create(path.clone()).unwrap();
        let at = log.append(b"key", &cell("value", 1)).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x10;
        fs::write(&path, bytes).unwrap();
        let err = log.read(at).unwrap_err();
        assert!(err.0.contains("checksum"), "{err}");
        let err = log.read(ValueLoc { at: at.at, len: 3 }).unwrap_err();
        assert!(err.0.contains("length"), "{err}");
    }

    #[test]
    fn old_value_logs_are_removed_at_start() {
        let dir = TempDir::new("values-old");
        fs::write(value_log_path(dir.path(), 1), b"old").unwrap();
        fs::write(dir.path().join("unrelated.txt"), b"keep").unwrap();
        let (_, removed) = FileValueStorage::open_dir(dir.path()).unwrap();
        assert_eq!(removed, 1);
        assert!(dir.path().join("unrelated.txt").exists());
    }
}
