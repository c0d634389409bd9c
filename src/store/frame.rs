//! The container format every store file shares: a checksummed header, checksummed
//! length-prefixed records, and a footer that marks the file finished. Writing
//! ([`RecordWriter`]), streaming reads with torn-tail and corruption handling
//! ([`RecordReader`]), and cutting a torn tail off a file ([`truncate_torn_tail`]).
//! The byte layout and the rules are described in the [module docs](super).

use super::error::StoreError;
use super::window::Window;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The first bytes of every store file.
pub const MAGIC: &[u8; 7] = b"COLONY\0";
/// The format version this build writes. Version 2 encoded keys and values as msgpack
/// `bin` (serde_bytes) instead of arrays of integers. Version 3 is the first written
/// while keys are placed in colonies by hash slot (CRC16, as Redis Cluster); the bytes
/// are as in version 2, but a file of an older version groups its cells by the old
/// FNV-1a placement, so loading it would put keys in colonies that never serve them.
/// Version 4 writes a hash cell's fields and values as `bin` too (version 3 wrote them
/// as arrays of integers, which this build still reads); a build that reads only
/// version 3 refuses a version 4 file at its header instead of failing at its first
/// hash cell.
pub const FORMAT_VERSION: u16 = 4;
/// The oldest format version this build reads (see [`FORMAT_VERSION`]).
pub const OLDEST_READABLE_VERSION: u16 = 3;
/// Header: magic (7), version (2), kind (1), created_at_ms (8), crc32c (4).
pub const HEADER_LEN: usize = 22;
/// Record header: length (4), crc32c of the payload (4).
pub const RECORD_HEADER_LEN: usize = 8;
/// The largest record payload (tag byte included). A length field above this is
/// corruption, never an allocation.
pub const MAX_RECORD_LEN: u32 = 64 << 20;
/// The largest data record the writer accepts (the payload minus its tag byte).
pub const MAX_DATA_LEN: usize = MAX_RECORD_LEN as usize - 1;
/// First payload byte of a data record.
pub const TAG_DATA: u8 = 0x00;
/// First payload byte of the footer.
pub const TAG_FOOTER: u8 = 0xff;
/// The footer's payload: the tag and the number of data records (u64 LE).
pub const FOOTER_PAYLOAD_LEN: u32 = 9;

const VERSION_AT: usize = 7;
const KIND_AT: usize = 9;
const CREATED_AT: usize = 10;
const HEADER_CRC_AT: usize = 18;

/// What a file holds (header byte 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A snapshot of colonies, e.g. written at shutdown.
    Dump = 1,
    /// A backup (same contents as a dump).
    Backup = 2,
    /// An append-only log of mutations.
    MutationLog = 3,
    /// A mutation log with superseded entries removed.
    CompactedLog = 4,
    /// A storage node's cells of one colony replica (`(key, cell)` records).
    ValueLog = 5,
}

impl FileKind {
    /// The kind for a header byte, if it is one.
    pub fn from_byte(b: u8) -> Option<FileKind> {
        match b {
            1 => Some(FileKind::Dump),
            2 => Some(FileKind::Backup),
            3 => Some(FileKind::MutationLog),
            4 => Some(FileKind::CompactedLog),
            5 => Some(FileKind::ValueLog),
            _ => None,
        }
    }

    /// The header byte.
    pub fn as_byte(self) -> u8 {
        self as u8
    }

    pub fn name(self) -> &'static str {
        match self {
            FileKind::Dump => "dump",
            FileKind::Backup => "backup",
            FileKind::MutationLog => "mutation log",
            FileKind::CompactedLog => "compacted log",
            FileKind::ValueLog => "value log",
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The decoded file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub kind: FileKind,
    /// Wall-clock milliseconds since the Unix epoch, as given by the writer's caller.
    pub created_at_ms: u64,
}

impl Header {
    /// A header of the current format version.
    pub fn new(kind: FileKind, created_at_ms: u64) -> Header {
        Header {
            version: FORMAT_VERSION,
            kind,
            created_at_ms,
        }
    }

    /// The header's bytes, checksum included.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..VERSION_AT].copy_from_slice(MAGIC);
        b[VERSION_AT..KIND_AT].copy_from_slice(&self.version.to_le_bytes());
        b[KIND_AT] = self.kind.as_byte();
        b[CREATED_AT..HEADER_CRC_AT].copy_from_slice(&self.created_at_ms.to_le_bytes());
        let crc = crc32c::crc32c(&b[..HEADER_CRC_AT]);
        b[HEADER_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
        b
    }
}

/// Parses a complete header. Magic and version come first: they sit at the same place
/// in every version, the rest may not. Returns whether the checksum matched (a mismatch
/// is an error in Strict mode only).
fn parse_header(b: &[u8], path: &Path, mode: ReadMode) -> Result<(Header, bool), StoreError> {
    if b.len() < HEADER_LEN {
        return Err(StoreError::ShortHeader {
            path: path.to_owned(),
            len: b.len() as u64,
            expected: HEADER_LEN,
        });
    }
    if &b[..VERSION_AT] != MAGIC {
        return Err(StoreError::BadMagic {
            path: path.to_owned(),
            expected: MAGIC,
            found: b[..VERSION_AT].to_vec(),
        });
    }
    let version = u16::from_le_bytes([b[VERSION_AT], b[VERSION_AT + 1]]);
    if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(StoreError::UnsupportedVersion {
            path: path.to_owned(),
            offset: VERSION_AT as u64,
            oldest: OLDEST_READABLE_VERSION,
            newest: FORMAT_VERSION,
            found: version,
        });
    }
    let expected = le_u32(&b[HEADER_CRC_AT..]);
    let found = crc32c::crc32c(&b[..HEADER_CRC_AT]);
    if expected != found && mode == ReadMode::Strict {
        return Err(StoreError::HeaderChecksum {
            path: path.to_owned(),
            offset: HEADER_CRC_AT as u64,
            expected,
            found,
        });
    }
    let kind = FileKind::from_byte(b[KIND_AT]).ok_or_else(|| StoreError::UnknownKind {
        path: path.to_owned(),
        offset: KIND_AT as u64,
        found: b[KIND_AT],
    })?;
    let mut created = [0u8; 8];
    created.copy_from_slice(&b[CREATED_AT..HEADER_CRC_AT]);
    let header = Header {
        version,
        kind,
        created_at_ms: u64::from_le_bytes(created),
    };
    Ok((header, expected == found))
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn record_header(len: u32, crc: u32) -> [u8; RECORD_HEADER_LEN] {
    let mut h = [0u8; RECORD_HEADER_LEN];
    h[..4].copy_from_slice(&len.to_le_bytes());
    h[4..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Reads the data record of `total` bytes (record header included) that starts at
/// byte `at` of `file`, as [`RecordWriter::append`] wrote it: checks its length, CRC
/// and tag, and returns its data. For files read by position (a storage node's value
/// logs) rather than streamed.
pub fn read_record_at(
    file: &File,
    path: &Path,
    at: u64,
    total: u32,
) -> Result<Vec<u8>, StoreError> {
    use std::os::unix::fs::FileExt;
    let corrupt = |expected: String, found: String| StoreError::Corrupt {
        path: path.to_owned(),
        offset: at,
        expected,
        found,
    };
    let size = total as usize;
    if size <= RECORD_HEADER_LEN || total - RECORD_HEADER_LEN as u32 > MAX_RECORD_LEN {
        return Err(corrupt("a record place".into(), format!("length {size}")));
    }
    let mut buf = vec![0u8; size];
    file.read_exact_at(&mut buf, at)
        .map_err(|source| StoreError::Io {
            path: path.to_owned(),
            op: format!("reading at byte {at}"),
            source,
        })?;
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let payload = &buf[RECORD_HEADER_LEN..];
    if len != payload.len() {
        return Err(corrupt(
            format!("a record of {} bytes", payload.len()),
            format!("length {len}"),
        ));
    }
    if crc32c::crc32c(payload) != crc {
        return Err(corrupt("a matching checksum".into(), "a mismatch".into()));
    }
    if payload[0] != TAG_DATA {
        return Err(corrupt(
            "a data record".into(),
            format!("tag {:#x}", payload[0]),
        ));
    }
    buf.drain(..=RECORD_HEADER_LEN);
    Ok(buf)
}

/// Writes a store file: the header at creation, then records, then the footer.
///
/// Writes go straight to `W`: give it a `BufWriter`. After a failed write the writer
/// refuses further writes (the file would have a hole in it).
pub struct RecordWriter<W: Write> {
    w: W,
    offset: u64,
    records: u64,
    failed: bool,
}

impl<W: Write> RecordWriter<W> {
    /// Starts a new file: writes the header.
    pub fn new(w: W, kind: FileKind, created_at_ms: u64) -> Result<Self, StoreError> {
        let mut me = RecordWriter {
            w,
            offset: 0,
            records: 0,
            failed: false,
        };
        me.put(&[&Header::new(kind, created_at_ms).encode()])?;
        Ok(me)
    }

    /// Continues an unfinished file (no footer) whose `records` data records end at
    /// `offset`; `w` must be positioned there (see [`truncate_torn_tail`] and
    /// [`ReadReport::end`]).
    pub fn resume(w: W, offset: u64, records: u64) -> Self {
        RecordWriter {
            w,
            offset,
            records,
            failed: false,
        }
    }

    fn put(&mut self, parts: &[&[u8]]) -> Result<(), StoreError> {
        if self.failed {
            return Err(StoreError::Misuse {
                writer: "RecordWriter",
                message: "an earlier write failed, so the file has a hole; start a new file".into(),
            });
        }
        for part in parts {
            if let Err(source) = self.w.write_all(part) {
                self.failed = true;
                return Err(StoreError::Write {
                    offset: self.offset,
                    source,
                });
            }
            self.offset += part.len() as u64;
        }
        Ok(())
    }

    /// Appends one data record; returns its offset in the file.
    pub fn append(&mut self, data: &[u8]) -> Result<u64, StoreError> {
        if data.len() > MAX_DATA_LEN {
            return Err(StoreError::RecordTooLarge {
                len: data.len() as u64,
                max: MAX_DATA_LEN as u64,
            });
        }
        let at = self.offset;
        // `data.len() <= MAX_DATA_LEN < u32::MAX`, so the cast is exact.
        let len = data.len() as u32 + 1;
        let crc = crc32c::crc32c_append(crc32c::crc32c(&[TAG_DATA]), data);
        self.put(&[&record_header(len, crc), &[TAG_DATA], data])?;
        self.records += 1;
        Ok(at)
    }

    /// Data records written so far (including those before a `resume`).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bytes written so far: the offset of the next record.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Flushes `W` (no fsync: that is the owner of the file's job).
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.w.flush().map_err(|source| StoreError::Write {
            offset: self.offset,
            source,
        })
    }

    pub fn get_ref(&self) -> &W {
        &self.w
    }

    /// The underlying writer. Writing to it directly breaks the file.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.w
    }

    /// Writes the footer (the file is now finished), flushes, and returns `W`.
    pub fn finish(mut self) -> Result<W, StoreError> {
        let mut payload = [0u8; FOOTER_PAYLOAD_LEN as usize];
        payload[0] = TAG_FOOTER;
        payload[1..].copy_from_slice(&self.records.to_le_bytes());
        let head = record_header(FOOTER_PAYLOAD_LEN, crc32c::crc32c(&payload));
        self.put(&[&head, &payload])?;
        self.flush()?;
        Ok(self.w)
    }
}

/// How a reader treats corruption in the middle of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// Any corruption followed by a valid record is an error.
    Strict,
    /// Skip corrupt regions, resynchronising on the next valid record, and report them.
    Salvage,
}

/// A last record cut short by a crash: everything from `offset` on is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Where the torn record starts: the end of the last good record.
    pub offset: u64,
    /// How many bytes from there to the end of the file were ignored.
    pub len: u64,
}

/// What a reader found, complete once its iteration has ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// Data records returned.
    pub records: u64,
    /// The record count the footer states, if the footer was found (the file is
    /// finished).
    pub footer: Option<u64>,
    /// A torn last record (not an error in either mode).
    pub torn_tail: Option<TornTail>,
    /// Salvage mode: byte ranges skipped as corrupt.
    pub skipped: Vec<Range<u64>>,
    /// False if the header checksum did not match (tolerated in Salvage mode only).
    pub header_checksum_ok: bool,
    /// The offset just past the last good record (data or footer), or past the header.
    pub end: u64,
}

impl ReadReport {
    /// Whether the file has its footer (its writer finished it).
    pub fn finished(&self) -> bool {
        self.footer.is_some()
    }

    /// Finished, and nothing torn, skipped or mismatched.
    pub fn is_clean(&self) -> bool {
        self.footer == Some(self.records)
            && self.torn_tail.is_none()
            && self.skipped.is_empty()
            && self.header_checksum_ok
    }
}

/// One data record and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// File offset of the record header.
    pub offset: u64,
    /// The data as given to [`RecordWriter::append`].
    pub data: Vec<u8>,
}

/// A record that fails its checks at `offset`.
struct Defect {
    offset: u64,
    /// Nothing after it could be another record's start by position alone: the file ends
    /// inside it or right after it.
    tail_shaped: bool,
    expected: String,
    found: String,
}

enum Step {
    Data(Record),
    Footer { offset: u64, count: u64 },
    End,
    Defect(Defect),
}

/// Streams the data records of a store file (an iterator of `Result<Vec<u8>, _>`);
/// [`report`](RecordReader::report) tells what it found.
///
/// Memory is bounded by the largest record, whatever the file's size or contents.
/// After an error the iteration ends.
pub struct RecordReader<R> {
    win: Window<R>,
    path: PathBuf,
    mode: ReadMode,
    header: Header,
    report: ReadReport,
    done: bool,
}

impl RecordReader<File> {
    /// Opens the file at `path` (reads are chunked: no `BufReader` needed).
    pub fn open_path(path: impl AsRef<Path>, mode: ReadMode) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| StoreError::Io {
            path: path.to_owned(),
            op: "opening for reading".into(),
            source,
        })?;
        RecordReader::open(file, path, mode)
    }
}

impl<R: Read> RecordReader<R> {
    /// Reads and checks the header. `path` is used in messages only.
    pub fn open(r: R, path: impl Into<PathBuf>, mode: ReadMode) -> Result<Self, StoreError> {
        let path = path.into();
        let mut win = Window::new(r, 0);
        let n = win.fill(HEADER_LEN).map_err(|source| StoreError::Io {
            path: path.clone(),
            op: "reading the header".into(),
            source,
        })?;
        let b = &win.bytes()[..n.min(HEADER_LEN)];
        let m = b.len().min(MAGIC.len());
        if b[..m] != MAGIC[..m] {
            return Err(StoreError::BadMagic {
                path,
                expected: MAGIC,
                found: b[..m].to_vec(),
            });
        }
        let (header, crc_ok) = parse_header(b, &path, mode)?;
        if !crc_ok {
            tracing::warn!(
                file = %path.display(),
                "header checksum mismatch; salvaging with version {} and kind {}",
                header.version,
                header.kind
            );
        }
        win.consume(HEADER_LEN);
        Ok(RecordReader {
            win,
            path,
            mode,
            header,
            report: ReadReport {
                header_checksum_ok: crc_ok,
                end: HEADER_LEN as u64,
                ..ReadReport::default()
            },
            done: false,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn mode(&self) -> ReadMode {
        self.mode
    }

    /// What was found so far; complete once the iteration has ended.
    pub fn report(&self) -> &ReadReport {
        &self.report
    }

    /// The next data record with its offset; `None` at the end (or after an error).
    pub fn next_record(&mut self) -> Option<Result<Record, StoreError>> {
        loop {
            if self.done {
                return None;
            }
            let step = match self.step() {
                Ok(step) => step,
                Err(e) => return Some(Err(self.fail_io(e))),
            };
            match step {
                Step::Data(record) => {
                    self.report.records += 1;
                    self.report.end = self.win.pos();
                    return Some(Ok(record));
                }
                Step::End => {
                    self.done = true;
                    return None;
                }
                Step::Footer { offset, count } => {
                    self.done = true;
                    self.report.end = self.win.pos();
                    return self.after_footer(offset, count).err().map(Err);
                }
                Step::Defect(defect) => match self.on_defect(defect) {
                    Ok(true) => continue,
                    Ok(false) => {
                        self.done = true;
                        return None;
                    }
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                },
            }
        }
    }

    fn fail_io(&mut self, source: io::Error) -> StoreError {
        self.done = true;
        StoreError::Io {
            path: self.path.clone(),
            op: format!("reading at byte {}", self.win.pos()),
            source,
        }
    }

    /// Reads the record at the current position.
    fn step(&mut self) -> io::Result<Step> {
        let at = self.win.pos();
        let n = self.win.fill(RECORD_HEADER_LEN)?;
        if n == 0 {
            return Ok(Step::End);
        }
        if n < RECORD_HEADER_LEN {
            return Ok(Step::Defect(Defect {
                offset: at,
                tail_shaped: true,
                expected: format!("a {RECORD_HEADER_LEN}-byte record header"),
                found: format!("end of file after {n} bytes"),
            }));
        }
        let b = self.win.bytes();
        let len = le_u32(b);
        let crc = le_u32(&b[4..]);
        if len == 0 || len > MAX_RECORD_LEN {
            let more = self.win.fill(RECORD_HEADER_LEN + 1)? > RECORD_HEADER_LEN;
            return Ok(Step::Defect(Defect {
                offset: at,
                tail_shaped: !more,
                expected: format!("a record length in 1..={MAX_RECORD_LEN}"),
                found: format!("length {len}"),
            }));
        }
        let need = RECORD_HEADER_LEN + len as usize;
        let n = self.win.fill(need)?;
        if n < need {
            return Ok(Step::Defect(Defect {
                offset: at,
                tail_shaped: true,
                expected: format!("a record of {len} bytes after its header"),
                found: format!("end of file at byte {}", at + n as u64),
            }));
        }
        let payload = &self.win.bytes()[RECORD_HEADER_LEN..need];
        let actual = crc32c::crc32c(payload);
        if actual != crc {
            let more = self.win.fill(need + 1)? > need;
            return Ok(Step::Defect(Defect {
                offset: at,
                tail_shaped: !more,
                expected: format!("crc32c {crc:#010x} (from the record header)"),
                found: format!("crc32c {actual:#010x} over the {len}-byte payload"),
            }));
        }
        match payload[0] {
            TAG_DATA => {
                let data = payload[1..].to_vec();
                self.win.consume(need);
                Ok(Step::Data(Record { offset: at, data }))
            }
            TAG_FOOTER if len == FOOTER_PAYLOAD_LEN => {
                let mut count = [0u8; 8];
                count.copy_from_slice(&payload[1..]);
                self.win.consume(need);
                Ok(Step::Footer {
                    offset: at,
                    count: u64::from_le_bytes(count),
                })
            }
            tag => Ok(Step::Defect(Defect {
                offset: at,
                tail_shaped: false,
                expected: format!(
                    "tag {TAG_DATA:#04x} (data) or {TAG_FOOTER:#04x} with a {FOOTER_PAYLOAD_LEN}-byte payload (footer)"
                ),
                found: format!("tag {tag:#04x} with a {len}-byte payload"),
            })),
        }
    }

    /// Whether a valid record starts at the current position (nothing is consumed).
    fn probe(&mut self) -> io::Result<bool> {
        if self.win.fill(RECORD_HEADER_LEN + 1)? <= RECORD_HEADER_LEN {
            return Ok(false);
        }
        let b = self.win.bytes();
        let len = le_u32(b);
        let crc = le_u32(&b[4..]);
        let plausible = match b[RECORD_HEADER_LEN] {
            TAG_DATA => (1..=MAX_RECORD_LEN).contains(&len),
            TAG_FOOTER => len == FOOTER_PAYLOAD_LEN,
            _ => false,
        };
        if !plausible {
            return Ok(false);
        }
        let need = RECORD_HEADER_LEN + len as usize;
        if self.win.fill(need)? < need {
            return Ok(false);
        }
        Ok(crc32c::crc32c(&self.win.bytes()[RECORD_HEADER_LEN..need]) == crc)
    }

    /// Scans forward byte by byte from a defect for the next position where a valid
    /// record starts. Consumes what it passes over; returns the position found (if any)
    /// and whether everything passed over was zero.
    fn resync(&mut self) -> io::Result<(Option<u64>, bool)> {
        let mut zero = true;
        loop {
            if self.win.fill(1)? == 0 {
                return Ok((None, zero));
            }
            zero &= self.win.bytes()[0] == 0;
            self.win.consume(1);
            if self.probe()? {
                return Ok((Some(self.win.pos()), zero));
            }
        }
    }

    /// Classifies a defect (see the module docs): `Ok(true)` to go on reading (Salvage
    /// resynchronised), `Ok(false)` at the end (torn tail, or Salvage skipped to the end).
    fn on_defect(&mut self, d: Defect) -> Result<bool, StoreError> {
        let (next, zero) = self.resync().map_err(|e| self.fail_io(e))?;
        let file = self.path.display();
        let eof = self.win.pos();
        if next.is_none() && (d.tail_shaped || zero) {
            tracing::warn!(
                file = %file,
                offset = d.offset,
                "torn tail: the last record is cut short; ignoring {} bytes from byte {} ({})",
                eof - d.offset,
                d.offset,
                d.found
            );
            self.report.torn_tail = Some(TornTail {
                offset: d.offset,
                len: eof - d.offset,
            });
            return Ok(false);
        }
        // Corruption: the damage runs to the next valid record, or to the end.
        let (end, after) = match next {
            Some(n) => (n, format!("a valid record follows at byte {n}")),
            None => (eof, "and no valid record after it".to_string()),
        };
        match self.mode {
            ReadMode::Strict => Err(StoreError::Corrupt {
                path: self.path.clone(),
                offset: d.offset,
                expected: d.expected,
                found: format!("{} ({after})", d.found),
            }),
            ReadMode::Salvage => {
                tracing::warn!(
                    file = %file,
                    offset = d.offset,
                    "corrupt data skipped up to byte {end} ({after}): expected {}, found {}",
                    d.expected,
                    d.found
                );
                self.report.skipped.push(d.offset..end);
                Ok(next.is_some())
            }
        }
    }

    /// Checks the footer's count and that nothing follows it.
    fn after_footer(&mut self, offset: u64, count: u64) -> Result<(), StoreError> {
        self.report.footer = Some(count);
        let end = self.win.pos();
        if count != self.report.records {
            let expected = format!("{count} data records before the footer (as it states)");
            let found = format!("{} data records", self.report.records);
            if self.mode == ReadMode::Strict {
                return Err(StoreError::Corrupt {
                    path: self.path.clone(),
                    offset,
                    expected,
                    found,
                });
            }
            tracing::warn!(file = %self.path.display(), offset, "footer mismatch: expected {expected}, found {found}");
        }
        let (extra, _) = self.win.consume_to_end().map_err(|e| self.fail_io(e))?;
        if extra > 0 {
            if self.mode == ReadMode::Strict {
                return Err(StoreError::Corrupt {
                    path: self.path.clone(),
                    offset: end,
                    expected: "the end of the file after the footer".into(),
                    found: format!("{extra} more bytes"),
                });
            }
            tracing::warn!(file = %self.path.display(), offset = end, "{extra} bytes after the footer skipped");
            self.report.skipped.push(end..end + extra);
        }
        Ok(())
    }
}

impl<R: Read> Iterator for RecordReader<R> {
    type Item = Result<Vec<u8>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().map(|r| r.map(|record| record.data))
    }
}

/// Cuts a torn tail off the file at `path` (for an appender restarting after a crash):
/// truncates to the end of the last good record and fsyncs. Returns the new length if
/// it truncated, `None` if there was nothing to cut (including a finished file and an
/// empty one). A header cut short is truncated to length 0 (the caller writes a new
/// header). Corruption in the middle is an `InvalidData` error and nothing is changed.
pub fn truncate_torn_tail(path: impl AsRef<Path>) -> io::Result<Option<u64>> {
    let path = path.as_ref();
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    if len < HEADER_LEN as u64 {
        let mut head = Vec::new();
        (&file).read_to_end(&mut head)?;
        let m = head.len().min(MAGIC.len());
        if head.len() < HEADER_LEN && head[..m] == MAGIC[..m] {
            tracing::warn!(file = %path.display(), "torn header ({} bytes): truncating to 0", head.len());
            file.set_len(0)?;
            file.sync_all()?;
            return Ok(Some(0));
        }
        // Not our magic: let the reader say so.
        (&file).seek(SeekFrom::Start(0))?;
    }
    let mut reader =
        RecordReader::open(&file, path, ReadMode::Strict).map_err(StoreError::into_io)?;
    while let Some(record) = reader.next_record() {
        record.map_err(StoreError::into_io)?;
    }
    match reader.report().torn_tail {
        Some(torn) => {
            file.set_len(torn.offset)?;
            file.sync_all()?;
            Ok(Some(torn.offset))
        }
        None => Ok(None),
    }
}
