//! Dumps and backups: the cells of a set of colonies, as typed msgpack records on top of
//! the frame format, written and read as a stream.
//!
//! A dump is, in record order: for each colony a [`DumpRecord::Colony`] header (id,
//! epoch, seq, cell count) followed by its cells in [`DumpRecord::Cells`] chunks of at
//! most [`CHUNK_CELLS`] cells (and about [`CHUNK_BYTES`] bytes), then one
//! [`DumpRecord::End`] with the totals, then the frame footer. Every chunk names its
//! colony, so a salvaged file never attributes cells to the wrong colony when a header
//! record was lost.
//!
//! Records are rmp-serde's compact encoding of [`DumpRecord`] (structs as arrays, enum
//! variants by name), the same encoding as the peer wire; changing `DumpRecord`,
//! `ColonyDump`, `Cell` or anything inside them needs a new format version.

use super::error::StoreError;
use super::frame::{FileKind, Header, ReadMode, ReadReport, RecordReader, RecordWriter};
use super::frame::{MAX_DATA_LEN, MAX_RECORD_LEN};
use crate::core::cell::{Cell, Dna, Key};
use crate::core::types::{ColonyId, Epoch, Seq};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

/// The most cells in one [`DumpRecord::Cells`] chunk.
pub const CHUNK_CELLS: usize = 1000;
/// A chunk is closed once its encoding reaches this many bytes (so a chunk of large
/// cells stays far below the record limit).
pub const CHUNK_BYTES: usize = 1 << 20;

/// The header of one colony in a dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColonyDump {
    pub colony: ColonyId,
    /// The replica's epoch when it was dumped.
    pub epoch: Epoch,
    /// The highest seq the replica had applied.
    pub seq: Seq,
    /// How many cells follow in this colony's chunks.
    pub cells: u64,
}

/// One record of a dump.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DumpRecord {
    /// A colony starts.
    Colony(ColonyDump),
    /// A chunk of the cells of `colony` (the colony of the last `Colony` record).
    Cells {
        colony: ColonyId,
        cells: Vec<(Key, Cell)>,
    },
    /// The last record: totals over the whole file.
    End { colonies: u32, cells: u64 },
}

/// The msgpack bytes that open a `DumpRecord::Cells` record, written by hand so cells
/// can be encoded one by one straight into the chunk (no clones): fixmap(1), fixstr
/// "Cells", fixarray(2), uint32 colony, array32 count. Both ints are fixed-width so the
/// prefix can be patched; `cells_prefix_decodes_as_dump_record` pins it to serde's view.
const CELLS_PREFIX_LEN: usize = 18;
const COLONY_AT: usize = 9;
const COUNT_AT: usize = 14;

fn cells_prefix(colony: ColonyId) -> [u8; CELLS_PREFIX_LEN] {
    let mut p = [0u8; CELLS_PREFIX_LEN];
    p[0] = 0x81;
    p[1] = 0xa5;
    p[2..7].copy_from_slice(b"Cells");
    p[7] = 0x92;
    p[8] = 0xce;
    p[COLONY_AT..COLONY_AT + 4].copy_from_slice(&colony.to_be_bytes());
    p[13] = 0xdd;
    p
}

/// A lower bound of a cell's encoded size: every byte of key and contents takes at
/// least one byte.
fn min_encoded_len(key: &[u8], cell: &Cell) -> usize {
    key.len()
        + match &cell.dna {
            Dna::Value(v) => v.len(),
            Dna::Map(m) => m.iter().map(|(k, v)| k.len() + v.len()).sum(),
            Dna::Moved(_) => 0,
        }
}

fn encode_record(record: &DumpRecord) -> Result<Vec<u8>, StoreError> {
    encode_msgpack(record, "a dump record")
}

fn decode_record(data: &[u8]) -> Result<DumpRecord, String> {
    decode_exact(data)
}

/// A typed record's msgpack bytes (the compact encoding every store file uses).
pub(super) fn encode_msgpack<T: Serialize>(record: &T, what: &str) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec(record).map_err(|e| StoreError::Encode {
        what: what.into(),
        message: e.to_string(),
    })
}

/// Decodes one typed record; it must be exactly one `T`, with nothing after it.
pub(super) fn decode_exact<T: serde::de::DeserializeOwned>(data: &[u8]) -> Result<T, String> {
    let mut de = rmp_serde::Deserializer::new(Cursor::new(data));
    let record = T::deserialize(&mut de).map_err(|e| e.to_string())?;
    let used = de.position();
    if used != data.len() as u64 {
        return Err(format!(
            "{} trailing bytes after the record",
            (data.len() as u64).saturating_sub(used)
        ));
    }
    Ok(record)
}

fn describe(record: &DumpRecord) -> String {
    match record {
        DumpRecord::Colony(h) => format!("the header of colony {}", h.colony),
        DumpRecord::Cells { colony, cells } => {
            format!("{} cells of colony {colony}", cells.len())
        }
        DumpRecord::End { .. } => "an End record".into(),
    }
}

/// Writes a dump or backup: `begin_colony`, its cells, the next colony..., `finish`.
pub struct DumpWriter<W: Write> {
    frames: RecordWriter<W>,
    colony: Option<ColonyDump>,
    /// Cells given for the current colony (pending ones included).
    in_colony: u64,
    colonies: u32,
    cells: u64,
    /// The open chunk: the prefix, then encoded cells.
    pending: Vec<u8>,
    pending_cells: u32,
}

impl<W: Write> DumpWriter<W> {
    /// Starts a file of `kind` [`FileKind::Dump`] or [`FileKind::Backup`].
    pub fn new(w: W, kind: FileKind, created_at_ms: u64) -> Result<Self, StoreError> {
        if !matches!(kind, FileKind::Dump | FileKind::Backup) {
            return Err(misuse(format!("a dump file cannot be of kind {kind}")));
        }
        Ok(DumpWriter {
            frames: RecordWriter::new(w, kind, created_at_ms)?,
            colony: None,
            in_colony: 0,
            colonies: 0,
            cells: 0,
            pending: Vec::new(),
            pending_cells: 0,
        })
    }

    /// Starts the next colony; exactly `header.cells` cells must follow.
    pub fn begin_colony(&mut self, header: ColonyDump) -> Result<(), StoreError> {
        self.close_colony()?;
        self.colonies = self
            .colonies
            .checked_add(1)
            .ok_or_else(|| misuse("more than u32::MAX colonies".into()))?;
        self.frames
            .append(&encode_record(&DumpRecord::Colony(header))?)?;
        self.pending.clear();
        self.pending.extend_from_slice(&cells_prefix(header.colony));
        self.colony = Some(header);
        self.in_colony = 0;
        Ok(())
    }

    /// Adds cells of the current colony.
    pub fn cells(&mut self, cells: &[(Key, Cell)]) -> Result<(), StoreError> {
        cells.iter().try_for_each(|(k, c)| self.cell(k, c))
    }

    /// Adds cells of the current colony from borrowed pairs (e.g. a `CellStore::iter()`).
    pub fn cells_from<'a>(
        &mut self,
        cells: impl IntoIterator<Item = (&'a Key, &'a Cell)>,
    ) -> Result<(), StoreError> {
        cells.into_iter().try_for_each(|(k, c)| self.cell(k, c))
    }

    /// Adds one cell of the current colony.
    pub fn cell(&mut self, key: &[u8], cell: &Cell) -> Result<(), StoreError> {
        let Some(h) = self.colony else {
            return Err(misuse("cells given before begin_colony".into()));
        };
        if self.in_colony >= h.cells {
            return Err(misuse(format!(
                "colony {} was declared with {} cells; this is one more",
                h.colony, h.cells
            )));
        }
        let too_large = |len: usize| StoreError::RecordTooLarge {
            len: (CELLS_PREFIX_LEN + len) as u64,
            max: MAX_DATA_LEN as u64,
        };
        let least = min_encoded_len(key, cell);
        if least > MAX_DATA_LEN - CELLS_PREFIX_LEN {
            return Err(too_large(least));
        }
        let mark = self.pending.len();
        if let Err(e) = rmp_serde::encode::write(&mut self.pending, &(key, cell)) {
            self.pending.truncate(mark);
            return Err(StoreError::Encode {
                what: "a cell".into(),
                message: e.to_string(),
            });
        }
        if self.pending.len() > MAX_DATA_LEN {
            if self.pending_cells == 0 {
                let len = self.pending.len() - mark;
                self.pending.truncate(mark);
                return Err(too_large(len));
            }
            // The chunk before this cell goes out; the cell opens the next one.
            let cell_bytes = self.pending.split_off(mark);
            self.flush_chunk()?;
            self.pending.extend_from_slice(&cell_bytes);
        }
        self.pending_cells += 1;
        self.in_colony += 1;
        self.cells += 1;
        if self.pending_cells as usize >= CHUNK_CELLS || self.pending.len() >= CHUNK_BYTES {
            self.flush_chunk()?;
        }
        Ok(())
    }

    fn flush_chunk(&mut self) -> Result<(), StoreError> {
        if self.pending_cells == 0 {
            return Ok(());
        }
        self.pending[COUNT_AT..CELLS_PREFIX_LEN].copy_from_slice(&self.pending_cells.to_be_bytes());
        self.frames.append(&self.pending)?;
        self.pending.truncate(CELLS_PREFIX_LEN);
        self.pending_cells = 0;
        Ok(())
    }

    fn close_colony(&mut self) -> Result<(), StoreError> {
        self.flush_chunk()?;
        if let Some(h) = self.colony.take() {
            if self.in_colony != h.cells {
                return Err(misuse(format!(
                    "colony {} was declared with {} cells but got {}",
                    h.colony, h.cells, self.in_colony
                )));
            }
        }
        Ok(())
    }

    /// Writes the End record and the footer, flushes, and returns `W`.
    pub fn finish(mut self) -> Result<W, StoreError> {
        self.close_colony()?;
        let end = DumpRecord::End {
            colonies: self.colonies,
            cells: self.cells,
        };
        self.frames.append(&encode_record(&end)?)?;
        self.frames.finish()
    }
}

fn misuse(message: String) -> StoreError {
    StoreError::Misuse {
        writer: "DumpWriter",
        message,
    }
}

/// What a dump reader found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DumpReport {
    /// Colony headers read.
    pub colonies: u32,
    /// Cells delivered.
    pub cells: u64,
    /// The totals the End record states, if it was found.
    pub end: Option<(u32, u64)>,
    /// Salvage: cells dropped because their colony's header was lost.
    pub orphan_cells: u64,
    /// Salvage: what Strict mode would have failed on (bad records, counts that do not
    /// add up, a missing End record), as messages.
    pub problems: Vec<String>,
    /// The frame reader's report (torn tail, skipped ranges, footer).
    pub frames: ReadReport,
}

impl DumpReport {
    /// Finished, complete and consistent.
    pub fn is_clean(&self) -> bool {
        self.frames.is_clean()
            && self.problems.is_empty()
            && self.orphan_cells == 0
            && self.end == Some((self.colonies, self.cells))
    }
}

/// Streams the records of a dump or backup (an iterator of `Result<DumpRecord, _>`),
/// checking their order and counts.
///
/// Strict: any inconsistency is an error, and so is an unfinished file (no End record
/// or no footer: a dump cut short is not a snapshot). Salvage: records that are corrupt,
/// undecodable or out of place are skipped and listed in the report; cells are only
/// ever delivered under their own colony's header. In both modes the cells delivered
/// before an error must be discarded by a caller that wants all or nothing.
pub struct DumpReader<R> {
    frames: RecordReader<R>,
    current: Option<ColonyDump>,
    in_colony: u64,
    report: DumpReport,
    done: bool,
}

impl DumpReader<File> {
    pub fn open_path(path: impl AsRef<Path>, mode: ReadMode) -> Result<Self, StoreError> {
        DumpReader::from_frames(RecordReader::open_path(path, mode)?)
    }
}

impl<R: Read> DumpReader<R> {
    /// Checks the header (a dump or a backup). `path` is used in messages only.
    pub fn open(r: R, path: impl Into<PathBuf>, mode: ReadMode) -> Result<Self, StoreError> {
        DumpReader::from_frames(RecordReader::open(r, path, mode)?)
    }

    fn from_frames(frames: RecordReader<R>) -> Result<Self, StoreError> {
        let kind = frames.header().kind;
        if !matches!(kind, FileKind::Dump | FileKind::Backup) {
            return Err(StoreError::WrongKind {
                path: frames.path().to_owned(),
                expected: "a dump or backup file".into(),
                found: kind.name().into(),
            });
        }
        Ok(DumpReader {
            frames,
            current: None,
            in_colony: 0,
            report: DumpReport::default(),
            done: false,
        })
    }

    pub fn header(&self) -> &Header {
        self.frames.header()
    }

    /// What was found so far; complete once the iteration has ended.
    pub fn report(&self) -> DumpReport {
        DumpReport {
            frames: self.frames.report().clone(),
            ..self.report.clone()
        }
    }

    /// Strict: the error. Salvage: noted in the report.
    fn problem(&mut self, e: StoreError) -> Result<(), StoreError> {
        match self.frames.mode() {
            ReadMode::Strict => Err(e),
            ReadMode::Salvage => {
                tracing::warn!("salvaging dump: {e}");
                self.report.problems.push(e.to_string());
                Ok(())
            }
        }
    }

    fn bad(&self, offset: u64, expected: String, found: String) -> StoreError {
        StoreError::BadRecord {
            path: self.frames.path().to_owned(),
            offset,
            expected,
            found,
        }
    }

    fn close_colony(&mut self, offset: u64) -> Result<(), StoreError> {
        if let Some(h) = self.current.take() {
            if self.in_colony < h.cells {
                let e = self.bad(
                    offset,
                    format!(
                        "{} cells in colony {} (as its header states) before this record",
                        h.cells, h.colony
                    ),
                    format!("{}", self.in_colony),
                );
                self.problem(e)?;
            }
        }
        Ok(())
    }

    /// Checks one decoded record; `Some` if it is delivered.
    fn accept(
        &mut self,
        offset: u64,
        record: DumpRecord,
    ) -> Result<Option<DumpRecord>, StoreError> {
        if self.report.end.is_some() {
            let e = self.bad(
                offset,
                "nothing after the End record".into(),
                describe(&record),
            );
            self.problem(e)?;
            if let DumpRecord::Cells { cells, .. } = &record {
                self.report.orphan_cells += cells.len() as u64;
            }
            return Ok(None);
        }
        match record {
            DumpRecord::Colony(h) => {
                self.close_colony(offset)?;
                self.report.colonies = self.report.colonies.saturating_add(1);
                self.current = Some(h);
                self.in_colony = 0;
                Ok(Some(DumpRecord::Colony(h)))
            }
            DumpRecord::Cells { colony, cells } => {
                let n = cells.len() as u64;
                match self.current {
                    Some(h) if h.colony == colony => {
                        if self.in_colony + n > h.cells {
                            let e = self.bad(
                                offset,
                                format!("at most {} cells in colony {colony}", h.cells),
                                format!("{} cells", self.in_colony + n),
                            );
                            self.problem(e)?;
                        }
                        self.in_colony += n;
                        self.report.cells += n;
                        Ok(Some(DumpRecord::Cells { colony, cells }))
                    }
                    current => {
                        let expected = match current {
                            Some(h) => format!("cells of colony {}", h.colony),
                            None => "a colony header before any cells".into(),
                        };
                        let e = self.bad(offset, expected, format!("{n} cells of colony {colony}"));
                        self.problem(e)?;
                        self.report.orphan_cells += n;
                        Ok(None)
                    }
                }
            }
            DumpRecord::End { colonies, cells } => {
                self.close_colony(offset)?;
                if (colonies, cells) != (self.report.colonies, self.report.cells) {
                    let e = self.bad(
                        offset,
                        format!("{colonies} colonies and {cells} cells before it (as the End record states)"),
                        format!("{} colonies and {} cells", self.report.colonies, self.report.cells),
                    );
                    self.problem(e)?;
                }
                self.report.end = Some((colonies, cells));
                Ok(Some(DumpRecord::End { colonies, cells }))
            }
        }
    }

    /// After the last frame: a dump must have its End record and its footer.
    fn at_end(&mut self) -> Result<(), StoreError> {
        let frames = self.frames.report();
        let what = if self.report.end.is_none() {
            "the End record"
        } else if !frames.finished() {
            "the file footer"
        } else {
            return Ok(());
        };
        let e = StoreError::Unfinished {
            path: self.frames.path().to_owned(),
            offset: frames.end,
            what: what.into(),
        };
        self.problem(e)
    }

    fn step(&mut self) -> Result<Option<DumpRecord>, StoreError> {
        loop {
            let record = match self.frames.next_record() {
                None => {
                    self.done = true;
                    self.at_end()?;
                    return Ok(None);
                }
                Some(record) => record?,
            };
            match decode_record(&record.data) {
                Ok(decoded) => {
                    if let Some(item) = self.accept(record.offset, decoded)? {
                        return Ok(Some(item));
                    }
                }
                Err(message) => {
                    let e = self.bad(
                        record.offset,
                        format!("a dump record (msgpack, {} bytes)", record.data.len()),
                        message,
                    );
                    self.problem(e)?;
                }
            }
        }
    }
}

impl<R: Read> Iterator for DumpReader<R> {
    type Item = Result<DumpRecord, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(item) => item.map(Ok),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Reads the dump or backup at `path`, calling `f(colony, epoch, seq, key, cell)` for
/// every cell, in file order. Returns the counts and what the readers found. On an
/// error, `f` has already seen the cells before it.
pub fn read_dump(
    path: impl AsRef<Path>,
    mode: ReadMode,
    mut f: impl FnMut(ColonyId, Epoch, Seq, Key, Cell),
) -> Result<DumpReport, StoreError> {
    let mut reader = DumpReader::open_path(path, mode)?;
    let mut current: Option<ColonyDump> = None;
    for record in reader.by_ref() {
        match record? {
            DumpRecord::Colony(h) => current = Some(h),
            DumpRecord::Cells { colony, cells } => {
                // The reader only delivers cells under their own colony's header.
                if let Some(h) = current.filter(|h| h.colony == colony) {
                    for (key, cell) in cells {
                        f(h.colony, h.epoch, h.seq, key, cell);
                    }
                }
            }
            DumpRecord::End { .. } => {}
        }
    }
    Ok(reader.report())
}

// The chunk limit must leave room for any cell the record limit allows.
const _: () = assert!(CHUNK_BYTES < MAX_RECORD_LEN as usize / 2);
