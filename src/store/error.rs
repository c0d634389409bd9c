//! Everything that can go wrong reading or writing a store file: i/o, a header that is
//! not ours, corruption found by a checksum or a length, contents that do not decode,
//! and misuse of a writer. Every message names the file (when known), the byte offset
//! and what was expected.

use std::io;
use std::path::PathBuf;

/// An error of the on-disk store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An i/o call on a named file failed.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        path: PathBuf,
        /// What was being done, e.g. "reading at byte 4096".
        op: String,
        #[source]
        source: io::Error,
    },

    /// Writing through a [`RecordWriter`](super::RecordWriter) failed (the writer does
    /// not know a file name; [`write_atomically`](super::write_atomically) adds it).
    #[error("writing at byte {offset}: {source}")]
    Write {
        offset: u64,
        #[source]
        source: io::Error,
    },

    /// The file ends inside the fixed-size header.
    #[error(
        "{}: file ends at byte {len}, inside the {expected}-byte header (crash while it was created?)",
        path.display()
    )]
    ShortHeader {
        path: PathBuf,
        len: u64,
        expected: usize,
    },

    /// The file does not start with the magic bytes.
    #[error("{}: not a colony store file: expected magic {expected:?} at byte 0, found {found:?}", path.display())]
    BadMagic {
        path: PathBuf,
        expected: &'static [u8],
        found: Vec<u8>,
    },

    /// The header's checksum does not match its bytes.
    #[error(
        "{}: header checksum mismatch at byte {offset}: expected crc32c {expected:#010x}, found {found:#010x}",
        path.display()
    )]
    HeaderChecksum {
        path: PathBuf,
        offset: u64,
        expected: u32,
        found: u32,
    },

    /// A format version this build cannot read.
    #[error(
        "{}: unsupported format version {found} at byte {offset} (this build reads versions {oldest} to {newest}; files before version 3 place keys by an older hash)",
        path.display()
    )]
    UnsupportedVersion {
        path: PathBuf,
        offset: u64,
        oldest: u16,
        newest: u16,
        found: u16,
    },

    /// A file kind byte that means nothing to this build.
    #[error(
        "{}: unknown file kind {found} at byte {offset} (expected 1 = dump, 2 = backup, 3 = mutation log, 4 = compacted log)",
        path.display()
    )]
    UnknownKind {
        path: PathBuf,
        offset: u64,
        found: u8,
    },

    /// A valid file, but of another kind than the reader handles.
    #[error("{}: expected {expected}, found a {found} file", path.display())]
    WrongKind {
        path: PathBuf,
        expected: String,
        found: String,
    },

    /// A record (or the region after the footer) fails its checks: a bad checksum, an
    /// impossible length, an unknown tag, a footer count that does not match.
    #[error("{}: corrupt data at byte {offset}: expected {expected}, found {found}", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        expected: String,
        found: String,
    },

    /// A record whose checksum verifies but whose contents do not decode, or that has no
    /// place at this point of the file (typed readers such as the dump reader).
    #[error("{}: bad record at byte {offset}: expected {expected}, found {found}", path.display())]
    BadRecord {
        path: PathBuf,
        offset: u64,
        expected: String,
        found: String,
    },

    /// The file has no end marker: its writer did not finish (a crash during the write).
    #[error("{}: unfinished file: {what} missing after byte {offset} (crash during the write?)", path.display())]
    Unfinished {
        path: PathBuf,
        offset: u64,
        what: String,
    },

    /// Files changed while a two-pass reader was reading them (something rewrote them in
    /// place); nothing was written.
    #[error("{}: changed while being read: {what}", path.display())]
    Changed { path: PathBuf, what: String },

    /// A record to write exceeds the format's maximum record length.
    #[error("record of {len} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge { len: u64, max: u64 },

    /// A value could not be serialised (a bug, not a disk fault).
    #[error("cannot encode {what}: {message}")]
    Encode { what: String, message: String },

    /// A writer was used out of order (a bug in the caller).
    #[error("invalid use of {writer}: {message}")]
    Misuse {
        writer: &'static str,
        message: String,
    },
}

impl StoreError {
    /// Converts to an [`io::Error`] that keeps the whole message (file, offset): the
    /// kind of the underlying i/o error, or `InvalidData` for everything else.
    pub fn into_io(self) -> io::Error {
        let kind = match &self {
            StoreError::Io { source, .. } | StoreError::Write { source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, self)
    }
}
