//! The logging node's side of the log protocol: which mutations of which colony the
//! log holds, what to append, and what to ask the primaries for again.
//!
//! Primaries push every acknowledged mutation to each live logging node
//! ([`Msg::Log`], in seq order per colony). The sink appends what continues its
//! position and notices a gap (entries it never got: the logger joined late, a
//! message was lost with a dead host, or the shell's write buffer overflowed). It then
//! asks the colony's primary with [`Msg::LogProbe`]; the primary answers with the
//! missing tail, or with the whole colony ([`Msg::LogSnapshot`]) when its tail does not
//! reach back that far. A periodic probe covers colonies that have gone quiet, so the
//! last writes before a failover reach the log even if nothing follows them.
//!
//! Positions are seqs: a colony's seq keeps counting across epochs (a new primary
//! continues from the last seq it holds), so "the log has colony c up to seq s" is the
//! whole state the sink needs. Appending is the shell's job (a writer thread and a
//! bounded buffer); when that buffer overflows the shell reports it with
//! [`LogSink::overflow`] and the sink rewinds, so the entries are fetched again.

use super::cell::{Cell, Key, Op};
use super::directory::Directory;
use super::events::EventKind;
use super::messages::{Msg, Mutation};
use super::types::{ColonyId, HostId, Seq, Tick, Version};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Timings of a logging node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSinkConfig {
    /// How often the primaries of quiet colonies are asked whether the log misses
    /// anything.
    pub probe_ms: u64,
    /// How long a request for a colony's missing entries is given before it is asked
    /// again.
    pub resync_ms: u64,
    /// The least time between two `logger_behind` events.
    pub behind_event_ms: u64,
}

impl Default for LogSinkConfig {
    fn default() -> Self {
        LogSinkConfig {
            probe_ms: 2_000,
            resync_ms: 1_000,
            behind_event_ms: 5_000,
        }
    }
}

/// Something the shell must append to the log, in this order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogAppend {
    /// Acknowledged mutations of one colony, contiguous and in seq order.
    Entries {
        colony: ColonyId,
        entries: Vec<Mutation>,
    },
    /// The whole colony at `at`: cells of the colony logged earlier and absent here
    /// are gone.
    Snapshot {
        colony: ColonyId,
        at: Version,
        cells: Vec<(Key, Cell)>,
    },
}

impl LogAppend {
    pub fn colony(&self) -> ColonyId {
        match self {
            LogAppend::Entries { colony, .. } | LogAppend::Snapshot { colony, .. } => *colony,
        }
    }

    /// The position the log reaches for this colony once this is written.
    pub fn reaches(&self) -> Option<Version> {
        match self {
            LogAppend::Entries { entries, .. } => entries.last().map(|m| m.version),
            LogAppend::Snapshot { at, .. } => Some(*at),
        }
    }
}

/// What one step of the sink produced.
#[derive(Debug, Default)]
pub struct SinkOut {
    pub appends: Vec<LogAppend>,
    pub sends: Vec<(HostId, Msg)>,
    pub events: Vec<EventKind>,
}

/// A logging node's position in every colony's history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogSink {
    cfg: LogSinkConfig,
    /// How far the log has each colony (as handed to the shell).
    positions: BTreeMap<ColonyId, Version>,
    /// When entries of a colony last arrived: quiet colonies are probed.
    heard: BTreeMap<ColonyId, Tick>,
    /// When the missing entries of a colony were last asked for.
    asked: BTreeMap<ColonyId, Tick>,
    /// Overflow not reported yet.
    dropped: u64,
    dropped_colonies: BTreeSet<ColonyId>,
    buffered_bytes: u64,
    last_behind_event: Option<Tick>,
    /// Counters for metrics.
    pub stats: SinkStats,
}

/// What the sink has done since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkStats {
    pub entries: u64,
    pub snapshots: u64,
    pub gaps: u64,
    pub duplicates: u64,
    pub dropped: u64,
}

impl LogSink {
    pub fn new(cfg: LogSinkConfig) -> LogSink {
        LogSink {
            cfg,
            ..LogSink::default()
        }
    }

    pub fn config(&self) -> &LogSinkConfig {
        &self.cfg
    }

    /// Where a log found on disk stands (at start).
    pub fn set_positions(&mut self, positions: BTreeMap<ColonyId, Version>) {
        self.positions = positions;
    }

    pub fn positions(&self) -> &BTreeMap<ColonyId, Version> {
        &self.positions
    }

    fn seq(&self, colony: ColonyId) -> Seq {
        self.positions.get(&colony).map_or(0, |v| v.seq)
    }

    /// Acknowledged mutations from the primary `from`.
    pub fn on_entries(
        &mut self,
        now: Tick,
        from: HostId,
        colony: ColonyId,
        entries: Vec<Mutation>,
        out: &mut SinkOut,
    ) {
        self.heard.insert(colony, now);
        let pos = self.positions.get(&colony).copied().unwrap_or_default();
        let have = pos.seq;
        let total = entries.len() as u64;
        // Newer by (epoch, seq): what a deposed primary still sends is not.
        let mut fresh: Vec<Mutation> = entries.into_iter().filter(|m| m.version > pos).collect();
        self.stats.duplicates += total - fresh.len() as u64;
        if fresh.is_empty() {
            return;
        }
        if fresh[0].version.seq != have + 1 {
            self.stats.gaps += 1;
            self.ask(now, from, colony, out);
            return;
        }
        // Keep the contiguous run; a hole inside a batch is a gap too.
        let run = fresh
            .windows(2)
            .position(|w| w[1].version.seq != w[0].version.seq + 1)
            .map_or(fresh.len(), |i| i + 1);
        let cut = run < fresh.len();
        fresh.truncate(run);
        let last = fresh.last().expect("non-empty").version;
        self.positions.insert(colony, last);
        self.asked.remove(&colony);
        self.stats.entries += fresh.len() as u64;
        out.appends.push(LogAppend::Entries {
            colony,
            entries: fresh,
        });
        if cut {
            self.stats.gaps += 1;
            self.ask(now, from, colony, out);
        }
    }

    /// The whole colony, sent by its primary because its tail did not reach back to
    /// the log's position.
    pub fn on_snapshot(
        &mut self,
        now: Tick,
        colony: ColonyId,
        at: Version,
        cells: Vec<(Key, Cell)>,
        out: &mut SinkOut,
    ) {
        self.heard.insert(colony, now);
        // Newer by (epoch, seq): a colony recreated after every holder died starts again
        // at a low seq in a higher epoch, and its snapshot replaces the old history.
        if self.positions.get(&colony).is_some_and(|pos| at <= *pos) {
            self.stats.duplicates += 1;
            return;
        }
        self.positions.insert(colony, at);
        self.asked.remove(&colony);
        self.stats.snapshots += 1;
        out.events.push(EventKind::LogSnapshot {
            colony,
            epoch: at.epoch,
            cells: cells.len() as u64,
        });
        out.appends.push(LogAppend::Snapshot { colony, at, cells });
    }

    fn ask(&mut self, now: Tick, primary: HostId, colony: ColonyId, out: &mut SinkOut) {
        if self
            .asked
            .get(&colony)
            .is_some_and(|t| now < t + self.cfg.resync_ms)
        {
            return;
        }
        self.asked.insert(colony, now);
        out.sends.push((
            primary,
            Msg::LogProbe {
                have: vec![(colony, self.seq(colony))],
            },
        ));
    }

    /// The periodic probe: ask each primary (one message per host) about the colonies
    /// it leads that have been quiet for a probe period or that the log has never
    /// heard of. Also reports overflow that has not been reported yet.
    pub fn probe(
        &mut self,
        now: Tick,
        dir: &Directory,
        alive: impl Fn(HostId) -> bool,
        out: &mut SinkOut,
    ) {
        let mut per_host: BTreeMap<HostId, Vec<(ColonyId, Seq)>> = BTreeMap::new();
        for e in dir.colonies.iter() {
            let quiet = self
                .heard
                .get(&e.colony)
                .is_none_or(|t| now >= t + self.cfg.probe_ms);
            if quiet && alive(e.primary) {
                per_host
                    .entry(e.primary)
                    .or_default()
                    .push((e.colony, self.seq(e.colony)));
            }
        }
        for (host, have) in per_host {
            out.sends.push((host, Msg::LogProbe { have }));
        }
        self.report_behind(now, out);
    }

    /// The shell could not buffer what the sink handed it: for each colony, the log
    /// really reaches only `reached` (None: nothing of it). The sink rewinds, so the
    /// next entries show a gap and the missing ones are fetched again.
    pub fn overflow(
        &mut self,
        now: Tick,
        reached: Vec<(ColonyId, Option<Version>)>,
        dropped: u64,
        buffered_bytes: u64,
        out: &mut SinkOut,
    ) {
        for (colony, v) in reached {
            match v {
                Some(v) => {
                    let cur = self.positions.entry(colony).or_insert(v);
                    if v.seq < cur.seq {
                        *cur = v;
                    }
                }
                None => {
                    self.positions.remove(&colony);
                }
            }
            self.heard.remove(&colony);
            self.dropped_colonies.insert(colony);
        }
        self.dropped += dropped;
        self.stats.dropped += dropped;
        self.buffered_bytes = buffered_bytes;
        self.report_behind(now, out);
    }

    /// At most one `logger_behind` per `behind_event_ms`; drops after the last event
    /// are reported by a later overflow or probe.
    fn report_behind(&mut self, now: Tick, out: &mut SinkOut) {
        let due = self
            .last_behind_event
            .is_none_or(|t| now >= t + self.cfg.behind_event_ms);
        if self.dropped == 0 || !due {
            return;
        }
        out.events.push(EventKind::LoggerBehind {
            dropped: self.dropped,
            colonies: self.dropped_colonies.len() as u32,
            buffered_bytes: self.buffered_bytes,
        });
        self.last_behind_event = Some(now);
        self.dropped = 0;
        self.dropped_colonies.clear();
    }
}

/// The live cells a log describes, by (colony, key), in memory: entries in order (a put
/// inserts, a remove deletes), a snapshot replaces its colony. The reference the store's
/// two-pass replay and the simulator's log check agree with.
pub fn replay(appends: &[LogAppend]) -> BTreeMap<(ColonyId, Key), Cell> {
    let mut cells = BTreeMap::new();
    for a in appends {
        match a {
            LogAppend::Entries { colony, entries } => {
                for m in entries {
                    match &m.op {
                        Op::Put { key, cell } => {
                            cells.insert((*colony, key.clone()), cell.clone());
                        }
                        Op::Remove { key, .. } => {
                            cells.remove(&(*colony, key.clone()));
                        }
                    }
                }
            }
            LogAppend::Snapshot {
                colony,
                cells: snap,
                ..
            } => {
                cells.retain(|(c, _), _| c != colony);
                for (k, cell) in snap {
                    cells.insert((*colony, k.clone()), cell.clone());
                }
            }
        }
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::cell::Dna;
    use crate::core::directory::DirEntry;
    use crate::core::types::Epoch;

    fn m(seq: Seq) -> Mutation {
        let epoch = Epoch { term: 1, by: 1 };
        Mutation {
            version: Version { epoch, seq },
            op: Op::Put {
                key: format!("k{seq}").into(),
                cell: Cell {
                    dna: Dna::Value(vec![1].into()),
                    version: Version { epoch, seq },
                    expires_at: None,
                },
            },
        }
    }

    fn seqs(out: &SinkOut) -> Vec<Seq> {
        out.appends
            .iter()
            .flat_map(|a| match a {
                LogAppend::Entries { entries, .. } => {
                    entries.iter().map(|m| m.version.seq).collect::<Vec<_>>()
                }
                LogAppend::Snapshot { at, .. } => vec![at.seq],
            })
            .collect()
    }

    #[test]
    fn contiguous_entries_are_appended_and_duplicates_skipped() {
        let mut s = LogSink::default();
        let mut out = SinkOut::default();
        s.on_entries(0, 9, 3, vec![m(1), m(2)], &mut out);
        s.on_entries(0, 9, 3, vec![m(2), m(3)], &mut out);
        assert_eq!(seqs(&out), vec![1, 2, 3]);
        assert!(out.sends.is_empty());
        assert_eq!(s.positions()[&3].seq, 3);
        assert_eq!(s.stats.duplicates, 1);
    }

    #[test]
    fn a_gap_is_not_written_and_the_primary_is_asked_once_per_resync_period() {
        let mut s = LogSink::default();
        let mut out = SinkOut::default();
        s.on_entries(0, 9, 3, vec![m(1)], &mut out);
        s.on_entries(10, 9, 3, vec![m(4)], &mut out);
        s.on_entries(20, 9, 3, vec![m(5)], &mut out);
        assert_eq!(seqs(&out), vec![1]);
        assert_eq!(out.sends, vec![(9, Msg::LogProbe { have: vec![(3, 1)] })]);
        s.on_entries(2_000, 9, 3, vec![m(6)], &mut out);
        assert_eq!(out.sends.len(), 2, "asked again after the resync period");
        // The answer fills the gap.
        s.on_entries(2_010, 9, 3, vec![m(2), m(3), m(4), m(5), m(6)], &mut out);
        assert_eq!(seqs(&out), vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_hole_inside_a_batch_keeps_the_run_before_it() {
        let mut s = LogSink::default();
        let mut out = SinkOut::default();
        s.on_entries(0, 9, 3, vec![m(1), m(2), m(4)], &mut out);
        assert_eq!(seqs(&out), vec![1, 2]);
        assert_eq!(out.sends.len(), 1);
    }

    #[test]
    fn a_snapshot_jumps_ahead_and_an_older_one_is_ignored() {
        let mut s = LogSink::default();
        let mut out = SinkOut::default();
        let at = m(40).version;
        s.on_snapshot(0, 3, at, vec![], &mut out);
        s.on_snapshot(0, 3, m(30).version, vec![], &mut out);
        s.on_entries(0, 9, 3, vec![m(41)], &mut out);
        assert_eq!(seqs(&out), vec![40, 41]);
        assert_eq!(out.events.len(), 1, "one log_snapshot event");
    }

    #[test]
    fn overflow_rewinds_so_the_next_entries_are_fetched_again() {
        let mut s = LogSink::default();
        let mut out = SinkOut::default();
        s.on_entries(0, 9, 3, vec![m(1), m(2), m(3)], &mut out);
        s.overflow(5, vec![(3, Some(m(1).version))], 2, 1 << 20, &mut out);
        assert!(matches!(
            out.events.last(),
            Some(EventKind::LoggerBehind {
                dropped: 2,
                colonies: 1,
                ..
            })
        ));
        out = SinkOut::default();
        s.on_entries(10, 9, 3, vec![m(4)], &mut out);
        assert!(out.appends.is_empty());
        assert_eq!(out.sends, vec![(9, Msg::LogProbe { have: vec![(3, 1)] })]);
    }

    #[test]
    fn the_probe_asks_each_primary_about_its_quiet_colonies_only() {
        let mut s = LogSink::default();
        let mut dir = Directory::default();
        for (colony, primary) in [(0, 1), (1, 1), (2, 2), (3, 4)] {
            dir.colonies.merge(std::sync::Arc::new(DirEntry {
                colony,
                epoch: Epoch::genesis(primary),
                version: 1,
                primary,
                secondaries: Default::default(),
            }));
        }
        let mut out = SinkOut::default();
        s.on_entries(1_000, 1, 1, vec![m(1)], &mut out);
        out = SinkOut::default();
        s.probe(1_500, &dir, |h| h != 4, &mut out);
        assert_eq!(
            out.sends,
            vec![
                (1, Msg::LogProbe { have: vec![(0, 0)] }),
                (2, Msg::LogProbe { have: vec![(2, 0)] }),
            ]
        );
    }
}
