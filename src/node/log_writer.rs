//! The logging node's disk side: a bounded buffer between the host actor and one
//! writer thread that appends to the segmented log (`store::log`).
//!
//! The host actor never waits for the disk. It offers what the core's log sink
//! produced ([`LogWriter::offer`]); what fits in the buffer is queued and the call
//! returns at once. What does not fit is refused, in order (once one append is refused
//! the rest of the batch is too, so nothing is queued behind a hole), and the host
//! tells the core how far each colony really got; the core then fetches the rest again
//! from the primaries, and says so on the event stream (`logger_behind`). A slow disk
//! therefore never slows the primaries: they only send.
//!
//! The thread appends everything queued and fsyncs at most every [`SYNC_EVERY`] (a
//! power loss may cost that much of the log; the cluster still holds it). Under load it
//! takes the queue at most every [`GATHER`], unless the queue passes half the buffer:
//! a busy logger then makes a few large writes a second instead of one wake-up and one
//! write per message from a primary, which is what its cpu went on. A write error keeps the batch queued and the thread retries opening the
//! directory every second; the buffer fills meanwhile and overflow is reported as
//! above. [`LogWriter::close`] drains the buffer and finishes the current segment.

use crate::core::logsink::LogAppend;
use crate::core::types::{ColonyId, Version};
use crate::store::log::{snapshot_records, LogPositions, LogRecord, LogWriter as Segments};
use crate::store::{ReadMode, StoreError};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest time between two fsyncs of the current segment while appending.
pub const SYNC_EVERY: Duration = Duration::from_millis(200);
/// The least time between two takes of the queue while it is under half full.
pub const GATHER: Duration = Duration::from_millis(10);
/// How long a failed writer waits before opening the directory again.
const RETRY_OPEN: Duration = Duration::from_secs(1);

/// What the writer has done (all monotonic but `buffered_bytes` and `segment`).
#[derive(Debug, Default)]
struct Stats {
    entries: AtomicU64,
    snapshots: AtomicU64,
    bytes: AtomicU64,
    buffered_bytes: AtomicU64,
    dropped: AtomicU64,
    overflows: AtomicU64,
    write_errors: AtomicU64,
    segment: AtomicU64,
}

/// A copy of the writer's counters, for `/status` and `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LogWriterStats {
    /// Mutations appended.
    pub entries: u64,
    /// Colony snapshots appended.
    pub snapshots: u64,
    /// Record bytes appended.
    pub bytes: u64,
    /// Bytes waiting in the buffer (a gauge).
    pub buffered_bytes: u64,
    /// The buffer's capacity.
    pub buffer_capacity: u64,
    /// Appends refused because the buffer was full (fetched again later).
    pub dropped: u64,
    /// Times the buffer overflowed.
    pub overflows: u64,
    pub write_errors: u64,
    /// The segment being written.
    pub segment: u64,
}

struct Queue {
    items: VecDeque<(LogAppend, u64)>,
    bytes: u64,
    closing: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    stats: Stats,
    /// Queued bytes past which the writer is woken at once (half the buffer).
    urgent_bytes: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock cannot leave the queue half-updated: every
        // update is a push or a pop plus a counter.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What [`LogWriter::offer`] could not queue: for each colony concerned, how far the
/// queued log reaches (`None`: nothing of it was ever queued).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Refused {
    pub reached: Vec<(ColonyId, Option<Version>)>,
    pub dropped: u64,
    pub buffered_bytes: u64,
}

/// The handle the host actor holds.
pub struct LogWriter {
    shared: Arc<Shared>,
    capacity: u64,
    /// Per colony, the position of the last append queued.
    queued: HashMap<ColonyId, Version>,
    thread: Option<JoinHandle<()>>,
    dir: PathBuf,
}

/// Approximate bytes an append holds in memory (what the buffer limit counts).
fn weight(a: &LogAppend) -> u64 {
    const PER_CELL: u64 = 48;
    let sum: u64 = match a {
        LogAppend::Entries { entries, .. } => entries
            .iter()
            .map(|m| {
                let cell = match &m.op {
                    crate::core::cell::Op::Put { cell, .. } => cell.dna.size() as u64,
                    crate::core::cell::Op::Remove { .. } => 0,
                };
                PER_CELL + m.op.key().len() as u64 + cell
            })
            .sum(),
        LogAppend::Snapshot { cells, .. } => cells
            .iter()
            .map(|(k, c)| PER_CELL + k.len() as u64 + c.dna.size() as u64)
            .sum(),
    };
    sum.max(1)
}

fn records(a: LogAppend) -> Vec<LogRecord> {
    match a {
        LogAppend::Entries { colony, entries } => vec![LogRecord::Entries { colony, entries }],
        LogAppend::Snapshot { colony, at, cells } => snapshot_records(colony, at, cells),
    }
}

impl LogWriter {
    /// Opens (or creates) the log directory, recovering a torn tail, and starts the
    /// writer thread. Returns where the log stands per colony.
    pub fn start(
        dir: &Path,
        segment_bytes: u64,
        buffer_bytes: u64,
        now_ms: u64,
    ) -> Result<(LogWriter, LogPositions), StoreError> {
        let (segments, positions) = Segments::open(dir, ReadMode::Strict, segment_bytes, now_ms)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                bytes: 0,
                closing: false,
            }),
            wake: Condvar::new(),
            stats: Stats::default(),
            urgent_bytes: buffer_bytes / 2,
        });
        shared.stats.segment.store(segments.segment(), Relaxed);
        let s = shared.clone();
        let d = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("colony-log-writer".into())
            .spawn(move || write_loop(&s, segments, &d, segment_bytes))
            .map_err(|e| StoreError::Io {
                path: dir.to_path_buf(),
                op: "starting the log writer thread".into(),
                source: e,
            })?;
        Ok((
            LogWriter {
                shared,
                capacity: buffer_bytes,
                queued: positions.clone().into_iter().collect(),
                thread: Some(thread),
                dir: dir.to_path_buf(),
            },
            positions,
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Queues `appends` without waiting. Returns what did not fit.
    pub fn offer(&mut self, appends: Vec<LogAppend>) -> Option<Refused> {
        if appends.is_empty() {
            return None;
        }
        let mut refused: Option<Refused> = None;
        let mut q = self.shared.lock();
        let was_empty = q.items.is_empty();
        let was_urgent = q.bytes >= self.shared.urgent_bytes;
        for a in appends {
            if let Some(r) = &mut refused {
                r.dropped += count(&a);
                let c = a.colony();
                if !r.reached.iter().any(|(x, _)| *x == c) {
                    r.reached.push((c, self.queued.get(&c).copied()));
                }
                continue;
            }
            let w = weight(&a);
            // Bytes still being written count too: the bound holds while the thread
            // writes a batch. Only an append larger than the whole buffer is let in,
            // alone, so one huge snapshot cannot block its colony for ever.
            if q.bytes + w > self.capacity && q.bytes > 0 {
                let c = a.colony();
                refused = Some(Refused {
                    reached: vec![(c, self.queued.get(&c).copied())],
                    dropped: count(&a),
                    buffered_bytes: q.bytes,
                });
                continue;
            }
            if let Some(v) = a.reaches() {
                self.queued.insert(a.colony(), v);
            }
            q.bytes += w;
            q.items.push_back((a, w));
        }
        self.shared.stats.buffered_bytes.store(q.bytes, Relaxed);
        // The writer waits for work only on an empty queue, and gathers for GATHER
        // unless the queue gets urgent: wake it on those two edges, not on every offer.
        let wake = (was_empty && !q.items.is_empty())
            || (!was_urgent && q.bytes >= self.shared.urgent_bytes);
        drop(q);
        if wake {
            self.shared.wake.notify_one();
        }
        if let Some(r) = &refused {
            self.shared.stats.dropped.fetch_add(r.dropped, Relaxed);
            self.shared.stats.overflows.fetch_add(1, Relaxed);
        }
        refused
    }

    pub fn stats(&self) -> LogWriterStats {
        let s = &self.shared.stats;
        LogWriterStats {
            entries: s.entries.load(Relaxed),
            snapshots: s.snapshots.load(Relaxed),
            bytes: s.bytes.load(Relaxed),
            buffered_bytes: s.buffered_bytes.load(Relaxed),
            buffer_capacity: self.capacity,
            dropped: s.dropped.load(Relaxed),
            overflows: s.overflows.load(Relaxed),
            write_errors: s.write_errors.load(Relaxed),
            segment: s.segment.load(Relaxed),
        }
    }

    /// Writes out everything queued, finishes the current segment and stops the
    /// thread. Called when the node exits.
    pub fn close(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the log writer thread panicked");
            }
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.close();
    }
}

fn count(a: &LogAppend) -> u64 {
    match a {
        LogAppend::Entries { entries, .. } => entries.len() as u64,
        LogAppend::Snapshot { .. } => 1,
    }
}

/// The writer thread: take everything queued, append it, flush; fsync now and then.
fn write_loop(shared: &Shared, segments: Segments, dir: &Path, segment_bytes: u64) {
    let mut segments = Some(segments);
    let mut last_sync = Instant::now();
    let mut last_take = Instant::now();
    let mut dirty = false;
    loop {
        // Take the whole queue; its bytes stay counted as buffered until written.
        let (batch, closing) = {
            let mut q = shared.lock();
            let since = last_take.elapsed();
            if !q.items.is_empty() && !q.closing && since < GATHER {
                let (g, _) = shared
                    .wake
                    .wait_timeout_while(q, GATHER - since, |q| {
                        !q.closing && q.bytes < shared.urgent_bytes
                    })
                    .unwrap_or_else(|e| e.into_inner());
                q = g;
            }
            if q.items.is_empty() && !q.closing {
                let wait = if dirty {
                    SYNC_EVERY
                } else {
                    Duration::from_secs(3600)
                };
                let (g, _) = shared
                    .wake
                    .wait_timeout_while(q, wait, |q| q.items.is_empty() && !q.closing)
                    .unwrap_or_else(|e| e.into_inner());
                q = g;
            }
            let batch: VecDeque<(LogAppend, u64)> = q.items.drain(..).collect();
            last_take = Instant::now();
            (batch, q.closing)
        };
        if segments.is_none() {
            let now = crate::actors::host::now_ms();
            match Segments::open(dir, ReadMode::Strict, segment_bytes, now) {
                Ok((s, _)) => segments = Some(s),
                Err(e) => {
                    shared.stats.write_errors.fetch_add(1, Relaxed);
                    tracing::error!(error = %e, "cannot reopen the log; retrying");
                    requeue(shared, batch);
                    if closing {
                        return;
                    }
                    std::thread::sleep(RETRY_OPEN);
                    continue;
                }
            }
        }
        let w = segments.as_mut().expect("opened above");
        let (written, rest) = append_all(shared, w, batch);
        let failed = !rest.is_empty();
        if failed {
            // Reopening cuts whatever the failure left at the end of the segment; the
            // appends not written go back to the front of the queue.
            segments = None;
        } else {
            dirty |= written > 0;
            if dirty && (last_sync.elapsed() >= SYNC_EVERY || closing || written == 0) {
                if let Err(e) = w.sync() {
                    shared.stats.write_errors.fetch_add(1, Relaxed);
                    tracing::error!(error = %e, "log fsync failed");
                }
                last_sync = Instant::now();
                dirty = false;
            }
            shared.stats.segment.store(w.segment(), Relaxed);
        }
        let empty = requeue(shared, rest);
        if closing && empty && !failed {
            if let Some(w) = segments.take() {
                if let Err(e) = w.close() {
                    tracing::error!(error = %e, "finishing the last log segment failed");
                }
            }
            return;
        }
        if failed {
            std::thread::sleep(RETRY_OPEN);
        }
    }
}

/// Appends the batch in order; returns the bytes of buffer it freed and what could not
/// be written (from the first failure on).
fn append_all(
    shared: &Shared,
    w: &mut Segments,
    mut batch: VecDeque<(LogAppend, u64)>,
) -> (u64, VecDeque<(LogAppend, u64)>) {
    let mut freed = 0;
    while let Some((a, weight)) = batch.pop_front() {
        let is_snapshot = matches!(a, LogAppend::Snapshot { .. });
        let n = count(&a);
        let recs = records(a);
        let mut bytes = 0;
        let mut error = None;
        for r in &recs {
            match w.append(r) {
                Ok(b) => bytes += b,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = error {
            shared.stats.write_errors.fetch_add(1, Relaxed);
            tracing::error!(error = %e, "log append failed; reopening the log");
            batch.push_front((unrecords(recs), weight));
            break;
        }
        freed += weight;
        shared.stats.bytes.fetch_add(bytes, Relaxed);
        if is_snapshot {
            shared.stats.snapshots.fetch_add(1, Relaxed);
        } else {
            shared.stats.entries.fetch_add(n, Relaxed);
        }
    }
    let mut q = shared.lock();
    q.bytes -= freed;
    shared.stats.buffered_bytes.store(q.bytes, Relaxed);
    (freed, batch)
}

/// Puts what was not written back at the front of the queue, in order. Returns
/// whether the queue is empty now.
fn requeue(shared: &Shared, rest: VecDeque<(LogAppend, u64)>) -> bool {
    let mut q = shared.lock();
    for item in rest.into_iter().rev() {
        q.items.push_front(item);
    }
    q.items.is_empty()
}

/// The append again, from its records (a write failed half-way through a snapshot:
/// all of it is written again, part 0 first).
fn unrecords(recs: Vec<LogRecord>) -> LogAppend {
    let mut it = recs.into_iter();
    match it.next() {
        Some(LogRecord::Entries { colony, entries }) => LogAppend::Entries { colony, entries },
        Some(LogRecord::Snapshot {
            colony, at, cells, ..
        }) => {
            let mut all = cells;
            for r in it {
                if let LogRecord::Snapshot { cells, .. } = r {
                    all.extend(cells);
                }
            }
            LogAppend::Snapshot {
                colony,
                at,
                cells: all,
            }
        }
        Some(LogRecord::Positions { .. }) | None => LogAppend::Entries {
            colony: 0,
            entries: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::cell::{Cell, Dna, Op};
    use crate::core::messages::Mutation;
    use crate::core::types::Epoch;

    fn entries(colony: ColonyId, seqs: std::ops::RangeInclusive<u64>) -> LogAppend {
        let epoch = Epoch { term: 1, by: 1 };
        LogAppend::Entries {
            colony,
            entries: seqs
                .map(|seq| Mutation {
                    version: Version { epoch, seq },
                    op: Op::Put {
                        key: format!("k{colony}-{seq}").into(),
                        cell: Cell {
                            dna: Dna::Value(vec![7; 100].into()),
                            version: Version { epoch, seq },
                            expires_at: None,
                        },
                    },
                })
                .collect(),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("colony-logw-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn what_does_not_fit_is_refused_in_order_and_what_fits_reaches_the_disk() {
        let dir = temp_dir("overflow");
        let (mut w, positions) = LogWriter::start(&dir, 1 << 20, 1, 0).unwrap();
        assert!(positions.is_empty());
        // The first append always goes in (an empty buffer takes anything); the rest of
        // the batch does not fit, whatever its colony (the thread cannot have freed it:
        // bytes count until written).
        let refused = w
            .offer(vec![
                entries(1, 1..=2),
                entries(2, 1..=1),
                entries(1, 3..=3),
            ])
            .expect("over capacity");
        let at2 = Version {
            epoch: Epoch { term: 1, by: 1 },
            seq: 2,
        };
        assert_eq!(refused.reached, vec![(2, None), (1, Some(at2))]);
        assert_eq!(refused.dropped, 2);
        w.close();
        let stats = w.stats();
        assert_eq!((stats.entries, stats.dropped, stats.overflows), (2, 2, 1));
        assert_eq!(stats.buffered_bytes, 0);
        drop(w);
        // Reopened, the log reaches colony 1 seq 2 and knows nothing of colony 2.
        let (_w, positions) = LogWriter::start(&dir, 1 << 20, 1 << 20, 0).unwrap();
        assert_eq!(positions.into_iter().collect::<Vec<_>>(), vec![(1, at2)]);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_closed_writer_leaves_a_finished_segment_and_the_next_start_begins_another() {
        let dir = temp_dir("close");
        let (mut w, _) = LogWriter::start(&dir, 1 << 20, 1 << 20, 0).unwrap();
        assert!(w.offer(vec![entries(3, 1..=50)]).is_none());
        w.close();
        assert_eq!(w.stats().segment, 1);
        drop(w);
        let (w, positions) = LogWriter::start(&dir, 1 << 20, 1 << 20, 0).unwrap();
        assert_eq!(positions[&3].seq, 50);
        assert_eq!(
            w.stats().segment,
            2,
            "segment 1 has its footer: a new one starts"
        );
        drop(w);
        std::fs::remove_dir_all(dir).ok();
    }
}
