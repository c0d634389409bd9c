//! Logging nodes in the simulated world (`cluster.loggers`): their restarts, what their
//! logs describe, and the check that every log agrees with the clients' ledger.
//!
//! The world plays a logger's shell: every [`LogAppend`] in a step's `Out.log` is
//! written at once to the slot's disk (see [`crate::hosts`]). `logger_restart` kills the
//! process and starts a new incarnation `down_s` later on that disk, its positions read
//! back from the last append of each colony ([`Node::set_log_positions`]); it joins
//! through a live host and fetches what it missed (a tail or a snapshot).
//!
//! At the end of the run, where the final ledger scan runs, every logger's disk is
//! replayed as a restore from the log would (entries in order, a snapshot replacing
//! its colony) and every key of the ledger must hold a cell the acknowledged history
//! allows: the same standard as the primaries.
//!
//! [`Node::set_log_positions`]: colony::core::node::Node::set_log_positions

use crate::checker::Violation;
use crate::faults::Action;
use crate::hosts::{add_stats, HostSlot};
use crate::ledger::KeyLedger;
use crate::queue::Time;
use crate::summary::LogSummary;
use crate::view::{find, ClusterView, LiveHost};
use crate::world::World;
use colony::core::cell::{Cell, Key, Op};
use colony::core::logsink::LogAppend;
use colony::core::types::{colony_of, fnv1a, ColonyId, HostId, Version};
use rand::RngExt;
use std::collections::BTreeMap;

/// The live cells a log describes, by (colony, key).
pub type Logged = BTreeMap<(ColonyId, Key), Cell>;

/// Replay a log: entries in order (a put inserts, a remove deletes), a snapshot removes
/// every cell of its colony and inserts its own.
pub fn replay(appends: &[LogAppend]) -> Logged {
    colony::core::logsink::replay(appends)
}

/// What the log says about one key, newest last (for a violation report).
fn history(appends: &[LogAppend], colony: ColonyId, key: &[u8], max: usize) -> Vec<String> {
    let mut h = Vec::new();
    for a in appends.iter().filter(|a| a.colony() == colony) {
        match a {
            LogAppend::Entries { entries, .. } => {
                for m in entries.iter().filter(|m| m.op.key() == key) {
                    let what = match &m.op {
                        Op::Put { cell, .. } => format!("put {:?}", cell.dna),
                        Op::Remove { why, .. } => format!("remove ({why:?})"),
                    };
                    h.push(format!("{} {what}", show(m.version)));
                }
            }
            LogAppend::Snapshot { at, cells, .. } => {
                let cell = cells.iter().find(|(k, _)| k.as_slice() == key);
                h.push(format!(
                    "snapshot at {} {}",
                    show(*at),
                    cell.map_or("without it".to_owned(), |(_, c)| format!("{:?}", c.dna))
                ));
            }
        }
    }
    let skip = h.len().saturating_sub(max);
    h.split_off(skip)
}

fn show(v: Version) -> String {
    format!("{}:{}", v.epoch, v.seq)
}

/// Every logger's log, replayed, against every key of the ledger.
pub fn check_logs(
    hosts: &[HostSlot],
    live: &[LiveHost],
    view: &ClusterView,
    keys: &[KeyLedger],
    colonies: u32,
    now: Time,
) -> Result<(), Violation> {
    for slot in hosts.iter().filter(|s| s.is_logger()) {
        let logger = slot.info.id;
        let cells = replay(&slot.log);
        for key in keys {
            let colony = colony_of(key.name.as_bytes(), colonies);
            let logged = cells.get(&(colony, Key::from(key.name.as_str())));
            if key.allows(logged, now) {
                continue;
            }
            let at = slot
                .log_positions()
                .get(&colony)
                .map_or("nothing".to_owned(), |v| show(*v));
            let primary = view
                .colony(colony)
                .leader()
                .map_or("no live primary".to_owned(), |l| {
                    let r = find(live, l.host).and_then(|h| h.node.replica(colony));
                    format!(
                        "primary {} at epoch {} (last {}) holds {:?}",
                        l.host,
                        l.epoch,
                        r.map_or("?".to_owned(), |r| show(r.last)),
                        r.and_then(|r| r.cells.get(key.name.as_bytes()))
                    )
                });
            return Err(Violation {
                t: now,
                invariant: "the log holds every acknowledged write",
                what: format!(
                    "key {} (colony {colony}): the log of logger {logger}{} ({} appends, colony logged up to {at}) replays to {:?}; the acknowledged history allows only {:?}{}; the {primary}; the log's last writes of the key: [{}]",
                    key.name,
                    if slot.node.is_some() { "" } else { " (down)" },
                    slot.log.len(),
                    logged,
                    key.states,
                    key.inflight
                        .as_ref()
                        .map_or(String::new(), |w| format!(" (or those after {:?} in flight)", w.op)),
                    history(&slot.log, colony, key.name.as_bytes(), 4).join("; ")
                ),
            });
        }
    }
    Ok(())
}

/// The counters of every logger (every process of each) at the end of a run.
pub fn log_summary(hosts: &[HostSlot]) -> LogSummary {
    let mut s = LogSummary {
        hash: 0xcbf2_9ce4_8422_2325,
        ..LogSummary::default()
    };
    for slot in hosts.iter().filter(|s| s.is_logger()) {
        s.loggers += 1;
        s.appends += slot.log.len() as u64;
        add_stats(&mut s.sink, &slot.total_log_stats());
        for a in &slot.log {
            let h = fnv1a(format!("{}:{a:?}", slot.info.id).as_bytes());
            s.hash = (s.hash ^ h).wrapping_mul(0x0100_0000_01b3);
        }
    }
    s
}

impl World {
    /// `logger_restart`: kill a logger (`host`, or a random running one) and start it
    /// again on its disk after `down`.
    pub(crate) fn logger_restart(&mut self, host: Option<HostId>, down: Time) {
        let running = self.running_loggers();
        let victim = match host {
            Some(h) => running.contains(&h).then_some(h),
            None if running.is_empty() => None,
            None => Some(running[self.rng.random_range(0..running.len())]),
        };
        let Some(h) = victim else {
            return;
        };
        let appends = self.slot(h).map_or(0, |s| s.log.len());
        self.kill(h);
        self.note_local_fault(
            format!(
                "kill logger {h} ({appends} appends on its disk; restart in {:.1} s)",
                down as f64 / 1000.0
            ),
            false,
        );
        self.schedule(self.now + down, Action::Revive(h));
    }
}
