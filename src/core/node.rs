//! One host, as a deterministic state machine: membership, the directory, the host
//! table, quorum, client routing (around a broken link to a primary, through a third
//! host, when a stalled request's primary does not answer a ping), and the colony
//! replicas held here.
//!
//! [`Node::handle`] takes the time and one [`Input`] and writes messages, timers,
//! events and client replies into [`Out`]. The simulator calls it for thousands of
//! hosts in one process; the node binary calls it from its actors. Neither adds a
//! decision of its own.

use super::cell::{Command, CommandError, Reply};
use super::cell_store::{CellStore, ValueLogError, ValueStorage};
use super::colony::{ColonyConfig, ColonyReplica, ColonyTimer, Effects, Env};
use super::directory::{DirEntry, Directory, HostRecord, Stamped};
use super::events::{Event, EventKind};
use super::formation::SharedLayout;
use super::logsink::{LogAppend, LogSink, LogSinkConfig, SinkOut};
use super::membership::{
    HostIdentity, Membership, MembershipConfig, MembershipOut, MembershipTimer, Notice,
};
use super::messages::{ColonyMsg, Msg, ReplyTo, ReqId};
use super::placement;
use super::topology::{HostState, HostView, Topology};
use super::types::{
    colony_of, ColonyId, Epoch, HostId, HostInfo, HostRole, Load, Role, Tick, Version,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// Everything a node needs to know about the cluster's rules and timings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// Number of colonies C (fixed at cluster creation).
    pub colonies: u32,
    pub colony: ColonyConfig,
    pub membership: MembershipConfig,
    /// Period of the node's housekeeping step (colony ticks, host record).
    pub tick_ms: u64,
    /// A colony evaluates migrations every this many ticks (staggered by colony id):
    /// every 2 s by default. Re-cloning a lost replica does not wait for this turn;
    /// only optional moves (drift toward spare resources, rule fixes) do.
    pub placement_every_ticks: u64,
    /// Period of directory anti-entropy with one random peer.
    pub anti_entropy_ms: u64,
    /// How long membership must be quiet before the stable membership follows it.
    pub stable_after_ms: u64,
    /// How long a client request may take, retries included.
    pub request_timeout_ms: u64,
    /// Delay before re-routing a request that found no primary.
    pub retry_ms: u64,
    /// How long after a death to wait before recreating a colony none of whose
    /// holders survived.
    pub orphan_grace_ms: u64,
    /// Clones this host receives at once.
    pub max_incoming_clones: usize,
    /// A clone refused only because this host is busy is offered again after this long
    /// (plus up to as much jitter), not after the full refusal backoff: formation and
    /// re-cloning proceed in waves of `max_incoming_clones` without idle gaps.
    pub busy_retry_ms: u64,
    /// A leave that cannot hand everything off finishes anyway after this long.
    pub leave_timeout_ms: u64,
    /// How long a fenced (undead) primary waits to merge into the current one.
    pub merge_timeout_ms: u64,
    /// A record whose only change is its load is published at most this often (see
    /// `Node::publish_record`).
    #[serde(default = "default_record_load_every_ms")]
    pub record_load_every_ms: u64,
    /// The most bytes the tails of mutations of all the replicas held here keep
    /// together (see `ColonyConfig::log_tail_bytes`): each replica's bound is this
    /// shared among them, at most `log_tail_bytes` and at least [`MIN_TAIL_BYTES`]. A
    /// host holding thousands of replicas under writes then keeps tens of MiB of
    /// tails, not `log_tail_bytes` times thousands.
    #[serde(default = "default_tail_budget_bytes")]
    pub tail_budget_bytes: usize,
    /// Timings of a logging node (`HostRole::Logger`).
    #[serde(default)]
    pub log_sink: LogSinkConfig,
    /// After a death verdict that concerns this host (see `Node::has_quorum`) it acts as
    /// a side without quorum until a quorum of the stable membership has answered a ping sent after
    /// the verdict; unanswered pings go again this often.
    #[serde(default = "default_confirm_retry_ms")]
    pub confirm_retry_ms: u64,
    /// How long a host declared dead while it sees quorum tries to show contact with a
    /// quorum (and so refute the verdict) before it accepts it and goes undead.
    #[serde(default = "default_defunct_confirm_ms")]
    pub defunct_confirm_ms: u64,
    /// A client request forwarded to a primary that has not answered for this long,
    /// nor answered a ping sent half-way, is sent again through another host (reads
    /// and plain SETs, which may run twice), and that primary is reached through a
    /// relay for up to `relay_for_ms` (until it answers a ping): a broken link between
    /// two hosts that both still reach everyone else (membership keeps both alive)
    /// would otherwise time out every request between them.
    #[serde(default = "default_relay_after_ms")]
    pub relay_after_ms: u64,
    /// See `relay_after_ms`.
    #[serde(default = "default_relay_for_ms")]
    pub relay_for_ms: u64,
    /// Form the cluster together: the host started without seeds waits until it sees
    /// this many ordinary hosts alive with their records (or `formation_timeout_ms`
    /// passed), then lays every colony out over them at once
    /// ([`placement::initial_layout`]) and sends them the list ([`Msg::Formation`]);
    /// each creates its own replicas, and no colony has to spread by cloning. `None`:
    /// the founder creates every colony itself and they spread by cloning.
    #[serde(default)]
    pub expect_hosts: Option<u32>,
    /// How long a founder waits for `expect_hosts` before it forms the cluster with the
    /// hosts it sees.
    #[serde(default = "default_formation_timeout_ms")]
    pub formation_timeout_ms: u64,
    /// After the initial layout, how long colonies make no optional moves: every host
    /// record still shows its host empty until the new ones spread (anti-entropy takes
    /// some seconds in a large cluster), and placement would chase hosts that only look
    /// empty.
    #[serde(default = "default_formation_settle_ms")]
    pub formation_settle_ms: u64,
}

fn default_formation_settle_ms() -> u64 {
    30_000
}

fn default_formation_timeout_ms() -> u64 {
    60_000
}

fn default_relay_after_ms() -> u64 {
    1_000
}

fn default_relay_for_ms() -> u64 {
    10_000
}

fn default_record_load_every_ms() -> u64 {
    1_000
}

fn default_confirm_retry_ms() -> u64 {
    500
}

fn default_defunct_confirm_ms() -> u64 {
    2_000
}

/// A replica's tail keeps at least this many bytes whatever the budget: a few
/// mutations, enough to catch up a secondary that missed one message.
pub const MIN_TAIL_BYTES: usize = 4 * 1024;

fn default_tail_budget_bytes() -> usize {
    64 * 1024 * 1024
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            colonies: 271,
            colony: ColonyConfig::default(),
            membership: MembershipConfig::default(),
            tick_ms: 250,
            placement_every_ticks: 8,
            anti_entropy_ms: 1_000,
            stable_after_ms: 5_000,
            request_timeout_ms: 5_000,
            retry_ms: 50,
            orphan_grace_ms: 3_000,
            max_incoming_clones: 8,
            busy_retry_ms: 400,
            leave_timeout_ms: 60_000,
            merge_timeout_ms: 30_000,
            record_load_every_ms: default_record_load_every_ms(),
            tail_budget_bytes: default_tail_budget_bytes(),
            log_sink: LogSinkConfig::default(),
            confirm_retry_ms: default_confirm_retry_ms(),
            defunct_confirm_ms: default_defunct_confirm_ms(),
            relay_after_ms: default_relay_after_ms(),
            relay_for_ms: default_relay_for_ms(),
            expect_hosts: None,
            formation_timeout_ms: default_formation_timeout_ms(),
            formation_settle_ms: default_formation_settle_ms(),
        }
    }
}

impl NodeConfig {
    /// Timings for a cluster of about `n` hosts:
    /// [`MembershipConfig::for_cluster_size`]; below 512 hosts the defaults (a tick
    /// every 250 ms, a placement turn every 2 s); from 512 on a tick every 500 ms and a
    /// placement turn every 4 s (every 8 ticks). A turn weighs only optional moves
    /// (drift toward spare resources, rule fixes; a lost replica is re-cloned without
    /// waiting for it), and in a large cluster each turn stands for more hosts' worth
    /// of moves: a thousand hosts' ten thousand primaries weighing theirs every 2 s was
    /// a quarter of the work of a quiet cluster, for a drift that hysteresis holds back
    /// anyway. The tick itself, four times a second on each of a thousand hosts, was
    /// the largest single item of such a cluster's work while most found nothing to do;
    /// what it drives is measured in seconds (acknowledgement and request timeouts,
    /// relaying after 1 s, clone and hand-off watchdogs), so 500 ms more of reaction
    /// at worst is small beside a failure detection of ten. From 512 hosts, too,
    /// anti-entropy runs every 4 s instead of every second: every change of a
    /// directory entry or a host record goes to every live host when it is made, so
    /// anti-entropy only repairs what a host missed (a restart, a cut link), and a
    /// thousand hosts sending roots every second was a sixth of such a cluster's
    /// messages. A record whose only change is its load goes out at most every 5 s
    /// there (every second below): each goes to every host.
    pub fn for_cluster_size(n: u32) -> Self {
        let base = NodeConfig::default();
        let large = n >= 512;
        NodeConfig {
            membership: MembershipConfig::for_cluster_size(n),
            tick_ms: if large {
                2 * base.tick_ms
            } else {
                base.tick_ms
            },
            anti_entropy_ms: if large {
                4 * base.anti_entropy_ms
            } else {
                base.anti_entropy_ms
            },
            record_load_every_ms: if large {
                5 * base.record_load_every_ms
            } else {
                base.record_load_every_ms
            },
            ..base
        }
    }
}

/// What drives a node.
#[derive(Clone, Debug)]
pub enum Input {
    /// Start: join through `seeds`, or create the cluster when there are none.
    Start { seeds: Vec<HostId> },
    /// A message from another host.
    Message { from: HostId, msg: Msg },
    /// A timer this node asked for.
    Timer(Timer),
    /// A client command (the client is connected here).
    Client { req: ReqId, cmd: Command },
    /// Measured load.
    Load(Load),
    /// Leave gracefully: hand everything off, then go.
    Leave,
    /// A logging node's shell could not buffer some of [`Out::log`]: for each colony,
    /// how far the log really reaches (see [`LogSink::overflow`]).
    LogOverflow {
        reached: Vec<(ColonyId, Option<Version>)>,
        dropped: u64,
        buffered_bytes: u64,
    },
}

/// Timers a node asks for. Opaque to the shell: schedule, then hand back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Timer {
    Membership(MembershipTimer),
    Tick,
    AntiEntropy,
    Colony(ColonyId, ColonyTimer),
    ClientRetry(ReqId),
    OrphanCheck(ColonyId),
    Stabilize,
    /// A logging node asks the primaries of quiet colonies what its log misses.
    LogProbe,
    /// Quorum confirmation: ping again, or give up refuting our own death verdict.
    Confirm,
    /// A founder stops waiting for `expect_hosts`; a joiner stops deferring the
    /// directory's claims on it to the layout it has not received.
    Formation,
}

/// What a step produced.
#[derive(Debug, Default)]
pub struct Out {
    pub sends: Vec<(HostId, Msg)>,
    /// `(delay in ms, timer)`.
    pub timers: Vec<(u64, Timer)>,
    pub events: Vec<Event>,
    /// Answers to [`Input::Client`] requests.
    pub replies: Vec<(ReqId, Reply)>,
    /// Colonies whose replicas the shell must write to disk before the process exits:
    /// set when this host leaves as the last one (or its leave timed out) still holding
    /// replicas that nobody else has.
    pub persist: Vec<ColonyId>,
    /// A logging node: what to append to the log, in order.
    pub log: Vec<LogAppend>,
}

impl Out {
    pub fn clear(&mut self) {
        self.sends.clear();
        self.timers.clear();
        self.events.clear();
        self.replies.clear();
        self.persist.clear();
        self.log.clear();
    }
}

/// Where a node is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Active,
    Leaving,
    Left,
}

/// Whether running `cmd` twice is running it once: reads, plain SETs and RESTOREs.
fn repeatable(cmd: &Command) -> bool {
    !cmd.is_write()
        || matches!(
            cmd,
            Command::Set {
                cond: super::cell::SetCond::Always,
                ..
            } | Command::Restore { .. }
        )
}

#[derive(Clone, Debug)]
struct ClientReq {
    cmd: Command,
    colony: ColonyId,
    deadline: Tick,
    /// The host the request was last forwarded to, if it left this host: when that host
    /// is declared dead, the request is re-routed or answered at once instead of
    /// waiting for its deadline.
    sent_to: Option<HostId>,
    /// When it was last sent on (see `NodeConfig::relay_after_ms`).
    sent_at: Tick,
    /// The relay it went through last, if any: when that host is declared dead, the
    /// request is re-routed or answered like one sent to a dead primary.
    via: Option<HostId>,
    /// Whether it was relayed (or found its primary's link broken) once already.
    relayed: bool,
    /// A write that reached a host declared dead before it answered: it may have been
    /// applied there (and replicated to the next primary), so a final refusal would be
    /// a lie; the client hears `Timeout` (may or may not have happened) instead.
    maybe_applied: bool,
}

/// See `Node::tally`.
struct Tally {
    since: Tick,
    voters_gen: u64,
    /// The stable voters (this host among them if it votes).
    voters: BTreeSet<HostId>,
    /// Of those, this host and those whose contact is at `since` or later.
    answered: usize,
}

/// About this many members start an anti-entropy round with a host that comes up
/// (see `Node::digest_on_up`).
const UP_DIGESTS: u64 = 8;

/// Where a host stands in a cluster formed together (`NodeConfig::expect_hosts`).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Forming {
    /// Formed, or not forming this way.
    Done,
    /// The founder, waiting for the expected hosts.
    Founding,
    /// A joiner that has not received the layout yet. A primary of the layout may greet
    /// it (`Members`), and directory entries may name it as a primary (by anti-entropy
    /// from a host that formed first), just before its own [`Msg::Formation`] arrives:
    /// the colonies it would disown and the greetings it would answer `Gone` are kept
    /// here and looked at when the layout arrives, or a grace period after the first
    /// one, so it does not disown a replica it is about to create.
    Awaiting {
        deferred: BTreeSet<ColonyId>,
        gone: Vec<(HostId, ColonyId, Epoch)>,
    },
}

/// Work for a colony on this host, queued so that one colony's output can feed
/// another's input without re-entrancy.
enum Work {
    Colony {
        colony: ColonyId,
        from: HostId,
        epoch: Epoch,
        body: ColonyMsg,
    },
    Command {
        colony: ColonyId,
        to: ReplyTo,
        cmd: Command,
        hops: u8,
    },
}

/// One host.
pub struct Node {
    info: HostInfo,
    cfg: NodeConfig,
    membership: Membership,
    dir: Directory,
    topo: Topology,
    replicas: BTreeMap<ColonyId, ColonyReplica>,
    /// The colonies of `replicas` held as primary, ascending (kept in step by
    /// `put_replica`, `take_replica` and `with_colony`).
    led: Vec<ColonyId>,
    /// Colonies to tick at the next tick whatever their placement turn: stepped since
    /// their last tick, or not quiet after it ([`ColonyReplica::is_quiet`]), or named
    /// by a new directory entry.
    attention: BTreeSet<ColonyId>,
    /// Secondaries whose primary moved on, to a host not (yet) alive here: looked at
    /// again at every tick (see `Node::follow_directory`).
    follow_pending: BTreeSet<ColonyId>,
    /// The effects buffer of colony steps, kept to reuse its allocations.
    fx: Effects,
    /// Raised whenever a replica is taken or dropped, or one's
    /// [`ColonyReplica::observed`] fingerprint changes.
    observed: u64,
    /// The sum of the replicas' [`CellStore::bytes`], kept as replicas come, go and
    /// step (see [`Node::replica_load`]).
    cell_bytes: u64,
    /// Tick every replica at the next tick (the target population or this side's
    /// quorum changed).
    tick_all: bool,
    /// Whether this side had quorum at the last tick.
    ticked_quorum: bool,
    /// Primaries of an undead incarnation, waiting to merge into the current ones.
    fenced: BTreeMap<ColonyId, (ColonyReplica, Tick)>,
    rng: ChaCha8Rng,
    load: Load,
    record_version: u64,
    /// The view of the last record published (shared with it).
    published: Option<Arc<HostView>>,
    /// When `published` was.
    published_at: Tick,
    state: NodeState,
    leave_started: Tick,
    left: BTreeSet<HostId>,
    stable: BTreeSet<HostId>,
    quorum: bool,
    /// Set at a death verdict that concerns this host (the dead host shares a colony
    /// with it, or left an orphan; or this host was declared dead): since then it has
    /// not shown contact with a quorum of the stable membership, and acts as a side
    /// without quorum (acknowledges no write, elects no primary). A host cut off with a
    /// minority keeps its membership quorum until it has declared most of the others
    /// dead, which takes seconds; but the verdict on a secondary across the cut comes
    /// before its primary can drop it, so the primary never acknowledges a write
    /// without a secondary that the other side may promote.
    unconfirmed_since: Option<Tick>,
    /// Per host: the send time of the latest [`Msg::Ping`] it answered.
    contact: BTreeMap<HostId, Tick>,
    /// The count of the current quorum confirmation, kept up to date as pongs arrive
    /// (a thousand pongs answer one verdict: counting all voters at each was
    /// quadratic).
    tally: Option<Tally>,
    /// Raised whenever the voters may have changed (the stable membership, or a host
    /// record that may say a host is a logger).
    voters_gen: u64,
    /// Another host declared this one dead at this time, while this one saw quorum: it
    /// refutes only if it shows contact with a quorum in time.
    defunct_since: Option<Tick>,
    confirm_armed: bool,
    /// Since when the membership has shown quorum without a break (None: no quorum).
    quorum_since: Option<Tick>,
    /// When the stable membership may follow the live one (see `Timer::Stabilize`).
    stabilize_at: Tick,
    stabilize_armed: bool,
    clients: BTreeMap<ReqId, ClientReq>,
    /// Primaries reached through a relay until the time given (their link from here
    /// seemed broken: `NodeConfig::relay_after_ms`).
    relay_until: BTreeMap<HostId, Tick>,
    /// When a primary with a stalled request was last pinged (see `relay_stalled`).
    pinged: BTreeMap<HostId, Tick>,
    target: u32,
    /// The topology generation `target` was computed at.
    target_gen: Option<u64>,
    ticks: u64,
    /// When the last housekeeping tick ran: a long gap means this process was paused.
    last_tick: Option<Tick>,
    work: VecDeque<Work>,
    /// A logging node's position in every colony (None on other roles).
    sink: Option<LogSink>,
    /// Live logging nodes, which primaries stream acknowledged mutations to.
    loggers: Vec<HostId>,
    /// Hosts named in a colony's entry that said they hold no copy of it (they
    /// restarted): not counted as its holders. Cleared by the colony's next entry.
    disowned: BTreeMap<ColonyId, BTreeSet<HostId>>,
    /// A storage node: where its replicas keep their cells (None: in memory).
    values: Option<Box<dyn ValueStorage>>,
    forming: Forming,
    /// No optional placement moves before this (see `NodeConfig::formation_settle_ms`).
    settle_until: Tick,
}

impl Node {
    /// A node that has not started yet. `incarnation` must be higher than any earlier
    /// incarnation of the same host id (the node binary uses its boot time; the
    /// simulator a restart counter). `seed` feeds every random choice.
    pub fn new(info: HostInfo, cfg: NodeConfig, incarnation: u32, seed: u64) -> Node {
        let me = HostIdentity::new(info.id, incarnation);
        let membership = Membership::new(me, &cfg.membership, seed ^ 0x5157_4d00);
        let mut stable = BTreeSet::new();
        stable.insert(info.id);
        let mut topo = Topology::new();
        topo.track_feasible(cfg.colonies, cfg.colony.placement.replica_memory);
        Node {
            membership,
            dir: Directory::default(),
            topo,
            replicas: BTreeMap::new(),
            led: Vec::new(),
            attention: BTreeSet::new(),
            follow_pending: BTreeSet::new(),
            fx: Effects::default(),
            observed: 0,
            cell_bytes: 0,
            tick_all: false,
            ticked_quorum: true,
            fenced: BTreeMap::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            load: Load::default(),
            record_version: 0,
            published: None,
            published_at: 0,
            state: NodeState::Active,
            leave_started: 0,
            left: BTreeSet::new(),
            stable,
            quorum: true,
            unconfirmed_since: None,
            contact: BTreeMap::new(),
            tally: None,
            voters_gen: 0,
            defunct_since: None,
            confirm_armed: false,
            quorum_since: Some(0),
            stabilize_at: 0,
            stabilize_armed: false,
            clients: BTreeMap::new(),
            relay_until: BTreeMap::new(),
            pinged: BTreeMap::new(),
            target: cfg.colony.replicas,
            target_gen: None,
            ticks: 0,
            last_tick: None,
            work: VecDeque::new(),
            sink: (info.role == HostRole::Logger).then(|| LogSink::new(cfg.log_sink.clone())),
            loggers: Vec::new(),
            disowned: BTreeMap::new(),
            values: None,
            forming: Forming::Done,
            settle_until: 0,
            info,
            cfg,
        }
    }

    /// A storage node: every replica this host takes from now on keeps its cells in a
    /// value log from `storage` instead of in memory (before [`Input::Start`]).
    pub fn set_value_storage(&mut self, storage: Box<dyn ValueStorage>) {
        self.values = Some(storage);
    }

    /// The cells of a new replica of `colony`: in a value log on a storage node.
    fn new_cells(&mut self, colony: ColonyId) -> Result<CellStore, ValueLogError> {
        match &mut self.values {
            Some(storage) => storage.open(colony).map(CellStore::on_disk),
            None => Ok(CellStore::default()),
        }
    }

    /// Holds `r` from now on, its cells in a value log on a storage node; a log that
    /// cannot be opened leaves the colony to the other hosts (`replica_dropped`).
    fn hold(&mut self, now: Tick, mut r: ColonyReplica, out: &mut Out) -> bool {
        match self.new_cells(r.colony) {
            Ok(cells) => {
                r.cells = cells;
                self.put_replica(r);
                true
            }
            Err(e) => {
                self.emit(
                    now,
                    EventKind::ReplicaDropped {
                        colony: r.colony,
                        epoch: r.epoch,
                        reason: format!("value log: {e}"),
                    },
                    out,
                );
                false
            }
        }
    }

    /// Holds `r` (in place of any replica of its colony held before).
    fn put_replica(&mut self, mut r: ColonyReplica) {
        if self.replicas.is_empty() {
            self.refresh_target();
        }
        self.observed += 1;
        r.seen = r.observed();
        let colony = r.colony;
        let primary = r.role == Role::Primary;
        self.cell_bytes += r.cells.bytes() as u64;
        if let Some(old) = self.replicas.insert(colony, r) {
            self.cell_bytes -= old.cells.bytes() as u64;
        }
        self.set_led(colony, primary);
        self.attention.insert(colony);
    }

    /// Stops holding the replica of `colony`.
    fn take_replica(&mut self, colony: ColonyId) -> Option<ColonyReplica> {
        let r = self.replicas.remove(&colony)?;
        self.cell_bytes -= r.cells.bytes() as u64;
        self.observed += 1;
        self.set_led(colony, false);
        self.attention.remove(&colony);
        self.follow_pending.remove(&colony);
        Some(r)
    }

    /// Keeps `led` in step with whether the replica of `colony` is a primary.
    fn set_led(&mut self, colony: ColonyId, primary: bool) {
        match (self.led.binary_search(&colony), primary) {
            (Err(at), true) => self.led.insert(at, colony),
            (Ok(at), false) => {
                self.led.remove(at);
            }
            _ => {}
        }
        debug_assert!(self.led.iter().copied().eq(self
            .replicas
            .values()
            .filter(|r| r.role == Role::Primary)
            .map(|r| r.colony)));
    }

    /// A logging node: where the log found on disk stands, before [`Input::Start`].
    pub fn set_log_positions(&mut self, positions: BTreeMap<ColonyId, Version>) {
        if let Some(sink) = &mut self.sink {
            sink.set_positions(positions);
        }
    }

    /// A logging node's sink (positions and counters).
    pub fn log_sink(&self) -> Option<&LogSink> {
        self.sink.as_ref()
    }

    /// Live logging nodes as this host knows them.
    pub fn loggers(&self) -> &[HostId] {
        &self.loggers
    }

    // ----- introspection -----------------------------------------------------------

    pub fn id(&self) -> HostId {
        self.info.id
    }

    pub fn info(&self) -> &HostInfo {
        &self.info
    }

    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    pub fn incarnation(&self) -> u32 {
        self.membership.identity().incarnation
    }

    pub fn state(&self) -> NodeState {
        self.state
    }

    pub fn replicas(&self) -> impl Iterator<Item = &ColonyReplica> {
        self.replicas.values()
    }

    pub fn replica(&self, colony: ColonyId) -> Option<&ColonyReplica> {
        self.replicas.get(&colony)
    }

    pub fn directory(&self) -> &Directory {
        &self.dir
    }

    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// Whether this host's side has quorum: a quorum of the stable membership is alive
    /// in its view, and it has shown contact with one since the last death verdict.
    pub fn has_quorum(&self) -> bool {
        self.quorum && self.unconfirmed_since.is_none()
    }

    pub fn live_members(&self) -> Vec<HostId> {
        self.membership.live_members()
    }

    pub fn is_alive(&self, host: HostId) -> bool {
        host == self.info.id || self.membership.is_alive(host)
    }

    /// Whether `host` left gracefully (as far as this host knows).
    pub fn has_left(&self, host: HostId) -> bool {
        self.left.contains(&host)
    }

    /// min(N, what the cluster can hold), as this host computes it.
    pub fn target_population(&self) -> u32 {
        if self.target_gen == Some(self.topo.shape_generation()) {
            self.target
        } else {
            self.feasible_target()
        }
    }

    fn feasible_target(&self) -> u32 {
        placement::feasible_population(
            &self.topo,
            self.cfg.colony.replicas,
            self.cfg.colonies,
            &self.cfg.colony.placement,
        )
        .max(1)
    }

    /// Computes the target again if a host came, went or changed what it can hold since
    /// the last time (at a tick, or when this host takes its first replica: a host that
    /// holds nothing needs no target, and in a cluster of a thousand forming, every
    /// tick of every host would count them all).
    fn refresh_target(&mut self) {
        let gen = self.topo.shape_generation();
        if self.target_gen != Some(gen) {
            self.target_gen = Some(gen);
            let target = self.feasible_target();
            if target != self.target {
                self.target = target;
                self.tick_all = true;
            }
        }
    }

    /// Raised whenever this host takes or drops a replica, or what
    /// [`ColonyReplica::summary`] shows of one changes (role, epoch, primary,
    /// writability, members): a view of the replicas read at one value is still right
    /// at the same value.
    pub fn observed_generation(&self) -> u64 {
        self.observed
    }

    /// (primaries, secondaries, bytes of their cells) over the replicas held, without
    /// a walk over them (what a simulated host reports as its load every second).
    pub fn replica_load(&self) -> (u64, u64, u64) {
        let primaries = self.led.len() as u64;
        let secondaries = (self.replicas.len() - self.led.len()) as u64;
        debug_assert_eq!(
            self.cell_bytes,
            self.replicas
                .values()
                .map(|r| r.cells.bytes() as u64)
                .sum::<u64>()
        );
        (primaries, secondaries, self.cell_bytes)
    }

    /// Requests from local clients still waiting for an answer.
    pub fn pending_requests(&self) -> usize {
        self.clients.len()
    }

    // ----- the step ----------------------------------------------------------------

    pub fn handle(&mut self, now: Tick, input: Input, out: &mut Out) {
        if self.state == NodeState::Left {
            return;
        }
        self.membership.set_now(now);
        match input {
            Input::Start { seeds } => self.start(now, seeds, out),
            Input::Message { from, msg } => self.on_message(now, from, msg, out),
            Input::Timer(t) => self.on_timer(now, t, out),
            Input::Client { req, cmd } => {
                let colony = colony_of(cmd.key(), self.cfg.colonies);
                self.clients.insert(
                    req,
                    ClientReq {
                        cmd,
                        colony,
                        deadline: now + self.cfg.request_timeout_ms,
                        sent_to: None,
                        sent_at: now,
                        via: None,
                        relayed: false,
                        maybe_applied: false,
                    },
                );
                self.route_client(now, req, out);
            }
            Input::Load(load) => self.load = load,
            Input::Leave => self.start_leave(now, out),
            Input::LogOverflow {
                reached,
                dropped,
                buffered_bytes,
            } => self.with_sink(now, out, |sink, so| {
                sink.overflow(now, reached, dropped, buffered_bytes, so)
            }),
        }
        self.run_work(now, out);
    }

    fn start(&mut self, now: Tick, seeds: Vec<HostId>, out: &mut Out) {
        let me = self.info.id;
        self.quorum_since = Some(now);
        let mut mo = MembershipOut::default();
        self.membership.start(&mut mo);
        let seeds: Vec<HostId> = seeds.into_iter().filter(|s| *s != me).collect();
        // A logging node holds no replicas: it never creates the cluster's colonies.
        let founder = seeds.is_empty() && self.sink.is_none();
        if self.cfg.expect_hosts.is_some() {
            if founder {
                self.forming = Forming::Founding;
                out.timers
                    .push((self.cfg.formation_timeout_ms, Timer::Formation));
            } else if !seeds.is_empty() {
                self.forming = Forming::Awaiting {
                    deferred: BTreeSet::new(),
                    gone: Vec::new(),
                };
            }
        } else if founder {
            for c in 0..self.cfg.colonies {
                let r = ColonyReplica::genesis(c, me, Epoch::genesis(me));
                let entry = r.dir_entry(me);
                if self.hold(now, r, out) {
                    self.dir.colonies.merge(Arc::new(entry));
                }
            }
        }
        for s in &seeds {
            self.membership.join(*s, &mut mo);
            out.sends.push((*s, self.digest(true, true)));
        }
        self.drain_membership(now, mo, out);
        self.publish_record(now, true, out);
        self.maybe_form(now, out);
        out.timers.push((self.cfg.tick_ms, Timer::Tick));
        let jitter = self.rng.random_range(0..self.cfg.anti_entropy_ms.max(1));
        out.timers.push((jitter, Timer::AntiEntropy));
        if self.sink.is_some() {
            let first = self.rng.random_range(0..self.cfg.log_sink.probe_ms.max(1));
            out.timers.push((first, Timer::LogProbe));
        }
    }

    fn on_message(&mut self, now: Tick, from: HostId, msg: Msg, out: &mut Out) {
        match msg {
            Msg::Swim(data) => {
                let mut mo = MembershipOut::default();
                if let Err(e) = self.membership.handle_data(from, &data, &mut mo) {
                    tracing::debug!(host = self.info.id, from, error = %e, "bad membership packet");
                }
                self.drain_membership(now, mo, out);
            }
            Msg::HostRecord(rec) => {
                self.merge_record(rec);
                self.maybe_form(now, out);
            }
            Msg::Dir(entry) => self.merge_entry(entry, out),
            Msg::DigestRoots { dir, hosts } => {
                let dir = dir != self.dir.colonies.root();
                let hosts = hosts != self.dir.hosts.root();
                if dir || hosts {
                    // The ranges go back: the exchange goes on from the sender's side
                    // as if this host had started it.
                    out.sends.push((from, self.digest(dir, hosts)));
                }
            }
            Msg::Digest { dir, hosts } => {
                let dir_ranges = dir
                    .map(|d| self.dir.colonies.differing(&d))
                    .unwrap_or_default();
                let host_ranges = hosts
                    .map(|h| self.dir.hosts.differing(&h))
                    .unwrap_or_default();
                if !dir_ranges.is_empty() || !host_ranges.is_empty() {
                    out.sends.push((
                        from,
                        Msg::DigestStamps {
                            dir: self.dir.colonies.stamps_in(&dir_ranges),
                            hosts: self.dir.hosts.stamps_in(&host_ranges),
                            dir_ranges,
                            host_ranges,
                        },
                    ));
                }
            }
            Msg::DigestStamps {
                dir_ranges,
                host_ranges,
                dir,
                hosts,
            } => {
                let (push_dir, want_dir) = self.dir.colonies.compare(&dir_ranges, &dir);
                let (push_hosts, want_hosts) = self.dir.hosts.compare(&host_ranges, &hosts);
                if !push_dir.is_empty()
                    || !want_dir.is_empty()
                    || !push_hosts.is_empty()
                    || !want_hosts.is_empty()
                {
                    out.sends.push((
                        from,
                        Msg::DigestEntries {
                            dir: push_dir,
                            hosts: push_hosts,
                            want_dir,
                            want_hosts,
                        },
                    ));
                }
            }
            Msg::DigestEntries {
                dir,
                hosts,
                want_dir,
                want_hosts,
            } => {
                if !want_dir.is_empty() || !want_hosts.is_empty() {
                    out.sends.push((
                        from,
                        Msg::DigestEntries {
                            dir: self.dir.colonies.entries_for(&want_dir),
                            hosts: self.dir.hosts.entries_for(&want_hosts),
                            want_dir: Vec::new(),
                            want_hosts: Vec::new(),
                        },
                    ));
                }
                for rec in hosts {
                    self.merge_record(rec);
                }
                self.maybe_form(now, out);
                for e in dir {
                    self.merge_entry(e, out);
                }
            }
            Msg::Formation { hosts } => self.on_formation(now, &hosts, out),
            Msg::Forward {
                to,
                colony,
                cmd,
                hops,
            } => self.work.push_back(Work::Command {
                colony,
                to,
                cmd,
                hops,
            }),
            Msg::ForwardReply { req, reply } => self.client_reply(now, req, reply, out),
            Msg::RelayReply { to, reply } => self.deliver_reply(now, to, reply, out),
            Msg::Left => self.on_left(now, from, out),
            Msg::Ping { t } => out.sends.push((from, Msg::Pong { t })),
            Msg::Pong { t } => {
                // A round trip: the link to it works (again).
                self.relay_until.remove(&from);
                let c = self.contact.entry(from).or_insert(0);
                let before = *c;
                *c = before.max(t);
                if let Some(tally) = &mut self.tally {
                    let counts = from != self.info.id && tally.voters.contains(&from);
                    if counts && before < tally.since && t >= tally.since {
                        tally.answered += 1;
                    }
                }
                self.check_confirmed(now, out);
            }
            Msg::Log { colony, entries } => self.with_sink(now, out, |sink, so| {
                sink.on_entries(now, from, colony, entries, so)
            }),
            Msg::LogSnapshot { colony, at, cells } => self.with_sink(now, out, |sink, so| {
                sink.on_snapshot(now, colony, at, cells, so)
            }),
            Msg::LogProbe { have } => {
                for (colony, seq) in have {
                    self.with_colony(now, colony, out, |r, env| r.serve_log_probe(env, from, seq));
                }
            }
            Msg::Colony {
                colony,
                epoch,
                body,
            } => {
                if let ColonyMsg::CloneOffer { floor } = body {
                    if !self.replicas.contains_key(&colony) {
                        self.on_clone_offer(from, colony, epoch, floor, out);
                        return;
                    }
                }
                if let ColonyMsg::HandOff {
                    balance: Some(theirs),
                    ..
                } = body
                {
                    // A balancing hand-off chosen on a record of ours that is seconds
                    // old: by now others may have handed us theirs. Take it only if
                    // it still spreads primaries, by our own count.
                    let mine = self.led.len() as u32;
                    if mine + 2 > theirs {
                        out.sends.push((
                            from,
                            Msg::Colony {
                                colony,
                                epoch,
                                body: ColonyMsg::HandOffRefuse,
                            },
                        ));
                        return;
                    }
                }
                if let ColonyMsg::Disowned = body {
                    self.on_disowned(now, from, colony, out);
                    return;
                }
                if let ColonyMsg::Gone = body {
                    // Our claim found no primary where the directory said one was: the
                    // entry is stale (its primary went undead); take over above it.
                    let stale = self
                        .dir
                        .entry(colony)
                        .filter(|e| e.primary == from)
                        .map(|e| e.epoch);
                    let holds_primary = self
                        .replicas
                        .get(&colony)
                        .is_some_and(|r| r.role == Role::Primary && !r.set_hosts().contains(&from));
                    if let (Some(stale), true) = (stale, holds_primary) {
                        self.with_colony(now, colony, out, |r, env| r.reclaim(env, stale));
                        return;
                    }
                }
                self.work.push_back(Work::Colony {
                    colony,
                    from,
                    epoch,
                    body,
                });
            }
        }
    }

    fn on_clone_offer(
        &mut self,
        from: HostId,
        colony: ColonyId,
        epoch: Epoch,
        floor: Option<f64>,
        out: &mut Out,
    ) {
        let incoming = self.replicas.values().filter(|r| !r.is_synced()).count();
        let me_view = self.topo.get(self.info.id);
        let admits = me_view.is_some_and(|v| placement::admits(v, &self.cfg.colony.placement));
        // An optional move is checked against this host as it is now (every replica
        // held or arriving counted), not the record the mover saw.
        let attractive = floor.is_none() || {
            let now_view = self.my_view();
            placement::still_attractive(&now_view, floor, &self.cfg.colony.placement)
        };
        let busy_retry = self.cfg.busy_retry_ms + self.rng.random_range(0..=self.cfg.busy_retry_ms);
        let refused = if self.state != NodeState::Active {
            Some(("host is leaving".to_string(), 0))
        } else if !self.has_quorum() {
            Some(("no quorum".to_string(), 0))
        } else if incoming >= self.cfg.max_incoming_clones {
            Some(("too many transfers in flight".to_string(), busy_retry))
        } else if !admits {
            Some(("no capacity".to_string(), 0))
        } else if !attractive {
            Some(("no better than the replica's host by now".to_string(), 0))
        } else {
            None
        };
        let accepted = match refused {
            Some(why) => Err(why),
            None => self
                .new_cells(colony)
                .map_err(|e| (format!("value log: {e}"), 0)),
        };
        let body = match accepted {
            Err((reason, retry_ms)) => ColonyMsg::CloneRefuse { reason, retry_ms },
            Ok(cells) => {
                let mut r = ColonyReplica::syncing(colony, epoch, from);
                r.cells = cells;
                self.put_replica(r);
                ColonyMsg::CloneAccept
            }
        };
        out.sends.push((
            from,
            Msg::Colony {
                colony,
                epoch,
                body,
            },
        ));
    }

    fn on_timer(&mut self, now: Tick, timer: Timer, out: &mut Out) {
        match timer {
            Timer::Membership(t) => {
                let mut mo = MembershipOut::default();
                self.membership.handle_timer(t, &mut mo);
                self.drain_membership(now, mo, out);
            }
            Timer::Tick => {
                let gap = now.saturating_sub(self.last_tick.unwrap_or(now));
                self.last_tick = Some(now);
                if gap > self.pause_limit() && self.stable.len() > 1 {
                    // This process stood still (SIGSTOP, a long GC-like stall, a frozen
                    // VM) for longer than the others need to declare it dead. It cannot
                    // know whether they did, so it behaves as undead: its replicas may
                    // already have successors and must not serve.
                    tracing::warn!(
                        host = self.info.id,
                        gap,
                        "paused longer than failure detection; going undead"
                    );
                    self.go_undead_now(now, out);
                }
                self.tick(now, out);
                out.timers.push((self.cfg.tick_ms, Timer::Tick));
            }
            Timer::AntiEntropy => {
                let live = self.membership.live();
                if !live.is_empty() {
                    let peer = live[self.rng.random_range(0..live.len())];
                    out.sends.push((
                        peer,
                        Msg::DigestRoots {
                            dir: self.dir.colonies.root(),
                            hosts: self.dir.hosts.root(),
                        },
                    ));
                }
                out.timers
                    .push((self.cfg.anti_entropy_ms, Timer::AntiEntropy));
            }
            Timer::Colony(colony, t) => {
                self.with_colony(now, colony, out, |r, env| r.on_timer(env, t));
            }
            Timer::ClientRetry(req) => self.route_client(now, req, out),
            Timer::OrphanCheck(colony) => self.orphan_check(now, colony, out),
            Timer::Stabilize => {
                // One timer at a time, moved on while membership keeps changing: the
                // stable membership follows the live one once it was quiet for
                // `stable_after_ms`.
                self.stabilize_armed = false;
                if now < self.stabilize_at {
                    self.stabilize_armed = true;
                    out.timers.push((self.stabilize_at - now, Timer::Stabilize));
                } else if self.has_quorum() {
                    self.stable = self.live_set();
                    self.voters_gen += 1;
                }
            }
            Timer::Confirm => {
                self.confirm_armed = false;
                self.on_confirm_timer(now, out);
            }
            Timer::Formation => match self.forming {
                Forming::Founding => self.form(now, out),
                Forming::Awaiting { .. } => self.stop_awaiting(out),
                Forming::Done => {}
            },
            Timer::LogProbe => {
                let membership = &self.membership;
                let dir = &self.dir;
                let mut so = SinkOut::default();
                if let Some(sink) = &mut self.sink {
                    sink.probe(now, dir, |h| membership.is_alive(h), &mut so);
                    out.timers.push((sink.config().probe_ms, Timer::LogProbe));
                }
                self.drain_sink(now, so, out);
            }
        }
    }

    // ----- logging node ------------------------------------------------------------

    fn with_sink(&mut self, now: Tick, out: &mut Out, f: impl FnOnce(&mut LogSink, &mut SinkOut)) {
        let mut so = SinkOut::default();
        match &mut self.sink {
            Some(sink) => f(sink, &mut so),
            None => return,
        }
        self.drain_sink(now, so, out);
    }

    fn drain_sink(&mut self, now: Tick, so: SinkOut, out: &mut Out) {
        out.log.extend(so.appends);
        out.sends.extend(so.sends);
        for kind in so.events {
            self.emit(now, kind, out);
        }
    }

    /// Live hosts whose record says they are logging nodes.
    fn refresh_loggers(&mut self) {
        self.loggers = self
            .topo
            .hosts()
            .filter(|v| v.info.role == HostRole::Logger && v.info.id != self.info.id)
            .filter(|v| v.state == HostState::Alive && self.membership.is_alive(v.info.id))
            .map(|v| v.info.id)
            .collect();
    }

    /// Whether `host` counts toward quorum: every host but a logging node (a host whose
    /// record has not arrived yet counts).
    fn votes(&self, host: HostId) -> bool {
        if host == self.info.id {
            return self.info.role != HostRole::Logger;
        }
        // The host table keeps the records of dead hosts (the topology does not).
        self.dir
            .hosts
            .get(host)
            .is_none_or(|r| r.view.info.role != HostRole::Logger)
    }

    /// Whether any other live host could hold replicas (loggers cannot).
    fn replica_holders_left(&self) -> bool {
        self.membership.live().iter().any(|&h| {
            self.topo
                .get(h)
                .is_none_or(|v| v.info.role != HostRole::Logger)
        })
    }

    // ----- membership ----------------------------------------------------------------

    fn drain_membership(&mut self, now: Tick, mo: MembershipOut, out: &mut Out) {
        for (to, data) in mo.sends {
            out.sends.push((to, Msg::Swim(data)));
        }
        for (delay, t) in mo.timers {
            out.timers.push((delay, Timer::Membership(t)));
        }
        for notice in mo.notices {
            self.on_notice(now, notice, out);
        }
    }

    fn on_notice(&mut self, now: Tick, notice: Notice, out: &mut Out) {
        let me = self.info.id;
        match notice {
            Notice::Up(h) => {
                self.left.remove(&h);
                self.emit(now, EventKind::HostJoined { member: h }, out);
                if self.stable.insert(h) {
                    self.voters_gen += 1;
                }
                if let Some(rec) = self.dir.hosts.get(h) {
                    self.topo.upsert_shared(&rec.view);
                }
                if let Some(mine) = self.dir.hosts.get(me) {
                    out.sends.push((h, Msg::HostRecord(mine.clone())));
                }
                if self.digest_on_up(h) {
                    out.sends.push((h, self.digest(true, true)));
                }
                self.membership_changed(now, h, true, out);
                self.maybe_form(now, out);
            }
            Notice::Suspected(h) => self.emit(now, EventKind::HostSuspected { member: h }, out),
            Notice::Down(h) => self.host_down(now, h, true, out),
            Notice::Restarted(h) => {
                self.host_down(now, h, true, out);
                self.on_notice(now, Notice::Up(h), out);
            }
            Notice::Defunct => self.go_undead(now, out),
        }
    }

    fn host_down(&mut self, now: Tick, h: HostId, failure: bool, out: &mut Out) {
        let graceful = self.left.contains(&h);
        // Colonies none of whose holders may have survived: look again after a grace
        // period (a promotion announcement may still be on its way).
        let orphans: Vec<ColonyId> = self
            .dir
            .colonies
            .iter()
            .filter(|e| {
                e.holders().any(|x| x == h)
                    && e.holders().all(|x| x == h || !self.holds(e.colony, x))
            })
            .map(|e| e.colony)
            .collect();
        if failure && !graceful {
            self.emit(now, EventKind::HostDead { member: h }, out);
            // The verdict changes what this host does only if it shares a colony with
            // the dead host (a primary about to drop a secondary, a secondary about to
            // elect) or must look after an orphan: only then must it show contact with
            // a quorum first (a cluster of a thousand hosts does not ping itself whole
            // at every death).
            let involved = !orphans.is_empty()
                || self
                    .replicas
                    .values()
                    .any(|r| r.primary == h || r.set_hosts().contains(&h));
            if involved {
                self.require_confirmation(now, out);
            }
        }
        self.topo.remove(h);
        let colonies: Vec<ColonyId> = self.replicas.keys().copied().collect();
        for c in colonies {
            self.with_colony(now, c, out, |r, env| r.on_host_down(env, h));
        }
        self.requests_lost_with(h, out);
        // Whatever its link was, the next incarnation's is another.
        self.relay_until.remove(&h);
        self.pinged.remove(&h);
        for colony in orphans {
            out.timers
                .push((self.cfg.orphan_grace_ms, Timer::OrphanCheck(colony)));
        }
        self.membership_changed(now, h, false, out);
    }

    fn on_left(&mut self, now: Tick, h: HostId, out: &mut Out) {
        if self.left.insert(h) {
            self.emit(now, EventKind::HostLeft { member: h }, out);
        }
        if self.stable.remove(&h) {
            self.voters_gen += 1;
        }
        self.host_down(now, h, false, out);
    }

    fn live_set(&self) -> BTreeSet<HostId> {
        let mut s: BTreeSet<HostId> = self.membership.live().iter().copied().collect();
        s.insert(self.info.id);
        s
    }

    /// Whether this host starts an anti-entropy round with `h` when it comes up. Every
    /// member seeing a host come up does not: in a cluster of a thousand, a join would
    /// cost a thousand digests (and a restarted host a thousand copies of the whole
    /// directory). About [`UP_DIGESTS`] members do, chosen by hashing without talking;
    /// in a cluster (as large as the stable membership) of at most that many hosts, all. The newcomer
    /// also sends its digest to its seeds, and periodic anti-entropy does the rest.
    fn digest_on_up(&self, h: HostId) -> bool {
        let members = self.stable.len() as u64;
        if members <= UP_DIGESTS {
            return true;
        }
        let draw = super::types::mix64((u64::from(h) << 32) | u64::from(self.info.id));
        draw % members < UP_DIGESTS
    }

    /// The live or stable membership changed (`h` came up, or went): recompute quorum
    /// and let the stable membership follow once things are quiet.
    fn membership_changed(&mut self, now: Tick, h: HostId, up: bool, out: &mut Out) {
        let logger = self.loggers.contains(&h)
            || self
                .topo
                .get(h)
                .is_some_and(|v| v.info.role == HostRole::Logger);
        if logger {
            self.refresh_loggers();
        }
        // A host coming up adds itself to the live and (at most) the stable voters
        // alike: a side with quorum keeps it, and nothing needs counting.
        if !(up && self.quorum) || logger {
            self.recount_quorum(now, out);
        }
        self.stabilize_at = now + self.cfg.stable_after_ms;
        if !self.stabilize_armed {
            self.stabilize_armed = true;
            out.timers
                .push((self.cfg.stable_after_ms, Timer::Stabilize));
        }
    }

    fn recount_quorum(&mut self, now: Tick, out: &mut Out) {
        // Logging nodes hold no replicas and do not vote: a logger that dies (or sits on
        // one side of a cut) must not cost the data hosts their quorum.
        let me = self.info.id;
        let mut voters = 0usize;
        let mut present = 0usize;
        for &h in &self.stable {
            if self.votes(h) {
                voters += 1;
                if h == me || self.membership.is_alive(h) {
                    present += 1;
                }
            }
        }
        let quorum = present * 2 > voters;
        if quorum != self.quorum {
            self.quorum = quorum;
            self.quorum_since = quorum.then_some(now);
            let (live, stable) = (present as u32, voters as u32);
            let kind = if quorum {
                EventKind::SplitHealed { live, stable }
            } else {
                EventKind::SplitDetected { live, stable }
            };
            self.emit(now, kind, out);
        }
    }

    /// We were declared dead while alive. On a side without quorum (a healed minority,
    /// or a host that was really cut off) that verdict stands: drop the replicas
    /// (keeping primaries aside to merge into their successors), take a new
    /// incarnation, rejoin. On a side with quorum it was the other side's opinion:
    /// refute it with a new incarnation and keep serving.
    /// A pause longer than this may have let the others declare this host dead: the
    /// last probe answered just before it, plus the probe timeout, plus the suspicion
    /// timeout.
    fn pause_limit(&self) -> Tick {
        let m = &self.cfg.membership;
        m.probe_period_ms + m.probe_rtt_ms + m.suspect_to_down_ms
    }

    fn go_undead(&mut self, now: Tick, out: &mut Out) {
        if self.quorum && self.stable.len() > 1 {
            // Refute only with proof that this side has quorum: a host that can hear
            // the others but not reach them (a one-way cut) still sees them all alive,
            // and would keep serving beside its successors.
            if self.defunct_since.is_none() {
                self.defunct_since = Some(now);
                self.require_confirmation(now, out);
            }
            return;
        }
        self.defunct_since = None;
        self.go_undead_now(now, out);
    }

    /// Refute a death verdict: a new incarnation, and keep serving.
    fn refute(&mut self, now: Tick, out: &mut Out) {
        let seeds: Vec<HostId> = self.membership.live_members();
        let mut mo = MembershipOut::default();
        self.membership.refute(&seeds, &mut mo);
        self.drain_membership(now, mo, out);
        self.publish_record(now, true, out);
    }

    // ----- quorum confirmation -------------------------------------------------------

    /// The stable members that vote.
    fn voters(&self) -> BTreeSet<HostId> {
        self.stable
            .iter()
            .copied()
            .filter(|h| self.votes(*h))
            .collect()
    }

    /// A death verdict at `now`: act as a side without quorum until a quorum of the
    /// stable voters answers a ping sent from now on.
    fn require_confirmation(&mut self, now: Tick, out: &mut Out) {
        self.unconfirmed_since = Some(now);
        self.send_pings(now, out);
        self.check_confirmed(now, out);
    }

    fn send_pings(&mut self, now: Tick, out: &mut Out) {
        let me = self.info.id;
        for h in self.voters() {
            if h != me {
                out.sends.push((h, Msg::Ping { t: now }));
            }
        }
        if !self.confirm_armed {
            self.confirm_armed = true;
            out.timers.push((self.cfg.confirm_retry_ms, Timer::Confirm));
        }
    }

    /// Whether a quorum of the stable voters answered a ping sent since
    /// `unconfirmed_since`; if so the side has quorum again (and a pending death
    /// verdict of our own is refuted).
    fn check_confirmed(&mut self, now: Tick, out: &mut Out) {
        let Some(since) = self.unconfirmed_since else {
            return;
        };
        let (answered, voters) = self.tally(since);
        if answered * 2 <= voters {
            return;
        }
        self.unconfirmed_since = None;
        self.tally = None;
        if self.defunct_since.take().is_some() {
            if self.quorum {
                self.refute(now, out);
            } else {
                self.go_undead_now(now, out);
            }
        }
    }

    /// How many of the stable voters answered a ping sent since `since`, and how many
    /// there are: counted afresh when `since` or the voters changed, kept up to date by
    /// each pong otherwise.
    fn tally(&mut self, since: Tick) -> (usize, usize) {
        let current = self
            .tally
            .as_ref()
            .is_some_and(|t| t.since == since && t.voters_gen == self.voters_gen);
        if !current {
            let me = self.info.id;
            let voters = self.voters();
            let answered = voters
                .iter()
                .filter(|h| **h == me || self.contact.get(h).is_some_and(|t| *t >= since))
                .count();
            self.tally = Some(Tally {
                since,
                voters_gen: self.voters_gen,
                voters,
                answered,
            });
        }
        let t = self.tally.as_ref().expect("just set");
        (t.answered, t.voters.len())
    }

    fn on_confirm_timer(&mut self, now: Tick, out: &mut Out) {
        if self.unconfirmed_since.is_none() {
            return;
        }
        if let Some(since) = self.defunct_since {
            if now.saturating_sub(since) >= self.cfg.defunct_confirm_ms {
                self.defunct_since = None;
                self.go_undead_now(now, out);
            }
        }
        self.send_pings(now, out);
    }

    /// Drops every replica (fencing primaries with data for a later merge), takes a new
    /// incarnation and rejoins.
    fn go_undead_now(&mut self, now: Tick, out: &mut Out) {
        let me = self.info.id;
        let dropped = self.replicas.len() as u32;
        let colonies: Vec<ColonyId> = self.replicas.keys().copied().collect();
        for c in colonies {
            let mut fx = Effects::default();
            let mut r = self.take_replica(c).expect("listed");
            if r.role == Role::Primary && !r.cells.is_empty() {
                r.fence(&mut fx);
                self.fenced.insert(c, (r, now));
            }
            for (to, reply) in fx.replies {
                self.deliver_reply(now, to, reply, out);
            }
        }
        let seeds: Vec<HostId> = self
            .dir
            .hosts
            .iter()
            .map(|r| r.view.info.id)
            .filter(|h| *h != me)
            .collect();
        let mut mo = MembershipOut::default();
        let id = self.membership.renew(&seeds, &mut mo);
        self.emit(
            now,
            EventKind::HostUndead {
                incarnation: id.incarnation,
                dropped,
            },
            out,
        );
        self.drain_membership(now, mo, out);
        self.publish_record(now, true, out);
    }

    // ----- directory and host table ------------------------------------------------

    /// The range digests of the tables named.
    fn digest(&self, dir: bool, hosts: bool) -> Msg {
        Msg::Digest {
            dir: dir.then(|| self.dir.colonies.digests().to_vec()),
            hosts: hosts.then(|| self.dir.hosts.digests().to_vec()),
        }
    }

    fn merge_record(&mut self, rec: Arc<HostRecord>) {
        let h = rec.view.info.id;
        if h == self.info.id {
            return;
        }
        if !self.dir.hosts.merge(rec) {
            return;
        }
        self.voters_gen += 1;
        if !self.membership.is_alive(h) {
            return;
        }
        if let Some(rec) = self.dir.hosts.get(h) {
            let logger = rec.view.info.role == HostRole::Logger;
            self.topo.upsert_shared(&rec.view);
            // Only a logger's record changes who the loggers are (deaths and joins come
            // through membership): no scan of the host table for every record.
            if logger || self.loggers.contains(&h) {
                self.refresh_loggers();
            }
        }
    }

    fn merge_entry(&mut self, e: Arc<DirEntry>, out: &mut Out) {
        let me = self.info.id;
        let colony = e.colony;
        let (epoch, primary) = (e.epoch, e.primary);
        if !self.dir.colonies.merge(e) {
            return;
        }
        if self.replicas.contains_key(&colony) {
            self.attention.insert(colony);
        }
        self.disowned.remove(&colony);
        if primary == me {
            self.primary_without_copy(colony, out);
        }
        // Fencing through the directory: a primary here that is older than the one
        // announced asks that host; it steps down only if the newer primary is real.
        if primary != me {
            if let Some(r) = self.replicas.get(&colony) {
                if r.role == Role::Primary && r.epoch < epoch {
                    out.sends.push((
                        primary,
                        Msg::Colony {
                            colony,
                            epoch: r.epoch,
                            body: ColonyMsg::Claim,
                        },
                    ));
                }
            }
        }
    }

    /// A new entry names this host as the colony's primary, but it holds no copy: its
    /// earlier incarnation was the primary and this process restarted before anyone
    /// declared it dead, so the others still count on it. (A host's own announcements
    /// never come back as new entries, so this happens only after a restart.) The
    /// named secondaries hear it and elect one of themselves; if none of them holds a
    /// copy either, the orphan check makes this host recreate the colony and report
    /// the loss.
    fn primary_without_copy(&mut self, colony: ColonyId, out: &mut Out) {
        if let Forming::Awaiting { deferred, gone } = &mut self.forming {
            if deferred.is_empty() && gone.is_empty() {
                out.timers
                    .push((self.cfg.orphan_grace_ms, Timer::Formation));
            }
            deferred.insert(colony);
            return;
        }
        if self.state != NodeState::Active
            || self.sink.is_some()
            || self.replicas.contains_key(&colony)
            || self.fenced.contains_key(&colony)
        {
            return;
        }
        let Some(e) = self.dir.entry(colony) else {
            return;
        };
        for s in &e.secondaries {
            out.sends.push((
                *s,
                Msg::Colony {
                    colony,
                    epoch: e.epoch,
                    body: ColonyMsg::Disowned,
                },
            ));
        }
        out.timers
            .push((self.cfg.orphan_grace_ms, Timer::OrphanCheck(colony)));
    }

    /// `from`, named in `colony`'s entry, holds no copy of it.
    fn on_disowned(&mut self, now: Tick, from: HostId, colony: ColonyId, out: &mut Out) {
        let me = self.info.id;
        match self.replicas.get(&colony) {
            Some(r) if r.role == Role::Secondary && r.primary == from => {
                // Our primary is gone as surely as if its host had died: elect.
                self.with_colony(now, colony, out, |r, env| r.on_host_down(env, from));
            }
            Some(_) => {}
            None => {
                let Some(e) = self.dir.entry(colony) else {
                    return;
                };
                if !e.holders().any(|h| h == from) {
                    return;
                }
                self.disowned.entry(colony).or_default().insert(from);
                // A named secondary without a copy tells the named primary so.
                if e.primary == from && e.secondaries.contains(&me) {
                    let epoch = e.epoch;
                    out.sends.push((
                        from,
                        Msg::Colony {
                            colony,
                            epoch,
                            body: ColonyMsg::Disowned,
                        },
                    ));
                }
                out.timers
                    .push((self.cfg.orphan_grace_ms, Timer::OrphanCheck(colony)));
            }
        }
    }

    /// Whether `host`, named in `colony`'s entry, may still hold a copy: alive and not
    /// known to hold none; this host, only if it really holds one.
    fn holds(&self, colony: ColonyId, host: HostId) -> bool {
        if host == self.info.id {
            self.replicas.contains_key(&colony) || self.fenced.contains_key(&colony)
        } else {
            self.is_alive(host)
                && !self
                    .disowned
                    .get(&colony)
                    .is_some_and(|d| d.contains(&host))
        }
    }

    /// Publish a colony's entry to every live host: a new primary (clients are routed
    /// by it) and a change of secondaries alike (clones, drops, migrations). A change
    /// left to anti-entropy reaches a thousand hosts only after rounds of digests, each
    /// of which walks the stamps of whole ranges; one small message per host costs less
    /// (on the scale scenario, 14.6% of anti-entropy rounds found the directories apart
    /// before, 0.3% after) and every host knows at once where the copies are. A
    /// secondary that membership does not show alive yet (a newcomer being cloned to)
    /// is told too.
    fn announce(&mut self, entry: DirEntry, out: &mut Out) {
        let entry = Arc::new(entry);
        self.dir.colonies.merge(entry.clone());
        let live = self.membership.live();
        let me = self.info.id;
        let unlisted = entry
            .secondaries
            .iter()
            .copied()
            .filter(|h| *h != me && live.binary_search(h).is_err());
        for h in live.iter().copied().chain(unlisted) {
            out.sends.push((h, Msg::Dir(entry.clone())));
        }
    }

    fn my_view(&self) -> HostView {
        HostView {
            info: self.info.clone(),
            load: self.load,
            replicas: self.replicas.len() as u32,
            primaries: self.led.len() as u32,
            state: self.host_state(),
        }
    }

    fn host_state(&self) -> HostState {
        if self.state == NodeState::Active {
            HostState::Alive
        } else {
            HostState::Leaving
        }
    }

    /// Publish this host's record if it changed enough to matter (or `force`): a
    /// change of state or of the replicas held at once, a load that moved by more than
    /// 5% of capacity no sooner than `record_load_every_ms` after the last record (the
    /// record goes to every live host; a jittery load must not make that a stream).
    fn publish_record(&mut self, now: Tick, force: bool, out: &mut Out) {
        let changed = match &self.published {
            None => true,
            Some(old) => {
                // Compared field by field: building the view clones the host's names,
                // and this runs at every tick.
                let cap = self.info.capacity;
                let load = self.load;
                let dm = old.load.memory.abs_diff(load.memory) as f64;
                let dc = (old.load.cpu - load.cpu).abs();
                let load_moved = (cap.memory > 0 && dm / cap.memory as f64 > 0.05)
                    || (cap.cpu > 0.0 && dc / cap.cpu > 0.05);
                old.state != self.host_state()
                    || old.replicas != self.replicas.len() as u32
                    || old.primaries != self.led.len() as u32
                    || (load_moved
                        && now.saturating_sub(self.published_at) >= self.cfg.record_load_every_ms)
            }
        };
        if !changed && !force {
            return;
        }
        self.published_at = now;
        let view = Arc::new(self.my_view());
        self.record_version += 1;
        let rec = Arc::new(HostRecord {
            view: view.clone(),
            incarnation: self.membership.identity().incarnation,
            version: self.record_version,
        });
        self.dir.hosts.merge(rec.clone());
        self.topo.upsert_shared(&view);
        // To every live host, like a directory entry (see `announce`): a record pushed
        // to three peers reached the rest through anti-entropy, seconds later, and
        // placement decided on stale loads in the meantime. On the scale benchmark
        // (1,000 hosts, a record published about once a second somewhere) the hour
        // made 822 migrations instead of 1,260, in 10% less time.
        for h in self.membership.live() {
            out.sends.push((*h, Msg::HostRecord(rec.clone())));
        }
        self.published = Some(view);
    }

    // ----- formation together ------------------------------------------------------

    /// A founder forms the cluster once it sees `expect_hosts` ordinary hosts alive
    /// with their records.
    fn maybe_form(&mut self, now: Tick, out: &mut Out) {
        if self.forming != Forming::Founding {
            return;
        }
        let expect = self.cfg.expect_hosts.unwrap_or(1) as usize;
        // The layout's hosts are this one and live members: not enough of those, no
        // need to build the list (which sorts every host's names) at each record.
        if self.membership.live().len() + 1 < expect {
            return;
        }
        if self.layout_hosts().len() >= expect {
            self.form(now, out);
        }
    }

    /// The hosts an initial layout is made of: alive, ordinary (loggers hold nothing,
    /// storage nodes draw colonies to themselves later), with their records; zones and
    /// boxes numbered in name order, and each host's room in replicas.
    fn layout_hosts(&self) -> Vec<placement::LayoutHost> {
        let me = self.info.id;
        let views: Vec<(&HostView, u32)> = self
            .topo
            .hosts()
            .filter(|v| v.state == HostState::Alive && v.info.role == HostRole::Normal)
            .filter(|v| v.info.id == me || self.membership.is_alive(v.info.id))
            .filter_map(|v| {
                let incarnation = if v.info.id == me {
                    self.incarnation()
                } else {
                    self.dir.hosts.get(v.info.id)?.incarnation
                };
                Some((v, incarnation))
            })
            .collect();
        let mut zones: Vec<&str> = views.iter().map(|(v, _)| v.info.zone.as_ref()).collect();
        zones.sort_unstable();
        zones.dedup();
        let mut boxes: Vec<(&str, &str)> = views
            .iter()
            .map(|(v, _)| (v.info.zone.as_ref(), v.info.box_name.as_ref()))
            .collect();
        boxes.sort_unstable();
        boxes.dedup();
        let unit = self.cfg.colony.placement.replica_memory;
        views
            .iter()
            .map(|(v, incarnation)| {
                let zone = v.info.zone.as_ref();
                let capacity = v.info.capacity.memory;
                let room = if capacity == 0 || unit == 0 {
                    u32::MAX
                } else {
                    u32::try_from(capacity.saturating_sub(v.load.memory) / unit).unwrap_or(u32::MAX)
                };
                placement::LayoutHost {
                    id: v.info.id,
                    incarnation: *incarnation,
                    zone: zones.binary_search(&zone).unwrap_or(0) as u32,
                    box_id: boxes
                        .binary_search(&(zone, v.info.box_name.as_ref()))
                        .unwrap_or(0) as u32,
                    room,
                }
            })
            .collect()
    }

    /// The founder lays the colonies out over the hosts it sees and tells every live
    /// host.
    fn form(&mut self, now: Tick, out: &mut Out) {
        let hosts = SharedLayout::new(self.layout_hosts());
        for &h in self.membership.live() {
            out.sends.push((
                h,
                Msg::Formation {
                    hosts: hosts.clone(),
                },
            ));
        }
        self.on_formation(now, &hosts, out);
    }

    /// The initial layout: fill the directory with it and create the replicas it gives
    /// to this incarnation. A host the layout names but that is a later incarnation
    /// holds nothing: it disowns the colonies it would lead (their secondaries elect)
    /// and answers its primaries' greeting with `Gone`.
    fn on_formation(&mut self, now: Tick, layout: &SharedLayout, out: &mut Out) {
        // A second founder (misconfigured: two hosts started without seeds) takes the
        // first layout it hears of rather than making its own.
        let (deferred, gone) = match std::mem::replace(&mut self.forming, Forming::Done) {
            Forming::Awaiting { deferred, gone } => (deferred, gone),
            Forming::Founding => (BTreeSet::new(), Vec::new()),
            Forming::Done => return,
        };
        let me = self.info.id;
        let incarnation = self.incarnation();
        let member = self.sink.is_none()
            && self.state == NodeState::Active
            && layout
                .hosts()
                .iter()
                .any(|h| h.id == me && h.incarnation == incarnation);
        let entries = layout.entries(self.cfg.colonies, self.cfg.colony.replicas);
        self.settle_until = now + self.cfg.formation_settle_ms;
        let mut set: Vec<HostId> = Vec::new();
        let mut led = Vec::new();
        for entry in entries.iter() {
            let (c, primary) = (entry.colony, entry.primary);
            set.clear();
            set.extend(entry.holders());
            // An entry already newer here (a colony whose first primary died and was
            // replaced before this host heard of the layout) stands.
            let current = self.dir.entry(c).is_none_or(|e| e.stamp() <= entry.stamp());
            self.dir.colonies.merge(entry.clone());
            if !current || !set.contains(&me) {
                continue;
            }
            if !member {
                if primary == me {
                    self.primary_without_copy(c, out);
                }
                continue;
            }
            if self.replicas.contains_key(&c) || self.fenced.contains_key(&c) {
                continue;
            }
            if self.hold(now, ColonyReplica::formed(c, me, &set), out) && primary == me {
                led.push(c);
            }
        }
        for c in led {
            self.with_colony(now, c, out, |r, env| r.greet_members(env));
        }
        self.settle_deferred(deferred, gone, out);
    }

    /// A joiner that was named or greeted but got no layout within the grace period
    /// does what it would have done without formation.
    fn stop_awaiting(&mut self, out: &mut Out) {
        let Forming::Awaiting { deferred, gone } =
            std::mem::replace(&mut self.forming, Forming::Done)
        else {
            return;
        };
        self.settle_deferred(deferred, gone, out);
    }

    /// What waited for the layout: a colony the directory says this host leads but
    /// that it does not hold is disowned; a greeting for a replica it does not hold is
    /// answered `Gone`.
    fn settle_deferred(
        &mut self,
        deferred: BTreeSet<ColonyId>,
        gone: Vec<(HostId, ColonyId, Epoch)>,
        out: &mut Out,
    ) {
        for c in deferred {
            if self.dir.primary_of(c) == Some(self.info.id) {
                self.primary_without_copy(c, out);
            }
        }
        for (from, colony, epoch) in gone {
            if !self.replicas.contains_key(&colony) {
                self.send_gone(from, colony, epoch, out);
            }
        }
    }

    fn send_gone(&self, to: HostId, colony: ColonyId, epoch: Epoch, out: &mut Out) {
        out.sends.push((
            to,
            Msg::Colony {
                colony,
                epoch,
                body: ColonyMsg::Gone,
            },
        ));
    }

    // ----- housekeeping ------------------------------------------------------------

    /// Answer `TRYAGAIN` to requests past their deadline. Request ids and deadlines
    /// both grow with time, so the expired ones are at the front of `clients`: a tick
    /// looks at those only, instead of one timer per request (at 100k requests/s that
    /// was half a million timers in the shell's heap). A request times out up to one
    /// tick after its deadline.
    fn expire_requests(&mut self, now: Tick, out: &mut Out) {
        while let Some(entry) = self.clients.first_entry() {
            if entry.get().deadline > now {
                break;
            }
            let req = *entry.key();
            entry.remove();
            out.replies.push((req, Reply::Error(CommandError::Timeout)));
        }
    }

    fn tick(&mut self, now: Tick, out: &mut Out) {
        self.ticks += 1;
        self.expire_requests(now, out);
        if !self.clients.is_empty() || !self.relay_until.is_empty() {
            self.relay_stalled(now, out);
        }
        self.publish_record(now, false, out);
        if !self.replicas.is_empty() {
            self.refresh_target();
        }
        let colonies = self.colonies_to_tick();
        for &c in &colonies {
            let Some(r) = self.replicas.get(&c) else {
                continue;
            };
            // A secondary's tick does nothing unless its value log failed: no step (a
            // replicated write puts a secondary here at every tick it arrives).
            let quiet = if r.tick_is_idle() {
                r.is_quiet()
            } else {
                self.with_colony(now, c, out, |r, env| r.tick(env));
                self.replicas.get(&c).is_some_and(ColonyReplica::is_quiet)
            };
            if quiet {
                self.attention.remove(&c);
            }
        }
        self.follow_directory(now, &colonies, out);
        self.merge_fenced(now, out);
        if self.state == NodeState::Leaving {
            self.drop_incoming_clones(now, out);
            let alone = !self.replica_holders_left();
            let timed_out = now.saturating_sub(self.leave_started) > self.cfg.leave_timeout_ms;
            if self.replicas.is_empty() || alone || timed_out {
                self.finish_leave(now, out);
            }
        }
    }

    /// The colonies this tick looks at, ascending: those that want attention (stepped
    /// since their last tick, busy, or named by a new directory entry) and the
    /// primaries whose placement turn it is. A quiet replica
    /// ([`ColonyReplica::is_quiet`]) has nothing to do at the other ticks, nor a
    /// secondary at its turn: in a cluster of a thousand hosts each holding dozens of
    /// replicas, visiting every replica four times a second was most of the work of a
    /// quiet cluster. Every replica is looked at when something they all depend on
    /// changed (the target population, this side's quorum), while this host leaves, and
    /// on a storage node (whose value logs may fail at any time).
    fn colonies_to_tick(&mut self) -> Vec<ColonyId> {
        let quorum = self.has_quorum();
        let all = std::mem::take(&mut self.tick_all)
            || quorum != std::mem::replace(&mut self.ticked_quorum, quorum)
            || self.state == NodeState::Leaving
            || self.values.is_some();
        if all {
            return self.replicas.keys().copied().collect();
        }
        let every = self.cfg.placement_every_ticks.max(1);
        let ticks = self.ticks;
        let turn = self
            .led
            .iter()
            .copied()
            .filter(|&c| (ticks + u64::from(c)).is_multiple_of(every));
        merge_ascending(turn, self.attention.iter().copied()).collect()
    }

    /// A secondary whose primary moved on without telling it (it was cut off, or its
    /// host refuted a death verdict) reports to the primary the directory names: it is
    /// caught up if it still belongs to the set, and told to drop otherwise. Looks at
    /// the colonies of this tick (a step or a new entry for a colony asks for one) and
    /// at those that wait for their new primary to come alive here.
    fn follow_directory(&mut self, now: Tick, colonies: &[ColonyId], out: &mut Out) {
        let me = self.info.id;
        let mut stale = Vec::new();
        let pending = std::mem::take(&mut self.follow_pending);
        for c in merge_ascending(colonies.iter().copied(), pending.iter().copied()) {
            let Some(r) = self.replicas.get(&c) else {
                continue;
            };
            if r.role != Role::Secondary || !r.is_synced() {
                continue;
            }
            let Some(e) = self.dir.entry(c) else {
                continue;
            };
            if e.epoch <= r.epoch || e.primary == me {
                continue;
            }
            if self.membership.is_alive(e.primary) {
                stale.push((c, e.epoch, e.primary));
            } else {
                self.follow_pending.insert(c);
            }
        }
        for (colony, epoch, primary) in stale {
            self.with_colony(now, colony, out, |r, env| r.follow(env, epoch, primary));
        }
    }

    fn merge_fenced(&mut self, now: Tick, out: &mut Out) {
        let colonies: Vec<ColonyId> = self.fenced.keys().copied().collect();
        for c in colonies {
            let (r, since) = &self.fenced[&c];
            let target = self
                .dir
                .entry(c)
                .filter(|e| e.epoch > r.epoch && e.primary != self.info.id)
                .map(|e| e.primary)
                .filter(|p| self.membership.is_alive(*p));
            if let Some(p) = target {
                let (r, _) = self.fenced.remove(&c).expect("listed");
                out.sends.push((
                    p,
                    Msg::Colony {
                        colony: c,
                        epoch: r.epoch,
                        body: r.merge_payload(),
                    },
                ));
            } else if now.saturating_sub(*since) > self.cfg.merge_timeout_ms {
                self.fenced.remove(&c);
            }
        }
    }

    /// Recreate a colony whose every holder died, if this host is its caretaker.
    fn orphan_check(&mut self, now: Tick, colony: ColonyId, out: &mut Out) {
        let me = self.info.id;
        let Some(e) = self.dir.entry(colony).cloned() else {
            return;
        };
        if !self.has_quorum()
            || self.replicas.contains_key(&colony)
            || self.fenced.contains_key(&colony)
            || e.holders().any(|h| self.holds(colony, h))
        {
            return;
        }
        // A side that just regained quorum (a healed minority, a host that rejoined)
        // has not heard of every live host yet: a holder it missed is not dead. Look
        // again once its view had the grace period to fill in.
        let settled = self
            .quorum_since
            .is_some_and(|t| now.saturating_sub(t) >= self.cfg.orphan_grace_ms);
        if !settled {
            out.timers
                .push((self.cfg.orphan_grace_ms, Timer::OrphanCheck(colony)));
            return;
        }
        // The named primary that restarted without a copy takes care of it (the others
        // still count it as a holder and wait). Otherwise rendezvous hashing: every
        // host agrees on the caretaker without talking.
        let caretaker = if e.primary == me {
            Some(me)
        } else {
            self.live_set()
                .into_iter()
                .filter(|h| {
                    self.topo.get(*h).is_some_and(|v| {
                        v.state == HostState::Alive && v.info.role != HostRole::Logger
                    })
                })
                .max_by_key(|h| super::types::mix64((u64::from(colony) << 32) | u64::from(*h)))
        };
        if caretaker != Some(me) {
            return;
        }
        let epoch = e.epoch.next(me);
        let r = ColonyReplica::genesis(colony, me, epoch);
        let last_holders: Vec<HostId> = e.holders().collect();
        if !self.hold(now, r, out) {
            return;
        }
        self.emit(
            now,
            EventKind::DataLost {
                colony,
                epoch,
                last_holders,
            },
            out,
        );
        self.emit(
            now,
            EventKind::ColonyPromoted {
                colony,
                epoch,
                seq: 0,
                reason: "recreated".into(),
            },
            out,
        );
        let entry = self.replicas[&colony].dir_entry(me);
        self.announce(entry, out);
    }

    // ----- leaving -----------------------------------------------------------------

    fn start_leave(&mut self, now: Tick, out: &mut Out) {
        if self.state != NodeState::Active {
            return;
        }
        self.state = NodeState::Leaving;
        self.leave_started = now;
        self.publish_record(now, true, out);
        if !self.replica_holders_left() {
            self.finish_leave(now, out);
        }
    }

    /// A leaving host drops the clones it was still receiving: they hold nothing the
    /// colony counts on, and their primary (told `Gone`) clones elsewhere. Without this a
    /// clone accepted just before the leave could keep the host waiting for the leave
    /// timeout.
    fn drop_incoming_clones(&mut self, now: Tick, out: &mut Out) {
        let incoming: Vec<ColonyId> = self
            .replicas
            .values()
            .filter(|r| r.role == Role::Secondary && !r.is_synced())
            .map(|r| r.colony)
            .collect();
        for c in incoming {
            let Some(r) = self.take_replica(c) else {
                continue;
            };
            out.sends.push((
                r.primary,
                Msg::Colony {
                    colony: c,
                    epoch: r.epoch,
                    body: ColonyMsg::Gone,
                },
            ));
            self.emit(
                now,
                EventKind::ReplicaDropped {
                    colony: c,
                    epoch: r.epoch,
                    reason: "host is leaving".into(),
                },
                out,
            );
        }
    }

    fn finish_leave(&mut self, now: Tick, out: &mut Out) {
        // Whatever is still held here has nowhere else to go: the last host of the
        // cluster (or one whose leave timed out) hands it to the disk. One replica per
        // colony suffices; a primary is preferred, else the most advanced secondary.
        let held: Vec<ColonyId> = self
            .replicas
            .values()
            .filter(|r| r.is_synced() && !r.cells.is_empty())
            .map(|r| r.colony)
            .collect();
        if !held.is_empty() {
            let cells = held
                .iter()
                .filter_map(|c| self.replicas.get(c))
                .map(|r| r.cells.len() as u64)
                .sum();
            self.emit(
                now,
                EventKind::ShutdownToDisk {
                    colonies: held.len() as u32,
                    cells,
                },
                out,
            );
            out.persist = held;
        }
        for &h in self.membership.live() {
            out.sends.push((h, Msg::Left));
        }
        let mut mo = MembershipOut::default();
        self.membership.leave(&mut mo);
        for (to, data) in mo.sends {
            out.sends.push((to, Msg::Swim(data)));
        }
        self.emit(
            now,
            EventKind::HostLeft {
                member: self.info.id,
            },
            out,
        );
        self.state = NodeState::Left;
    }

    // ----- clients -----------------------------------------------------------------

    fn route_client(&mut self, now: Tick, req: ReqId, out: &mut Out) {
        let Some(c) = self.clients.get(&req) else {
            return;
        };
        let to = ReplyTo::new(self.info.id, req);
        let (colony, cmd) = (c.colony, c.cmd.clone());
        self.route(now, colony, to, cmd, 0, out);
    }

    /// Send a command towards the primary of `colony`.
    fn route(
        &mut self,
        now: Tick,
        colony: ColonyId,
        to: ReplyTo,
        cmd: Command,
        hops: u8,
        out: &mut Out,
    ) {
        let me = self.info.id;
        if self
            .replicas
            .get(&colony)
            .is_some_and(|r| r.role == Role::Primary)
        {
            self.work.push_back(Work::Command {
                colony,
                to,
                cmd,
                hops,
            });
            return;
        }
        let next = self
            .dir
            .primary_of(colony)
            .filter(|p| *p != me && self.membership.is_alive(*p));
        match next {
            Some(p) if hops < 4 => {
                let mut to = to;
                let mut hop = p;
                if to.host == me {
                    let relay = self
                        .relay_until
                        .get(&p)
                        .is_some_and(|&until| now < until)
                        .then(|| self.pick_relay(p))
                        .flatten();
                    if let Some(r) = relay {
                        to.via = Some(r);
                        hop = r;
                    }
                    if let Some(c) = self.clients.get_mut(&to.req) {
                        c.sent_to = Some(p);
                        c.sent_at = now;
                        c.via = relay;
                        c.relayed |= relay.is_some();
                    }
                }
                out.sends.push((
                    hop,
                    Msg::Forward {
                        to,
                        colony,
                        cmd,
                        hops: hops + 1,
                    },
                ))
            }
            _ => self.deliver_reply(now, to, Reply::Error(CommandError::NoPrimary(colony)), out),
        }
    }

    /// Local requests forwarded to `dead` will get no answer. Reads and plain SETs
    /// (idempotent: doing them twice is doing them once) go again, to the colony's next
    /// primary; any other write may or may not have been applied, so its client hears
    /// `TRYAGAIN` now rather than at the request deadline.
    fn requests_lost_with(&mut self, dead: HostId, out: &mut Out) {
        let lost: Vec<ReqId> = self
            .clients
            .iter()
            .filter(|(_, c)| c.sent_to == Some(dead) || c.via == Some(dead))
            .map(|(r, _)| *r)
            .collect();
        for req in lost {
            let Some(c) = self.clients.get_mut(&req) else {
                continue;
            };
            c.sent_to = None;
            c.via = None;
            c.maybe_applied |= c.cmd.is_write();
            if repeatable(&c.cmd) {
                out.timers
                    .push((self.cfg.retry_ms, Timer::ClientRetry(req)));
            } else {
                self.clients.remove(&req);
                out.replies.push((req, Reply::Error(CommandError::Timeout)));
            }
        }
    }

    fn deliver_reply(&mut self, now: Tick, to: ReplyTo, reply: Reply, out: &mut Out) {
        let me = self.info.id;
        if to.host == me {
            self.client_reply(now, to.req, reply, out);
        } else if let Some(relay) = to.via.filter(|&r| r != me) {
            let to = ReplyTo { via: None, ..to };
            out.sends.push((relay, Msg::RelayReply { to, reply }));
        } else {
            out.sends
                .push((to.host, Msg::ForwardReply { req: to.req, reply }));
        }
    }

    /// A live host other than this one and `primary` to relay through (seeded choice).
    fn pick_relay(&mut self, primary: HostId) -> Option<HostId> {
        let me = self.info.id;
        let others: Vec<HostId> = self
            .membership
            .live()
            .iter()
            .copied()
            .filter(|&h| h != me && h != primary)
            .collect();
        (!others.is_empty()).then(|| others[self.rng.random_range(0..others.len())])
    }

    /// Local requests forwarded straight to their primary and not answered: after
    /// half of `relay_after_ms` the primary is pinged; if it has not answered a ping
    /// sent since the request by `relay_after_ms`, the link is taken for broken (a
    /// primary that answers pings is only slow: a write waiting for its acks). It is
    /// then reached through a relay for a while ([`NodeConfig::relay_after_ms`]), and
    /// the requests that may run twice (reads, plain SETs) go again now, through one.
    /// The first answer wins; any other write waits for its own.
    fn relay_stalled(&mut self, now: Tick, out: &mut Out) {
        let after = self.cfg.relay_after_ms;
        let mut ping = BTreeSet::new();
        let mut stalled = Vec::new();
        for (&req, c) in &self.clients {
            let Some(p) = c.sent_to else {
                continue;
            };
            let waited = now.saturating_sub(c.sent_at);
            if c.relayed || waited < after / 2 {
                continue;
            }
            if self.contact.get(&p).is_some_and(|&t| t >= c.sent_at) {
                // It answered a ping sent after the request: the link works.
                continue;
            }
            if waited < after {
                if self.pinged.get(&p).is_none_or(|&t| t < c.sent_at) {
                    ping.insert(p);
                }
            } else {
                stalled.push((req, p));
            }
        }
        // The primaries reached through a relay are pinged too: the first pong ends it.
        for &p in self.relay_until.keys() {
            if self.pinged.get(&p).is_none_or(|&t| now >= t + after) {
                ping.insert(p);
            }
        }
        for p in ping {
            self.pinged.insert(p, now);
            out.sends.push((p, Msg::Ping { t: now }));
        }
        for (req, p) in stalled {
            self.relay_until.insert(p, now + self.cfg.relay_for_ms);
            let Some(c) = self.clients.get_mut(&req) else {
                continue;
            };
            c.relayed = true;
            if repeatable(&c.cmd) {
                self.route_client(now, req, out);
            }
        }
        self.relay_until.retain(|_, until| *until > now);
        if self.clients.is_empty() && self.relay_until.is_empty() {
            self.pinged.clear();
        }
    }

    fn client_reply(&mut self, now: Tick, req: ReqId, reply: Reply, out: &mut Out) {
        let Some(c) = self.clients.get(&req) else {
            return;
        };
        let retryable = matches!(
            reply,
            Reply::Error(CommandError::NoPrimary(_) | CommandError::Busy(_))
        );
        if retryable && now + self.cfg.retry_ms < c.deadline {
            out.timers
                .push((self.cfg.retry_ms, Timer::ClientRetry(req)));
            return;
        }
        let reply = match reply {
            Reply::Error(
                CommandError::NoPrimary(_)
                | CommandError::Busy(_)
                | CommandError::NoQuorum
                | CommandError::NoSuchColony(_),
            ) if c.maybe_applied => Reply::Error(CommandError::Timeout),
            r => r,
        };
        self.clients.remove(&req);
        out.replies.push((req, reply));
    }

    // ----- colonies ----------------------------------------------------------------

    fn run_work(&mut self, now: Tick, out: &mut Out) {
        while let Some(w) = self.work.pop_front() {
            match w {
                Work::Colony {
                    colony,
                    from,
                    epoch,
                    body,
                } => {
                    if self.replicas.contains_key(&colony) {
                        self.with_colony(now, colony, out, |r, env| {
                            r.on_msg(env, from, epoch, body)
                        });
                    } else if matches!(body, ColonyMsg::Merge { .. } | ColonyMsg::CellIn { .. }) {
                        // Not ours (any more): pass it on to the primary.
                        if let Some(p) = self.dir.primary_of(colony).filter(|p| *p != self.info.id)
                        {
                            out.sends.push((
                                p,
                                Msg::Colony {
                                    colony,
                                    epoch,
                                    body,
                                },
                            ));
                        }
                    } else if matches!(
                        body,
                        ColonyMsg::Replicate { .. }
                            | ColonyMsg::Members { .. }
                            | ColonyMsg::Snapshot { .. }
                            | ColonyMsg::Claim
                    ) {
                        // A primary still counts us in its set: tell it we are gone
                        // (unless the layout that gives us the replica is on its way).
                        if let Forming::Awaiting { deferred, gone } = &mut self.forming {
                            if deferred.is_empty() && gone.is_empty() {
                                out.timers
                                    .push((self.cfg.orphan_grace_ms, Timer::Formation));
                            }
                            gone.push((from, colony, epoch));
                            continue;
                        }
                        self.send_gone(from, colony, epoch, out);
                    }
                }
                Work::Command {
                    colony,
                    to,
                    cmd,
                    hops,
                } => {
                    let is_primary = self
                        .replicas
                        .get(&colony)
                        .is_some_and(|r| r.role == Role::Primary);
                    if is_primary {
                        self.with_colony(now, colony, out, |r, env| r.client(env, to, cmd));
                    } else {
                        self.route(now, colony, to, cmd, hops, out);
                    }
                }
            }
        }
    }

    /// Run one colony step with an [`Env`] and carry out its effects.
    fn with_colony(
        &mut self,
        now: Tick,
        colony: ColonyId,
        out: &mut Out,
        f: impl FnOnce(&mut ColonyReplica, &mut Env),
    ) {
        let share = self.cfg.tail_budget_bytes / self.replicas.len().max(1);
        let tail_bytes = share
            .max(MIN_TAIL_BYTES)
            .min(self.cfg.colony.log_tail_bytes);
        let Some(r) = self.replicas.get_mut(&colony) else {
            return;
        };
        self.attention.insert(colony);
        let was_primary = r.role == Role::Primary;
        // Replicas change only here and in `put_replica`, which both record it.
        let before = r.seen;
        debug_assert_eq!(before, r.observed());
        let bytes_before = r.cells.bytes() as u64;
        let mut fx = std::mem::take(&mut self.fx);
        {
            let membership = &self.membership;
            let alive = |h: HostId| membership.is_alive(h);
            let mut env = Env {
                now,
                me: self.info.id,
                cfg: &self.cfg.colony,
                topo: &mut self.topo,
                loggers: &self.loggers,
                tail_bytes,
                alive: &alive,
                quorum: self.quorum && self.unconfirmed_since.is_none(),
                target: self.target,
                placement_turn: (self.ticks + u64::from(colony))
                    .is_multiple_of(self.cfg.placement_every_ticks.max(1)),
                optimise: now >= self.settle_until,
                leaving: self
                    .published
                    .as_ref()
                    .is_some_and(|v| v.state == HostState::Leaving),
                fx: &mut fx,
            };
            f(r, &mut env);
        }
        let after = r.observed();
        // (Always stored: a step may replace the whole replica.)
        r.seen = after;
        if after != before {
            self.observed += 1;
        }
        self.cell_bytes = self.cell_bytes - bytes_before + r.cells.bytes() as u64;
        let is_primary = r.role == Role::Primary;
        if is_primary != was_primary {
            self.set_led(colony, is_primary);
        }
        self.apply_effects(now, &mut fx, out);
        self.fx = fx;
    }

    /// Carries out (and drains) the effects of a colony step.
    fn apply_effects(&mut self, now: Tick, fx: &mut Effects, out: &mut Out) {
        let me = self.info.id;
        out.sends.append(&mut fx.sends);
        for (delay, colony, t) in fx.timers.drain(..) {
            out.timers.push((delay, Timer::Colony(colony, t)));
        }
        for kind in fx.events.drain(..) {
            self.emit(now, kind, out);
        }
        for (to, reply) in fx.replies.drain(..) {
            self.deliver_reply(now, to, reply, out);
        }
        for entry in fx.announce.drain(..) {
            self.announce(entry, out);
        }
        for (colony, body) in fx.to_colony.drain(..) {
            if self
                .replicas
                .get(&colony)
                .is_some_and(|r| r.role == Role::Primary)
            {
                self.work.push_back(Work::Colony {
                    colony,
                    from: me,
                    epoch: Epoch::default(),
                    body,
                });
            } else if let Some(p) = self.dir.primary_of(colony) {
                out.sends.push((
                    p,
                    Msg::Colony {
                        colony,
                        epoch: Epoch::default(),
                        body,
                    },
                ));
            }
        }
        for (colony, to, cmd) in fx.forward.drain(..) {
            self.route(now, colony, to, cmd, 1, out);
        }
        for colony in fx.remove.drain(..) {
            self.take_replica(colony);
        }
    }

    fn emit(&self, now: Tick, kind: EventKind, out: &mut Out) {
        out.events.push(Event {
            t: now,
            host: self.info.id,
            kind,
        });
    }
}

/// The union of two ascending sequences, ascending, each value once.
fn merge_ascending<I, J>(a: I, b: J) -> impl Iterator<Item = ColonyId>
where
    I: Iterator<Item = ColonyId>,
    J: Iterator<Item = ColonyId>,
{
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(&x), Some(&y)) if x == y => {
            b.next();
            a.next()
        }
        (Some(&x), Some(&y)) if x < y => a.next(),
        (_, Some(_)) => b.next(),
        (Some(_), None) => a.next(),
        (None, None) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::cell::{Key, SetCond};
    use crate::core::testkit::Cluster;

    fn cfg() -> NodeConfig {
        NodeConfig {
            colonies: 16,
            ..NodeConfig::default()
        }
    }

    fn set(key: &str, value: &str) -> Command {
        Command::Set {
            key: key.into(),
            value: value.into(),
            ttl_ms: None,
            cond: SetCond::Always,
        }
    }

    /// The host of 0..5 holding the most primaries.
    fn busiest(c: &Cluster) -> HostId {
        (0..5)
            .max_by_key(|h| {
                c.nodes[h]
                    .replicas()
                    .filter(|r| r.role == Role::Primary)
                    .count()
            })
            .unwrap()
    }

    /// Five hosts, host 0 creates the cluster, the others join; settle.
    fn five() -> Cluster {
        five_with(cfg())
    }

    /// [`five`] with `config`.
    fn five_with(config: NodeConfig) -> Cluster {
        let mut c = Cluster::new(config);
        c.start(0, vec![]);
        for h in 1..5 {
            c.start(h, vec![0]);
        }
        c.run_for(60_000);
        c
    }

    fn assert_healthy(c: &Cluster, n: usize) {
        for colony in 0..c.cfg.colonies {
            let prim = c.primaries(colony);
            assert_eq!(prim.len(), 1, "colony {colony}: primaries {prim:?}");
            let p = &c.nodes[&prim[0]];
            let s = p.replica(colony).unwrap().summary(prim[0]);
            let in_sync = 1 + s.members.iter().filter(|m| m.in_sync).count();
            assert_eq!(in_sync, n, "colony {colony}: {s:?}");
            let mut hosts: Vec<HostId> = s.members.iter().map(|m| m.host).collect();
            hosts.push(prim[0]);
            hosts.sort();
            hosts.dedup();
            assert_eq!(hosts.len(), s.members.len() + 1, "two replicas on one host");
            for (h, node) in &c.nodes {
                let e = node.directory().entry(colony).unwrap();
                assert_eq!(
                    e.primary, prim[0],
                    "host {h}'s directory for colony {colony}"
                );
            }
        }
    }

    /// Every change of a colony's entry, a new set of secondaries as much as a new
    /// primary, reaches every live host from the primary itself: with anti-entropy
    /// switched off, every directory still names the set the primary names, after the
    /// cluster settles and again after a death re-clones the lost copies elsewhere.
    #[test]
    fn every_host_learns_each_new_set_of_secondaries_without_anti_entropy() {
        let mut c = five_with(NodeConfig {
            anti_entropy_ms: 24 * 3_600_000,
            ..cfg()
        });
        let agree = |c: &Cluster| {
            let mut sets_seen = 0;
            for colony in 0..c.cfg.colonies {
                let prim = c.primaries(colony);
                assert_eq!(prim.len(), 1, "colony {colony}: primaries {prim:?}");
                let theirs = c.nodes[&prim[0]].directory().entry(colony).unwrap().clone();
                sets_seen += theirs.secondaries.len();
                for (h, node) in &c.nodes {
                    assert_eq!(
                        node.directory().entry(colony),
                        Some(&theirs),
                        "host {h}'s entry for colony {colony}"
                    );
                }
            }
            sets_seen
        };
        assert!(agree(&c) > 0, "the colonies have secondaries");
        // The host holding the most secondaries dies: its colonies re-clone elsewhere.
        let victim = (0..5)
            .max_by_key(|h| {
                c.nodes[h]
                    .replicas()
                    .filter(|r| r.role == Role::Secondary)
                    .count()
            })
            .unwrap();
        c.kill(victim);
        c.run_for(60_000);
        assert!(c.nodes.values().all(|n| n
            .directory()
            .colonies
            .iter()
            .all(|e| e.primary != victim && !e.secondaries.contains(&victim))));
        agree(&c);
    }

    /// A host whose load changed publishes its record to every live host at its next
    /// tick, not to a few that anti-entropy would have to relay it from: with
    /// anti-entropy switched off, every other host sees the new load. A load that
    /// keeps moving is published at most every `record_load_every_ms`: each record
    /// goes to every host, and a jittery load must not make that a stream.
    #[test]
    fn every_host_learns_a_changed_load_at_most_once_per_period() {
        let mut c = five_with(NodeConfig {
            anti_entropy_ms: 24 * 3_600_000,
            record_load_every_ms: 5_000,
            ..cfg()
        });
        let seen = |c: &Cluster| -> BTreeSet<(u64, u64)> {
            [0, 1, 3, 4]
                .iter()
                .map(|h| {
                    c.nodes[h]
                        .directory()
                        .hosts
                        .get(2)
                        .map_or((0, 0), |r| (r.view.load.cpu as u64, r.view.load.memory))
                })
                .collect()
        };
        let busy = Load {
            cpu: 6.0,
            memory: 12 << 30,
        };
        assert!(!seen(&c).contains(&(6, 12 << 30)));
        c.load(2, busy);
        c.run_for(1_000);
        assert_eq!(seen(&c), BTreeSet::from([(6, 12 << 30)]));
        c.load(
            2,
            Load {
                cpu: 1.0,
                memory: 2 << 30,
            },
        );
        c.run_for(2_000);
        assert_eq!(seen(&c), BTreeSet::from([(6, 12 << 30)]), "too soon");
        c.run_for(4_000);
        assert_eq!(seen(&c), BTreeSet::from([(1, 2 << 30)]));
    }

    /// A host that lost directory entries and a host record (nothing announces them
    /// again: the cluster is settled) gets them back through anti-entropy, which starts
    /// with the two roots only: every table ends equal everywhere.
    #[test]
    fn a_host_that_missed_updates_converges_through_the_roots_exchange() {
        let mut c = five();
        let missing: Vec<ColonyId> = vec![1, 7, 15];
        {
            let n = c.nodes.get_mut(&3).expect("host 3");
            for &colony in &missing {
                assert!(n.dir.colonies.remove(colony).is_some());
            }
            assert!(n.dir.hosts.remove(1).is_some());
        }
        let roots = |c: &Cluster, h: HostId| {
            let d = c.nodes[&h].directory();
            (d.colonies.root(), d.hosts.root())
        };
        assert_ne!(roots(&c, 3), roots(&c, 0));
        c.run_for(10_000);
        for colony in missing {
            assert!(c.nodes[&3].directory().entry(colony).is_some());
        }
        assert!(c.nodes[&3].directory().hosts.get(1).is_some());
        for h in 1..5 {
            assert_eq!(roots(&c, h), roots(&c, 0), "host {h}");
        }
    }

    /// The answer to a roots message carries the range digests of the tables whose
    /// roots differ, and only those.
    #[test]
    fn a_digest_carries_only_the_tables_whose_roots_differ() {
        let mut c = five();
        let now = c.now;
        let d = c.nodes[&3].directory();
        let (dir, hosts) = (d.colonies.root(), d.hosts.root());
        let host_digests = d.hosts.digests().to_vec();
        let n = c.nodes.get_mut(&3).expect("host 3");
        let mut sends = |msg: Msg| {
            let mut out = Out::default();
            n.handle(now, Input::Message { from: 0, msg }, &mut out);
            out.sends
        };
        let mut answer = |dir: u64, hosts: u64| {
            sends(Msg::DigestRoots { dir, hosts })
                .into_iter()
                .filter_map(|(to, m)| match m {
                    Msg::Digest { dir, hosts } => Some((to, dir.is_some(), hosts.is_some())),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(answer(dir, hosts), vec![]);
        assert_eq!(answer(dir, hosts ^ 1), vec![(0, false, true)]);
        assert_eq!(answer(dir ^ 1, hosts), vec![(0, true, false)]);
        assert_eq!(answer(dir ^ 1, hosts ^ 1), vec![(0, true, true)]);
        // A table left out is skipped, not taken for an empty one: digests equal to
        // this host's in the other table leave nothing to compare.
        let out = sends(Msg::Digest {
            dir: None,
            hosts: Some(host_digests),
        });
        assert!(
            !out.iter()
                .any(|(_, m)| matches!(m, Msg::DigestStamps { .. })),
            "{out:?}"
        );
        let out = sends(Msg::Digest {
            dir: Some(Vec::new()),
            hosts: None,
        });
        assert!(
            out.iter()
                .any(|(_, m)| matches!(m, Msg::DigestStamps { dir, .. } if !dir.is_empty())),
            "an empty table's digests differ from a full one's"
        );
    }

    #[test]
    fn config_for_a_cluster_size_slows_ticks_and_anti_entropy_only_when_large() {
        assert_eq!(NodeConfig::for_cluster_size(5), NodeConfig::default());
        let small = NodeConfig::for_cluster_size(511);
        assert_eq!(
            (
                small.tick_ms,
                small.placement_every_ticks,
                small.anti_entropy_ms
            ),
            (250, 8, 1_000)
        );
        let big = NodeConfig::for_cluster_size(1000);
        assert_eq!(
            (big.tick_ms, big.placement_every_ticks, big.anti_entropy_ms),
            (500, 8, 4_000)
        );
        assert_eq!(
            (small.record_load_every_ms, big.record_load_every_ms),
            (1_000, 5_000)
        );
        assert_eq!(big.membership, MembershipConfig::for_cluster_size(1000));
    }

    #[test]
    fn a_cluster_forms_spreads_and_replicates() {
        let c = five();
        assert_healthy(&c, 3);
        let per_host: Vec<usize> = (0..5)
            .map(|h| {
                c.nodes[&h]
                    .replicas()
                    .filter(|r| r.role == Role::Primary)
                    .count()
            })
            .collect();
        assert!(
            per_host.iter().all(|&n| n < 16),
            "primaries must drift away from the founder: {per_host:?}"
        );
    }

    #[test]
    fn a_paused_host_wakes_up_undead_and_serves_nothing_stale() {
        let mut c = five();
        let victim: HostId = (1..5)
            .max_by_key(|h| c.nodes[h].replicas().count())
            .unwrap();
        assert!(c.nodes[&victim].replicas().count() > 0);
        let k = c.client(0, set("k", "old"));
        c.run_for(2_000);
        assert_eq!(c.replies.get(&k), Some(&Reply::Ok));
        let undead_before = c.count_events("host_undead");
        // Freeze it for 30 s: the others declare it dead and replace it.
        let frozen_until = c.now + 30_000;
        c.paused.insert(victim, frozen_until);
        c.run_for(15_000);
        assert!(
            c.count_events("host_dead") >= 4,
            "the others declared it dead"
        );
        let w = c.client(0, set("k", "new"));
        c.run_for(5_000);
        assert_eq!(c.replies.get(&w), Some(&Reply::Ok));
        assert_eq!(c.count_events("host_undead"), undead_before);
        // Thaw: it notices the gap at its first tick and drops everything it held.
        c.run_for(12_000);
        assert!(c.now > frozen_until);
        c.paused.clear();
        assert_eq!(
            c.count_events("host_undead"),
            undead_before + 1,
            "the paused host went undead"
        );
        c.run_for(60_000);
        assert_eq!(c.count_events("data_lost"), 0);
        assert_healthy(&c, 3);
        let r = c.client(victim, Command::Get { key: "k".into() });
        c.run_for(2_000);
        assert_eq!(c.replies.get(&r), Some(&Reply::Bulk("new".into())));
    }

    #[test]
    fn acknowledged_writes_survive_the_death_of_the_busiest_host() {
        let mut c = five();
        let mut reqs = Vec::new();
        for i in 0..200 {
            let host = (i % 5) as HostId;
            reqs.push((i, c.client(host, set(&format!("k{i}"), &format!("v{i}")))));
        }
        c.run_for(5_000);
        for (i, r) in &reqs {
            assert_eq!(c.replies.get(r), Some(&Reply::Ok), "write {i}");
        }
        let busiest = busiest(&c);
        c.kill(busiest);
        c.run_for(60_000);
        assert!(c.count_events("colony_promoted") > 0);
        assert!(c.count_events("host_dead") >= 4);
        assert_eq!(c.count_events("data_lost"), 0);
        assert_healthy(&c, 3);
        let alive: Vec<HostId> = c.nodes.keys().copied().collect();
        let mut gets = Vec::new();
        for i in 0..200 {
            let host = alive[i % alive.len()];
            gets.push((
                i,
                c.client(
                    host,
                    Command::Get {
                        key: format!("k{i}").into(),
                    },
                ),
            ));
        }
        c.run_for(5_000);
        for (i, r) in gets {
            assert_eq!(
                c.replies.get(&r),
                Some(&Reply::Bulk(format!("v{i}").into())),
                "key k{i} after failover"
            );
        }
    }

    /// The values a log describes, by key (colonies are distinct here).
    fn logged_values(c: &Cluster, logger: HostId) -> BTreeMap<Key, Key> {
        let appends = c.logs.get(&logger).cloned().unwrap_or_default();
        crate::core::testkit::replay_log(&appends)
            .into_iter()
            .map(|((_, k), cell)| match cell.dna {
                crate::core::cell::Dna::Value(v) => (k, v),
                other => panic!("unexpected dna {other:?}"),
            })
            .collect()
    }

    /// What the cluster holds, read through the clients (acknowledged state).
    fn read_back(c: &mut Cluster, keys: impl Iterator<Item = String>) -> BTreeMap<Key, Key> {
        let host = *c
            .nodes
            .iter()
            .find(|(_, n)| n.log_sink().is_none())
            .map(|(h, _)| h)
            .unwrap();
        let reqs: Vec<(String, ReqId)> = keys
            .map(|k| {
                let r = c.client(
                    host,
                    Command::Get {
                        key: k.clone().into(),
                    },
                );
                (k, r)
            })
            .collect();
        c.run_for(3_000);
        reqs.into_iter()
            .filter_map(|(k, r)| match c.replies.get(&r) {
                Some(Reply::Bulk(v)) => Some((Key::from(k), v.clone())),
                Some(Reply::Nil) => None,
                other => panic!("read of {k}: {other:?}"),
            })
            .collect()
    }

    fn with_logger(c: &mut Cluster, logger: HostId) {
        c.roles.insert(logger, HostRole::Logger);
        c.start(logger, vec![0]);
    }

    #[test]
    fn a_logger_holds_every_acknowledged_write_through_a_failover() {
        let mut c = five();
        with_logger(&mut c, 9);
        c.run_for(10_000);
        for h in 0..5 {
            assert_eq!(c.nodes[&h].loggers(), &[9], "host {h} knows the logger");
        }
        let mut acked: BTreeMap<Key, Option<Key>> = BTreeMap::new();
        let mut submit = |c: &mut Cluster, cmds: Vec<(String, Option<String>)>| {
            let reqs: Vec<_> = cmds
                .into_iter()
                .enumerate()
                .map(|(i, (k, v))| {
                    let host = (i % 5) as HostId;
                    let host = if c.nodes.contains_key(&host) { host } else { 0 };
                    let cmd = match &v {
                        Some(v) => set(&k, v),
                        None => Command::Del {
                            key: k.clone().into(),
                        },
                    };
                    (k, v, c.client(host, cmd))
                })
                .collect();
            c.run_for(8_000);
            for (k, v, r) in reqs {
                if matches!(c.replies.get(&r), Some(Reply::Ok) | Some(Reply::Int(_))) {
                    acked.insert(Key::from(k), v.map(Key::from));
                }
            }
        };
        submit(
            &mut c,
            (0..300)
                .map(|i| (format!("k{i}"), Some(format!("a{i}"))))
                .collect(),
        );
        // In a steady cluster every entry arrives by push, in order: nothing to resync.
        let stats = c.nodes[&9].log_sink().unwrap().stats;
        assert_eq!((stats.entries, stats.gaps, stats.snapshots), (300, 0, 0));
        // And within a tick of its acknowledgement, not at the next probe (2 s).
        let r = c.client(1, set("fresh", "f"));
        c.run_for(300);
        assert_eq!(c.replies.get(&r), Some(&Reply::Ok));
        assert_eq!(
            logged_values(&c, 9).get(&b"fresh"[..]),
            Some(&Key::from("f"))
        );
        let r = c.client(
            2,
            Command::Del {
                key: "fresh".into(),
            },
        );
        c.run_for(300);
        assert_eq!(c.replies.get(&r), Some(&Reply::Int(1)));
        assert_eq!(logged_values(&c, 9).get(&b"fresh"[..]), None);
        let busiest = busiest(&c);
        let mut second: Vec<(String, Option<String>)> = (0..100)
            .map(|i| (format!("k{i}"), Some(format!("b{i}"))))
            .collect();
        second.extend((200..250).map(|i| (format!("k{i}"), None)));
        // The busiest primary dies while the second batch is in flight.
        let n = second.len();
        let (first_half, rest) = second.split_at(n / 2);
        let (first_half, rest) = (first_half.to_vec(), rest.to_vec());
        submit(&mut c, first_half);
        c.kill(busiest);
        c.run_for(10_000);
        submit(&mut c, rest);
        c.run_for(10_000);
        assert!(c.count_events("colony_promoted") > 0);
        assert_eq!(
            c.nodes[&9].replicas().count(),
            0,
            "a logger holds no replica"
        );
        let expected: BTreeMap<Key, Key> = acked
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        assert!(expected.len() >= 240, "most writes were acknowledged");
        let cluster = read_back(&mut c, (0..300).map(|i| format!("k{i}")));
        assert_eq!(
            cluster, expected,
            "the cluster holds every acknowledged write"
        );
        assert_eq!(logged_values(&c, 9), expected, "so does the log");
    }

    #[test]
    fn a_late_logger_catches_up_by_snapshot_and_heals_after_overflow() {
        let mut cfg = cfg();
        cfg.colony.log_tail = 8;
        let mut c = Cluster::new(cfg);
        c.start(0, vec![]);
        for h in 1..5 {
            c.start(h, vec![0]);
        }
        c.run_for(60_000);
        let write = |c: &mut Cluster, range: std::ops::Range<usize>| {
            for i in range {
                c.client((i % 5) as HostId, set(&format!("k{i}"), &format!("v{i}")));
            }
            c.run_for(5_000);
        };
        write(&mut c, 0..400);
        // The tails (8 mutations) do not reach back to seq 1: snapshots.
        with_logger(&mut c, 9);
        c.run_for(15_000);
        assert!(c.count_events("log_snapshot") > 0);
        let expected = read_back(&mut c, (0..400).map(|i| format!("k{i}")));
        assert_eq!(expected.len(), 400);
        assert_eq!(logged_values(&c, 9), expected);

        // The logger's buffer is full for a while: it drops, says so, and heals.
        c.log_full.insert(9);
        write(&mut c, 400..600);
        c.log_full.clear();
        assert!(c.count_events("logger_behind") > 0);
        c.run_for(15_000);
        let expected = read_back(&mut c, (0..600).map(|i| format!("k{i}")));
        assert_eq!(expected.len(), 600);
        assert_eq!(logged_values(&c, 9), expected);
    }

    #[test]
    fn the_replicas_of_a_host_share_its_tail_budget() {
        let budget = 16 * MIN_TAIL_BYTES;
        let mut config = cfg();
        config.colony.replicas = 2;
        config.tail_budget_bytes = budget;
        let mut c = Cluster::new(config);
        c.start(0, vec![]);
        for h in 1..3 {
            c.start(h, vec![0]);
        }
        c.run_for(60_000);
        // 2,000 writes of 1,000 bytes, one at a time: about 125 KB per colony, twice a
        // tail's own bound (64 KiB), and many times each replica's share of the budget.
        let value = "v".repeat(1_000);
        for i in 0..2_000 {
            c.client((i % 3) as HostId, set(&format!("k{i}"), &value));
            c.run_for(20);
        }
        c.run_for(2_000);
        for (h, n) in &c.nodes {
            let held = n.replicas().count();
            assert!(held >= 8, "host {h} holds {held} replicas");
            let share = (budget / held).max(MIN_TAIL_BYTES);
            let mut total = 0;
            for r in n.replicas() {
                // A secondary keeps the last mutation beyond its share: it learns that
                // a mutation is acknowledged only with the next one.
                assert!(
                    r.tail_bytes() <= share + 1_100,
                    "host {h} colony {}: a tail of {} bytes, its share {share}",
                    r.colony,
                    r.tail_bytes()
                );
                total += r.tail_bytes();
            }
            assert!(total > budget / 2, "host {h}: the tails hold {total} bytes");
        }
    }

    /// Reads `key` through `host`; the value, if any.
    fn read(c: &mut Cluster, host: HostId, key: &str) -> Option<Reply> {
        let r = c.client(host, Command::Get { key: key.into() });
        c.run_for(500);
        c.replies.get(&r).cloned()
    }

    #[test]
    fn a_storage_node_ends_up_holding_every_colony_and_gives_it_back() {
        storage_cycle(3);
    }

    #[test]
    fn a_storage_node_gives_primacy_back_to_memory_even_when_alone_it_is_enough() {
        // N = 2: the storage node alone makes the population, yet once ordinary hosts
        // are back every colony is served from one of them again.
        storage_cycle(2);
    }

    /// Three ordinary hosts and a storage node (9). The storage node's copy counts
    /// twice, its cells live in a value log, and primaries stay in memory. The ordinary
    /// hosts leave one by one, two new ones join.
    fn storage_cycle(replicas: u32) {
        let mut config = cfg();
        config.colony.replicas = replicas;
        let mut c = Cluster::new(config);
        c.roles.insert(9, HostRole::Storage);
        c.start(0, vec![]);
        for h in 1..3 {
            c.start(h, vec![0]);
        }
        c.start(9, vec![0]);
        c.run_for(60_000);
        let reqs: Vec<_> = (0..200)
            .map(|i| c.client(i % 3, set(&format!("s{i}"), &format!("v{i}"))))
            .collect();
        c.run_for(5_000);
        for r in &reqs {
            assert_eq!(c.replies.get(r), Some(&Reply::Ok));
        }
        let held: Vec<&ColonyReplica> = c.nodes[&9].replicas().collect();
        assert!(held.iter().all(|r| r.cells.is_on_disk()));
        assert!(
            held.iter().all(|r| r.role == Role::Secondary),
            "primaries are handed to ordinary hosts"
        );
        for colony in 0..c.cfg.colonies {
            let p = c.primaries(colony)[0];
            let r = c.nodes[&p].replica(colony).unwrap();
            let with_storage = r.set_hosts().contains(&9);
            // With the storage node in the set, two hosts make the population of 3.
            assert_eq!(
                r.set_hosts().len() + 1,
                if with_storage { 2 } else { replicas as usize },
                "colony {colony}: {:?}",
                r.set_hosts()
            );
        }
        // The ordinary hosts leave one by one: no promotion, no loss.
        for h in [2, 1, 0] {
            c.leave(h);
            c.run_for(60_000);
            if h == 2 {
                assert!(
                    c.nodes[&9].replicas().count() > 0,
                    "colonies are drawn to the storage node"
                );
            }
        }
        let elected = c.events.iter().filter(
            |e| matches!(&e.kind, EventKind::ColonyPromoted { reason, .. } if reason != "hand_off"),
        );
        assert_eq!(
            elected.count(),
            0,
            "a leave hands primaries off, never elects"
        );
        let node = &c.nodes[&9];
        assert_eq!(node.replicas().count() as u32, c.cfg.colonies);
        assert!(node
            .replicas()
            .all(|r| r.role == Role::Primary && r.cells.is_on_disk()));
        let cells: usize = node.replicas().map(|r| r.cells.len()).sum();
        assert_eq!(cells, 200);
        // Ordinary hosts start again: the colonies clone back to them, primaries leave
        // the storage node, and every cell reads back.
        for h in [10, 11] {
            c.start(h, vec![9]);
        }
        c.run_for(90_000);
        for colony in 0..c.cfg.colonies {
            let p = c.primaries(colony);
            assert_eq!(p.len(), 1);
            assert!(
                p[0] == 10 || p[0] == 11,
                "colony {colony} primary on {}",
                p[0]
            );
        }
        for i in 0..200 {
            assert_eq!(
                read(&mut c, 10 + i % 2, &format!("s{i}")),
                Some(Reply::Bulk(format!("v{i}").into()))
            );
        }
    }

    #[test]
    fn a_logger_does_not_vote_so_losing_it_and_one_host_keeps_quorum() {
        let mut c = Cluster::new(cfg());
        c.start(0, vec![]);
        for h in 1..3 {
            c.start(h, vec![0]);
        }
        with_logger(&mut c, 9);
        c.run_for(60_000);
        // Three data hosts and a logger: the logger and one host die. Two of three
        // voters remain (two of four would be no quorum).
        c.kill(9);
        c.kill(2);
        c.run_for(30_000);
        assert!(c.nodes[&0].has_quorum() && c.nodes[&1].has_quorum());
        assert_eq!(c.count_events("split_detected"), 0);
        let r = c.client(0, set("after", "1"));
        c.run_for(3_000);
        assert_eq!(c.replies.get(&r), Some(&Reply::Ok));
    }

    #[test]
    fn a_leave_in_a_quiet_cluster_finishes_without_waiting_for_writes() {
        // Four hosts, N = 3: the leaving host's colonies must all move to the three
        // others, with no client write after the hand-offs to nudge them along.
        // (A primary that handed off never told its successor where it stood, so the
        // successor kept it "catching up" until a write came, and would not migrate.)
        // The writes land on the founder before anyone joins, so the primaries the
        // joiners take over by hand-off all have history.
        let mut c = Cluster::new(cfg());
        c.start(0, vec![]);
        c.run_for(2_000);
        let mut reqs = Vec::new();
        for i in 0..100 {
            reqs.push(c.client(0, set(&format!("q{i}"), "v")));
        }
        c.run_for(2_000);
        assert!(reqs.iter().all(|r| c.replies.get(r) == Some(&Reply::Ok)));
        for h in 1..4 {
            c.start(h, vec![0]);
        }
        c.run_for(40_000);
        let leaver: HostId = 2;
        c.leave(leaver);
        c.run_for(20_000);
        assert_eq!(
            c.nodes[&leaver].state(),
            NodeState::Left,
            "the leave finished well before the leave timeout"
        );
        assert_eq!(c.count_events("data_lost"), 0);
    }

    #[test]
    fn the_last_host_to_leave_persists_everything_and_a_new_cluster_restores_it() {
        let mut c = five();
        let mut reqs = Vec::new();
        for i in 0..300 {
            let cmd = if i % 3 == 0 {
                Command::HSet {
                    key: format!("h{i}").into(),
                    fields: vec![(b"f".into(), format!("{i}").into())],
                }
            } else {
                Command::Set {
                    key: format!("k{i}").into(),
                    value: format!("v{i}").into(),
                    ttl_ms: (i % 10 == 1).then_some(1_000),
                    cond: SetCond::Always,
                }
            };
            reqs.push(c.client((i % 5) as HostId, cmd));
        }
        c.run_for(5_000);
        assert!(reqs.iter().all(|r| c
            .replies
            .get(r)
            .is_some_and(|r| !matches!(r, Reply::Error(_)))));
        // Everyone leaves, one at a time; only the last one is left holding data.
        for h in 0..5 {
            c.leave(h);
            c.run_for(30_000);
            assert_eq!(c.nodes[&h].state(), NodeState::Left, "host {h} left");
            assert!(
                h == 4 || c.disk.is_empty(),
                "only the last host writes to disk"
            );
        }
        assert_eq!(c.count_events("shutdown_to_disk"), 1);
        let colonies: BTreeSet<u32> = c.disk.iter().map(|(col, _)| *col).collect();
        assert_eq!(
            colonies.len() as u32,
            c.cfg.colonies,
            "every colony was persisted once"
        );
        // A new cluster (a new incarnation of host 0) gets every cell back.
        let disk = std::mem::take(&mut c.disk);
        c.start(0, vec![]);
        c.run_for(1_000);
        let mut restores = Vec::new();
        for (_, cells) in &disk {
            for (key, cell) in cells {
                restores.push(c.client(
                    0,
                    Command::Restore {
                        key: key.clone(),
                        dna: cell.dna.clone(),
                        expires_at: cell.expires_at,
                    },
                ));
            }
        }
        c.run_for(5_000);
        assert!(restores
            .iter()
            .all(|r| matches!(c.replies.get(r), Some(Reply::Int(_)))));
        let mut gets = Vec::new();
        for i in 0..300 {
            let cmd = if i % 3 == 0 {
                Command::HGet {
                    key: format!("h{i}").into(),
                    field: b"f".into(),
                }
            } else {
                Command::Get {
                    key: format!("k{i}").into(),
                }
            };
            gets.push((i, c.client(0, cmd)));
        }
        c.run_for(2_000);
        for (i, r) in gets {
            let want = if i % 3 == 0 {
                Reply::Bulk(format!("{i}").into())
            } else if i % 10 == 1 {
                Reply::Nil // its 1 s TTL passed during the shutdown
            } else {
                Reply::Bulk(format!("v{i}").into())
            };
            assert_eq!(c.replies.get(&r), Some(&want), "cell {i}");
        }
    }

    /// Five formed hosts with this request deadline, and `n` keys whose primary is
    /// host `victim`.
    fn five_with_keys_led_by(
        request_timeout_ms: Tick,
        victim: HostId,
        n: usize,
    ) -> (Cluster, Vec<String>) {
        let mut c = Cluster::new(NodeConfig {
            request_timeout_ms,
            ..cfg()
        });
        c.start(0, vec![]);
        for h in 1..5 {
            c.start(h, vec![0]);
        }
        c.run_for(60_000);
        let colonies = c.cfg.colonies;
        let led: Vec<String> = (0..10_000)
            .map(|i| format!("k{i}"))
            .filter(|k| c.primaries(colony_of(k.as_bytes(), colonies)) == vec![victim])
            .take(n)
            .collect();
        assert_eq!(led.len(), n, "keys led by the victim");
        (c, led)
    }

    #[test]
    fn requests_in_flight_to_a_dead_primary_do_not_wait_for_their_deadline() {
        // Keys whose primary is host `victim`, asked through another host.
        let victim: HostId = 1;
        let (mut c, led) = five_with_keys_led_by(30_000, victim, 2);
        let via: HostId = 3;
        let set = c.client(via, set(&led[0], "v"));
        let incr = c.client(
            via,
            Command::IncrBy {
                key: led[1].as_str().into(),
                delta: 1,
            },
        );
        // The victim dies before it can answer either.
        c.run_for(1);
        c.kill(victim);
        c.run_for(15_000);
        assert_eq!(
            c.replies.get(&set),
            Some(&Reply::Ok),
            "a plain SET is re-routed to the new primary"
        );
        assert_eq!(
            c.replies.get(&incr),
            Some(&Reply::Error(CommandError::Timeout)),
            "an INCR may or may not have happened: TRYAGAIN now, not at the 30 s deadline"
        );
    }

    #[test]
    fn a_write_that_reached_a_dead_primary_is_never_answered_as_refused() {
        // Whatever the deadline, a SET forwarded to a primary that dies before it
        // answers may be on the secondary promoted next: its client hears OK (re-sent
        // to the new primary) or TRYAGAIN, never a refusal such as "no primary",
        // which would say it did not happen. Deadlines step through the moments of
        // the failover so that some end while the colony has no primary yet.
        let mut answers = BTreeMap::new();
        for timeout in (1_000..6_000).step_by(100) {
            let victim: HostId = 1;
            let (mut c, led) = five_with_keys_led_by(timeout, victim, 1);
            let req = c.client(3, set(&led[0], "v"));
            c.run_for(1);
            c.kill(victim);
            c.run_for(timeout + 1_000);
            let reply = c.replies.get(&req).cloned();
            assert!(
                matches!(reply, Some(Reply::Ok | Reply::Error(CommandError::Timeout))),
                "deadline {timeout} ms: {reply:?}"
            );
            *answers.entry(format!("{reply:?}")).or_insert(0) += 1;
        }
        // Both outcomes occur: the deadlines span the failover.
        assert_eq!(answers.len(), 2, "{answers:?}");
    }

    #[test]
    fn graceful_leave_promotes_nobody_and_loses_nothing() {
        let mut c = five();
        let mut reqs = Vec::new();
        for i in 0..100 {
            reqs.push(c.client(1, set(&format!("k{i}"), "x")));
        }
        c.run_for(3_000);
        let promoted_before = c.count_events("colony_promoted");
        c.leave(2);
        c.run_for(60_000);
        assert_eq!(c.nodes[&2].state(), NodeState::Left);
        c.kill(2);
        let failovers = c.events.iter().filter(|e| matches!(&e.kind, EventKind::ColonyPromoted { reason, .. } if reason == "failover")).count();
        assert_eq!(failovers, 0, "a leave is not a failure");
        assert!(c.count_events("colony_promoted") >= promoted_before);
        assert_eq!(c.count_events("host_dead"), 0);
        c.run_for(30_000);
        assert_healthy(&c, 3);
        let gets: Vec<_> = (0..100)
            .map(|i| {
                c.client(
                    3,
                    Command::Get {
                        key: format!("k{i}").into(),
                    },
                )
            })
            .collect();
        c.run_for(3_000);
        for r in gets {
            assert_eq!(c.replies.get(&r), Some(&Reply::Bulk(b"x".into())));
        }
    }

    #[test]
    fn a_restarted_host_rejoins_and_serves_no_stale_data() {
        let mut c = five();
        let w = c.client(0, set("key", "old"));
        c.run_for(2_000);
        assert_eq!(c.replies.get(&w), Some(&Reply::Ok));
        c.kill(3);
        c.run_for(20_000);
        let w = c.client(0, set("key", "new"));
        c.run_for(2_000);
        assert_eq!(c.replies.get(&w), Some(&Reply::Ok));
        c.start(3, vec![0]);
        c.run_for(60_000);
        assert_healthy(&c, 3);
        let r = c.client(3, Command::Get { key: "key".into() });
        c.run_for(2_000);
        assert_eq!(c.replies.get(&r), Some(&Reply::Bulk(b"new".into())));
    }

    #[test]
    fn the_minority_side_refuses_writes_and_the_majority_keeps_serving() {
        let mut c = five();
        for a in [0, 1] {
            for b in [2, 3, 4] {
                c.cut.insert((a, b));
                c.cut.insert((b, a));
            }
        }
        c.run_for(30_000);
        assert!(!c.nodes[&0].has_quorum());
        assert!(c.nodes[&2].has_quorum());
        assert!(c.count_events("split_detected") >= 2);
        let minority = c.client(0, set("m", "1"));
        let majority = c.client(2, set("m", "2"));
        c.run_for(6_000);
        assert_ne!(c.replies.get(&minority), Some(&Reply::Ok));
        assert_eq!(c.replies.get(&majority), Some(&Reply::Ok));
        c.cut.clear();
        c.run_for(90_000);
        assert!(c.nodes[&0].has_quorum());
        assert_healthy(&c, 3);
        let r = c.client(0, Command::Get { key: "m".into() });
        c.run_for(2_000);
        assert_eq!(c.replies.get(&r), Some(&Reply::Bulk(b"2".into())));
    }

    /// The link between a client's host and the primary breaks; both still reach
    /// everyone else, so membership keeps both alive. The read goes again through a
    /// third host after `relay_after_ms` and its answer comes back the same way; the
    /// next write goes around the link from the start.
    #[test]
    fn a_request_across_a_broken_link_goes_around_it() {
        let mut c = five();
        let key = "around";
        let w = c.client(0, set(key, "v1"));
        c.run_for(2_000);
        assert_eq!(c.replies.get(&w), Some(&Reply::Ok));
        let colony = colony_of(key.as_bytes(), c.cfg.colonies);
        let p = c.primaries(colony)[0];
        let set_hosts = c.nodes[&p].replica(colony).unwrap().set_hosts();
        let e = (0..5)
            .find(|h| *h != p && !set_hosts.contains(h))
            .expect("a host outside the set");
        c.cut.insert((e, p));
        c.cut.insert((p, e));
        let r = c.client(e, Command::Get { key: key.into() });
        c.run_for(2_000);
        assert_eq!(c.replies.get(&r), Some(&Reply::Bulk(b"v1".into())));
        let w = c.client(e, set(key, "v2"));
        c.run_for(1_000);
        assert_eq!(
            c.replies.get(&w),
            Some(&Reply::Ok),
            "no wait: relayed at once"
        );
        assert!(c.nodes.values().all(|n| n.is_alive(e) && n.is_alive(p)));
    }

    #[test]
    fn a_cell_moves_to_another_colony_with_its_copies_and_is_still_found() {
        let mut c = five();
        let w = c.client(1, set("cart:7", "three apples"));
        c.run_for(2_000);
        assert_eq!(c.replies.get(&w), Some(&Reply::Ok));
        let from = colony_of(b"cart:7", 16);
        let to = (from + 5) % 16;
        let mv = c.client(
            2,
            Command::MoveCell {
                key: "cart:7".into(),
                to,
            },
        );
        c.run_for(3_000);
        assert_eq!(c.replies.get(&mv), Some(&Reply::Ok));
        assert_eq!(c.count_events("cell_migrated"), 1);
        // The cell and its secondary copies are in the target colony now.
        let holders: Vec<_> = c
            .nodes
            .values()
            .filter_map(|n| n.replica(to))
            .filter(|r| {
                r.cells.get(b"cart:7").is_some_and(|cell| {
                    cell.dna == crate::core::cell::Dna::Value(b"three apples".into())
                })
            })
            .collect();
        assert_eq!(
            holders.len(),
            3,
            "primary and both secondaries of the target colony"
        );
        // Any host still finds it through the old colony, which forwards.
        for h in 0..5 {
            let r = c.client(
                h,
                Command::Get {
                    key: "cart:7".into(),
                },
            );
            let u = c.client(h, set("cart:7", "four apples"));
            c.run_for(2_000);
            assert!(
                matches!(c.replies.get(&r), Some(Reply::Bulk(_))),
                "host {h} reads the moved cell: {:?}",
                c.replies.get(&r)
            );
            assert_eq!(c.replies.get(&u), Some(&Reply::Ok));
        }
        let r = c.client(
            0,
            Command::Get {
                key: "cart:7".into(),
            },
        );
        c.run_for(1_000);
        assert_eq!(c.replies.get(&r), Some(&Reply::Bulk(b"four apples".into())));
        let target_primary = c.primaries(to)[0];
        let cell = c.nodes[&target_primary]
            .replica(to)
            .unwrap()
            .cells
            .get(b"cart:7")
            .map(|c| c.into_owned());
        assert_eq!(
            cell.map(|c| c.dna),
            Some(crate::core::cell::Dna::Value(b"four apples".into()))
        );
    }

    #[test]
    fn too_few_hosts_settle_on_a_smaller_population_and_grow_back_on_join() {
        let mut c = Cluster::new(cfg());
        c.start(0, vec![]);
        c.start(1, vec![0]);
        c.run_for(30_000);
        assert_eq!(c.nodes[&0].target_population(), 2);
        assert!(c.count_events("population_reduced") >= 16);
        assert_healthy(&c, 2);
        c.start(2, vec![0]);
        c.run_for(60_000);
        assert_eq!(c.nodes[&0].target_population(), 3);
        assert!(c.count_events("population_restored") >= 16);
        assert_healthy(&c, 3);
    }

    /// `hosts` hosts started together, host 0 without seeds, expecting `expect`.
    fn formed_together(hosts: u32, expect: u32) -> Cluster {
        let mut c = Cluster::new(NodeConfig {
            expect_hosts: Some(expect),
            formation_timeout_ms: 10_000,
            formation_settle_ms: 5_000,
            ..cfg()
        });
        c.start(0, vec![]);
        for h in 1..hosts {
            c.start(h, vec![0]);
        }
        c
    }

    fn primaries_per_host(c: &Cluster) -> Vec<usize> {
        c.nodes
            .values()
            .map(|n| n.replicas().filter(|r| r.role == Role::Primary).count())
            .collect()
    }

    #[test]
    fn a_cluster_formed_together_is_laid_out_at_once_without_cloning() {
        let mut c = formed_together(5, 5);
        c.run_for(10_000);
        assert_healthy(&c, 3);
        assert_eq!(c.count_events("colony_cloned"), 0);
        assert_eq!(c.count_events("colony_migrated"), 0);
        assert_eq!(c.count_events("replica_dropped"), 0);
        // 16 colonies over 5 hosts: 3 or 4 primaries each. Zones (id % 3) hold 2, 2
        // and 1 hosts: every colony spans the three, so host 2 holds all 16 and the
        // others 8 each.
        let primaries = primaries_per_host(&c);
        assert!(primaries.iter().all(|&p| p == 3 || p == 4), "{primaries:?}");
        let held: Vec<usize> = c.nodes.values().map(|n| n.replicas().count()).collect();
        assert_eq!((held.iter().sum::<usize>(), held[2]), (48, 16), "{held:?}");
        assert!(
            held.iter().all(|&n| n == 16 || (7..=9).contains(&n)),
            "{held:?}"
        );
        // Writes go through as usual.
        let k = c.client(2, set("k", "v"));
        c.run_for(2_000);
        assert_eq!(c.replies.get(&k), Some(&Reply::Ok));
        // It stays put.
        c.run_for(30_000);
        assert_eq!(c.count_events("colony_migrated"), 0);
        assert_healthy(&c, 3);
    }

    #[test]
    fn a_founder_that_never_sees_the_expected_hosts_forms_with_those_it_sees() {
        let mut c = formed_together(4, 6);
        c.run_for(9_000);
        assert!(c.nodes.values().all(|n| n.replicas().count() == 0));
        assert!(c.nodes.values().all(|n| n.directory().colonies.is_empty()));
        c.run_for(3_000);
        assert_healthy(&c, 3);
        assert_eq!(c.count_events("colony_cloned"), 0);
        // A host that comes later learns the directory, disowns nothing (no colony
        // elects a new primary), and placement gives it a share.
        c.start(4, vec![1]);
        c.run_for(30_000);
        assert_healthy(&c, 3);
        let elected = c.events.iter().any(
            |e| matches!(&e.kind, EventKind::ColonyPromoted { reason, .. } if reason != "hand_off"),
        );
        assert!(!elected);
        assert!(c.nodes[&4].replicas().count() > 0);
    }

    #[test]
    fn a_greeting_that_outruns_the_layout_waits_for_it() {
        let cfg = NodeConfig {
            expect_hosts: Some(3),
            ..cfg()
        };
        let layout_hosts: Vec<placement::LayoutHost> = (1..=3)
            .map(|id| placement::LayoutHost {
                id,
                incarnation: 1,
                zone: id,
                box_id: id,
                room: u32::MAX,
            })
            .collect();
        let layout = placement::initial_layout(&layout_hosts, 16, 3);
        // A colony host 2 leads with host 3 in its set.
        let colony = (0..16)
            .find(|&c| layout.set(c).next() == Some(2))
            .expect("host 2 leads some colony");
        let greeting = |epoch| Msg::Colony {
            colony,
            epoch,
            body: ColonyMsg::Members {
                members: vec![],
                base: Version::default(),
            },
        };
        let gone = |out: &Out| {
            out.sends.iter().any(|(to, m)| {
                *to == 2
                    && matches!(
                        m,
                        Msg::Colony {
                            body: ColonyMsg::Gone,
                            ..
                        }
                    )
            })
        };
        let epoch = Epoch::genesis(2);
        for layout_arrives in [true, false] {
            let mut n = Node::new(Cluster::info(3), cfg.clone(), 1, 7);
            let mut out = Out::default();
            n.handle(0, Input::Start { seeds: vec![1] }, &mut out);
            out.clear();
            n.handle(
                10,
                Input::Message {
                    from: 2,
                    msg: greeting(epoch),
                },
                &mut out,
            );
            assert!(!gone(&out), "answered before the layout could arrive");
            let grace = out
                .timers
                .iter()
                .find(|(_, t)| *t == Timer::Formation)
                .map(|(d, _)| *d)
                .expect("a grace timer");
            out.clear();
            if layout_arrives {
                let msg = Msg::Formation {
                    hosts: SharedLayout::new(layout_hosts.clone()),
                };
                n.handle(12, Input::Message { from: 1, msg }, &mut out);
                assert!(n.replica(colony).is_some());
                assert!(!gone(&out));
            }
            out.clear();
            n.handle(10 + grace, Input::Timer(Timer::Formation), &mut out);
            // Without a layout, the primary hears that we hold nothing.
            assert_eq!(gone(&out), !layout_arrives);
        }
    }
}
