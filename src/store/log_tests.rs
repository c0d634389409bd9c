//! Tests of mutation logs: segment rotation, reopening after a clean stop, a crash and
//! a torn record, the replay rules (versions, deletes, expiry, snapshots, colonies),
//! compaction (same state, fewer bytes, the active segment left alone, leftovers,
//! positions), corruption in Strict and Salvage modes, and a property test that no
//! segment contents panic the readers or the writer.

use super::frame::*;
use super::frame_tests::{with_logs, TempDir};
use super::log::*;
use super::StoreError;
use crate::core::cell::{Cell, Dna, Key, Op, RemoveWhy};
use crate::core::messages::Mutation;
use crate::core::types::{ColonyId, Epoch, Version};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

const NOW: u64 = 1_000_000;
const MB: u64 = 1 << 20;

fn v(term: u64, seq: u64) -> Version {
    Version {
        epoch: Epoch { term, by: 1 },
        seq,
    }
}

fn cell(value: &str, version: Version) -> Cell {
    Cell {
        dna: Dna::Value(value.into()),
        version,
        expires_at: None,
    }
}

fn put(version: Version, key: &str, value: &str) -> Mutation {
    Mutation {
        version,
        op: Op::Put {
            key: key.into(),
            cell: cell(value, version),
        },
    }
}

fn put_expiring(version: Version, key: &str, expires_at: u64) -> Mutation {
    let mut m = put(version, key, "soon gone");
    if let Op::Put { cell, .. } = &mut m.op {
        cell.expires_at = Some(expires_at);
    }
    m
}

fn remove(version: Version, key: &str) -> Mutation {
    Mutation {
        version,
        op: Op::Remove {
            key: key.into(),
            why: RemoveWhy::Deleted,
        },
    }
}

fn entries(colony: ColonyId, entries: Vec<Mutation>) -> LogRecord {
    LogRecord::Entries { colony, entries }
}

type State = BTreeMap<(ColonyId, Key), Cell>;

/// Replays `path`, checking that every (colony, key) comes once.
fn replay_state(path: &Path, mode: ReadMode) -> Result<(State, ReplayReport), StoreError> {
    let mut state = State::new();
    let report = replay(path, mode, NOW, |colony, key, cell| {
        let again = state.insert((colony, key.clone()), cell);
        assert!(again.is_none(), "{colony}/{key:?} emitted twice");
    })?;
    assert_eq!(report.cells as usize, state.len());
    Ok((state, report))
}

fn state(path: &Path) -> State {
    let (state, report) = replay_state(path, ReadMode::Strict).unwrap();
    assert_eq!(report.missing, 0);
    state
}

/// The values of a state, as text, for readable assertions.
fn values(state: &State) -> BTreeMap<(ColonyId, String), String> {
    state
        .iter()
        .map(|((colony, key), cell)| {
            let value = match &cell.dna {
                Dna::Value(v) => String::from_utf8_lossy(v).into_owned(),
                other => format!("{other:?}"),
            };
            ((*colony, String::from_utf8_lossy(key).into_owned()), value)
        })
        .collect()
}

fn expect(pairs: &[(ColonyId, &str, &str)]) -> BTreeMap<(ColonyId, String), String> {
    pairs
        .iter()
        .map(|(c, k, v)| ((*c, k.to_string()), v.to_string()))
        .collect()
}

/// Writes `records` into a fresh log in `dir` and closes it.
fn write_log(dir: &Path, segment_bytes: u64, records: &[LogRecord]) {
    let (mut w, _) = LogWriter::open(dir, ReadMode::Strict, segment_bytes, 1).unwrap();
    for r in records {
        w.append(r).unwrap();
    }
    w.close().unwrap();
}

fn read_frames(path: &Path) -> ReadReport {
    let mut reader = RecordReader::open_path(path, ReadMode::Strict).unwrap();
    while let Some(r) = reader.next_record() {
        r.unwrap();
    }
    reader.report().clone()
}

fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    let files = log_files(dir).unwrap();
    files.segments.into_iter().map(|f| f.path).collect()
}

/// `rounds` rounds of puts of keys 0..keys over colonies 0..4 (in batches of 50), every
/// key deleted in round 3 and put again after, the keys ending in 7 expired at NOW.
fn workload(rounds: u64, keys: u64) -> Vec<LogRecord> {
    let mut seq = [0u64; 4];
    let mut records = Vec::new();
    for round in 0..rounds {
        for colony in 0..4u32 {
            let mut batch = Vec::new();
            for k in (0..keys).filter(|k| k % 4 == u64::from(colony)) {
                let s = &mut seq[colony as usize];
                *s += 1;
                let key = format!("key-{k}");
                batch.push(match (round, k % 10) {
                    (3, _) => remove(v(1, *s), &key),
                    (_, 7) => put_expiring(v(1, *s), &key, NOW - 1),
                    _ => put(
                        v(1, *s),
                        &key,
                        &format!("round {round} of key {k}, padded...."),
                    ),
                });
                if batch.len() == 50 {
                    records.push(entries(colony, std::mem::take(&mut batch)));
                }
            }
            if !batch.is_empty() {
                records.push(entries(colony, batch));
            }
        }
    }
    records
}

#[test]
fn the_writer_rotates_segments_at_the_size_limit() {
    let dir = TempDir::new("log-rotate");
    let (mut w, positions) = LogWriter::open(dir.path(), ReadMode::Strict, 2000, 7).unwrap();
    assert!(positions.is_empty());
    assert_eq!(w.segment(), 1);
    assert_eq!(dir.entries(), vec![segment_name(1)]);
    let mut total = 0;
    for i in 0..100 {
        let value = "x".repeat(50);
        total += w
            .append(&entries(
                1,
                vec![put(v(1, i + 1), &format!("k{i}"), &value)],
            ))
            .unwrap();
    }
    assert_eq!(w.bytes_written(), total);
    let segments = segment_paths(dir.path());
    assert!(segments.len() >= 4, "{segments:?}");
    assert_eq!(w.segment_path(), segments.last().unwrap());
    assert_eq!(w.segment(), segments.len() as u64);
    let record = total / 100;
    for path in &segments[..segments.len() - 1] {
        let len = fs::metadata(path).unwrap().len();
        assert!((2000..2000 + 2 * record).contains(&len), "{len}");
        let frames = read_frames(path);
        assert!(frames.is_clean(), "{frames:?}");
    }
    // The active segment has no footer until it is closed.
    assert!(!read_frames(segments.last().unwrap()).finished());
    w.close().unwrap();
    assert!(read_frames(segments.last().unwrap()).is_clean());
    assert_eq!(state(dir.path()).len(), 100);
}

#[test]
fn reopening_resumes_the_unfinished_segment_and_returns_the_positions() {
    let dir = TempDir::new("log-reopen");
    let (mut w, _) = LogWriter::open(dir.path(), ReadMode::Strict, MB, 1).unwrap();
    w.append(&entries(
        1,
        (1..=3).map(|s| put(v(1, s), "a", "1")).collect(),
    ))
    .unwrap();
    w.append(&entries(
        2,
        vec![put(v(2, 5), "b", "2"), remove(v(2, 6), "c")],
    ))
    .unwrap();
    for r in snapshot_records(3, v(4, 7), vec![(b"s".into(), cell("3", v(4, 2)))]) {
        w.append(&r).unwrap();
    }
    w.append(&LogRecord::Positions {
        colonies: vec![(4, v(1, 9)), (1, v(1, 2))],
    })
    .unwrap();
    w.sync().unwrap();
    let segment = w.segment();
    drop(w); // a crash after the fsync: no footer

    let want = LogPositions::from([(1, v(1, 3)), (2, v(2, 6)), (3, v(4, 7)), (4, v(1, 9))]);
    let (mut w, positions) = LogWriter::open(dir.path(), ReadMode::Strict, MB, 2).unwrap();
    assert_eq!(positions, want);
    assert_eq!(w.segment(), segment, "resumes the unfinished segment");
    assert_eq!(dir.entries(), vec![segment_name(1)]);
    w.append(&entries(1, vec![put(v(1, 4), "d", "4")])).unwrap();
    w.close().unwrap();
    let frames = read_frames(&segment_paths(dir.path())[0]);
    assert!(frames.is_clean(), "{frames:?}");
    assert_eq!(frames.records, 5);
    assert_eq!(
        values(&state(dir.path())),
        expect(&[(1, "a", "1"), (1, "d", "4"), (2, "b", "2"), (3, "s", "3")])
    );

    // The segment is finished: the next open starts segment 2, positions unchanged
    // but for colony 1.
    let (w, positions) = LogWriter::open(dir.path(), ReadMode::Strict, MB, 3).unwrap();
    assert_eq!(w.segment(), 2);
    assert_eq!(positions[&1], v(1, 4));
    assert_eq!(positions.len(), 4);
    w.close().unwrap();
}

#[test]
fn a_torn_last_record_is_cut_on_reopen_and_appending_goes_on() {
    let dir = TempDir::new("log-torn");
    let (mut w, _) = LogWriter::open(dir.path(), ReadMode::Strict, MB, 1).unwrap();
    let mut last = 0;
    for s in 1..=10 {
        last = w
            .append(&entries(1, vec![put(v(1, s), &format!("k{s}"), "v")]))
            .unwrap();
    }
    w.sync().unwrap();
    drop(w);
    let path = dir.path().join(segment_name(1));
    let len = fs::metadata(&path).unwrap().len();
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len - 5).unwrap();
    drop(file);

    let ((w, positions), logs) =
        with_logs(|| LogWriter::open(dir.path(), ReadMode::Strict, MB, 2).unwrap());
    assert!(logs.contains("torn tail"), "{logs}");
    assert_eq!(positions, LogPositions::from([(1, v(1, 9))]));
    assert_eq!(fs::metadata(&path).unwrap().len(), len - last);
    let mut w = w;
    w.append(&entries(1, vec![put(v(1, 10), "k10", "again")]))
        .unwrap();
    w.close().unwrap();

    let (state, report) = replay_state(dir.path(), ReadMode::Strict).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(state.len(), 10);
    assert_eq!(values(&state)[&(1, "k10".into())], "again");
    assert!(read_frames(&path).is_clean());
}

#[test]
fn a_segment_with_a_torn_header_is_rewritten() {
    let dir = TempDir::new("log-torn-header");
    write_log(dir.path(), MB, &[entries(1, vec![put(v(1, 1), "a", "1")])]);
    // The writer had created segment 2 and crashed inside its header.
    let header = Header::new(FileKind::MutationLog, 5).encode();
    fs::write(dir.path().join(segment_name(2)), &header[..9]).unwrap();
    assert_eq!(state(dir.path()).len(), 1);
    let (mut w, _) = LogWriter::open(dir.path(), ReadMode::Strict, MB, 6).unwrap();
    assert_eq!(w.segment(), 2);
    w.append(&entries(1, vec![put(v(1, 2), "b", "2")])).unwrap();
    w.close().unwrap();
    assert_eq!(dir.entries(), vec![segment_name(1), segment_name(2)]);
    assert_eq!(state(dir.path()).len(), 2);
}

#[test]
fn replay_keeps_the_highest_version_drops_deletes_and_expired_cells() {
    let dir = TempDir::new("log-replay");
    write_log(
        dir.path(),
        MB,
        &[
            entries(
                1,
                vec![
                    put(v(1, 1), "a", "a1"),
                    put(v(1, 2), "b", "b1"),
                    put(v(1, 3), "a", "a2"),
                    remove(v(1, 4), "b"),
                    put_expiring(v(1, 5), "c", NOW),
                    put_expiring(v(1, 6), "d", NOW + 1),
                    put(v(2, 1), "e", "new epoch"),
                ],
            ),
            // The same key in another colony is another cell.
            entries(2, vec![put(v(1, 1), "a", "colony 2")]),
            // A lower version logged later loses, even across epochs.
            entries(
                1,
                vec![put(v(1, 9), "e", "stale"), put(v(1, 2), "a", "stale")],
            ),
        ],
    );
    let (state, report) = replay_state(dir.path(), ReadMode::Strict).unwrap();
    let want = expect(&[
        (1, "a", "a2"),
        (1, "d", "soon gone"),
        (1, "e", "new epoch"),
        (2, "a", "colony 2"),
    ]);
    assert_eq!(values(&state), want);
    assert_eq!(report.deleted, 1);
    assert_eq!(report.expired, 1);
    assert_eq!(report.entries, 10);
    assert_eq!(report.records, 3);
    assert_eq!(
        report.positions,
        LogPositions::from([(1, v(2, 1)), (2, v(1, 1))])
    );
    assert!(report.is_clean(), "{report:?}");

    // A single file replays the same way.
    let path = dir.path().join(segment_name(1));
    assert_eq!(replay_state(&path, ReadMode::Strict).unwrap().0, state);

    // Later, `d` has expired too.
    let later = replay(dir.path(), ReadMode::Strict, NOW + 1, |_, _, _| {}).unwrap();
    assert_eq!((later.cells, later.expired), (3, 2));
}

#[test]
fn a_snapshot_resets_its_colony_and_no_other() {
    let dir = TempDir::new("log-snapshot");
    let mut records = vec![
        entries(
            1,
            vec![
                put(v(1, 1), "a", "a1"),
                put(v(1, 2), "b", "b1"),
                put(v(1, 3), "c", "c1"),
                remove(v(1, 4), "gone"),
            ],
        ),
        entries(
            2,
            vec![put(v(1, 1), "a", "other"), put(v(1, 2), "z", "other")],
        ),
        // Logged before the snapshot but newer than it: stays.
        entries(1, vec![put(v(1, 12), "w", "w12")]),
    ];
    // The state of colony 1 at seq 10: `a` unchanged, `c` gone, `x` and `y` new.
    records.push(LogRecord::Snapshot {
        colony: 1,
        at: v(1, 10),
        part: 0,
        cells: vec![
            (b"a".into(), cell("a1", v(1, 1))),
            (b"x".into(), cell("x8", v(1, 8))),
        ],
    });
    records.push(entries(1, vec![put(v(1, 11), "b", "b11")]));
    records.push(LogRecord::Snapshot {
        colony: 1,
        at: v(1, 10),
        part: 1,
        cells: vec![(b"y".into(), cell("y9", v(1, 9)))],
    });
    write_log(dir.path(), MB, &records);
    assert_eq!(
        values(&state(dir.path())),
        expect(&[
            (1, "a", "a1"),
            (1, "b", "b11"),
            (1, "w", "w12"),
            (1, "x", "x8"),
            (1, "y", "y9"),
            (2, "a", "other"),
            (2, "z", "other"),
        ])
    );

    // An empty snapshot empties its colony up to its version.
    let empty = snapshot_records(2, v(1, 5), Vec::new());
    assert_eq!(
        empty,
        vec![LogRecord::Snapshot {
            colony: 2,
            at: v(1, 5),
            part: 0,
            cells: vec![]
        }]
    );
    let (mut w, _) = LogWriter::open(dir.path(), ReadMode::Strict, MB, 2).unwrap();
    w.append(&empty[0]).unwrap();
    w.close().unwrap();
    assert!(state(dir.path()).keys().all(|(colony, _)| *colony == 1));
}

#[test]
fn snapshot_records_split_into_parts_that_replay_whole() {
    let cells: Vec<(Key, Cell)> = (0..2500u64)
        .map(|i| (format!("k{i}").into(), cell("v", v(1, i))))
        .collect();
    let records = snapshot_records(7, v(1, 3000), cells.clone());
    let shape: Vec<(u32, usize)> = records
        .iter()
        .map(|r| match r {
            LogRecord::Snapshot {
                colony: 7,
                at,
                part,
                cells,
            } if *at == v(1, 3000) => (*part, cells.len()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(shape, vec![(0, 1000), (1, 1000), (2, 500)]);

    // Large cells are split by bytes.
    let big: Vec<(Key, Cell)> = (0..10u64)
        .map(|i| (vec![i as u8].into(), cell(&"x".repeat(300 << 10), v(1, i))))
        .collect();
    let parts = snapshot_records(7, v(1, 10), big);
    assert!(parts.len() >= 5, "{}", parts.len());

    let dir = TempDir::new("log-parts");
    write_log(dir.path(), 64 << 10, &records);
    let state = state(dir.path());
    let want: State = cells.into_iter().map(|(k, c)| ((7, k), c)).collect();
    assert_eq!(state, want);
}

/// The directory's files and their sizes.
fn sizes(dir: &Path) -> BTreeMap<String, u64> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, e.metadata().unwrap().len())
        })
        .collect()
}

#[test]
fn compaction_keeps_the_state_in_a_fraction_of_the_bytes() {
    let dir = TempDir::new("log-compact");
    write_log(dir.path(), 64 << 10, &workload(20, 1000));
    let before = state(dir.path());
    assert_eq!(before.len(), 900); // the keys ending in 7 expired
    let (w, positions) = LogWriter::open(dir.path(), ReadMode::Strict, MB, 2).unwrap();
    w.close().unwrap();
    let input_bytes: u64 = sizes(dir.path()).values().sum();
    let segments = segment_paths(dir.path());

    let report = compact(dir.path(), ReadMode::Strict, NOW).unwrap();
    let last = segments.len() as u64;
    let out = dir.path().join(compacted_name(last));
    assert_eq!(dir.entries(), vec![compacted_name(last)]);
    assert_eq!(report.inputs, segments);
    assert_eq!(report.input_bytes, input_bytes);
    assert_eq!(report.output.as_deref(), Some(out.as_path()));
    assert_eq!(report.output_bytes, fs::metadata(&out).unwrap().len());
    assert!(
        report.output_bytes * 10 < report.input_bytes,
        "{} of {}",
        report.output_bytes,
        report.input_bytes
    );
    assert_eq!(report.replay.cells, 900);
    assert_eq!(report.dropped(), 20_000 - 900);
    assert!(report.replay.is_clean());

    // The same state, from the directory or from the file alone.
    assert_eq!(state(dir.path()), before);
    assert_eq!(state(&out), before);
    let frames = read_frames(&out);
    assert!(frames.is_clean());
    // Puts grouped by colony in chunks of at most 1000 (225 cells per colony), then
    // the positions.
    assert_eq!(frames.records, 4 + 1);

    // The positions survive, though the deletes are gone.
    let (w, reopened) = LogWriter::open(dir.path(), ReadMode::Strict, MB, 4).unwrap();
    assert_eq!(reopened, positions);
    assert_eq!(w.segment(), last + 1);
    w.close().unwrap();

    // Again: the empty segment is folded in, the state stays.
    let again = compact(dir.path(), ReadMode::Strict, NOW).unwrap();
    assert_eq!(
        again.inputs,
        vec![out, dir.path().join(segment_name(last + 1))]
    );
    assert_eq!(dir.entries(), vec![compacted_name(last + 1)]);
    assert_eq!(again.output_bytes, report.output_bytes);
    assert_eq!(state(dir.path()), before);
    assert_eq!(
        LogWriter::open(dir.path(), ReadMode::Strict, MB, 6)
            .unwrap()
            .1,
        positions
    );
}

#[test]
fn compaction_leaves_the_active_segment_alone() {
    let dir = TempDir::new("log-active");
    let records = workload(6, 400);
    let (mut w, _) = LogWriter::open(dir.path(), ReadMode::Strict, 16 << 10, 1).unwrap();
    let (first, rest) = records.split_at(records.len() / 2);
    for r in first {
        w.append(r).unwrap();
    }
    w.append(&entries(9, vec![put(v(1, 1), "active", "yes")]))
        .unwrap();
    w.sync().unwrap();
    let active = w.segment_path().to_owned();
    let active_bytes = fs::read(&active).unwrap();
    let before = state(dir.path());
    assert!(before.contains_key(&(9, b"active".into())));

    let report = compact(dir.path(), ReadMode::Strict, NOW).unwrap();
    assert!(!report.inputs.contains(&active));
    assert_eq!(report.inputs.len() as u64, w.segment() - 1);
    assert_eq!(fs::read(&active).unwrap(), active_bytes);
    assert_eq!(
        dir.entries(),
        vec![compacted_name(w.segment() - 1), segment_name(w.segment())]
    );
    assert_eq!(state(dir.path()), before);

    // Nothing finished to compact: nothing written.
    let none = compact(dir.path(), ReadMode::Strict, NOW).unwrap();
    assert!(none.inputs.is_empty() && none.output.is_none());
    assert_eq!(none.output_bytes, 0);
    assert_eq!(
        dir.entries(),
        vec![compacted_name(w.segment() - 1), segment_name(w.segment())]
    );

    // The writer goes on (into more segments), and the next compaction takes it all.
    for r in rest {
        w.append(r).unwrap();
    }
    w.close().unwrap();
    let full = state(dir.path());
    compact(dir.path(), ReadMode::Strict, NOW).unwrap();
    assert_eq!(dir.entries().len(), 1);
    assert_eq!(state(dir.path()), full);
    assert_eq!(full.len(), 360 + 1);
}

#[test]
fn leftovers_of_an_interrupted_compaction_are_ignored_then_deleted() {
    let dir = TempDir::new("log-leftovers");
    write_log(dir.path(), 4 << 10, &workload(2, 200));
    let saved: Vec<(PathBuf, Vec<u8>)> = segment_paths(dir.path())
        .into_iter()
        .map(|p| {
            let bytes = fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    let first = compact(dir.path(), ReadMode::Strict, NOW).unwrap();
    let base = first.output.unwrap();
    let before = state(dir.path());

    // A crash between the rename and the deletions: the inputs are back, with an older
    // compacted file, a stale temporary file and files that are not the log's.
    for (path, bytes) in &saved {
        fs::write(path, bytes).unwrap();
    }
    let old = dir.path().join(compacted_name(1));
    fs::write(&old, fs::read(&base).unwrap()).unwrap();
    let tmp = dir.path().join(format!("{}.tmp-99", compacted_name(3)));
    fs::write(&tmp, b"half").unwrap();
    for other in [
        "notes.txt",
        "segment-1.colonylog",
        "segment-0000000001.colonylog.bak",
    ] {
        fs::write(dir.path().join(other), b"not mine").unwrap();
    }
    let files = log_files(dir.path()).unwrap();
    assert_eq!(files.base.as_ref().map(|b| &b.path), Some(&base));
    assert!(files.segments.is_empty());
    let mut want: Vec<PathBuf> = saved.iter().map(|(p, _)| p.clone()).collect();
    want.push(old);
    want.push(tmp);
    want.sort();
    assert_eq!(files.leftovers, want);
    let (again, report) = replay_state(dir.path(), ReadMode::Strict).unwrap();
    assert_eq!(again, before);
    assert_eq!(report.files.len(), 1);

    // The next compaction deletes them, with or without new segments.
    let report = compact(dir.path(), ReadMode::Strict, NOW).unwrap();
    assert!(report.output.is_none());
    assert_eq!(report.leftovers, want);
    assert_eq!(
        dir.entries(),
        vec![
            base.file_name().unwrap().to_string_lossy().into_owned(),
            "notes.txt".into(),
            "segment-0000000001.colonylog.bak".into(),
            "segment-1.colonylog".into(),
        ]
    );
    assert_eq!(state(dir.path()), before);
}

/// The offsets of the data records of a file.
fn record_offsets(path: &Path) -> Vec<u64> {
    let mut reader = RecordReader::open_path(path, ReadMode::Strict).unwrap();
    let mut offsets = Vec::new();
    while let Some(r) = reader.next_record() {
        offsets.push(r.unwrap().offset);
    }
    offsets
}

#[test]
fn corruption_in_the_middle_fails_strict_and_salvage_keeps_the_rest() {
    let dir = TempDir::new("log-corrupt");
    let records: Vec<LogRecord> = (0..30u64)
        .map(|i| entries(1, vec![put(v(1, i + 1), &format!("k{i}"), "value")]))
        .collect();
    write_log(dir.path(), 400, &records);
    let segments = segment_paths(dir.path());
    assert!(segments.len() >= 3);
    let victim = &segments[1];
    let at = record_offsets(victim)[2];
    let mut bytes = fs::read(victim).unwrap();
    bytes[at as usize + 12] ^= 0x40;
    fs::write(victim, &bytes).unwrap();
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();

    let e = replay_state(dir.path(), ReadMode::Strict).unwrap_err();
    assert!(
        matches!(&e, StoreError::Corrupt { path, offset, .. } if path == victim && *offset == at),
        "{e:?}"
    );
    assert!(e.to_string().contains(&name), "{e}");
    let e = LogWriter::open(dir.path(), ReadMode::Strict, 400, 2)
        .err()
        .unwrap();
    assert!(e.to_string().contains(&name), "{e}");
    let e = compact(dir.path(), ReadMode::Strict, NOW).unwrap_err();
    assert!(e.to_string().contains(&name), "{e}");
    assert_eq!(fs::read(victim).unwrap(), bytes, "nothing changed");

    let (state, report) = replay_state(dir.path(), ReadMode::Salvage).unwrap();
    assert_eq!(state.len(), 29);
    assert!(!report.is_clean());
    assert_eq!(report.files[1].frames.skipped.len(), 1);
    let compacted = compact(dir.path(), ReadMode::Salvage, NOW).unwrap();
    assert_eq!(compacted.replay.cells, 29);
    assert_eq!(replay_state(dir.path(), ReadMode::Strict).unwrap().0, state);
}

#[test]
fn a_record_that_does_not_decode_is_a_bad_record() {
    let dir = TempDir::new("log-bad-record");
    let path = dir.path().join(segment_name(1));
    let mut w = RecordWriter::new(Vec::new(), FileKind::MutationLog, 0).unwrap();
    w.append(&rmp_serde::to_vec(&entries(1, vec![put(v(1, 1), "a", "1")])).unwrap())
        .unwrap();
    w.append(b"\xc1 not msgpack").unwrap();
    w.append(&rmp_serde::to_vec(&entries(1, vec![put(v(1, 2), "b", "2")])).unwrap())
        .unwrap();
    fs::write(&path, w.finish().unwrap()).unwrap();
    let e = replay_state(dir.path(), ReadMode::Strict).unwrap_err();
    assert!(matches!(e, StoreError::BadRecord { .. }), "{e:?}");
    let (state, report) = replay_state(dir.path(), ReadMode::Salvage).unwrap();
    assert_eq!(state.len(), 2);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);

    // A dump is not a log.
    fs::write(&path, Header::new(FileKind::Dump, 0).encode()).unwrap();
    let e = replay_state(dir.path(), ReadMode::Salvage).unwrap_err();
    assert!(matches!(e, StoreError::WrongKind { .. }), "{e:?}");
}

/// A small finished segment: puts, a remove, a snapshot part.
fn small_segment() -> Vec<u8> {
    let mut records = vec![
        entries(1, vec![put(v(1, 1), "a", "1"), put(v(1, 2), "b", "2")]),
        entries(2, vec![remove(v(1, 3), "a")]),
    ];
    records.extend(snapshot_records(
        3,
        v(1, 4),
        vec![(b"s".into(), cell("s", v(1, 4)))],
    ));
    let mut w = RecordWriter::new(Vec::new(), FileKind::MutationLog, 0).unwrap();
    for r in &records {
        w.append(&rmp_serde::to_vec(r).unwrap()).unwrap();
    }
    w.finish().unwrap()
}

/// Replay, compaction and the writer on a directory whose only segment is `bytes`:
/// none may panic, and a writer that opens must leave a log its appends replay from.
fn exercise(bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = TempDir::new("log-prop");
    let path = dir.path().join(segment_name(1));
    fs::write(&path, bytes).unwrap();
    for mode in [ReadMode::Strict, ReadMode::Salvage] {
        let _ = replay_state(dir.path(), mode);
        let _ = replay_state(&path, mode);
    }
    let _ = compact(dir.path(), ReadMode::Strict, NOW);
    if let Ok((mut w, _)) = LogWriter::open(dir.path(), ReadMode::Salvage, MB, 1) {
        w.append(&entries(77, vec![put(v(9, 9), "mine", "kept")]))
            .unwrap();
        w.close().unwrap();
        let (state, _) = replay_state(dir.path(), ReadMode::Salvage).unwrap();
        prop_assert!(state.contains_key(&(77, b"mine".into())));
    }
    let _ = compact(dir.path(), ReadMode::Salvage, NOW);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_segment_bytes_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..400),
        with_header in any::<bool>(),
    ) {
        let mut bytes = if with_header {
            Header::new(FileKind::MutationLog, 0).encode().to_vec()
        } else {
            Vec::new()
        };
        bytes.extend_from_slice(&body);
        exercise(&bytes)?;
    }

    #[test]
    fn mutated_segments_never_panic(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let mut bytes = small_segment();
        for (i, x) in flips {
            let n = bytes.len();
            bytes[i % n] ^= x;
        }
        if let Some(c) = cut {
            let n = bytes.len();
            bytes.truncate(c % n);
        }
        exercise(&bytes)?;
    }
}
