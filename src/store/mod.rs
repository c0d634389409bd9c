//! The on-disk file format: shutdown-to-disk dumps, backups and mutation logs.
//!
//! Every file is one container format ([`frame`]): a header, length-prefixed records
//! each with its own CRC32C, and a footer that marks the file finished. Typed contents
//! sit on top ([`dump`]: colonies and their cells, msgpack). Readers stream: memory is
//! bounded by the largest record, never by the file.
//!
//! The logging node keeps a directory of mutation logs ([`log`]): segments of committed
//! mutations and snapshots of colonies appended by one writer, compacted into one file
//! of the live cells, and replayed into the final state with memory bounded by the
//! number of keys.
//!
//! A storage node keeps each replica's cells in a value log ([`values`]): appended
//! `(key, cell)` records read back by position, rewritten when mostly garbage.
//!
//! # Byte layout (all integers little-endian)
//!
//! ```text
//! file   = header record* footer?          no footer: the writer did not finish
//!
//! header, 22 bytes
//!   0..7    magic "COLONY\0"                43 4f 4c 4f 4e 59 00
//!   7..9    format version, u16             2 (1 is still read)
//!   9       kind, u8                        1 dump, 2 backup, 3 mutation log,
//!                                           4 compacted log, 5 value log
//!   10..18  created_at_ms, u64              wall clock of the writer's caller
//!   18..22  crc32c of bytes 0..18, u32
//!
//! record, 8 + len bytes
//!   0..4    len, u32                        payload length, 1..=64 MiB
//!   4..8    crc32c of the payload, u32
//!   8..     payload = tag (1 byte) + body
//!             tag 0x00  data record: body = the bytes given to append (len - 1)
//!             tag 0xff  footer: len = 9, body = number of data records, u64
//!             other     corruption (a record with a good CRC but an unknown tag)
//! ```
//!
//! Every payload starts with its tag, so a footer can never be taken for data nor data
//! for a footer, whatever the data. A length is at least 1 (the tag), so a run of zero
//! bytes never parses as records. A length above 64 MiB is corruption, never an
//! allocation; a plausible but wrong length costs at most the bytes that actually
//! exist. The footer is the last record and its count must match.
//!
//! The magic and the version stay at bytes 0..9 in every future version; the reader
//! checks them before the header CRC, so a newer file gets "unsupported version".
//!
//! # Reading: torn tails and corruption
//!
//! A record is good when its header and payload are complete, its length is in range,
//! its CRC matches and its tag is known. At the first record that is not (offset X)
//! the reader scans forward byte by byte for the next position where a good record
//! starts (a plausible length, a known tag, the whole record inside the file, a
//! matching CRC), and then:
//!
//! - **A good record follows** (at Y): corruption in the middle. [`ReadMode::Strict`]
//!   fails with [`StoreError::Corrupt`] naming X, what was expected and what was found.
//!   [`ReadMode::Salvage`] skips `X..Y`, lists the range in [`ReadReport::skipped`] and
//!   goes on at Y.
//! - **Nothing good follows**, and the bad record reaches the end of the file (the file
//!   ends inside its header or payload, or right after it), or everything from X on is
//!   zero bytes (a crash on a filesystem that extends files before writing them): a
//!   **torn tail**, the last write cut short by a crash. Not an error in either mode:
//!   reading stops at X (the end of the last good record), [`ReadReport::torn_tail`]
//!   says where, and a `tracing` warning names the file and the offset.
//!   [`truncate_torn_tail`] cuts it off the file for an appender.
//! - **Nothing good follows**, but bytes follow the bad record that are not a torn
//!   write (garbage): Strict fails; Salvage skips to the end.
//!
//! So a length corrupted in the middle of a file to point past its end is corruption,
//! not a torn tail, because good records follow. After the footer, a count that does
//! not match or trailing bytes fail Strict and are reported by Salvage. A header CRC
//! mismatch fails Strict; Salvage goes on if the version and kind are known.
//!
//! Salvage is best effort: a resync could land on bytes inside a corrupt record that
//! form a valid record by themselves (a 1 in 2^32 CRC coincidence, or data that embeds
//! a whole store record), and its cost is the corrupt region's length times the
//! lengths of the plausible candidates in it (linear for real damage, quadratic for
//! crafted contents).
//!
//! # Writing atomically
//!
//! Dumps and backups are written with [`write_atomically`]: to `<path>.tmp-<pid>`,
//! fsynced, renamed over `path`, then the directory is fsynced. A crash leaves the old
//! file or the new one under the final name, never half of one; at worst a stale
//! temporary file remains. Compacted logs are written the same way. Log segments are
//! appended in place instead: on restart a torn last record is cut off (as
//! [`truncate_torn_tail`] does) before [`RecordWriter::resume`].

pub mod atomic;
pub mod dump;
pub mod error;
pub mod frame;
pub mod log;
pub mod values;
mod window;

#[cfg(test)]
mod dump_tests;
#[cfg(test)]
mod frame_tests;
#[cfg(test)]
mod log_tests;

pub use atomic::{temp_path, write_atomically};
pub use dump::{
    read_dump, ColonyDump, DumpReader, DumpRecord, DumpReport, DumpWriter, CHUNK_BYTES, CHUNK_CELLS,
};
pub use error::StoreError;
pub use frame::{
    truncate_torn_tail, FileKind, Header, ReadMode, ReadReport, Record, RecordReader, RecordWriter,
    TornTail, FOOTER_PAYLOAD_LEN, FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_DATA_LEN, MAX_RECORD_LEN,
    RECORD_HEADER_LEN, TAG_DATA, TAG_FOOTER,
};
pub use log::{
    compact, compacted_name, log_files, replay, segment_name, snapshot_records, CompactReport,
    FileReport, LogFile, LogFiles, LogPositions, LogRecord, LogWriter, ReplayReport,
};
