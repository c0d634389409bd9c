//! The event stream of a run: every event the hosts emit, in the order they emit it.
//!
//! Each event becomes one JSON line ([`Event::to_json`]); the lines are hashed (so two
//! runs can be compared cheaply), optionally captured or written to a file (`--events`),
//! and the last few are kept for the violation report. The log also remembers what the
//! checker needs from the stream: when `data_lost` was reported per colony and when a
//! `merge_conflict` was reported per key (both make a lost write *reported*), and the
//! first and last time of every event name (for the scenario's expectations).

use crate::queue::Time;
use colony::core::events::{Event, EventKind};
use colony::core::types::{fnv1a, ColonyId};
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;

/// How many recent events a violation report shows.
pub const RECENT: usize = 30;

/// Where the stream goes besides the hash.
pub enum Sink {
    None,
    /// Kept in memory (tests, determinism checks).
    Capture(Vec<u8>),
    /// Written as it comes.
    Writer(Box<dyn Write + Send>),
}

/// The event stream and what the checker reads from it.
pub struct EventLog {
    sink: Sink,
    recent: VecDeque<String>,
    hash: u64,
    pub lines: u64,
    pub counts: BTreeMap<&'static str, u64>,
    pub promotions: BTreeMap<String, u64>,
    /// Name -> (first time, last time).
    pub seen: BTreeMap<&'static str, (Time, Time)>,
    data_lost: BTreeMap<ColonyId, Vec<Time>>,
    conflicts: BTreeMap<String, Vec<Time>>,
    write_error: Option<String>,
}

impl EventLog {
    pub fn new(sink: Sink) -> Self {
        EventLog {
            sink,
            recent: VecDeque::with_capacity(RECENT + 1),
            hash: 0xcbf2_9ce4_8422_2325,
            lines: 0,
            counts: BTreeMap::new(),
            promotions: BTreeMap::new(),
            seen: BTreeMap::new(),
            data_lost: BTreeMap::new(),
            conflicts: BTreeMap::new(),
            write_error: None,
        }
    }

    pub fn record(&mut self, e: &Event) {
        let mut line = e.to_json();
        line.push('\n');
        self.hash = (self.hash ^ fnv1a(line.as_bytes())).wrapping_mul(0x0100_0000_01b3);
        self.lines += 1;
        match &mut self.sink {
            Sink::None => {}
            Sink::Capture(buf) => buf.extend_from_slice(line.as_bytes()),
            Sink::Writer(w) => {
                if let Err(err) = w.write_all(line.as_bytes()) {
                    self.write_error.get_or_insert(err.to_string());
                }
            }
        }
        line.pop();
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(line);
        let name = e.kind.name();
        *self.counts.entry(name).or_insert(0) += 1;
        let seen = self.seen.entry(name).or_insert((e.t, e.t));
        seen.1 = e.t;
        match &e.kind {
            EventKind::ColonyPromoted { reason, .. } => {
                *self.promotions.entry(reason.clone()).or_insert(0) += 1;
            }
            EventKind::DataLost { colony, .. } => {
                self.data_lost.entry(*colony).or_default().push(e.t);
            }
            EventKind::MergeConflict { key, .. } => {
                self.conflicts.entry(key.clone()).or_default().push(e.t);
            }
            _ => {}
        }
    }

    /// Whether a loss of `key` (in `colony`) acknowledged at `since` was reported: a
    /// `data_lost` for the colony or a `merge_conflict` for the key at or after it.
    pub fn loss_reported(&self, colony: ColonyId, key: &str, since: Time) -> bool {
        let after = |ts: Option<&Vec<Time>>| ts.is_some_and(|ts| ts.iter().any(|t| *t >= since));
        after(self.data_lost.get(&colony)) || after(self.conflicts.get(key))
    }

    pub fn count(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }

    pub fn recent(&self) -> Vec<String> {
        self.recent.iter().cloned().collect()
    }

    /// The FNV hash of the whole stream.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Flush a writer; hand back captured bytes.
    pub fn finish(&mut self) -> Result<Option<Vec<u8>>, String> {
        match std::mem::replace(&mut self.sink, Sink::None) {
            Sink::Capture(buf) => Ok(Some(buf)),
            Sink::Writer(mut w) => {
                w.flush().map_err(|e| e.to_string())?;
                self.write_error.take().map_or(Ok(None), Err)
            }
            Sink::None => Ok(None),
        }
    }
}
