//! Tests of the container format: round trips, the pinned byte layout, torn tails at
//! every cut point, corruption in the middle (Strict and Salvage), bad headers, atomic
//! writes, truncating a torn tail, and property tests that no input panics or hangs
//! the reader.

use super::frame::*;
use super::{write_atomically, StoreError};
use proptest::prelude::*;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// A fresh directory under the system temp dir, removed on drop.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "colony-store-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }

    pub(super) fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs `f` with WARN-level logs captured; returns its result and the log text.
pub(super) fn with_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&sink.0.lock().unwrap()).into_owned();
    (out, text)
}

pub(super) fn data(i: usize) -> Vec<u8> {
    (0..(i * 7) % 41).map(|j| (i * 31 + j * 17) as u8).collect()
}

fn build(records: &[Vec<u8>], finish: bool) -> Vec<u8> {
    let mut w = RecordWriter::new(Vec::new(), FileKind::MutationLog, 1_700_000_000_000).unwrap();
    for r in records {
        w.append(r).unwrap();
    }
    if finish {
        w.finish().unwrap()
    } else {
        w.get_ref().clone()
    }
}

/// Offsets of the data records of a file built from `records`, and of what follows them.
fn offsets(records: &[Vec<u8>]) -> Vec<u64> {
    let mut at = HEADER_LEN as u64;
    let mut out = vec![at];
    for r in records {
        at += (RECORD_HEADER_LEN + 1 + r.len()) as u64;
        out.push(at);
    }
    out
}

struct Outcome {
    records: Vec<Vec<u8>>,
    error: Option<StoreError>,
    report: ReadReport,
}

fn read(bytes: &[u8], mode: ReadMode) -> Result<Outcome, StoreError> {
    let mut reader = RecordReader::open(bytes, "test.colony", mode)?;
    let mut records = Vec::new();
    let mut error = None;
    for item in reader.by_ref() {
        match item {
            Ok(r) => records.push(r),
            Err(e) => {
                assert!(error.is_none(), "the iteration goes on after an error");
                error = Some(e);
            }
        }
    }
    Ok(Outcome {
        records,
        error,
        report: reader.report().clone(),
    })
}

#[test]
fn round_trip_many_records() {
    let records: Vec<Vec<u8>> = (0..5000).map(data).collect();
    assert!(records.iter().any(|r| r.is_empty()));
    let bytes = build(&records, true);
    let reader = RecordReader::open(&bytes[..], "x", ReadMode::Strict).unwrap();
    assert_eq!(
        *reader.header(),
        Header {
            version: FORMAT_VERSION,
            kind: FileKind::MutationLog,
            created_at_ms: 1_700_000_000_000
        }
    );
    for mode in [ReadMode::Strict, ReadMode::Salvage] {
        let out = read(&bytes, mode).unwrap();
        assert!(out.error.is_none());
        assert_eq!(out.records, records);
        assert_eq!(out.report.records, 5000);
        assert_eq!(out.report.footer, Some(5000));
        assert!(out.report.is_clean(), "{:?}", out.report);
        assert_eq!(out.report.end, bytes.len() as u64);
    }
}

#[test]
fn offsets_are_reported_per_record() {
    let records: Vec<Vec<u8>> = (0..20).map(data).collect();
    let bytes = build(&records, true);
    let at = offsets(&records);
    let mut reader = RecordReader::open(&bytes[..], "x", ReadMode::Strict).unwrap();
    let mut i = 0;
    while let Some(r) = reader.next_record() {
        let r = r.unwrap();
        assert_eq!((r.offset, &r.data), (at[i], &records[i]));
        i += 1;
    }
    assert_eq!(i, 20);
}

#[test]
fn an_empty_file_is_a_header_and_a_footer() {
    let bytes = build(&[], true);
    assert_eq!(bytes.len(), HEADER_LEN + RECORD_HEADER_LEN + 9);
    let out = read(&bytes, ReadMode::Strict).unwrap();
    assert!(out.records.is_empty() && out.error.is_none());
    assert_eq!(out.report.footer, Some(0));
    assert!(out.report.is_clean());
}

#[test]
fn the_byte_layout_is_pinned() {
    let mut w = RecordWriter::new(Vec::new(), FileKind::Dump, 0x0102_0304_0506_0708).unwrap();
    assert_eq!(w.append(b"hi").unwrap(), 22);
    let bytes = w.finish().unwrap();
    let mut expected = Vec::new();
    expected.extend_from_slice(b"COLONY\0");
    expected.extend_from_slice(&[4, 0]); // version
    expected.push(1); // kind: dump
    expected.extend_from_slice(&[8, 7, 6, 5, 4, 3, 2, 1]);
    let hcrc = crc32c::crc32c(&expected);
    expected.extend_from_slice(&hcrc.to_le_bytes());
    expected.extend_from_slice(&3u32.to_le_bytes());
    expected.extend_from_slice(&crc32c::crc32c(&[0, b'h', b'i']).to_le_bytes());
    expected.extend_from_slice(&[0, b'h', b'i']);
    let footer = [0xff, 1, 0, 0, 0, 0, 0, 0, 0];
    expected.extend_from_slice(&9u32.to_le_bytes());
    expected.extend_from_slice(&crc32c::crc32c(&footer).to_le_bytes());
    expected.extend_from_slice(&footer);
    assert_eq!(bytes, expected);
    // A known CRC32C value (RFC 3720 test vector), so the crate is the right CRC.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
}

#[test]
fn torn_tail_at_every_cut_point_of_the_last_record() {
    let records: Vec<Vec<u8>> = (0..10).map(|i| data(i + 3)).collect();
    let at = offsets(&records);
    for finished in [false, true] {
        let bytes = build(&records, finished);
        // The last record: the footer of a finished file, else the last data record.
        let (start, kept) = if finished { (at[10], 10) } else { (at[9], 9) };
        for cut in start + 1..bytes.len() as u64 {
            let torn = &bytes[..cut as usize];
            let (out, logs) = with_logs(|| read(torn, ReadMode::Strict).unwrap());
            assert!(out.error.is_none(), "cut at {cut}: {:?}", out.error);
            assert_eq!(out.records, records[..kept], "cut at {cut}");
            assert_eq!(
                out.report.torn_tail,
                Some(TornTail {
                    offset: start,
                    len: cut - start
                }),
                "cut at {cut}"
            );
            assert_eq!(out.report.footer, None);
            assert_eq!(out.report.end, start);
            assert!(logs.contains("torn tail"), "{logs}");
            assert!(logs.contains("test.colony"), "{logs}");
            assert!(logs.contains(&format!("offset={start}")), "{logs}");
            let salvaged = read(torn, ReadMode::Salvage).unwrap();
            assert!(salvaged.error.is_none());
            assert_eq!(salvaged.records, out.records);
            assert_eq!(salvaged.report.torn_tail, out.report.torn_tail);
            assert!(salvaged.report.skipped.is_empty());
        }
    }
}

#[test]
fn a_file_without_footer_is_unfinished_but_readable() {
    let records: Vec<Vec<u8>> = (0..30).map(data).collect();
    let bytes = build(&records, false);
    let out = read(&bytes, ReadMode::Strict).unwrap();
    assert!(out.error.is_none());
    assert_eq!(out.records, records);
    assert!(!out.report.finished());
    assert!(!out.report.is_clean());
    assert_eq!(out.report.torn_tail, None);
    assert_eq!(out.report.end, bytes.len() as u64);
}

#[test]
fn every_bit_flip_in_a_middle_record_fails_strict_and_is_skipped_by_salvage() {
    let records: Vec<Vec<u8>> = (0..40).map(|i| data(i + 1)).collect();
    let bytes = build(&records, true);
    let at = offsets(&records);
    let (start, end) = (at[20], at[21]);
    for byte in start..end {
        for bit in 0..8 {
            let mut bad = bytes.clone();
            bad[byte as usize] ^= 1 << bit;
            let strict = read(&bad, ReadMode::Strict).unwrap();
            match &strict.error {
                Some(StoreError::Corrupt { offset, path, .. }) => {
                    assert_eq!(*offset, start, "flip at byte {byte} bit {bit}");
                    assert_eq!(path, Path::new("test.colony"));
                }
                other => panic!("flip at byte {byte} bit {bit}: {other:?}"),
            }
            assert_eq!(strict.records, records[..20]);
            let (salvaged, logs) = with_logs(|| read(&bad, ReadMode::Salvage).unwrap());
            assert!(salvaged.error.is_none());
            let mut expected = records.clone();
            expected.remove(20);
            assert_eq!(salvaged.records, expected, "flip at byte {byte} bit {bit}");
            assert_eq!(salvaged.report.skipped, vec![start..end]);
            assert_eq!(salvaged.report.footer, Some(40));
            assert_eq!(salvaged.report.records, 39);
            assert!(logs.contains("skipped"), "{logs}");
        }
    }
}

#[test]
fn the_strict_error_names_file_offset_and_checksums() {
    let records: Vec<Vec<u8>> = (0..5).map(|i| data(i + 2)).collect();
    let mut bytes = build(&records, true);
    let at = offsets(&records);
    bytes[at[2] as usize + 10] ^= 0x40;
    let err = read(&bytes, ReadMode::Strict).unwrap().error.unwrap();
    let msg = err.to_string();
    assert!(
        msg.starts_with("test.colony: corrupt data at byte "),
        "{msg}"
    );
    assert!(msg.contains(&format!("byte {}", at[2])), "{msg}");
    assert!(msg.contains("expected crc32c 0x"), "{msg}");
    assert!(
        msg.contains(&format!("a valid record follows at byte {}", at[3])),
        "{msg}"
    );
}

#[test]
fn a_garbage_length_is_corruption_not_an_allocation() {
    let records: Vec<Vec<u8>> = (0..10).map(|i| data(i + 1)).collect();
    let at = offsets(&records);
    // Impossible (> 64 MiB) and plausible-but-past-the-end lengths, in the middle.
    for len in [u32::MAX, MAX_RECORD_LEN + 1, 0, 1 << 20, MAX_RECORD_LEN] {
        let mut bad = build(&records, true);
        let s = at[4] as usize;
        bad[s..s + 4].copy_from_slice(&len.to_le_bytes());
        let strict = read(&bad, ReadMode::Strict).unwrap();
        match strict.error {
            Some(StoreError::Corrupt { offset, .. }) => assert_eq!(offset, at[4], "len {len}"),
            other => panic!("len {len}: {other:?}"),
        }
        assert_eq!(strict.report.torn_tail, None);
        let salvaged = read(&bad, ReadMode::Salvage).unwrap();
        assert_eq!(salvaged.records.len(), 9, "len {len}");
        assert_eq!(salvaged.report.skipped, vec![at[4]..at[5]]);
    }
}

#[test]
fn a_garbage_header_at_the_very_end_is_a_torn_tail_but_garbage_after_it_is_not() {
    let records: Vec<Vec<u8>> = (0..3).map(data).collect();
    let good = build(&records, false);
    let end = good.len() as u64;

    let mut tail = good.clone();
    tail.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4]);
    let out = read(&tail, ReadMode::Strict).unwrap();
    assert!(out.error.is_none());
    assert_eq!(
        out.report.torn_tail,
        Some(TornTail {
            offset: end,
            len: 8
        })
    );

    let mut garbage = tail.clone();
    garbage.extend_from_slice(b"more garbage");
    let out = read(&garbage, ReadMode::Strict).unwrap();
    assert!(
        matches!(out.error, Some(StoreError::Corrupt { offset, .. }) if offset == end),
        "{:?}",
        out.error
    );
    assert_eq!(out.records, records);
    let out = read(&garbage, ReadMode::Salvage).unwrap();
    assert!(out.error.is_none());
    assert_eq!(out.records, records);
    assert_eq!(out.report.skipped, vec![end..garbage.len() as u64]);
    assert_eq!(out.report.torn_tail, None);
}

#[test]
fn a_zero_filled_tail_is_a_torn_tail() {
    let records: Vec<Vec<u8>> = (0..3).map(data).collect();
    let mut bytes = build(&records, false);
    let end = bytes.len() as u64;
    bytes.extend_from_slice(&[0u8; 4096]);
    let out = read(&bytes, ReadMode::Strict).unwrap();
    assert!(out.error.is_none());
    assert_eq!(out.records, records);
    assert_eq!(
        out.report.torn_tail,
        Some(TornTail {
            offset: end,
            len: 4096
        })
    );
}

#[test]
fn a_record_with_an_unknown_tag_is_corruption() {
    let mut bytes = build(&[b"a".to_vec()], false);
    let at = bytes.len() as u64;
    let payload = [0x07, 1, 2, 3];
    bytes.extend_from_slice(&4u32.to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    let mut w = RecordWriter::resume(&mut bytes, 0, 0);
    w.append(b"b").unwrap();
    let strict = read(&bytes, ReadMode::Strict).unwrap();
    match strict.error {
        Some(StoreError::Corrupt { offset, found, .. }) => {
            assert_eq!(offset, at);
            assert!(found.contains("tag 0x07"), "{found}");
        }
        other => panic!("{other:?}"),
    }
    let salvaged = read(&bytes, ReadMode::Salvage).unwrap();
    assert_eq!(salvaged.records, vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(salvaged.report.skipped, vec![at..at + 12]);
}

#[test]
fn a_footer_count_mismatch_and_bytes_after_the_footer() {
    // A footer claiming 5 records after 2.
    let mut bytes = build(&[b"a".to_vec(), b"b".to_vec()], false);
    let footer_at = bytes.len() as u64;
    let mut payload = [0u8; 9];
    payload[0] = TAG_FOOTER;
    payload[1..].copy_from_slice(&5u64.to_le_bytes());
    bytes.extend_from_slice(&9u32.to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    let strict = read(&bytes, ReadMode::Strict).unwrap();
    assert!(
        matches!(&strict.error, Some(StoreError::Corrupt { offset, .. }) if *offset == footer_at),
        "{:?}",
        strict.error
    );
    let salvaged = read(&bytes, ReadMode::Salvage).unwrap();
    assert!(salvaged.error.is_none());
    assert_eq!(salvaged.report.footer, Some(5));
    assert!(!salvaged.report.is_clean());

    // Bytes after a correct footer.
    let mut bytes = build(&[b"a".to_vec()], true);
    let end = bytes.len() as u64;
    bytes.extend_from_slice(b"xyz");
    let strict = read(&bytes, ReadMode::Strict).unwrap();
    match strict.error {
        Some(StoreError::Corrupt { offset, found, .. }) => {
            assert_eq!(offset, end);
            assert_eq!(found, "3 more bytes");
        }
        other => panic!("{other:?}"),
    }
    let salvaged = read(&bytes, ReadMode::Salvage).unwrap();
    assert_eq!(salvaged.records, vec![b"a".to_vec()]);
    assert_eq!(salvaged.report.skipped, vec![end..end + 3]);
}

#[test]
fn bad_headers_are_clear_errors() {
    let good = build(&[b"x".to_vec()], true);
    let open = |b: &[u8], mode| RecordReader::open(b, "h.colony", mode).err();

    let mut magic = good.clone();
    magic[0] = b'X';
    assert!(matches!(
        open(&magic, ReadMode::Salvage),
        Some(StoreError::BadMagic { .. })
    ));
    assert!(matches!(
        open(b"GIF89a", ReadMode::Strict),
        Some(StoreError::BadMagic { .. })
    ));

    let mut version = good.clone();
    version[7] = 5;
    let e = open(&version, ReadMode::Salvage).unwrap();
    assert!(matches!(e, StoreError::UnsupportedVersion { found: 5, .. }));
    assert_eq!(
        e.to_string(),
        "h.colony: unsupported format version 5 at byte 7 (this build reads versions 3 to 4; files before version 3 place keys by an older hash)"
    );
    for old in [1, 2] {
        let mut version = good.clone();
        version[7] = old;
        assert!(matches!(
            open(&version, ReadMode::Salvage),
            Some(StoreError::UnsupportedVersion { found, .. }) if found == u16::from(old)
        ));
    }
    let mut version = good.clone();
    version[7] = 0;
    assert!(matches!(
        open(&version, ReadMode::Salvage),
        Some(StoreError::UnsupportedVersion { found: 0, .. })
    ));

    // An unknown kind with a correct header checksum.
    let mut kind = Header::new(FileKind::Dump, 5).encode();
    kind[9] = 9;
    let crc = crc32c::crc32c(&kind[..18]);
    kind[18..].copy_from_slice(&crc.to_le_bytes());
    let e = open(&kind, ReadMode::Strict).unwrap();
    assert!(matches!(
        e,
        StoreError::UnknownKind {
            found: 9,
            offset: 9,
            ..
        }
    ));
    assert!(e.to_string().contains("unknown file kind 9"), "{e}");

    let mut created = good.clone();
    created[12] ^= 1;
    assert!(matches!(
        open(&created, ReadMode::Strict),
        Some(StoreError::HeaderChecksum { offset: 18, .. })
    ));
    let salvaged = read(&created, ReadMode::Salvage).unwrap();
    assert_eq!(salvaged.records, vec![b"x".to_vec()]);
    assert!(!salvaged.report.header_checksum_ok);

    for len in [0, 3, 7, 21] {
        assert!(
            matches!(
                open(&good[..len], ReadMode::Strict),
                Some(StoreError::ShortHeader { len: l, .. }) if l == len as u64
            ),
            "len {len}"
        );
    }
}

#[test]
fn short_reads_give_the_same_results() {
    struct Dribble<'a>(&'a [u8]);
    impl Read for Dribble<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = out.len().min(5).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let records: Vec<Vec<u8>> = (0..200).map(data).collect();
    let mut bytes = build(&records, true);
    bytes[offsets(&records)[100] as usize + 9] ^= 1;
    let reader = RecordReader::open(Dribble(&bytes), "d", ReadMode::Salvage).unwrap();
    let got: Vec<Vec<u8>> = reader.map(|r| r.unwrap()).collect();
    assert_eq!(got.len(), 199);
}

#[test]
fn the_writer_refuses_an_oversized_record_and_takes_a_maximal_one() {
    let mut w = RecordWriter::new(Vec::new(), FileKind::Backup, 0).unwrap();
    let big = vec![0xab; MAX_DATA_LEN + 1];
    assert!(matches!(
        w.append(&big),
        Err(StoreError::RecordTooLarge { len, .. }) if len == MAX_DATA_LEN as u64 + 1
    ));
    w.append(&big[..MAX_DATA_LEN]).unwrap();
    let bytes = w.finish().unwrap();
    let out = read(&bytes, ReadMode::Strict).unwrap();
    assert_eq!(out.records.len(), 1);
    assert_eq!(out.records[0].len(), MAX_DATA_LEN);
    assert!(out.report.is_clean());
}

#[test]
fn a_failed_write_poisons_the_writer() {
    struct Failing(usize);
    impl Write for Failing {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.0 < b.len() {
                return Err(io::Error::other("disk full"));
            }
            self.0 -= b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut w = RecordWriter::new(Failing(30), FileKind::MutationLog, 0).unwrap();
    let e = w.append(&[1; 100]).unwrap_err();
    assert_eq!(e.to_string(), "writing at byte 30: disk full");
    assert!(matches!(w.append(b"x"), Err(StoreError::Misuse { .. })));
}

#[test]
fn write_atomically_replaces_or_leaves_the_old_file() {
    let dir = TempDir::new("atomic");
    let path = dir.path().join("colonies.dump");
    let write = |records: &[Vec<u8>]| {
        write_atomically(&path, |w| {
            let mut rw = RecordWriter::new(w, FileKind::Dump, 1)?;
            for r in records {
                rw.append(r)?;
            }
            rw.finish()?;
            Ok(records.len())
        })
    };
    assert_eq!(write(&[b"one".to_vec()]).unwrap(), 1);
    assert_eq!(dir.entries(), vec!["colonies.dump"]);
    let first = fs::read(&path).unwrap();

    // The closure fails half-way: the old file stays, the temporary file goes.
    let failed = write_atomically(&path, |w| {
        let mut rw = RecordWriter::new(w, FileKind::Dump, 2)?;
        rw.append(b"partial")?;
        Err::<(), _>(StoreError::Misuse {
            writer: "test",
            message: "stop".into(),
        })
    });
    assert!(failed.is_err());
    assert_eq!(fs::read(&path).unwrap(), first);
    assert_eq!(dir.entries(), vec!["colonies.dump"]);

    assert_eq!(write(&[b"a".to_vec(), b"b".to_vec()]).unwrap(), 2);
    assert_eq!(dir.entries(), vec!["colonies.dump"]);
    let reader = RecordReader::open_path(&path, ReadMode::Strict).unwrap();
    assert_eq!(
        reader.map(|r| r.unwrap()).collect::<Vec<_>>(),
        vec![b"a".to_vec(), b"b".to_vec()]
    );

    // A directory that does not exist: an error naming the temporary file.
    let e = write_atomically(dir.path().join("no/such/file"), |_| Ok(())).unwrap_err();
    assert!(e.to_string().contains("no/such/file.tmp-"), "{e}");
}

#[test]
fn truncate_torn_tail_cuts_back_to_the_last_good_record() {
    let dir = TempDir::new("truncate");
    let path = dir.path().join("log");
    let records: Vec<Vec<u8>> = (0..6).map(|i| data(i + 4)).collect();
    let at = offsets(&records);
    let mut bytes = build(&records, false);
    bytes.truncate(at[6] as usize - 3);
    fs::write(&path, &bytes).unwrap();

    assert_eq!(truncate_torn_tail(&path).unwrap(), Some(at[5]));
    assert_eq!(fs::metadata(&path).unwrap().len(), at[5]);
    assert_eq!(truncate_torn_tail(&path).unwrap(), None);

    // The appender resumes after the last good record and finishes the file.
    let file = fs::OpenOptions::new().append(true).open(&path).unwrap();
    let mut w = RecordWriter::resume(io::BufWriter::new(file), at[5], 5);
    w.append(b"again").unwrap();
    w.finish().unwrap();
    let out = read(&fs::read(&path).unwrap(), ReadMode::Strict).unwrap();
    let mut expected = records[..5].to_vec();
    expected.push(b"again".to_vec());
    assert_eq!(out.records, expected);
    assert!(out.report.is_clean());
    assert_eq!(truncate_torn_tail(&path).unwrap(), None);

    // Corruption in the middle: an error, and the file is left alone.
    let mut bad = build(&records, true);
    bad[at[2] as usize + 9] ^= 1;
    fs::write(&path, &bad).unwrap();
    let e = truncate_torn_tail(&path).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("corrupt data at byte"), "{e}");
    assert_eq!(fs::read(&path).unwrap(), bad);

    // A header cut short goes to length 0; an empty file is left alone.
    fs::write(&path, &bad[..10]).unwrap();
    assert_eq!(truncate_torn_tail(&path).unwrap(), Some(0));
    assert_eq!(fs::metadata(&path).unwrap().len(), 0);
    assert_eq!(truncate_torn_tail(&path).unwrap(), None);
    // Not our file: an error.
    fs::write(&path, b"hello").unwrap();
    assert!(truncate_torn_tail(&path).is_err());
}

/// Reads in both modes and checks the reader's invariants; returns the Salvage records.
fn read_any(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut salvage = None;
    for mode in [ReadMode::Strict, ReadMode::Salvage] {
        let Ok(mut reader) = RecordReader::open(bytes, "p", mode) else {
            return None;
        };
        let mut items = 0usize;
        let mut records = Vec::new();
        for item in reader.by_ref() {
            items += 1;
            // Every record takes at least 9 bytes: the iteration is bounded.
            assert!(items <= bytes.len() / 9 + 1);
            match item {
                Ok(r) => records.push(r),
                Err(e) => assert!(
                    mode == ReadMode::Strict,
                    "Salvage fails only on the header: {e}"
                ),
            }
        }
        let report = reader.report();
        assert_eq!(report.records as usize, records.len());
        assert!(report.end <= bytes.len() as u64);
        for r in &report.skipped {
            assert!(r.start < r.end && r.end <= bytes.len() as u64);
        }
        if mode == ReadMode::Salvage {
            salvage = Some(records);
        }
    }
    salvage
}

/// Whether `sub` is `all` with some elements removed (order kept).
fn is_subsequence(sub: &[Vec<u8>], all: &[Vec<u8>]) -> bool {
    let mut it = all.iter();
    sub.iter().all(|s| it.any(|a| a == s))
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..40)
        )
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1usize..60).prop_map(|(i, n)| Mutation::Delete(i, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let len = bytes.len();
    match m {
        Mutation::Flip(i, b) => bytes[i % len] ^= 1 << b,
        Mutation::Set(i, v) => bytes[i % len] = *v,
        Mutation::Truncate(i) => bytes.truncate(i % len),
        Mutation::Insert(i, v) => {
            let at = i % len;
            bytes.splice(at..at, v.iter().copied());
        }
        Mutation::Delete(i, n) => {
            let at = i % len;
            bytes.drain(at..(at + n).min(len));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic_or_hang(
        body in proptest::collection::vec(any::<u8>(), 0..600),
        with_header in any::<bool>(),
    ) {
        let mut bytes = if with_header {
            Header::new(FileKind::MutationLog, 0).encode().to_vec()
        } else {
            Vec::new()
        };
        bytes.extend_from_slice(&body);
        read_any(&bytes);
    }

    #[test]
    fn mutated_files_never_panic_or_hang(
        records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..50), 0..20),
        finish in any::<bool>(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = build(&records, finish);
        for m in &mutations {
            apply(&mut bytes, m);
        }
        read_any(&bytes);
    }

    #[test]
    fn a_truncated_file_reads_a_prefix_without_error(
        records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..50), 0..20),
        finish in any::<bool>(),
        cut in any::<usize>(),
    ) {
        let bytes = build(&records, finish);
        let cut = HEADER_LEN + cut % (bytes.len() - HEADER_LEN + 1);
        let out = read(&bytes[..cut], ReadMode::Strict).unwrap();
        prop_assert!(out.error.is_none(), "{:?}", out.error);
        prop_assert_eq!(&out.records[..], &records[..out.records.len()]);
    }

    #[test]
    fn one_flipped_bit_costs_salvage_at_most_one_record(
        records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..50), 1..20),
        at in any::<usize>(),
        bit in 0u8..8,
    ) {
        let mut bytes = build(&records, true);
        let i = HEADER_LEN + at % (bytes.len() - HEADER_LEN);
        bytes[i] ^= 1 << bit;
        let salvaged = read(&bytes, ReadMode::Salvage).unwrap();
        prop_assert!(salvaged.error.is_none());
        prop_assert!(salvaged.records.len() + 1 >= records.len());
        prop_assert!(is_subsequence(&salvaged.records, &records));
        let strict = read(&bytes, ReadMode::Strict).unwrap();
        // Either the flip is reported, or it hit the footer (a torn tail now).
        prop_assert!(strict.error.is_some() || strict.report.torn_tail.is_some());
    }
}
