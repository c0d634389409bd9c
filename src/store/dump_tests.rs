//! Tests of dumps: round trips through a real file, chunking, the hand-written chunk
//! prefix against serde, writer misuse, unfinished files, salvage that never attributes
//! cells to the wrong colony, and a property test that mutated dumps never panic.

use super::dump::*;
use super::frame::*;
use super::frame_tests::{with_logs, TempDir};
use super::{write_atomically, StoreError};
use crate::core::cell::{Cell, Dna, Key};
use crate::core::types::{ColonyId, Epoch, Seq, Version};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn cell(i: u64) -> Cell {
    let dna = match i % 3 {
        0 => Dna::Value(format!("{{\"cart\":[{i}]}}").into()),
        1 => Dna::Map(
            BTreeMap::from([
                (b"a".into(), i.to_string().into()),
                (vec![0xff, 0].into(), vec![0x80; (i % 7) as usize].into()),
            ])
            .into(),
        ),
        _ => Dna::Moved(i as u32 % 5),
    };
    Cell {
        dna,
        version: Version {
            epoch: Epoch {
                term: i % 4 + 1,
                by: 2,
            },
            seq: i,
        },
        expires_at: i.is_multiple_of(2).then_some(1_000_000 + i),
    }
}

fn cells(colony: ColonyId, n: u64) -> Vec<(Key, Cell)> {
    (0..n)
        .map(|i| (format!("session:{colony}:{i}").into(), cell(i)))
        .collect()
}

fn header(colony: ColonyId, n: u64) -> ColonyDump {
    ColonyDump {
        colony,
        epoch: Epoch {
            term: u64::from(colony) + 3,
            by: 7,
        },
        seq: 1000 + u64::from(colony),
        cells: n,
    }
}

/// Colonies 0..: 0 cells, 1 cell, 2500 cells, 3 cells.
const SIZES: [u64; 4] = [0, 1, 2500, 3];

fn write_dump(kind: FileKind) -> Vec<u8> {
    let mut w = DumpWriter::new(Vec::new(), kind, 42).unwrap();
    for (colony, n) in SIZES.iter().enumerate() {
        let colony = colony as ColonyId;
        w.begin_colony(header(colony, *n)).unwrap();
        let all = cells(colony, *n);
        // Mixed ways of giving cells.
        let (a, b) = all.split_at(all.len() / 2);
        w.cells(a).unwrap();
        w.cells_from(b.iter().map(|(k, c)| (k, c))).unwrap();
    }
    w.finish().unwrap()
}

type Seen = Vec<(ColonyId, Epoch, Seq, Key, Cell)>;

fn expected() -> Seen {
    let mut out = Vec::new();
    for (colony, n) in SIZES.iter().enumerate() {
        let h = header(colony as ColonyId, *n);
        for (k, c) in cells(h.colony, *n) {
            out.push((h.colony, h.epoch, h.seq, k, c));
        }
    }
    out
}

fn read_bytes(bytes: &[u8], mode: ReadMode) -> (Seen, Result<DumpReport, StoreError>) {
    let mut seen = Vec::new();
    let mut reader = match DumpReader::open(bytes, "test.dump", mode) {
        Ok(r) => r,
        Err(e) => return (seen, Err(e)),
    };
    let mut current = None;
    for item in reader.by_ref() {
        match item {
            Ok(DumpRecord::Colony(h)) => current = Some(h),
            Ok(DumpRecord::Cells { colony, cells }) => {
                let h: ColonyDump = current.unwrap();
                assert_eq!(h.colony, colony, "cells only under their own colony");
                for (k, c) in cells {
                    seen.push((h.colony, h.epoch, h.seq, k, c));
                }
            }
            Ok(DumpRecord::End { .. }) => {}
            Err(e) => return (seen, Err(e)),
        }
    }
    (seen, Ok(reader.report()))
}

#[test]
fn round_trip_through_a_file() {
    let dir = TempDir::new("dump");
    let path = dir.path().join("node-1.dump");
    let bytes = write_atomically(&path, |w| {
        let mut dw = DumpWriter::new(w, FileKind::Dump, 1234)?;
        for (colony, n) in SIZES.iter().enumerate() {
            let colony = colony as ColonyId;
            dw.begin_colony(header(colony, *n))?;
            dw.cells(&cells(colony, *n))?;
        }
        dw.finish()?;
        Ok(())
    });
    bytes.unwrap();
    assert_eq!(dir.entries(), vec!["node-1.dump"]);

    let mut seen = Vec::new();
    let report = read_dump(&path, ReadMode::Strict, |c, e, s, k, cell| {
        seen.push((c, e, s, k, cell))
    })
    .unwrap();
    assert_eq!(seen, expected());
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.colonies, 4);
    assert_eq!(report.cells, 2504);
    assert_eq!(report.end, Some((4, 2504)));
    // 4 colony headers, chunks of at most 1000 (0 + 1 + 3 + 1), the End record.
    assert_eq!(report.frames.records, 4 + 5 + 1);

    let reader = DumpReader::open_path(&path, ReadMode::Strict).unwrap();
    assert_eq!(reader.header().kind, FileKind::Dump);
    assert_eq!(reader.header().created_at_ms, 1234);
}

#[test]
fn chunks_hold_at_most_1000_cells_and_the_reader_yields_them_in_order() {
    let bytes = write_dump(FileKind::Backup);
    let reader = DumpReader::open(&bytes[..], "b", ReadMode::Strict).unwrap();
    assert_eq!(reader.header().kind, FileKind::Backup);
    let records: Vec<DumpRecord> = reader.map(|r| r.unwrap()).collect();
    let shape: Vec<String> = records
        .iter()
        .map(|r| match r {
            DumpRecord::Colony(h) => format!("colony {}", h.colony),
            DumpRecord::Cells { colony, cells } => format!("{} cells of {colony}", cells.len()),
            DumpRecord::End { colonies, cells } => format!("end {colonies} {cells}"),
        })
        .collect();
    // `cells` and `cells_from` calls share chunks: chunking is by count, not by call.
    assert_eq!(
        shape,
        vec![
            "colony 0",
            "colony 1",
            "1 cells of 1",
            "colony 2",
            "1000 cells of 2",
            "1000 cells of 2",
            "500 cells of 2",
            "colony 3",
            "3 cells of 3",
            "end 4 2504"
        ]
    );
    assert_eq!(read_bytes(&bytes, ReadMode::Strict).0, expected());
}

#[test]
fn large_cells_are_chunked_by_bytes() {
    let big = |i: u8| Cell {
        dna: Dna::Value(vec![i; 300 * 1024].into()),
        version: Version::default(),
        expires_at: None,
    };
    let mut w = DumpWriter::new(Vec::new(), FileKind::Dump, 0).unwrap();
    w.begin_colony(header(9, 10)).unwrap();
    for i in 0..10u8 {
        w.cell(&[i], &big(i)).unwrap();
    }
    let bytes = w.finish().unwrap();
    let chunks: Vec<usize> = DumpReader::open(&bytes[..], "b", ReadMode::Strict)
        .unwrap()
        .filter_map(|r| match r.unwrap() {
            DumpRecord::Cells { cells, .. } => Some(cells.len()),
            _ => None,
        })
        .collect();
    assert_eq!(chunks.iter().sum::<usize>(), 10);
    assert!(chunks.len() >= 3, "{chunks:?}");
}

#[test]
fn a_cell_larger_than_a_record_is_refused() {
    let mut w = DumpWriter::new(Vec::new(), FileKind::Dump, 0).unwrap();
    w.begin_colony(header(0, 2)).unwrap();
    let huge = Cell {
        dna: Dna::Value(vec![1; MAX_DATA_LEN].into()),
        version: Version::default(),
        expires_at: None,
    };
    assert!(matches!(
        w.cell(b"k", &huge),
        Err(StoreError::RecordTooLarge { .. })
    ));
    // Just below the limit by raw size, but over it once the record around it (the
    // chunk prefix, the key, the version) is added.
    let wide = Cell {
        dna: Dna::Value(vec![0x80; MAX_DATA_LEN - 4].into()),
        version: Version::default(),
        expires_at: None,
    };
    assert!(matches!(
        w.cell(b"k", &wide),
        Err(StoreError::RecordTooLarge { .. })
    ));
}

#[test]
fn cells_prefix_decodes_as_dump_record() {
    // A chunk written by hand must read back exactly as serde's DumpRecord::Cells.
    for colony in [0, 1, 127, 128, 65_535, 65_536, u32::MAX] {
        let mut w = DumpWriter::new(Vec::new(), FileKind::Dump, 0).unwrap();
        let cs = cells(colony, 3);
        w.begin_colony(header(colony, 3)).unwrap();
        w.cells(&cs).unwrap();
        let bytes = w.finish().unwrap();
        let records: Vec<DumpRecord> = DumpReader::open(&bytes[..], "b", ReadMode::Strict)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            records[1],
            DumpRecord::Cells {
                colony,
                cells: cs.clone()
            }
        );
        // And serde's own encoding of the same record decodes to the same value.
        let serde_bytes = rmp_serde::to_vec(&records[1]).unwrap();
        let back: DumpRecord = rmp_serde::from_slice(&serde_bytes).unwrap();
        assert_eq!(back, records[1]);
    }
}

#[test]
fn the_writer_refuses_misuse() {
    let mut w = DumpWriter::new(Vec::new(), FileKind::Dump, 0).unwrap();
    assert!(matches!(
        w.cell(b"k", &cell(1)),
        Err(StoreError::Misuse { .. })
    ));
    w.begin_colony(header(1, 1)).unwrap();
    w.cell(b"k", &cell(1)).unwrap();
    let e = w.cell(b"k2", &cell(2)).unwrap_err();
    assert!(e.to_string().contains("declared with 1 cells"), "{e}");

    let mut w = DumpWriter::new(Vec::new(), FileKind::Dump, 0).unwrap();
    w.begin_colony(header(1, 2)).unwrap();
    w.cell(b"k", &cell(1)).unwrap();
    let e = w.finish().unwrap_err();
    assert!(
        e.to_string().contains("declared with 2 cells but got 1"),
        "{e}"
    );

    assert!(matches!(
        DumpWriter::new(Vec::new(), FileKind::MutationLog, 0),
        Err(StoreError::Misuse { .. })
    ));
}

#[test]
fn a_log_is_not_a_dump() {
    let mut w = RecordWriter::new(Vec::new(), FileKind::MutationLog, 0).unwrap();
    w.append(b"x").unwrap();
    let bytes = w.finish().unwrap();
    let e = DumpReader::open(&bytes[..], "x.log", ReadMode::Salvage)
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        "x.log: expected a dump or backup file, found a mutation log file"
    );
}

#[test]
fn an_unfinished_dump_fails_strict_and_salvage_keeps_its_cells() {
    let bytes = write_dump(FileKind::Dump);
    // Cut inside the last chunk of colony 2: a crash while writing.
    let mut reader = RecordReader::open(&bytes[..], "x", ReadMode::Strict).unwrap();
    let mut offsets = Vec::new();
    while let Some(r) = reader.next_record() {
        offsets.push(r.unwrap().offset);
    }
    let cut = offsets[6] as usize + 100; // records: c0, c1, 1, c2, 1000, 1000, 500...
    let torn = &bytes[..cut];

    let ((seen, result), logs) = with_logs(|| read_bytes(torn, ReadMode::Strict));
    match result {
        Err(StoreError::Unfinished { offset, what, .. }) => {
            assert_eq!(offset, offsets[6]);
            assert_eq!(what, "the End record");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(seen.len(), 1 + 2000);
    assert!(logs.contains("torn tail"), "{logs}");

    let (seen, report) = read_bytes(torn, ReadMode::Salvage);
    let report = report.unwrap();
    assert_eq!(seen, expected()[..2001]);
    assert_eq!(report.end, None);
    assert!(!report.is_clean());
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].contains("unfinished"));

    // End record written but no footer: still unfinished.
    let no_footer = &bytes[..bytes.len() - 17];
    assert!(matches!(
        read_bytes(no_footer, ReadMode::Strict).1,
        Err(StoreError::Unfinished { what, .. }) if what == "the file footer"
    ));
}

#[test]
fn salvage_never_gives_cells_to_the_wrong_colony() {
    let bytes = write_dump(FileKind::Dump);
    let mut reader = RecordReader::open(&bytes[..], "x", ReadMode::Strict).unwrap();
    let mut offsets = Vec::new();
    while let Some(r) = reader.next_record() {
        offsets.push(r.unwrap().offset);
    }
    // Corrupt the header of colony 3 (record 7): its 3 cells follow colony 2's.
    let mut bad = bytes.clone();
    bad[offsets[7] as usize + 10] ^= 0x10;
    let (_, strict) = read_bytes(&bad, ReadMode::Strict);
    assert!(
        matches!(strict, Err(StoreError::Corrupt { offset, .. }) if offset == offsets[7]),
        "{strict:?}"
    );
    let (seen, report) = read_bytes(&bad, ReadMode::Salvage);
    let report = report.unwrap();
    assert_eq!(seen, expected()[..2501]);
    assert_eq!(report.orphan_cells, 3);
    assert_eq!(report.frames.skipped.len(), 1);
    assert!(!report.problems.is_empty());
    assert!(!report.is_clean());

    // A corrupt chunk in the middle: Strict fails there, Salvage keeps the others.
    let mut bad = bytes.clone();
    bad[offsets[5] as usize + 500] ^= 0x01;
    let (seen, strict) = read_bytes(&bad, ReadMode::Strict);
    assert!(matches!(strict, Err(StoreError::Corrupt { offset, .. }) if offset == offsets[5]));
    assert_eq!(seen.len(), 1001);
    let (seen, report) = read_bytes(&bad, ReadMode::Salvage);
    let report = report.unwrap();
    let mut want = expected();
    want.drain(1001..2001);
    assert_eq!(seen, want);
    assert_eq!(report.cells, 1504);
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems); // colony 2 count, End totals
}

#[test]
fn a_record_that_does_not_decode_is_a_bad_record() {
    let mut w = RecordWriter::new(Vec::new(), FileKind::Dump, 0).unwrap();
    w.append(b"\xc1 not msgpack").unwrap();
    let bytes = w.finish().unwrap();
    let (_, strict) = read_bytes(&bytes, ReadMode::Strict);
    match strict {
        Err(StoreError::BadRecord { offset, .. }) => assert_eq!(offset, HEADER_LEN as u64),
        other => panic!("{other:?}"),
    }
    let (_, salvage) = read_bytes(&bytes, ReadMode::Salvage);
    let report = salvage.unwrap();
    // The bad record, and the missing End record.
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
}

fn small_dump() -> Vec<u8> {
    let mut w = DumpWriter::new(Vec::new(), FileKind::Dump, 0).unwrap();
    for colony in 0..3 {
        w.begin_colony(header(colony, 5)).unwrap();
        w.cells(&cells(colony, 5)).unwrap();
    }
    w.finish().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn mutated_dumps_never_panic(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let mut bytes = small_dump();
        for (i, v) in flips {
            let n = bytes.len();
            bytes[i % n] ^= v;
        }
        if let Some(c) = cut {
            let n = bytes.len();
            bytes.truncate(c % n);
        }
        for mode in [ReadMode::Strict, ReadMode::Salvage] {
            let (seen, result) = read_bytes(&bytes, mode);
            if let Ok(report) = result {
                prop_assert_eq!(report.cells as usize, seen.len());
            }
        }
    }
}

/// Version 1 files encoded byte strings as msgpack arrays of integers (serde's default
/// for `Vec<u8>`), and files before version 3 grouped cells by the old FNV-1a
/// placement. Such a dump is refused with a clear error, never loaded into colonies
/// that do not serve its keys; its records themselves still decode.
#[test]
fn a_dump_from_before_slot_placement_is_refused() {
    use serde::Serialize;
    #[derive(Serialize)]
    enum OldDna {
        Value(Vec<u8>),
    }
    #[derive(Serialize)]
    struct OldCell {
        dna: OldDna,
        version: Version,
        expires_at: Option<u64>,
    }
    #[derive(Serialize)]
    enum OldRecord {
        Colony(ColonyDump),
        Cells {
            colony: ColonyId,
            cells: Vec<(Vec<u8>, OldCell)>,
        },
        End {
            colonies: u32,
            cells: u64,
        },
    }
    let value = vec![1u8, 0x80, 0xff];
    let records = [
        OldRecord::Colony(ColonyDump {
            colony: 4,
            epoch: Epoch::genesis(1),
            seq: 9,
            cells: 1,
        }),
        OldRecord::Cells {
            colony: 4,
            cells: vec![(
                b"k".to_vec(),
                OldCell {
                    dna: OldDna::Value(value.clone()),
                    version: Version::default(),
                    expires_at: None,
                },
            )],
        },
        OldRecord::End {
            colonies: 1,
            cells: 1,
        },
    ];
    let mut w = RecordWriter::new(Vec::new(), FileKind::Dump, 0).unwrap();
    for (i, r) in records.iter().enumerate() {
        let bytes = rmp_serde::to_vec(r).unwrap();
        if i == 1 {
            // The old encoding really is an array of integers here.
            assert!(bytes.windows(4).any(|b| b == [0x93, 0x01, 0xcc, 0x80]));
        }
        w.append(&bytes).unwrap();
    }
    let mut file = w.finish().unwrap();
    file[..HEADER_LEN].copy_from_slice(
        &Header {
            version: 1,
            kind: FileKind::Dump,
            created_at_ms: 0,
        }
        .encode(),
    );
    let e = DumpReader::open(&file[..], "old.colony", ReadMode::Strict).err();
    assert!(
        matches!(e, Some(StoreError::UnsupportedVersion { found: 1, .. })),
        "{e:?}"
    );
    // The decoders still read the old integer-array encoding.
    let old = rmp_serde::to_vec(&records[1]).unwrap();
    let DumpRecord::Cells { cells, .. } = rmp_serde::from_slice::<DumpRecord>(&old).unwrap() else {
        panic!("a cells record");
    };
    assert_eq!(cells[0].1.dna, Dna::Value(value.into()));
}
