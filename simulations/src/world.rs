//! The simulated world: one process, one virtual clock, one seeded RNG, every host's
//! core [`Node`], the network between them, the clients, and the checker.
//!
//! Everything that happens is an item on the [`Agenda`], ordered by (time, insertion
//! sequence): message deliveries and timers (tagged with the generation of the host
//! process they belong to, and dropped if that process is gone), fault actions, client
//! operations, load reports, checks and plot samples. Processing an item steps at most
//! one node; its output (messages, timers, events, client replies) is turned into new
//! items at once. Nothing reads a wall clock (except to report simulated seconds per
//! wall second) and nothing iterates a hash map, so a scenario and a seed give the same
//! run, byte for byte.

use crate::checker::{directory_mismatches, CheckCtx, Checker, Violation};
use crate::events::{EventLog, Sink};
use crate::expect;
use crate::faults::{self, Action};
use crate::hosts::{live_hosts, HostSlot};
use crate::layout;
use crate::logger::{check_logs, log_summary};
use crate::network::Network;
use crate::plot::Sample;
use crate::queue::{Agenda, Time};
use crate::resources;
use crate::scenario::{ms, Scenario, SplitBrain};
use crate::shutdown::{Disk, Outage};
use crate::summary::{Failure, RunResult, StorageSummary};
use crate::view::{storage_alone, ClusterView, ViewCache};
use crate::workload::{Outcome, Workload};
use colony::core::cell::Reply;
use colony::core::colony::ColonyConfig;
use colony::core::events::{Event, EventKind};
use colony::core::messages::{Msg, ReqId};
use colony::core::node::{Input, NodeConfig, NodeState, Out, Timer};
use colony::core::placement::PlacementConfig;
use colony::core::types::{colony_of, ColonyId, HostId, Role};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

/// How a run is observed.
pub struct RunOptions {
    pub sink: Sink,
    /// Sample once per simulated second for `--plot`.
    pub plot: bool,
    /// Print faults and recoveries as they happen.
    pub verbose: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            sink: Sink::None,
            plot: false,
            verbose: false,
        }
    }
}

/// A message on its way.
pub(crate) struct Delivery {
    pub from: HostId,
    pub from_gen: u32,
    pub to: HostId,
    pub to_gen: u32,
    pub msg: Msg,
}

/// What the agenda holds.
pub(crate) enum Item {
    Deliver(Box<Delivery>),
    Timer {
        host: HostId,
        gen: u32,
        timer: Timer,
    },
    /// Boxed: faults are rare, and every pending item is as large as the largest.
    Fault(Box<Action>),
    ClientOp,
    LoadReport,
    Check,
    Sample,
}

/// One simulated cluster under one scenario and one seed.
pub struct World {
    pub(crate) sc: Scenario,
    pub(crate) seed: u64,
    pub(crate) cfg: NodeConfig,
    pub(crate) now: Time,
    pub(crate) active_end: Time,
    pub(crate) end: Time,
    hard_end: Time,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) agenda: Agenda<Item>,
    pub(crate) hosts: Vec<HostSlot>,
    pub(crate) net: Network,
    /// Host processes that crashed: what they had in flight is lost with them.
    pub(crate) crashed: BTreeSet<(HostId, u32)>,
    pub(crate) workload: Workload,
    pub(crate) log: EventLog,
    pub(crate) checker: Checker,
    out: Out,
    pub(crate) faults: Vec<String>,
    samples: Option<Vec<Sample>>,
    /// Squeezed hosts and the replicas they held when squeezed.
    pub(crate) squeezed: BTreeMap<HostId, u32>,
    /// What hosts leaving as the last ones wrote to disk (see [`crate::shutdown`]).
    pub(crate) disk: Disk,
    /// A whole-cluster shutdown in progress.
    pub(crate) outage: Option<Outage>,
    /// A restore finished: scan the whole ledger at the first healthy check.
    pub(crate) scan_after_restore: bool,
    /// What the storage nodes did, as the checks saw it.
    storage: StorageSummary,
    failure: Option<Failure>,
    done: bool,
    pub(crate) verbose: bool,
    items: u64,
    /// The checks' view of the cluster, rebuilt in place at each check from the hosts
    /// whose replicas changed ([`ClusterView::rebuild`]).
    pub(crate) view: ClusterView,
    view_cache: ViewCache,
    /// See [`World::active_slice`].
    pub(crate) active: std::cell::OnceCell<Vec<HostId>>,
    /// Whether the scenario has a `hand_off_kills` window (hand-offs are watched).
    watch_hand_offs: bool,
    /// Per `hand_off_kills` fault (by index): no kill before this time.
    pub(crate) hand_off_next: BTreeMap<usize, Time>,
    /// When the last `hand_off_kills` kill happened.
    pub(crate) hand_off_killed_at: Time,
    /// Per colony: the last check that found it whole (one primary, the target
    /// population) and the hosts that held it then (the primary and its in-sync
    /// members). See [`World::last_holder_of_some_colony`].
    pub(crate) whole: Vec<(Time, Vec<HostId>)>,
    /// The latest kill of each host.
    pub(crate) last_killed: BTreeMap<HostId, Time>,
}

/// The node configuration a scenario implies.
pub fn node_config(sc: &Scenario) -> NodeConfig {
    let c = &sc.cluster;
    NodeConfig {
        colonies: c.colonies,
        colony: ColonyConfig {
            replicas: c.replicas,
            sync_replicas: c.sync_replicas,
            refuse_writes_without_quorum: c.split_brain == SplitBrain::Refuse,
            placement: PlacementConfig {
                replica_memory: sc.resources.replica_memory_mib << 20,
                ..PlacementConfig::default()
            },
            ..ColonyConfig::default()
        },
        expect_hosts: c.expect_hosts,
        ..NodeConfig::for_cluster_size(c.hosts + c.loggers + c.storage)
    }
}

impl World {
    pub fn new(sc: &Scenario, seed: u64, opts: RunOptions) -> World {
        let cfg = node_config(sc);
        let active_end = ms(sc.duration_s);
        let end = active_end + ms(sc.settle_s);
        let hard_end =
            end + ms(sc.checks.recovery_bound_s) + ms(sc.checks.directory_grace_s) + 60_000;
        let mut w = World {
            checker: Checker::new(
                sc.checks.clone(),
                sc.cluster.replicas,
                sc.cluster.colonies,
                cfg.colony.placement.clone(),
            ),
            workload: Workload::new(sc.workload.clone()),
            net: Network::new(sc.network.clone()),
            sc: sc.clone(),
            seed,
            cfg,
            now: 0,
            active_end,
            end,
            hard_end,
            rng: ChaCha8Rng::seed_from_u64(seed),
            agenda: Agenda::default(),
            hosts: Vec::new(),
            crashed: BTreeSet::new(),
            log: EventLog::new(opts.sink),
            out: Out::default(),
            faults: Vec::new(),
            samples: opts.plot.then(Vec::new),
            squeezed: BTreeMap::new(),
            disk: Disk::new(),
            outage: None,
            scan_after_restore: false,
            storage: StorageSummary {
                nodes: u64::from(sc.cluster.storage),
                ..StorageSummary::default()
            },
            failure: None,
            done: false,
            verbose: opts.verbose,
            items: 0,
            view: ClusterView::default(),
            view_cache: ViewCache::default(),
            active: std::cell::OnceCell::new(),
            watch_hand_offs: sc
                .faults
                .iter()
                .any(|f| matches!(f, crate::scenario::FaultSpec::HandOffKills { .. })),
            hand_off_next: BTreeMap::new(),
            hand_off_killed_at: 0,
            whole: vec![(0, Vec::new()); sc.cluster.colonies as usize],
            last_killed: BTreeMap::new(),
        };
        for i in 0..sc.cluster.hosts {
            let info = layout::host_info(&sc.cluster, i + 1, None, None);
            w.hosts.push(HostSlot::new(info));
            let at = u64::from(i) * sc.cluster.start_stagger_ms;
            w.agenda
                .push(at, Item::Fault(Box::new(Action::Boot(i + 1))));
        }
        let c = &sc.cluster;
        let loggers = (0..c.loggers).map(|i| layout::logger_info(c, c.hosts + i + 1, i));
        let storage =
            (0..c.storage).map(|i| layout::storage_info(c, c.hosts + c.loggers + i + 1, i));
        for info in loggers.chain(storage) {
            let at = u64::from(info.id - 1) * c.start_stagger_ms;
            w.agenda
                .push(at, Item::Fault(Box::new(Action::Boot(info.id))));
            w.hosts.push(HostSlot::new(info));
        }
        faults::plan(&mut w);
        let first_op = ms(sc.workload.start_s) + w.workload.next_delay(&mut w.rng);
        w.agenda.push(first_op, Item::ClientOp);
        w.agenda.push(1_000, Item::LoadReport);
        w.agenda.push(sc.checks.check_every_ms, Item::Check);
        if w.samples.is_some() {
            w.agenda.push(1_000, Item::Sample);
        }
        w
    }

    /// Run to the end (or the first violation) and report.
    pub fn run(mut self) -> RunResult {
        let wall = std::time::Instant::now();
        while !self.done {
            let Some((t, item)) = self.agenda.pop_until(self.hard_end) else {
                break;
            };
            self.now = t;
            self.items += 1;
            self.dispatch(item);
        }
        if !self.done && self.failure.is_none() {
            self.fail(Violation {
                t: self.now,
                invariant: "run",
                what: "the run ended without its final checks (agenda exhausted)".into(),
            });
        }
        let wall_seconds = wall.elapsed().as_secs_f64();
        if self.verbose {
            let mut kinds: Vec<(&str, u64)> = self
                .net
                .stats()
                .by_kind
                .iter()
                .map(|(k, v)| (*k, *v))
                .collect();
            kinds.sort_by_key(|(k, v)| (std::cmp::Reverse(*v), *k));
            let top: Vec<String> = kinds
                .iter()
                .take(10)
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            println!("messages by kind: {}", top.join(", "));
        }
        self.result(wall_seconds)
    }

    /// Run until virtual time `until` (for tests that inspect the world mid-run).
    pub fn run_until(&mut self, until: Time) {
        while !self.done {
            let Some((t, item)) = self.agenda.pop_until(until) else {
                break;
            };
            self.now = t;
            self.items += 1;
            self.dispatch(item);
        }
        self.now = self.now.max(until);
    }

    pub fn now(&self) -> Time {
        self.now
    }

    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    fn dispatch(&mut self, item: Item) {
        match item {
            Item::Deliver(d) => self.deliver(*d),
            Item::Timer { host, gen, timer } => {
                if self
                    .slot(host)
                    .is_some_and(|s| s.gen == gen && s.node.is_some())
                {
                    self.step(host, Input::Timer(timer));
                }
            }
            Item::Fault(a) => self.apply(*a),
            Item::ClientOp => self.client_op(),
            Item::LoadReport => self.load_report(),
            Item::Check => self.on_check(),
            Item::Sample => self.on_sample(),
        }
    }

    pub(crate) fn slot(&self, host: HostId) -> Option<&HostSlot> {
        self.hosts.get((host as usize).wrapping_sub(1))
    }

    pub(crate) fn slot_mut(&mut self, host: HostId) -> Option<&mut HostSlot> {
        self.hosts.get_mut((host as usize).wrapping_sub(1))
    }

    fn deliver(&mut self, d: Delivery) {
        if self.crashed.contains(&(d.from, d.from_gen)) {
            return;
        }
        let alive = self
            .slot(d.to)
            .is_some_and(|s| s.gen == d.to_gen && s.node.is_some());
        if !alive || self.net.drop_on_arrival(d.from, d.to) {
            return;
        }
        self.step(
            d.to,
            Input::Message {
                from: d.from,
                msg: d.msg,
            },
        );
    }

    /// Feed one input to one node and carry out its output.
    pub(crate) fn step(&mut self, host: HostId, input: Input) {
        let now = self.now;
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let (gen, left) = {
            let Some(slot) = self.slot_mut(host) else {
                self.out = out;
                return;
            };
            let gen = slot.gen;
            let Some(node) = slot.node.as_mut() else {
                self.out = out;
                return;
            };
            let before = node.state();
            node.handle(now, input, &mut out);
            let after = node.state();
            if after != before {
                self.active.take();
            }
            (gen, after == NodeState::Left)
        };
        for (to, msg) in out.sends.drain(..) {
            self.send(host, gen, to, msg);
        }
        for (delay, timer) in out.timers.drain(..) {
            self.agenda
                .push(now + delay, Item::Timer { host, gen, timer });
        }
        for e in out.events.drain(..) {
            self.on_event(&e);
        }
        for (req, reply) in out.replies.drain(..) {
            self.on_reply(host, req, &reply);
        }
        let persist = std::mem::take(&mut out.persist);
        if !out.log.is_empty() {
            // The simulated shell writes every append at once: it reaches the disk.
            if let Some(slot) = self.slot_mut(host) {
                slot.log.append(&mut out.log);
            }
        }
        self.out = out;
        if !persist.is_empty() {
            self.save_to_disk(host, &persist);
        }
        if left {
            self.retire(host);
        }
    }

    fn send(&mut self, from: HostId, from_gen: u32, to: HostId, msg: Msg) {
        let Some(to_gen) = self.slot(to).filter(|s| s.node.is_some()).map(|s| s.gen) else {
            return;
        };
        if let Some(at) = self.net.send(self.now, from, to, msg.kind(), &mut self.rng) {
            self.agenda.push(
                at,
                Item::Deliver(Box::new(Delivery {
                    from,
                    from_gen,
                    to,
                    to_gen,
                    msg,
                })),
            );
        }
    }

    /// Whether killing `host` now would kill the last holder of some colony that every
    /// other holder has died since the colony was last whole: all its holders dead in
    /// one recovery window, which the design reports as `data_lost`. Random faults that
    /// promise to keep data (never more than N-1 down) skip such a victim: hosts come
    /// back empty, so "down at once" alone does not keep that promise.
    pub(crate) fn last_holder_of_some_colony(&self, host: HostId) -> bool {
        self.whole.iter().any(|(at, holders)| {
            holders.contains(&host)
                && holders
                    .iter()
                    .all(|h| *h == host || self.last_killed.get(h).is_some_and(|k| k > at))
        })
    }

    /// The running hosts other than `except` that hold `colony` with every
    /// acknowledged write: its primary or an in-sync secondary. The design allows
    /// `data_lost` only when there is none (every holder died in one recovery window);
    /// the checker asks the hosts themselves, not the directory that led to the verdict.
    fn holders_of(&self, colony: ColonyId, except: HostId) -> Vec<HostId> {
        live_hosts(&self.hosts)
            .iter()
            .map(|h| h.node)
            .filter(|n| n.id() != except)
            .filter(|n| {
                n.replica(colony)
                    .is_some_and(|r| r.role == Role::Primary || r.is_synced())
            })
            .map(|n| n.id())
            .collect()
    }

    fn on_event(&mut self, e: &Event) {
        self.log.record(e);
        if self.watch_hand_offs {
            if let EventKind::ColonyPromoted { reason, .. } = &e.kind {
                if reason == "hand_off" {
                    self.on_hand_off(e.host);
                }
            }
        }
        if let EventKind::DataLost {
            colony,
            epoch,
            last_holders,
        } = &e.kind
        {
            if self.verbose {
                println!(
                    "[{:>8.1}s] data_lost: colony {colony} recreated at epoch {epoch} by host {} (last holders {last_holders:?})",
                    e.t as f64 / 1000.0,
                    e.host
                );
            }
            let survivors = self.holders_of(*colony, e.host);
            if !survivors.is_empty() {
                self.fail(Violation {
                    t: self.now,
                    invariant: "no acknowledged write lost",
                    what: format!(
                        "data_lost for colony {colony} (host {} recreated it at epoch {epoch}; last holders {last_holders:?}) while host(s) {survivors:?} still held it (primary or in-sync secondary): not every holder died",
                        e.host
                    ),
                });
            }
        }
    }

    fn on_reply(&mut self, host: HostId, req: ReqId, reply: &Reply) {
        if World::is_restore_req(req) {
            self.on_restore_reply(host, req, reply);
            return;
        }
        if let Outcome::Contradiction { key, since, c } =
            self.workload.on_reply(self.now, host, req, reply)
        {
            let name = &self.workload.ledger.keys[key as usize].name;
            let colony = colony_of(name.as_bytes(), self.sc.cluster.colonies);
            self.checker
                .suspect(self.now, key as usize, colony, since, c.detail);
        }
    }

    fn client_op(&mut self) {
        if self.now >= self.active_end {
            return;
        }
        let refused = self.clients_refused();
        if !refused {
            self.active_slice();
        }
        let hosts: &[HostId] = match self.active.get() {
            Some(ids) if !refused => ids,
            _ => &[],
        };
        if let Some((host, req, cmd)) = self.workload.next_op(self.now, hosts, &mut self.rng) {
            self.step(host, Input::Client { req, cmd });
        }
        let next = self.now + self.workload.next_delay(&mut self.rng);
        self.agenda.push(next, Item::ClientOp);
    }

    fn load_report(&mut self) {
        let spec = self.sc.resources.clone();
        for i in 0..self.hosts.len() {
            let slot = &mut self.hosts[i];
            let Some(node) = slot.node.as_ref() else {
                continue;
            };
            let load = resources::load_of(node, &spec, slot.squeeze, &mut self.rng);
            slot.load = load;
            let id = node.id();
            self.step(id, Input::Load(load));
        }
        self.agenda.push(self.now + 1_000, Item::LoadReport);
    }

    pub(crate) fn fail(&mut self, v: Violation) {
        if self.failure.is_some() {
            return;
        }
        if self.verbose {
            println!("[{:>8.1}s] VIOLATION {v}", v.t as f64 / 1000.0);
        }
        self.failure = Some(Failure {
            violation: v,
            recent_events: self.log.recent(),
            faults: self.faults.clone(),
        });
        self.done = true;
    }

    fn on_check(&mut self) {
        let now = self.now;
        let timeout = self.cfg.request_timeout_ms + 10_000;
        self.workload.expire(now, timeout);
        if self.checks_suspended() {
            if now >= self.end {
                let what = self.outage_report().unwrap_or_default();
                self.fail(Violation {
                    t: now,
                    invariant: "restore",
                    what: format!("the run ended before the cluster was back: {what}"),
                });
            } else {
                self.agenda
                    .push(now + self.sc.checks.check_every_ms, Item::Check);
            }
            return;
        }
        let colonies = self.sc.cluster.colonies;
        let finishing = now >= self.end;
        let live = live_hosts(&self.hosts);
        let mut view = std::mem::take(&mut self.view);
        view.rebuild(
            &live,
            colonies,
            &|a, b| self.net.connected(a, b),
            !self.net.partitioned(),
            &mut self.view_cache,
        );
        let target = self.checker.target(&live, colonies);
        note_whole_colonies(&mut self.whole, now, &view, target);
        let mut cx = CheckCtx {
            now,
            live: &live,
            view: &view,
            keys: &mut self.workload.ledger.keys,
            log: &self.log,
            colonies,
            calm: !self.net.partitioned(),
            last: false,
        };
        let mut verdict = self.checker.check(&mut cx, target);
        if verdict.is_ok() && self.scan_after_restore && self.checker.recovery.is_healthy() {
            self.scan_after_restore = false;
            verdict = self.checker.scan_ledger(&mut cx);
        }
        let mut reschedule = true;
        if verdict.is_ok() && finishing && self.checker.recovery.is_healthy() {
            let (n, first) = directory_mismatches(&live, &view);
            if n == 0 {
                cx.last = true;
                verdict = self.checker.check(&mut cx, target);
                if verdict.is_ok() {
                    verdict = check_logs(&self.hosts, &live, &view, cx.keys, colonies, now);
                }
                reschedule = false;
            } else if now >= self.end + ms(self.sc.checks.directory_grace_s) {
                verdict = Err(Violation {
                    t: now,
                    invariant: "directories converge",
                    what: format!(
                        "{n} directory entries disagree with the replicas {:.0} s after the end, e.g. {}",
                        self.sc.checks.directory_grace_s,
                        first.join("; ")
                    ),
                });
            }
        }
        if verdict.is_ok() && self.checker.recovery.is_healthy() && storage_alone(&live) {
            self.storage.alone_checks += 1;
            self.storage.runs_alone = 1;
        }
        if verdict.is_ok() && !reschedule && !storage_alone(&live) {
            self.storage.primaries_at_end = view.storage_primaries();
        }
        if self.verbose && now % 60_000 < self.sc.checks.check_every_ms {
            let under = view.colonies.iter().filter(|c| !c.healthy(target)).count();
            println!(
                "[{:>8.1}s] {} hosts up, {under} of {colonies} colonies not at {target} replicas under one primary, {} items, {} acked writes",
                now as f64 / 1000.0,
                live.len(),
                self.items,
                self.workload.stats.writes_acked
            );
        }
        drop(live);
        self.view = view;
        let recovered = std::mem::take(&mut self.checker.recovered);
        if self.verbose {
            for (t, what, s) in recovered {
                println!(
                    "[{:>8.1}s] recovered: every colony back to {target} in-sync replicas {s:.1} s after {what}",
                    t as f64 / 1000.0
                );
            }
        }
        match verdict {
            Err(v) => self.fail(v),
            Ok(()) if !reschedule => self.done = true,
            Ok(()) => self
                .agenda
                .push(now + self.sc.checks.check_every_ms, Item::Check),
        }
    }

    fn on_sample(&mut self) {
        let live = live_hosts(&self.hosts);
        let view = ClusterView::build(&live, self.sc.cluster.colonies, &|a, b| {
            self.net.connected(a, b)
        });
        let target = self.checker.target(&live, self.sc.cluster.colonies);
        let ids: Vec<HostId> = live
            .iter()
            .filter(|h| h.node.log_sink().is_none())
            .map(|h| h.id())
            .collect();
        let counts = (
            self.log.count("colony_migrated"),
            self.log.count("colony_cloned"),
            self.log.count("colony_promoted"),
        );
        let s = Sample::take(self.now as f64 / 1000.0, &view, target, &ids, counts);
        drop(live);
        if let Some(samples) = self.samples.as_mut() {
            samples.push(s);
        }
        self.agenda.push(self.now + 1_000, Item::Sample);
    }

    /// Record an injected fault that concerns every colony (`disruptive`: it may take
    /// replicas away, so its recovery time is measured).
    pub(crate) fn note_fault(&mut self, what: String, disruptive: bool) {
        self.checker.stalls.fault_on_all(self.now);
        self.note_local_fault(what, disruptive);
    }

    /// Record a fault that concerns only the colonies it touched: a kill ([`World::kill`]
    /// told each of them already) or a restart (the host comes back empty and holds
    /// nothing yet).
    pub(crate) fn note_local_fault(&mut self, what: String, disruptive: bool) {
        if self.verbose {
            println!("[{:>8.1}s] {what}", self.now as f64 / 1000.0);
        }
        self.checker.recovery.fault(self.now, &what, disruptive);
        self.faults
            .push(format!("{:.3} s: {what}", self.now as f64 / 1000.0));
    }

    /// For tests: the clients' ledger.
    pub fn ledger_mut(&mut self) -> &mut crate::workload::Ledger {
        &mut self.workload.ledger
    }

    /// For tests: the cells on the world's disk (saved by the last hosts to leave).
    pub fn disk_cells(&self) -> usize {
        self.disk.values().map(Vec::len).sum()
    }

    /// For tests: drop every `n`-th cell of the disk (all of them with `n = 1`), as a
    /// broken shutdown or restore would.
    pub fn corrupt_disk(&mut self, n: usize) {
        let mut i = 0;
        for cells in self.disk.values_mut() {
            cells.retain(|_| {
                i += 1;
                i % n.max(1) != 0
            });
        }
    }

    /// For tests: the running process of `host`.
    pub fn node(&self, host: HostId) -> Option<&colony::core::node::Node> {
        self.slot(host).and_then(|s| s.node.as_ref())
    }

    /// For tests: the logging nodes' ids.
    pub fn logger_ids(&self) -> Vec<HostId> {
        self.hosts
            .iter()
            .filter(|s| s.is_logger())
            .map(|s| s.info.id)
            .collect()
    }

    /// For tests: how many appends logger `host` has on its disk.
    pub fn log_len(&self, host: HostId) -> usize {
        self.slot(host).map_or(0, |s| s.log.len())
    }

    /// For tests: drop every `n`-th append of logger `host`'s disk (all of them with
    /// `n = 1`), as a broken log writer would.
    pub fn corrupt_log(&mut self, host: HostId, n: usize) {
        if let Some(slot) = self.slot_mut(host) {
            let mut i = 0;
            slot.log.retain(|_| {
                i += 1;
                i % n.max(1) != 0
            });
        }
    }

    /// For tests: check every logger's log against the ledger now, as at the end of a
    /// run.
    pub fn check_logs_now(&mut self) -> Result<(), Violation> {
        let colonies = self.sc.cluster.colonies;
        let live = live_hosts(&self.hosts);
        let view = ClusterView::build(&live, colonies, &|a, b| self.net.connected(a, b));
        check_logs(
            &self.hosts,
            &live,
            &view,
            &self.workload.ledger.keys,
            colonies,
            self.now,
        )
    }

    /// For tests: run the full ledger scan now, as at the end of a run.
    pub fn check_ledger_now(&mut self) -> Result<(), Violation> {
        let colonies = self.sc.cluster.colonies;
        let live = live_hosts(&self.hosts);
        let view = ClusterView::build(&live, colonies, &|a, b| self.net.connected(a, b));
        let target = self.checker.target(&live, colonies);
        let mut cx = CheckCtx {
            now: self.now,
            live: &live,
            view: &view,
            keys: &mut self.workload.ledger.keys,
            log: &self.log,
            colonies,
            calm: true,
            last: true,
        };
        let _ = target;
        self.checker.scan_ledger(&mut cx)
    }

    fn result(mut self, wall_seconds: f64) -> RunResult {
        let events = match self.log.finish() {
            Ok(ev) => ev,
            Err(e) => {
                eprintln!("writing the event stream failed: {e}");
                None
            }
        };
        let squeezed = self
            .squeezed
            .iter()
            .map(|(h, before)| {
                let after = self
                    .slot(*h)
                    .and_then(|s| s.node.as_ref())
                    .map(|n| n.replicas().count() as u32);
                (*h, *before, after)
            })
            .collect();
        let log = &self.log;
        let mut r = RunResult {
            scenario: self.sc.name.clone(),
            seed: self.seed,
            failure: self.failure.take(),
            unmet: Vec::new(),
            writes_acked: self.workload.stats.writes_acked,
            writes_lost: self.checker.writes_lost,
            data_lost_events: log.count("data_lost"),
            promotions: log.count("colony_promoted"),
            promotions_by_reason: log.promotions.clone(),
            clones: log.count("colony_cloned"),
            migrations: log.count("colony_migrated"),
            recovery_s: self.checker.recovery.samples.clone(),
            colony_below_target_max_s: self.checker.stalls.longest as f64 / 1000.0,
            formation_s: self.checker.recovery.formed_at().map(|t| t as f64 / 1000.0),
            placement_violations: self.checker.placement_violations,
            sim_seconds: self.now as f64 / 1000.0,
            wall_seconds,
            event_lines: log.lines,
            event_hash: log.hash(),
            events,
            event_counts: log
                .counts
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            event_seen: log
                .seen
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            client: self.workload.stats,
            net: self.net.stats(),
            squeezed,
            samples: self.samples.take().unwrap_or_default(),
            faults: std::mem::take(&mut self.faults),
            items: self.items,
            log: log_summary(&self.hosts),
            storage: self.storage,
        };
        if r.failure.is_none() {
            r.unmet = expect::unmet(&self.sc.expect, &r);
        }
        r
    }
}

/// Remembers, for each colony the check finds whole, when and on which hosts.
fn note_whole_colonies(
    whole: &mut [(Time, Vec<HostId>)],
    now: Time,
    view: &ClusterView,
    target: u32,
) {
    for (c, cv) in view.colonies.iter().enumerate() {
        let (Some(entry), Some(l)) = (whole.get_mut(c), cv.leader()) else {
            continue;
        };
        if !cv.healthy(target) {
            continue;
        }
        entry.0 = now;
        let holders = || {
            std::iter::once(l.host).chain(
                l.members
                    .iter()
                    .filter(|m| m.in_sync && m.host != l.host)
                    .map(|m| m.host),
            )
        };
        if !entry.1.iter().copied().eq(holders()) {
            entry.1.clear();
            entry.1.extend(holders());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random kill spares the host that is the last of a colony's holders (as the
    /// last check that found it whole saw them) to survive since: the others died after
    /// that check. Deaths before it do not count, nor does a host holding nothing.
    #[test]
    fn the_last_surviving_holder_of_a_colony_is_no_random_victim() {
        let sc = Scenario::find("random-kills").expect("scenario");
        let mut w = World::new(&sc, 1, RunOptions::default());
        w.run_until(60_000);
        assert!(w
            .whole
            .iter()
            .all(|(at, holders)| *at > 0 && holders.len() == 3));
        let (at, holders) = w.whole[0].clone();
        let [a, b, c] = holders[..] else {
            panic!("three holders");
        };
        let other = (1..=sc.cluster.hosts)
            .find(|h| !holders.contains(h))
            .expect("a host outside colony 0");
        for h in [a, b, c] {
            w.last_killed.remove(&h);
        }
        w.whole.truncate(1);
        assert!(!w.last_holder_of_some_colony(c));
        w.last_killed.insert(a, at + 1);
        assert!(!w.last_holder_of_some_colony(c), "{b} still holds it");
        w.last_killed.insert(b, at - 1);
        assert!(
            !w.last_holder_of_some_colony(c),
            "{b} died before it was whole"
        );
        w.last_killed.insert(b, at + 2);
        assert!(w.last_holder_of_some_colony(c), "{a} and {b} died since");
        assert!(!w.last_holder_of_some_colony(other));
    }

    /// Across a link cut on its own (a partial partition), a secondary still counts
    /// toward its colony's population if it holds everything its leader has; cut off
    /// from most hosts (a full partition), it does not.
    #[test]
    fn a_copy_across_a_cut_link_counts_only_while_current_and_not_cut_off() {
        use crate::network::Partition;
        let sc = Scenario::find("steady").expect("scenario");
        let mut w = World::new(&sc, 1, RunOptions::default());
        w.run_until(30_000);
        let colonies = sc.cluster.colonies;
        let live = live_hosts(&w.hosts);
        let whole = ClusterView::build(&live, colonies, &|_, _| true);
        // A colony at full population whose first secondary holds what its leader has.
        let (c, leader, s) = (0..colonies)
            .find_map(|c| {
                let cv = whole.colony(c);
                let l = cv.leader()?;
                let s = cv.secondaries.first()?.host;
                let last = |h| crate::view::find(&live, h)?.node.replica(c).map(|r| r.last);
                (cv.population() == 3 && last(s) == last(l.host)).then_some((c, l.host, s))
            })
            .expect("a colony at rest");
        let population = |net: &Network| {
            ClusterView::build(&live, colonies, &|a, b| net.connected(a, b))
                .colony(c)
                .population()
        };
        w.net.partition(Partition {
            zones: vec![],
            hosts: [s].into_iter().collect(),
            oneway: false,
            only: [leader].into_iter().collect(),
        });
        assert_eq!(population(&w.net), 3, "current, and reaches the others");
        w.net.heal();
        w.net.partition(Partition {
            zones: vec![],
            hosts: [s].into_iter().collect(),
            oneway: false,
            only: BTreeSet::new(),
        });
        assert_eq!(population(&w.net), 2, "cut off from everyone");
    }

    /// A `data_lost` reported while a running host still holds the colony in sync is a
    /// violation that names that host; one reported after every holder died is not.
    #[test]
    fn a_data_lost_verdict_is_judged_by_the_hosts_that_still_hold_the_colony() {
        let sc = Scenario::find("random-kills").expect("scenario");
        let mut w = World::new(&sc, 1, RunOptions::default());
        w.run_until(60_000);
        assert!(w.failure().is_none());
        let colony = 5;
        let holders = w.holders_of(colony, HostId::MAX);
        assert_eq!(holders.len(), sc.cluster.replicas as usize, "{holders:?}");
        let verdict = |host: HostId| Event {
            t: 60_000,
            host,
            kind: EventKind::DataLost {
                colony,
                epoch: Default::default(),
                last_holders: holders.clone(),
            },
        };
        // Every holder but the reporter died: justified.
        for &h in &holders[1..] {
            w.kill(h);
        }
        assert_eq!(w.holders_of(colony, holders[0]), Vec::<HostId>::new());
        w.on_event(&verdict(holders[0]));
        assert!(
            w.failure().is_none(),
            "{:?}",
            w.failure().map(|f| &f.violation)
        );
        // Reported by a host that holds nothing while the first holder lives: a
        // violation naming it.
        let bystander = live_hosts(&w.hosts)
            .iter()
            .map(|h| h.node.id())
            .find(|h| !holders.contains(h))
            .expect("a host without the colony");
        w.on_event(&verdict(bystander));
        let f = w.failure().expect("a holder is alive");
        assert_eq!(f.violation.invariant, "no acknowledged write lost");
        assert!(
            f.violation
                .what
                .contains(&format!("host(s) [{}]", holders[0])),
            "{}",
            f.violation.what
        );
    }

    /// The checks' view, rebuilt from the hosts whose replicas changed (only the
    /// colonies they hold or held), is the view read from every replica, at every
    /// check: through kills and restarts, partitions and their healing, joins and
    /// leaves, and a whole-cluster shutdown.
    #[test]
    fn the_rebuilt_view_is_the_view_read_afresh() {
        let mut kinds = (false, false, false);
        for (name, seed) in [
            ("random-kills", 3),
            ("partial-partition", 1),
            ("split-brain", 2),
            ("join-leave", 1),
            ("rolling-restart", 4),
        ] {
            let sc = Scenario::find(name).expect("scenario");
            let mut w = World::new(&sc, seed, RunOptions::default());
            let colonies = sc.cluster.colonies;
            let mut view = ClusterView::default();
            let mut cache = ViewCache::default();
            let mut t = 0;
            while t < ms(sc.duration_s) && w.failure().is_none() {
                t += 1_000;
                w.run_until(t);
                let live = live_hosts(&w.hosts);
                kinds.0 |= live.len() < sc.cluster.hosts as usize;
                kinds.1 |= w.net.partitioned();
                kinds.2 |= live.len() > sc.cluster.hosts as usize;
                let reach = |a, b| w.net.connected(a, b);
                view.rebuild(&live, colonies, &reach, !w.net.partitioned(), &mut cache);
                assert_eq!(
                    view,
                    ClusterView::build(&live, colonies, &reach),
                    "{name} seed {seed} at {t} ms"
                );
            }
            assert!(w.failure().is_none(), "{name}");
            assert!(view.colonies.iter().all(|c| c.leader().is_some()), "{name}");
        }
        assert_eq!(
            kinds,
            (true, true, true),
            "fewer hosts, a partition, more hosts"
        );
    }
}
