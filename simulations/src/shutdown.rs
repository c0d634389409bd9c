//! The whole cluster shuts down to disk and starts again (`kind = "shutdown_restart"`).
//!
//! The world plays the shell's part. Every host leaves gracefully, one at a time; the
//! last one, having nobody to hand its replicas to, puts them in [`Out::persist`] and
//! the world writes their cells to its *disk* (one file per colony: a later save of a
//! colony replaces an earlier one). `down_s` after the last host left, every host starts
//! again as a new incarnation — the first founds a new cluster, the others join it — and
//! once a live host's directory names a live primary for every colony (what a real node
//! waits for before restoring its files), every saved cell is fed back with
//! [`Command::Restore`] through a random live host, retrying on errors that mean "not
//! now". The disk is then empty and a `restore_done` event is recorded, as the shell of
//! a real node reports it.
//!
//! From the moment the last host left until the restore is done, clients find no host
//! to talk to (their operations are refused, never acknowledged) and the checker is
//! suspended: nobody runs, then nobody holds the restored data yet. Everything after
//! the restore is checked as usual: a full scan of the ledger at the first healthy
//! check after it (before new writes can hide a lost cell), and the final full scan
//! demands every acknowledged write (its TTL aside) back.
//!
//! [`Out::persist`]: colony::core::node::Out::persist

use crate::checker::Violation;
use crate::faults::Action;
use crate::queue::Time;
use crate::world::World;
use colony::core::cell::{Cell, Command, CommandError, Key, Reply};
use colony::core::events::{Event, EventKind};
use colony::core::messages::ReqId;
use colony::core::node::{Input, NodeState};
use colony::core::types::{ColonyId, HostId};
use std::collections::{BTreeMap, VecDeque};

/// Request ids of restores (the clients count up from 1).
const RESTORE_REQ_BASE: ReqId = 1 << 62;

/// How often the shutdown and the restore look at the cluster while they wait.
const POLL_MS: Time = 100;

/// The cells the last host saved, per colony.
pub type Disk = BTreeMap<ColonyId, Vec<(Key, Cell)>>;

/// Where a cluster shutdown stands.
pub enum Outage {
    /// Hosts are leaving one at a time.
    Stopping { interval: Time, down: Time },
    /// Every host has left; the cold start is scheduled.
    Down,
    /// The new cluster runs and the saved cells are being restored; clients wait.
    Restoring(Restore),
}

struct Sent {
    key: Key,
    cell: Cell,
    host: HostId,
    at: Time,
}

/// A restore in progress.
pub struct Restore {
    queue: VecDeque<(Key, Cell)>,
    pending: BTreeMap<ReqId, Sent>,
    next_req: ReqId,
    colonies: u32,
    ready: bool,
    restored: u64,
    skipped: u64,
    retries: u64,
}

impl World {
    /// A node asked for `colonies` to be written to disk: save their cells.
    pub(crate) fn save_to_disk(&mut self, host: HostId, colonies: &[ColonyId]) {
        let Some(node) = self.slot(host).and_then(|s| s.node.as_ref()) else {
            return;
        };
        let saved: Vec<(ColonyId, Vec<(Key, Cell)>)> = colonies
            .iter()
            .filter_map(|c| node.replica(*c).map(|r| (*c, r.cells.to_vec())))
            .collect();
        let cells: usize = saved.iter().map(|(_, v)| v.len()).sum();
        if self.verbose {
            println!(
                "[{:>8.1}s] host {host} writes {} colonies ({cells} cells) to disk",
                self.now as f64 / 1000.0,
                saved.len()
            );
        }
        self.disk.extend(saved);
    }

    /// Clients find no host: the cluster is down or restoring.
    pub(crate) fn clients_refused(&self) -> bool {
        matches!(self.outage, Some(Outage::Down | Outage::Restoring(_)))
    }

    /// The checker waits: nobody runs, or the restored data is not back yet.
    pub(crate) fn checks_suspended(&self) -> bool {
        self.clients_refused()
    }

    /// The shutdown begins.
    pub(crate) fn shutdown_begin(&mut self, interval: Time, down: Time) {
        if self.outage.is_some() {
            return;
        }
        self.note_fault(
            "cluster shutdown: every host leaves in turn".to_owned(),
            true,
        );
        self.outage = Some(Outage::Stopping { interval, down });
        self.shutdown_step();
    }

    /// Send the next host away, once the previous one has left.
    pub(crate) fn shutdown_step(&mut self) {
        let Some(Outage::Stopping { interval, .. }) = self.outage else {
            return;
        };
        let now = self.now;
        let leaving = self
            .hosts
            .iter()
            .filter_map(|s| s.node.as_ref())
            .any(|n| n.state() != NodeState::Active);
        if leaving {
            self.schedule(now + POLL_MS, Action::ShutdownStep);
            return;
        }
        let Some(&h) = self.active_ids().first() else {
            return;
        };
        if let Some(s) = self.slot_mut(h) {
            s.hold_after_leave = true;
        }
        self.note_fault(format!("host {h} leaves (cluster shutdown)"), true);
        self.step(h, Input::Leave);
        if matches!(self.outage, Some(Outage::Stopping { .. })) {
            self.schedule(now + interval.max(1), Action::ShutdownStep);
        }
    }

    /// A host finished leaving for the shutdown: after the last one, the cluster is down.
    pub(crate) fn host_parked(&mut self) {
        let Some(Outage::Stopping { down, .. }) = self.outage else {
            return;
        };
        if self.hosts.iter().any(|s| s.node.is_some()) {
            return;
        }
        let cells: usize = self.disk.values().map(Vec::len).sum();
        self.note_fault(
            format!(
                "the whole cluster is down ({} colonies, {cells} cells on disk)",
                self.disk.len()
            ),
            true,
        );
        self.outage = Some(Outage::Down);
        self.schedule(self.now + down, Action::ColdStart);
    }

    /// Every host starts again: the first founds a new cluster, the others join it.
    pub(crate) fn cold_start(&mut self) {
        if !matches!(self.outage, Some(Outage::Down)) {
            return;
        }
        let disk = std::mem::take(&mut self.disk);
        let colonies = disk.len() as u32;
        let queue: VecDeque<(Key, Cell)> = disk.into_values().flatten().collect();
        self.outage = Some(Outage::Restoring(Restore {
            queue,
            pending: BTreeMap::new(),
            next_req: RESTORE_REQ_BASE,
            colonies,
            ready: false,
            restored: 0,
            skipped: 0,
            retries: 0,
        }));
        let ids: Vec<HostId> = self
            .hosts
            .iter()
            .filter(|s| !s.gone && s.node.is_none())
            .map(|s| s.info.id)
            .collect();
        let Some((&first, rest)) = ids.split_first() else {
            return;
        };
        self.start_process(first, true);
        self.note_fault(
            format!("cold start: host {first} founds a new cluster, the others join it"),
            false,
        );
        let stagger = self.sc.cluster.start_stagger_ms.max(1);
        for (i, h) in rest.iter().enumerate() {
            self.schedule(self.now + (i as Time + 1) * stagger, Action::Revive(*h));
        }
        self.schedule(self.now + POLL_MS, Action::RestoreStep);
    }

    /// Whether a live host knows a live primary for every colony.
    fn directory_ready(&self) -> bool {
        let colonies = self.sc.cluster.colonies;
        self.hosts
            .iter()
            .filter_map(|s| s.node.as_ref())
            .filter(|n| n.state() == NodeState::Active)
            .any(|n| {
                (0..colonies).all(|c| n.directory().primary_of(c).is_some_and(|p| n.is_alive(p)))
            })
    }

    /// Send what waits to be restored; finish when everything is back.
    pub(crate) fn restore_step(&mut self) {
        let now = self.now;
        let stale_after = self.cfg.request_timeout_ms + 5_000;
        let ready = self.directory_ready();
        let Some(Outage::Restoring(r)) = self.outage.as_mut() else {
            return;
        };
        if !r.ready && !ready {
            self.schedule(now + POLL_MS, Action::RestoreStep);
            return;
        }
        r.ready = true;
        // A restore whose host went away unanswered is sent again.
        let stale: Vec<ReqId> = r
            .pending
            .iter()
            .filter(|(_, s)| now.saturating_sub(s.at) > stale_after)
            .map(|(q, _)| *q)
            .collect();
        for q in stale {
            if let Some(s) = r.pending.remove(&q) {
                r.retries += 1;
                r.queue.push_back((s.key, s.cell));
            }
        }
        if r.queue.is_empty() && r.pending.is_empty() {
            self.restore_done();
            return;
        }
        while let Some(Outage::Restoring(r)) = self.outage.as_mut() {
            let Some((key, cell)) = r.queue.pop_front() else {
                break;
            };
            let Some(host) = self.pick_active(&[]) else {
                if let Some(Outage::Restoring(r)) = self.outage.as_mut() {
                    r.queue.push_front((key, cell));
                }
                break;
            };
            let Some(Outage::Restoring(r)) = self.outage.as_mut() else {
                break;
            };
            let req = r.next_req;
            r.next_req += 1;
            let cmd = Command::Restore {
                key: key.clone(),
                dna: cell.dna.clone(),
                expires_at: cell.expires_at,
            };
            r.pending.insert(
                req,
                Sent {
                    key,
                    cell,
                    host,
                    at: now,
                },
            );
            self.step(host, Input::Client { req, cmd });
        }
        self.schedule(now + POLL_MS, Action::RestoreStep);
    }

    /// Whether `req` is a restore's request id.
    pub(crate) fn is_restore_req(req: ReqId) -> bool {
        req >= RESTORE_REQ_BASE
    }

    /// A host answered a restore.
    pub(crate) fn on_restore_reply(&mut self, host: HostId, req: ReqId, reply: &Reply) {
        let Some(Outage::Restoring(r)) = self.outage.as_mut() else {
            return;
        };
        if r.pending.get(&req).is_none_or(|s| s.host != host) {
            return;
        }
        let Some(s) = r.pending.remove(&req) else {
            return;
        };
        match reply {
            Reply::Int(1) => r.restored += 1,
            Reply::Int(0) => r.skipped += 1,
            Reply::Error(
                CommandError::NoPrimary(_)
                | CommandError::Timeout
                | CommandError::Busy(_)
                | CommandError::NoQuorum
                | CommandError::NoSuchColony(_),
            ) => {
                r.retries += 1;
                r.queue.push_back((s.key, s.cell));
            }
            other => {
                let what = format!(
                    "restoring key {:?} through host {host} was answered {other:?}",
                    String::from_utf8_lossy(&s.key)
                );
                self.fail(Violation {
                    t: self.now,
                    invariant: "restore",
                    what,
                });
            }
        }
    }

    fn restore_done(&mut self) {
        let Some(Outage::Restoring(r)) = self.outage.take() else {
            return;
        };
        self.scan_after_restore = true;
        let host = self.active_ids().first().copied().unwrap_or(0);
        self.log.record(&Event {
            t: self.now,
            host,
            kind: EventKind::RestoreDone {
                colonies: r.colonies,
                cells: r.restored,
                skipped: r.skipped,
            },
        });
        self.note_fault(
            format!(
                "restore done: {} cells of {} colonies back, {} expired while down, {} retries; clients are served again",
                r.restored, r.colonies, r.skipped, r.retries
            ),
            false,
        );
    }

    /// The restore has not finished (for the end-of-run report).
    pub(crate) fn outage_report(&self) -> Option<String> {
        match self.outage.as_ref()? {
            Outage::Stopping { .. } => None,
            Outage::Down => Some("the cluster is still down after a shutdown".to_owned()),
            Outage::Restoring(r) => Some(format!(
                "the restore after a shutdown has not finished: {} cells waiting, {} unanswered, {} restored (directory ready: {})",
                r.queue.len(),
                r.pending.len(),
                r.restored,
                r.ready
            )),
        }
    }
}
