//! Mutation logs, for the logging node: a directory of append-only segments that record
//! the committed mutations of colonies, their compaction, and their replay into the
//! final live state.
//!
//! # Records
//!
//! Every data record of a log file is one [`LogRecord`], rmp-serde's compact encoding
//! like dumps; changing `LogRecord`, `Mutation`, `Cell` or anything inside them needs a
//! new format version.
//!
//! # Files
//!
//! A log directory holds, with `n` zero-padded to 10 digits:
//!
//! - `segment-<n>.colonylog`, [`FileKind::MutationLog`], appended by one [`LogWriter`].
//!   Once a segment holds `segment_bytes` the writer finishes it (footer, fsync) and
//!   starts segment `n + 1`, so only the highest segment can lack its footer.
//! - `compacted-<n>.colonylog`, [`FileKind::CompactedLog`], written atomically by
//!   [`compact`]: the live state of every file up to and including segment `n`, as
//!   [`LogRecord::Entries`] of puts grouped by colony, then one [`LogRecord::Positions`].
//!
//! Only the highest compacted file counts (the base). Older compacted files and the
//! segments the base covers are leftovers of a compaction interrupted between its
//! rename and its deletions: readers ignore them and the next compaction deletes them,
//! with its own stale temporary files. Other files in the directory are ignored.
//!
//! # Replay
//!
//! The base, then the segments after it in ascending order, record by record. Per
//! (colony, key) the highest version wins, whatever the order of the records (versions
//! of one colony are totally ordered; of two colonies they are not comparable, so the
//! same key in two colonies is two cells). A remove deletes. Part 0 of a snapshot drops
//! every cell and delete of its colony with a version up to its `at`; its parts then
//! add cells like puts. A cell is live unless its `expires_at` has passed.
//!
//! A `(colony, version)` names one mutation, so every record that carries the same
//! version of a cell carries the same cell. That is what lets [`replay`] hold only the
//! keys: a first pass keeps per (colony, key) the winning version, a second pass reads
//! the files again and emits each winner from the first record that carries it.
//!
//! # Crashes and concurrency
//!
//! [`LogWriter::open`] cuts a torn tail off the last segment and appends after it.
//! Corruption in the middle of a file is an error in [`ReadMode::Strict`] (the operator
//! repairs or removes the file); [`ReadMode::Salvage`] keeps the good records, and the
//! writer cuts whatever follows the last one.
//!
//! One writer per directory. [`compact`] may run while it writes: it stops at the first
//! segment without a footer, the one being written. One compaction at a time per
//! directory. [`replay`] may run alongside the writer (it reads what was there when it
//! started); alongside a compaction it can fail on a file that was deleted, and a retry
//! reads the new base.

use super::atomic::write_atomically;
use super::dump::{CHUNK_BYTES, CHUNK_CELLS};
use super::error::StoreError;
use super::frame::{FileKind, ReadMode, ReadReport, RecordReader, RecordWriter, TornTail};
use super::frame::{FOOTER_PAYLOAD_LEN, HEADER_LEN, RECORD_HEADER_LEN, TAG_FOOTER};
use crate::core::cell::{Cell, Dna, Key, Op};
use crate::core::messages::Mutation;
use crate::core::types::{ColonyId, Version};
use serde::{Deserialize, Serialize};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The segment writer's buffer: a busy logger writes in pieces this large.
const WRITE_BUFFER: usize = 256 * 1024;

/// One record of a mutation log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogRecord {
    /// Committed mutations of one colony, in seq order.
    Entries {
        colony: ColonyId,
        entries: Vec<Mutation>,
    },
    /// Part `part` of the whole state of `colony` at version `at`. Part 0 resets the
    /// colony: every cell of `colony` logged before with a version <= `at` that is not
    /// in the parts of this snapshot is gone. Later parts (same colony and `at`) add
    /// cells. Build them with [`snapshot_records`].
    Snapshot {
        colony: ColonyId,
        at: Version,
        part: u32,
        cells: Vec<(Key, Cell)>,
    },
    /// (Compacted files) how far each colony's history the file covers, so a logger
    /// that reopens the directory knows where it stands though deletes were dropped.
    Positions { colonies: Vec<(ColonyId, Version)> },
}

/// Per colony, the highest version logged: what a logger has, and so what it must ask
/// the primaries for.
pub type LogPositions = BTreeMap<ColonyId, Version>;

/// Pending compacted chunks are all written out once they hold about this many bytes
/// (so grouping by colony costs bounded memory).
const PENDING_BYTES: usize = 16 << 20;

const SEGMENT: &str = "segment-";
const COMPACTED: &str = "compacted-";
const EXTENSION: &str = ".colonylog";

/// The file name of segment `n`.
pub fn segment_name(n: u64) -> String {
    format!("{SEGMENT}{n:010}{EXTENSION}")
}

/// The file name of the compaction of everything up to segment `n`.
pub fn compacted_name(n: u64) -> String {
    format!("{COMPACTED}{n:010}{EXTENSION}")
}

/// The number in `name` if it is exactly `<prefix><n, 10 digits><extension>`.
fn number(name: &str, prefix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(EXTENSION)?;
    let n: u64 = digits.parse().ok()?;
    (format!("{n:010}") == digits).then_some(n)
}

/// One numbered file of a log directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFile {
    pub n: u64,
    pub path: PathBuf,
}

/// The files of a log directory (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogFiles {
    /// The highest compacted file.
    pub base: Option<LogFile>,
    /// The segments after the base, ascending.
    pub segments: Vec<LogFile>,
    /// Older compacted files, segments the base covers and temporary files of an
    /// interrupted compaction: to delete.
    pub leftovers: Vec<PathBuf>,
}

impl LogFiles {
    /// The number of the next new segment.
    pub fn next_segment(&self) -> u64 {
        let last = self.segments.last().or(self.base.as_ref());
        last.map_or(1, |f| f.n + 1)
    }

    /// What a replay of the directory reads, in order.
    fn inputs(&self) -> Vec<Input> {
        let base = self.base.iter().map(|f| Input::compacted(&f.path));
        let segments = self.segments.iter().map(|f| Input::segment(&f.path));
        base.chain(segments).collect()
    }
}

/// Lists the log files in `dir` (see the module docs).
pub fn log_files(dir: impl AsRef<Path>) -> Result<LogFiles, StoreError> {
    let dir = dir.as_ref();
    let listing = |source| StoreError::Io {
        path: dir.to_owned(),
        op: "listing the log directory".into(),
        source,
    };
    let mut segments = Vec::new();
    let mut compacted = Vec::new();
    let mut leftovers = Vec::new();
    for entry in fs::read_dir(dir).map_err(listing)? {
        let entry = entry.map_err(listing)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = number(name, SEGMENT) {
            segments.push(LogFile {
                n,
                path: entry.path(),
            });
        } else if let Some(n) = number(name, COMPACTED) {
            compacted.push(LogFile {
                n,
                path: entry.path(),
            });
        } else if name
            .split_once(".tmp-")
            .is_some_and(|(name, _)| number(name, COMPACTED).is_some())
        {
            leftovers.push(entry.path());
        }
    }
    segments.sort_by_key(|f| f.n);
    compacted.sort_by_key(|f| f.n);
    let base = compacted.pop();
    leftovers.extend(compacted.into_iter().map(|f| f.path));
    if let Some(base) = &base {
        let covered = segments.partition_point(|f| f.n <= base.n);
        leftovers.extend(segments.drain(..covered).map(|f| f.path));
    }
    leftovers.sort();
    Ok(LogFiles {
        base,
        segments,
        leftovers,
    })
}

fn io_err(path: &Path, op: impl Into<String>) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_owned();
    let op = op.into();
    move |source| StoreError::Io { path, op, source }
}

/// Names the file in a [`RecordWriter`] error.
fn named(path: &Path) -> impl FnOnce(StoreError) -> StoreError + '_ {
    move |e| match e {
        StoreError::Write { offset, source } => StoreError::Io {
            path: path.to_owned(),
            op: format!("writing at byte {offset}"),
            source,
        },
        other => other,
    }
}

fn file_len(path: &Path) -> Result<u64, StoreError> {
    fs::metadata(path)
        .map(|m| m.len())
        .map_err(io_err(path, "reading its size"))
}

/// Makes a file created in `dir` durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// The page size [`forget_cached`] rounds down to (4 KiB; a larger real page size only
/// makes the kernel keep a few more pages).
const CACHE_PAGE: u64 = 4096;

/// Tells the kernel that `len` bytes of `file` from `from` (`len` 0: to the end),
/// already fsynced, will not be read soon, so it can drop them from the page cache. The log is
/// read again only by compaction, restore or a restart; without this a logging node
/// would fill the host's memory with pages it never reads, and every append would
/// land on a page the kernel had to find (on a virtual machine, often one the
/// hypervisor had not backed yet: appending to a fresh file costs several times the
/// CPU of appending over recycled pages). Advice only: nothing to do if it fails.
fn forget_cached(file: &File, from: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let len = i64::try_from(len).unwrap_or(i64::MAX);
        let advice = PosixFadviseAdvice::POSIX_FADV_DONTNEED;
        if let Err(e) = posix_fadvise(file, from, len, advice) {
            tracing::debug!(error = %e, "posix_fadvise(DONTNEED) on a log segment failed");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, from, len);
}

fn encode(record: &LogRecord) -> Result<Vec<u8>, StoreError> {
    super::dump::encode_msgpack(record, "a log record")
}

fn decode(data: &[u8]) -> Result<LogRecord, String> {
    super::dump::decode_exact(data)
}

/// An upper bound of the encoded size of a cell and its key, for chunking: msgpack
/// takes at most 2 bytes per byte of a byte array and 5 per array header; 64 bytes
/// cover the rest (version, expiry, variant names).
fn max_encoded_len(key: &[u8], cell: &Cell) -> usize {
    let bytes = |b: &[u8]| 5 + 2 * b.len();
    let dna = match &cell.dna {
        Dna::Value(v) => bytes(v),
        Dna::Map(m) => 5 + m.iter().map(|(k, v)| bytes(k) + bytes(v)).sum::<usize>(),
        Dna::Moved(_) => 5,
    };
    bytes(key) + dna + 64
}

/// The snapshot of `colony` at version `at` as records for [`LogWriter::append`]: parts
/// 0, 1, ... of at most [`CHUNK_CELLS`] cells and about [`CHUNK_BYTES`] bytes each. An
/// empty snapshot is one empty part 0 (it still resets the colony).
pub fn snapshot_records(colony: ColonyId, at: Version, cells: Vec<(Key, Cell)>) -> Vec<LogRecord> {
    let mut records = Vec::new();
    let mut chunk = Vec::new();
    let mut bytes = 0;
    let push = |records: &mut Vec<LogRecord>, cells| {
        let part = records.len() as u32;
        records.push(LogRecord::Snapshot {
            colony,
            at,
            part,
            cells,
        });
    };
    for (key, cell) in cells {
        bytes += max_encoded_len(&key, &cell);
        chunk.push((key, cell));
        if chunk.len() >= CHUNK_CELLS || bytes >= CHUNK_BYTES {
            push(&mut records, std::mem::take(&mut chunk));
            bytes = 0;
        }
    }
    if !chunk.is_empty() || records.is_empty() {
        push(&mut records, chunk);
    }
    records
}

/// Raises the positions to what `record` logs.
fn note_positions(positions: &mut LogPositions, record: &LogRecord) {
    let mut note = |colony, version| {
        let p = positions.entry(colony).or_insert(version);
        *p = (*p).max(version);
    };
    match record {
        LogRecord::Entries { colony, entries } => {
            if let Some(top) = entries.iter().map(|m| m.version).max() {
                note(*colony, top);
            }
        }
        LogRecord::Snapshot { colony, at, .. } => note(*colony, *at),
        LogRecord::Positions { colonies } => colonies.iter().for_each(|(c, v)| note(*c, *v)),
    }
}

/// A file to read and the kind it must be (`None`: either kind of log).
struct Input {
    path: PathBuf,
    kind: Option<FileKind>,
}

impl Input {
    fn segment(path: &Path) -> Input {
        Input {
            path: path.to_owned(),
            kind: Some(FileKind::MutationLog),
        }
    }

    fn compacted(path: &Path) -> Input {
        Input {
            path: path.to_owned(),
            kind: Some(FileKind::CompactedLog),
        }
    }
}

/// Strict: the error. Salvage: a warning, and noted in `problems` if given.
fn problem(
    mode: ReadMode,
    problems: Option<&mut Vec<String>>,
    e: StoreError,
) -> Result<(), StoreError> {
    match mode {
        ReadMode::Strict => Err(e),
        ReadMode::Salvage => {
            tracing::warn!("salvaging log: {e}");
            if let Some(problems) = problems {
                problems.push(e.to_string());
            }
            Ok(())
        }
    }
}

/// Streams the records of one log file up to byte `limit`, giving each to `f`.
///
/// A segment that ends inside its header is read as empty (a torn tail at 0): a crash
/// cut it as its writer created it. A compacted file must have its footer (Strict).
fn read_log(
    input: &Input,
    mode: ReadMode,
    limit: u64,
    mut problems: Option<&mut Vec<String>>,
    mut f: impl FnMut(LogRecord) -> Result<(), StoreError>,
) -> Result<ReadReport, StoreError> {
    let path = &input.path;
    let file = File::open(path).map_err(io_err(path, "opening for reading"))?;
    let mut frames = match RecordReader::open(file.take(limit), path, mode) {
        Ok(frames) => frames,
        Err(StoreError::ShortHeader { len, .. }) if input.kind == Some(FileKind::MutationLog) => {
            if len > 0 {
                tracing::warn!(file = %path.display(), "torn header: ignoring the file's {len} bytes");
            }
            return Ok(ReadReport {
                torn_tail: (len > 0).then_some(TornTail { offset: 0, len }),
                header_checksum_ok: true,
                ..ReadReport::default()
            });
        }
        Err(e) => return Err(e),
    };
    let kind = frames.header().kind;
    let expected = match input.kind {
        Some(k) => k == kind,
        None => matches!(kind, FileKind::MutationLog | FileKind::CompactedLog),
    };
    if !expected {
        return Err(StoreError::WrongKind {
            path: path.clone(),
            expected: input
                .kind
                .map_or("a mutation log or compacted log file".into(), |k| {
                    format!("a {k} file")
                }),
            found: kind.name().into(),
        });
    }
    while let Some(record) = frames.next_record() {
        let record = record?;
        match decode(&record.data) {
            Ok(decoded) => f(decoded)?,
            Err(message) => {
                let e = StoreError::BadRecord {
                    path: path.clone(),
                    offset: record.offset,
                    expected: format!("a log record (msgpack, {} bytes)", record.data.len()),
                    found: message,
                };
                problem(mode, problems.as_deref_mut(), e)?;
            }
        }
    }
    let report = frames.report().clone();
    if kind == FileKind::CompactedLog && !report.finished() {
        let e = StoreError::Unfinished {
            path: path.clone(),
            offset: report.end,
            what: "the file footer".into(),
        };
        problem(mode, problems, e)?;
    }
    Ok(report)
}

/// What a file's read found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReport {
    pub path: PathBuf,
    /// The frame reader's report: footer, torn tail, ranges skipped by Salvage.
    pub frames: ReadReport,
}

/// What [`replay`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// The files read, in order.
    pub files: Vec<FileReport>,
    /// Log records read.
    pub records: u64,
    /// Mutations in `Entries` records.
    pub entries: u64,
    /// Cells in `Snapshot` records.
    pub snapshot_cells: u64,
    /// Live cells emitted.
    pub cells: u64,
    /// Cells skipped because they expired.
    pub expired: u64,
    /// Keys whose last word is a delete.
    pub deleted: u64,
    /// Live cells the second pass did not find again: a file changed in between (0
    /// unless something rewrote a file in place).
    pub missing: u64,
    /// Salvage: records that did not decode, and a compacted file without its footer.
    pub problems: Vec<String>,
    /// Per colony, the highest version logged.
    pub positions: LogPositions,
}

impl ReplayReport {
    /// Nothing torn, skipped, undecodable or missing (an unfinished segment is fine).
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
            && self.missing == 0
            && self.files.iter().all(|f| {
                f.frames.torn_tail.is_none()
                    && f.frames.skipped.is_empty()
                    && f.frames.header_checksum_ok
            })
    }
}

/// The first pass's verdict on one (colony, key).
struct Slot {
    version: Version,
    live: bool,
    expires_at: Option<u64>,
}

/// Per colony and key, the winning version; then the cells still to emit.
#[derive(Default)]
struct Index {
    colonies: BTreeMap<ColonyId, HashMap<Key, Slot>>,
}

impl Index {
    fn offer(cells: &mut HashMap<Key, Slot>, key: Key, slot: Slot) {
        match cells.entry(key) {
            Entry::Occupied(mut e) => {
                if slot.version > e.get().version {
                    e.insert(slot);
                }
            }
            Entry::Vacant(e) => {
                e.insert(slot);
            }
        }
    }

    /// Pass 1: takes the record's verdicts.
    fn apply(&mut self, record: LogRecord, report: &mut ReplayReport) {
        note_positions(&mut report.positions, &record);
        report.records += 1;
        match record {
            LogRecord::Entries { colony, entries } => {
                report.entries += entries.len() as u64;
                let cells = self.colonies.entry(colony).or_default();
                for m in entries {
                    let (key, live, expires_at) = match m.op {
                        Op::Put { key, cell } => (key, true, cell.expires_at),
                        Op::Remove { key, .. } => (key, false, None),
                    };
                    let slot = Slot {
                        version: m.version,
                        live,
                        expires_at,
                    };
                    Index::offer(cells, key, slot);
                }
            }
            LogRecord::Snapshot {
                colony,
                at,
                part,
                cells: parts,
            } => {
                report.snapshot_cells += parts.len() as u64;
                let cells = self.colonies.entry(colony).or_default();
                if part == 0 {
                    cells.retain(|_, slot| slot.version > at);
                }
                for (key, cell) in parts {
                    let slot = Slot {
                        version: cell.version,
                        live: true,
                        expires_at: cell.expires_at,
                    };
                    Index::offer(cells, key, slot);
                }
            }
            LogRecord::Positions { .. } => {}
        }
    }

    /// After pass 1: drops the deleted and the expired, leaving the cells to emit.
    fn settle(&mut self, now_ms: u64, report: &mut ReplayReport) {
        for cells in self.colonies.values_mut() {
            cells.retain(|_, slot| {
                if !slot.live {
                    report.deleted += 1;
                } else if slot.expires_at.is_some_and(|t| t <= now_ms) {
                    report.expired += 1;
                } else {
                    return true;
                }
                false
            });
        }
    }

    /// Pass 2: emits the record's cells that won, each once; returns how many.
    fn emit(
        &mut self,
        record: LogRecord,
        emit: &mut impl FnMut(ColonyId, Version, Key, Cell) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let mut emitted = 0;
        let mut offer = |colony, version, key: Key, cell| {
            let Some(cells) = self.colonies.get_mut(&colony) else {
                return Ok(());
            };
            if cells.get(&key).is_some_and(|slot| slot.version == version) {
                cells.remove(&key);
                emitted += 1;
                emit(colony, version, key, cell)?;
            }
            Ok::<_, StoreError>(())
        };
        match record {
            LogRecord::Entries { colony, entries } => {
                for m in entries {
                    if let Op::Put { key, cell } = m.op {
                        offer(colony, m.version, key, cell)?;
                    }
                }
            }
            LogRecord::Snapshot { colony, cells, .. } => {
                for (key, cell) in cells {
                    offer(colony, cell.version, key, cell)?;
                }
            }
            LogRecord::Positions { .. } => {}
        }
        Ok(emitted)
    }
}

/// A replay between its passes.
struct Replay {
    inputs: Vec<Input>,
    mode: ReadMode,
    index: Index,
    report: ReplayReport,
}

impl Replay {
    /// Pass 1: reads every input, keeping per (colony, key) the winning version.
    fn first_pass(inputs: Vec<Input>, mode: ReadMode, now_ms: u64) -> Result<Replay, StoreError> {
        let mut index = Index::default();
        let mut report = ReplayReport::default();
        for input in &inputs {
            let mut problems = Vec::new();
            let frames = read_log(input, mode, u64::MAX, Some(&mut problems), |record| {
                index.apply(record, &mut report);
                Ok(())
            })?;
            report.problems.append(&mut problems);
            report.files.push(FileReport {
                path: input.path.clone(),
                frames,
            });
        }
        index.settle(now_ms, &mut report);
        Ok(Replay {
            inputs,
            mode,
            index,
            report,
        })
    }

    /// Pass 2: reads the inputs again, as far as pass 1 read them, and emits every live
    /// cell once, in file order.
    fn second_pass(
        mut self,
        mut emit: impl FnMut(ColonyId, Version, Key, Cell) -> Result<(), StoreError>,
    ) -> Result<ReplayReport, StoreError> {
        for (input, file) in self.inputs.iter().zip(&self.report.files) {
            read_log(input, self.mode, file.frames.end, None, |record| {
                self.report.cells += self.index.emit(record, &mut emit)?;
                Ok(())
            })?;
        }
        self.report.missing = self.index.colonies.values().map(|c| c.len() as u64).sum();
        if self.report.missing > 0 {
            tracing::warn!(
                "replay: {} live cells of the first pass were not found by the second (a file changed in between?)",
                self.report.missing
            );
        }
        Ok(self.report)
    }
}

/// Replays a log directory, or one log file (a segment or a compacted file), calling
/// `f(colony, key, cell)` once per live cell of the final state (see the module docs).
///
/// Memory is bounded by the number of keys, not by the values: the files are read
/// twice. On an error, `f` may have seen some cells already.
pub fn replay(
    path: impl AsRef<Path>,
    mode: ReadMode,
    now_ms: u64,
    mut f: impl FnMut(ColonyId, Key, Cell),
) -> Result<ReplayReport, StoreError> {
    let path = path.as_ref();
    let meta = fs::metadata(path).map_err(io_err(path, "reading its metadata"))?;
    let inputs = if meta.is_dir() {
        log_files(path)?.inputs()
    } else {
        vec![Input {
            path: path.to_owned(),
            kind: None,
        }]
    };
    Replay::first_pass(inputs, mode, now_ms)?.second_pass(|colony, _, key, cell| {
        f(colony, key, cell);
        Ok(())
    })
}

/// Whether the file ends with a valid footer record: its writer finished it and will
/// never touch it again. Reads only the last bytes; the full read confirms it.
fn ends_with_footer(path: &Path) -> Result<bool, StoreError> {
    const LEN: usize = RECORD_HEADER_LEN + FOOTER_PAYLOAD_LEN as usize;
    let mut file = File::open(path).map_err(io_err(path, "opening for reading"))?;
    if file_len(path)? < (HEADER_LEN + LEN) as u64 {
        return Ok(false);
    }
    let mut b = [0u8; LEN];
    file.seek(SeekFrom::End(-(LEN as i64)))
        .and_then(|_| file.read_exact(&mut b))
        .map_err(io_err(path, "reading its last bytes"))?;
    let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let crc = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    Ok(len == FOOTER_PAYLOAD_LEN
        && b[RECORD_HEADER_LEN] == TAG_FOOTER
        && crc32c::crc32c(&b[RECORD_HEADER_LEN..]) == crc)
}

/// The compacted state's puts, collected per colony into chunks like a dump's.
#[derive(Default)]
struct Chunks {
    pending: BTreeMap<ColonyId, (Vec<Mutation>, usize)>,
    bytes: usize,
}

impl Chunks {
    fn add<W: Write>(
        &mut self,
        w: &mut RecordWriter<W>,
        colony: ColonyId,
        version: Version,
        key: Key,
        cell: Cell,
    ) -> Result<(), StoreError> {
        // The mutation's version and variant name on top of the cell's bound.
        let len = max_encoded_len(&key, &cell) + 32;
        let (entries, bytes) = self.pending.entry(colony).or_default();
        entries.push(Mutation {
            version,
            op: Op::Put { key, cell },
        });
        *bytes += len;
        self.bytes += len;
        if entries.len() >= CHUNK_CELLS || *bytes >= CHUNK_BYTES {
            if let Some((entries, bytes)) = self.pending.remove(&colony) {
                self.bytes -= bytes;
                Chunks::write(w, colony, entries)?;
            }
        } else if self.bytes >= PENDING_BYTES {
            self.flush(w)?;
        }
        Ok(())
    }

    fn flush<W: Write>(&mut self, w: &mut RecordWriter<W>) -> Result<(), StoreError> {
        self.bytes = 0;
        for (colony, (entries, _)) in std::mem::take(&mut self.pending) {
            Chunks::write(w, colony, entries)?;
        }
        Ok(())
    }

    fn write<W: Write>(
        w: &mut RecordWriter<W>,
        colony: ColonyId,
        entries: Vec<Mutation>,
    ) -> Result<(), StoreError> {
        w.append(&encode(&LogRecord::Entries { colony, entries })?)?;
        Ok(())
    }
}

/// What [`compact`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// The files compacted (the old base first), now deleted.
    pub inputs: Vec<PathBuf>,
    pub input_bytes: u64,
    /// The compacted file written; `None` when no finished segment was there to compact.
    pub output: Option<PathBuf>,
    pub output_bytes: u64,
    /// Leftovers of an interrupted compaction, deleted.
    pub leftovers: Vec<PathBuf>,
    /// The replay of the inputs: `cells` were kept, `expired` and `deleted` dropped.
    pub replay: ReplayReport,
}

impl CompactReport {
    /// Mutations and snapshot cells of the inputs that did not survive.
    pub fn dropped(&self) -> u64 {
        (self.replay.entries + self.replay.snapshot_cells).saturating_sub(self.replay.cells)
    }
}

fn remove_files(paths: &[PathBuf]) -> Result<(), StoreError> {
    for path in paths {
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err(path, "deleting")(e));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Compacts the log directory `dir`: the base and every finished segment after it (up to
/// the first segment without a footer, which a running writer owns) become
/// `compacted-<n>.colonylog` for the last of them, holding the state a replay of them
/// gives, and are deleted. Leftovers of an interrupted compaction are deleted too.
///
/// With no finished segment after the base, nothing is written (`output` is `None`).
/// On an error nothing is deleted and a previous base stays in force.
pub fn compact(
    dir: impl AsRef<Path>,
    mode: ReadMode,
    now_ms: u64,
) -> Result<CompactReport, StoreError> {
    let dir = dir.as_ref();
    let files = log_files(dir)?;
    let mut inputs: Vec<Input> = files
        .base
        .iter()
        .map(|f| Input::compacted(&f.path))
        .collect();
    let mut last = None;
    for segment in &files.segments {
        if !ends_with_footer(&segment.path)? {
            break;
        }
        inputs.push(Input::segment(&segment.path));
        last = Some(segment.n);
    }
    let mut report = CompactReport::default();
    let Some(last) = last else {
        remove_files(&files.leftovers)?;
        report.leftovers = files.leftovers;
        return Ok(report);
    };
    for input in &inputs {
        report.input_bytes += file_len(&input.path)?;
    }
    let replay = Replay::first_pass(inputs, mode, now_ms)?;
    for (input, file) in replay.inputs.iter().zip(&replay.report.files) {
        if input.kind == Some(FileKind::MutationLog) && !file.frames.finished() {
            return Err(StoreError::Unfinished {
                path: file.path.clone(),
                offset: file.frames.end,
                what: "the file footer (a finished segment must end with it)".into(),
            });
        }
    }
    let out = dir.join(compacted_name(last));
    let inputs: Vec<PathBuf> = replay.inputs.iter().map(|i| i.path.clone()).collect();
    let positions = replay.report.positions.clone();
    report.replay = write_atomically(&out, |w| {
        let mut frames = RecordWriter::new(w, FileKind::CompactedLog, now_ms)?;
        let mut chunks = Chunks::default();
        let replay = replay.second_pass(|colony, version, key, cell| {
            chunks.add(&mut frames, colony, version, key, cell)
        })?;
        if replay.missing > 0 {
            return Err(StoreError::Changed {
                path: dir.to_owned(),
                what: format!(
                    "{} live cells of the first pass were not found by the second",
                    replay.missing
                ),
            });
        }
        chunks.flush(&mut frames)?;
        let colonies = positions.into_iter().collect();
        frames.append(&encode(&LogRecord::Positions { colonies })?)?;
        frames.finish()?;
        Ok(replay)
    })?;
    report.output_bytes = file_len(&out)?;
    report.output = Some(out);
    // The new base covers the inputs and the leftovers.
    remove_files(&inputs)?;
    remove_files(&files.leftovers)?;
    report.inputs = inputs;
    report.leftovers = files.leftovers;
    Ok(report)
}

fn rotation_failed() -> StoreError {
    StoreError::Misuse {
        writer: "LogWriter",
        message: "an earlier segment rotation failed; open the log again".into(),
    }
}

/// Appends [`LogRecord`]s to the segments of a log directory (see the module docs).
///
/// After a failed write or rotation the writer refuses further writes: open it again
/// (that cuts what the failure left at the end of the segment).
pub struct LogWriter {
    dir: PathBuf,
    segment_bytes: u64,
    now_ms: u64,
    n: u64,
    path: PathBuf,
    w: Option<RecordWriter<BufWriter<File>>>,
    written: u64,
    /// How much of the current segment was already dropped from the page cache.
    forgotten: u64,
}

impl LogWriter {
    /// Opens the log directory `dir` for appending, creating it if missing.
    ///
    /// Reads every file (the base, then the segments after it) for the positions. If the
    /// last segment has no footer, cuts what follows its last good record (a torn tail;
    /// in Salvage mode also corrupt bytes) and appends to it; otherwise starts the next
    /// segment. Strict: corruption in the middle of a file is an error naming it.
    /// Segments are finished once they hold `segment_bytes`; `now_ms` stamps the
    /// headers of new segments (see [`set_now`](LogWriter::set_now)).
    pub fn open(
        dir: impl AsRef<Path>,
        mode: ReadMode,
        segment_bytes: u64,
        now_ms: u64,
    ) -> Result<(LogWriter, LogPositions), StoreError> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(io_err(dir, "creating the log directory"))?;
        let files = log_files(dir)?;
        let mut positions = LogPositions::new();
        let mut note = |record: LogRecord| {
            note_positions(&mut positions, &record);
            Ok(())
        };
        let inputs = files.inputs();
        let last = files.segments.last();
        let earlier = &inputs[..inputs.len() - usize::from(last.is_some())];
        for input in earlier {
            read_log(input, mode, u64::MAX, None, &mut note)?;
        }
        let mut me = LogWriter {
            dir: dir.to_owned(),
            segment_bytes,
            now_ms,
            n: 0,
            path: PathBuf::new(),
            w: None,
            written: 0,
            forgotten: 0,
        };
        let Some(last) = last else {
            me.start(files.next_segment())?;
            return Ok((me, positions));
        };
        let frames = read_log(&Input::segment(&last.path), mode, u64::MAX, None, &mut note)?;
        if frames.finished() {
            me.start(files.next_segment())?;
        } else if frames.end < HEADER_LEN as u64 {
            me.start(last.n)?;
        } else {
            me.resume(last, &frames)?;
        }
        Ok((me, positions))
    }

    /// Creates segment `n` (over a file whose header was torn) and makes it current.
    fn start(&mut self, n: u64) -> Result<(), StoreError> {
        let path = self.dir.join(segment_name(n));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io_err(&path, "creating a log segment"))?;
        let mut w = RecordWriter::new(
            BufWriter::with_capacity(WRITE_BUFFER, file),
            FileKind::MutationLog,
            self.now_ms,
        )
        .map_err(named(&path))?;
        // Readers of the directory then never see a segment without its header, unless
        // a crash cut it.
        w.flush().map_err(named(&path))?;
        sync_dir(&self.dir).map_err(io_err(&self.dir, "fsync of the log directory"))?;
        self.n = n;
        self.path = path;
        self.w = Some(w);
        self.forgotten = 0;
        Ok(())
    }

    /// Appends to an unfinished segment after its last good record (cutting the rest).
    fn resume(&mut self, segment: &LogFile, frames: &ReadReport) -> Result<(), StoreError> {
        let path = &segment.path;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io_err(path, "opening for appending"))?;
        let len = file
            .metadata()
            .map_err(io_err(path, "reading its size"))?
            .len();
        if len > frames.end {
            // The reader warned about the torn tail or the corruption it skipped.
            file.set_len(frames.end)
                .and_then(|()| file.sync_all())
                .map_err(io_err(path, format!("cutting it to {} bytes", frames.end)))?;
        }
        self.n = segment.n;
        self.path = path.clone();
        self.forgotten = 0;
        self.w = Some(RecordWriter::resume(
            BufWriter::with_capacity(WRITE_BUFFER, file),
            frames.end,
            frames.records,
        ));
        Ok(())
    }

    fn current(&mut self) -> Result<&mut RecordWriter<BufWriter<File>>, StoreError> {
        self.w.as_mut().ok_or_else(rotation_failed)
    }

    /// Appends one record; returns its size in bytes. Finishes the segment and starts the
    /// next once it holds `segment_bytes`. A record must fit in
    /// [`MAX_DATA_LEN`](super::MAX_DATA_LEN) bytes: split snapshots with
    /// [`snapshot_records`].
    pub fn append(&mut self, record: &LogRecord) -> Result<u64, StoreError> {
        let data = encode(record)?;
        let segment_bytes = self.segment_bytes;
        let path = self.path.clone();
        let w = self.current()?;
        let at = w.append(&data).map_err(named(&path))?;
        let bytes = w.offset() - at;
        let full = w.offset() >= segment_bytes;
        self.written += bytes;
        if full {
            self.finish_segment()?;
            self.start(self.n + 1)?;
        }
        Ok(bytes)
    }

    /// Flushes and fsyncs what was appended.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let forgotten = self.forgotten;
        let w = self.current()?;
        w.flush().map_err(named(&path))?;
        let file = w.get_ref().get_ref();
        file.sync_data().map_err(io_err(&path, "fsync"))?;
        // Whole pages only: dropping the partly written last page would make the next
        // append read it back from the disk.
        let whole_pages = w.offset() & !(CACHE_PAGE - 1);
        if whole_pages > forgotten {
            forget_cached(file, forgotten, whole_pages - forgotten);
            self.forgotten = whole_pages;
        }
        Ok(())
    }

    /// The wall-clock time to stamp on the headers of segments started from now on.
    pub fn set_now(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// Record bytes appended since open.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// The number of the segment being written.
    pub fn segment(&self) -> u64 {
        self.n
    }

    /// The path of the segment being written.
    pub fn segment_path(&self) -> &Path {
        &self.path
    }

    fn finish_segment(&mut self) -> Result<(), StoreError> {
        let w = self.w.take().ok_or_else(rotation_failed)?;
        let w = w.finish().map_err(named(&self.path))?;
        let file = w.get_ref();
        file.sync_data().map_err(io_err(&self.path, "fsync"))?;
        forget_cached(file, self.forgotten, 0);
        Ok(())
    }

    /// Finishes the current segment (footer, fsync).
    pub fn close(mut self) -> Result<(), StoreError> {
        self.finish_segment()
    }
}
