//! Host processes: their slots in the world, and their life — boot, crash, restart,
//! graceful departure, and new hosts joining.
//!
//! A slot outlives its processes. Each process started in a slot gets a new
//! *generation* (the tag every message and timer for it carries, so nothing addressed
//! to a dead process reaches its successor) and a higher incarnation than any the host
//! used before (including incarnations the node renewed itself after being declared
//! dead).
//!
//! A logging node's slot also keeps its *disk*: every [`LogAppend`] the node handed to
//! its shell, in order (the simulated shell writes at once and loses nothing). A new
//! process in the slot starts on it: positions read back with [`LogAppend::reaches`].
//! Loggers serve no clients and are never picked as a fault's victim or as a seed.
//!
//! A storage node's process keeps its replicas' cells in a value log
//! ([`MemValueStorage`]: the on-disk code path of the core, in memory), which a kill
//! loses with the process. Storage nodes serve clients and are seeds like any host, but
//! a fault picks them at random only when it says so.
//!
//! [`MemValueStorage`]: colony::core::cell_store::MemValueStorage

use crate::layout;
use crate::queue::Time;
use crate::resources::{self, Squeeze};
use crate::view::LiveHost;
use crate::world::World;
use colony::core::cell_store::MemValueStorage;
use colony::core::logsink::{LogAppend, SinkStats};
use colony::core::node::{Input, Node, NodeState};
use colony::core::placement;
use colony::core::types::{ColonyId, HostId, HostInfo, HostRole, Load, Version};
use rand::{Rng, RngExt};
use std::collections::BTreeMap;

/// One host id's place in the world.
pub struct HostSlot {
    pub info: HostInfo,
    /// The running process, if any.
    pub node: Option<Node>,
    pub gen: u32,
    /// The highest incarnation used so far.
    pub incarnation: u32,
    pub load: Load,
    pub squeeze: Squeeze,
    /// Killed and not restarted yet.
    pub down: bool,
    /// Left for good.
    pub gone: bool,
    /// A graceful restart: start again this long after the leave completes.
    pub restart_after_leave: Option<Time>,
    /// A cluster shutdown: after the leave the slot waits, down, for the cold start.
    pub hold_after_leave: bool,
    /// A logging node: its log on disk, every append in order, across its processes.
    pub log: Vec<LogAppend>,
    /// A logging node: the sink counters of its processes that are gone.
    pub log_stats: SinkStats,
}

impl HostSlot {
    pub fn new(info: HostInfo) -> Self {
        HostSlot {
            info,
            node: None,
            gen: 0,
            incarnation: 0,
            load: Load::default(),
            squeeze: Squeeze::default(),
            down: false,
            gone: false,
            restart_after_leave: None,
            hold_after_leave: false,
            log: Vec::new(),
            log_stats: SinkStats::default(),
        }
    }

    pub fn is_logger(&self) -> bool {
        self.info.role == HostRole::Logger
    }

    pub fn is_storage(&self) -> bool {
        self.info.role == HostRole::Storage
    }

    /// How many replicas a copy on this host counts for ([`placement::slots`]).
    pub fn slots(&self) -> u32 {
        placement::slots(self.info.role)
    }

    /// Where the log on disk stands: per colony, the position of its last append.
    pub fn log_positions(&self) -> BTreeMap<ColonyId, Version> {
        let mut at = BTreeMap::new();
        for a in &self.log {
            if let Some(v) = a.reaches() {
                at.insert(a.colony(), v);
            }
        }
        at
    }

    /// The sink counters of every process of this slot (the running one included).
    pub fn total_log_stats(&self) -> SinkStats {
        let mut t = self.log_stats;
        if let Some(s) = self.node.as_ref().and_then(Node::log_sink) {
            add_stats(&mut t, &s.stats);
        }
        t
    }
}

/// `into += from`, counter by counter.
pub fn add_stats(into: &mut SinkStats, from: &SinkStats) {
    into.entries += from.entries;
    into.snapshots += from.snapshots;
    into.gaps += from.gaps;
    into.duplicates += from.duplicates;
    into.dropped += from.dropped;
}

/// The hosts that are up, sorted by id.
pub fn live_hosts(hosts: &[HostSlot]) -> Vec<LiveHost<'_>> {
    hosts
        .iter()
        .filter_map(|s| {
            s.node
                .as_ref()
                .filter(|n| n.state() != NodeState::Left)
                .map(|node| LiveHost { node, load: s.load })
        })
        .collect()
}

impl World {
    /// Ids of running hosts that are not leaving (logging nodes aside: they serve no
    /// clients and no fault picks them).
    pub(crate) fn active_ids(&self) -> Vec<HostId> {
        self.active_slice().to_vec()
    }

    /// [`World::active_ids`], kept between changes: a process that starts or stops, or a
    /// node whose state changed in a step, drops it (every client operation asks).
    pub(crate) fn active_slice(&self) -> &[HostId] {
        self.active.get_or_init(|| {
            self.hosts
                .iter()
                .filter(|s| !s.is_logger())
                .filter_map(|s| s.node.as_ref())
                .filter(|n| n.state() == NodeState::Active)
                .map(|n| n.id())
                .collect()
        })
    }

    /// Ids of running logging nodes.
    pub(crate) fn running_loggers(&self) -> Vec<HostId> {
        self.hosts
            .iter()
            .filter(|s| s.is_logger() && s.node.is_some())
            .map(|s| s.info.id)
            .collect()
    }

    /// A random running host (not leaving, not a logger), except `not`.
    pub(crate) fn pick_active(&mut self, not: &[HostId]) -> Option<HostId> {
        let ids: Vec<HostId> = self
            .active_ids()
            .into_iter()
            .filter(|h| !not.contains(h))
            .collect();
        self.pick_of(&ids)
    }

    /// Running hosts a fault may pick at random: not leaving, not a logger, and not a
    /// storage node unless `storage`.
    pub(crate) fn victims(&self, storage: bool) -> Vec<HostId> {
        self.active_ids()
            .into_iter()
            .filter(|h| storage || !self.slot(*h).is_some_and(HostSlot::is_storage))
            .collect()
    }

    /// A random fault victim among [`World::victims`] without storage nodes.
    pub(crate) fn pick_victim(&mut self) -> Option<HostId> {
        let ids = self.victims(false);
        self.pick_of(&ids)
    }

    /// One of `ids` at random whose kill would not leave some colony without any of
    /// the holders it had when last whole ([`World::last_holder_of_some_colony`]).
    pub(crate) fn pick_safe_victim(&mut self, mut ids: Vec<HostId>) -> Option<HostId> {
        while !ids.is_empty() {
            let i = self.rng.random_range(0..ids.len());
            if !self.last_holder_of_some_colony(ids[i]) {
                return Some(ids[i]);
            }
            ids.remove(i);
        }
        None
    }

    /// One of `ids`, at random.
    pub(crate) fn pick_of(&mut self, ids: &[HostId]) -> Option<HostId> {
        if ids.is_empty() {
            return None;
        }
        Some(ids[self.rng.random_range(0..ids.len())])
    }

    /// Start a process in `host`'s slot: the founder creates the cluster, every other
    /// start joins through up to three running hosts.
    pub(crate) fn boot(&mut self, host: HostId) {
        let founder = host == 1 && self.slot(host).is_some_and(|s| s.gen == 0);
        self.start_process(host, founder);
    }

    /// Start a process in `host`'s slot; a `founder` creates a new cluster (no seeds).
    pub(crate) fn start_process(&mut self, host: HostId, founder: bool) {
        let seeds: Vec<HostId> = if founder {
            Vec::new()
        } else {
            let mut seeds = Vec::new();
            for _ in 0..3 {
                let mut not = seeds.clone();
                not.push(host);
                if let Some(h) = self.pick_active(&not) {
                    seeds.push(h);
                }
            }
            if seeds.is_empty() {
                seeds = self
                    .hosts
                    .iter()
                    .filter(|s| !s.is_logger())
                    .map(|s| s.info.id)
                    .filter(|h| *h != host)
                    .collect();
            }
            seeds.sort_unstable();
            seeds
        };
        let node_seed = self.rng.next_u64();
        let cfg = self.cfg.clone();
        let Some(slot) = self.slot_mut(host) else {
            return;
        };
        if slot.node.is_some() || slot.gone {
            return;
        }
        slot.gen += 1;
        slot.incarnation += 1;
        slot.down = false;
        let mut node = Node::new(slot.info.clone(), cfg, slot.incarnation, node_seed);
        if slot.is_logger() {
            node.set_log_positions(slot.log_positions());
        }
        if slot.is_storage() {
            node.set_value_storage(Box::new(MemValueStorage));
        }
        slot.node = Some(node);
        self.active.take();
        self.step(host, Input::Start { seeds });
        self.report_load(host);
    }

    /// Send `host` its current load at once (a fresh process must not look idle).
    pub(crate) fn report_load(&mut self, host: HostId) {
        let spec = self.sc.resources.clone();
        let Some(slot) = self.hosts.get_mut((host as usize).wrapping_sub(1)) else {
            return;
        };
        let Some(node) = slot.node.as_ref() else {
            return;
        };
        let load = resources::load_of(node, &spec, slot.squeeze, &mut self.rng);
        slot.load = load;
        self.step(host, Input::Load(load));
    }

    /// SIGKILL: the process and everything it had in flight are gone.
    pub(crate) fn kill(&mut self, host: HostId) -> bool {
        let now = self.now;
        let Some(slot) = self.slot_mut(host) else {
            return false;
        };
        let Some(node) = slot.node.take() else {
            return false;
        };
        slot.incarnation = slot.incarnation.max(node.incarnation());
        if let Some(sink) = node.log_sink() {
            add_stats(&mut slot.log_stats, &sink.stats);
        }
        slot.down = true;
        let gen = slot.gen;
        // The colonies this kill concerns: those the host held (syncing copies
        // included) and those whose primary, at the last check, was bringing it in.
        for r in node.replicas() {
            self.checker.stalls.fault_on(r.colony, now);
        }
        for (c, cv) in self.view.colonies.iter().enumerate() {
            if cv
                .primaries
                .iter()
                .any(|p| p.members.iter().any(|m| m.host == host))
            {
                self.checker.stalls.fault_on(c as ColonyId, now);
            }
        }
        self.last_killed.insert(host, now);
        self.active.take();
        self.crashed.insert((host, gen));
        self.workload.host_gone(host, now);
        true
    }

    /// The node finished a graceful leave: the process exits (what it sent is delivered).
    pub(crate) fn retire(&mut self, host: HostId) {
        let now = self.now;
        let Some(slot) = self.slot_mut(host) else {
            return;
        };
        let Some(node) = slot.node.take() else {
            return;
        };
        slot.incarnation = slot.incarnation.max(node.incarnation());
        if let Some(sink) = node.log_sink() {
            add_stats(&mut slot.log_stats, &sink.stats);
        }
        let restart = slot.restart_after_leave.take();
        let hold = std::mem::take(&mut slot.hold_after_leave);
        if restart.is_none() && !hold {
            slot.gone = true;
        } else {
            slot.down = true;
        }
        self.active.take();
        self.workload.host_gone(host, now);
        if self.verbose {
            println!(
                "[{:>8.1}s] host {host} finished leaving",
                now as f64 / 1000.0
            );
        }
        if let Some(d) = restart {
            self.schedule(now + d, crate::faults::Action::Revive(host));
        }
        if hold {
            self.host_parked();
        }
    }

    /// A new host with the next id, on the given box/zone or continuing the round robin.
    pub(crate) fn add_host(&mut self, zone: Option<&str>, box_name: Option<&str>) -> HostId {
        let id = self.hosts.len() as HostId + 1;
        let info = layout::host_info(&self.sc.cluster, id, box_name, zone);
        self.net.host_added(id, &info.zone);
        self.hosts.push(HostSlot::new(info));
        self.boot(id);
        id
    }
}
