//! One replica of one colony, as a deterministic state machine.
//!
//! A primary numbers every mutation `(epoch, seq)`, applies it, streams it to its
//! secondaries and answers the client once the required secondaries acknowledged it.
//! It also looks after its population: it clones onto the best host when below target,
//! drops the worst replica when above, migrates a replica when another host is better
//! by more than the hysteresis margin (and not within `move_cooldown_ms` of its last
//! move), and hands primacy off before its host leaves. A secondary that leaves a write
//! unacknowledged for `ack_timeout_ms` while another acknowledged it (a broken link
//! that membership, probing indirectly, does not see) is taken out of the set and told
//! through the others, so writes go on and a replica is cloned elsewhere.
//!
//! A secondary applies mutations in order and acknowledges cumulatively; on a gap or a
//! new epoch it asks for the tail or a snapshot. When its primary's host is declared
//! dead, the in-sync secondaries exchange offers and the most advanced (by `(epoch,
//! seq)`, ties by rank) promotes itself at the next epoch.
//!
//! The machine never reads a clock or a socket: the node hands it an [`Env`] with the
//! time, the cluster view and the output buffers.

use super::cell::{Cell, CellStore, Command, CommandError, Dna, Key, Op, RemoveWhy, Reply};
use super::directory::DirEntry;
use super::events::EventKind;
use super::messages::{ColonyMsg, Lineage, MemberInfo, Msg, Mutation, ReplyTo};
use super::placement::{self, PlacementConfig};
use super::tail::MutationTail;
use super::topology::{HostState, Topology};
use super::types::{mix64, ColonyId, Epoch, HostId, HostRole, Role, Seq, Tick, Version};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// What a colony needs to know about the cluster's rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColonyConfig {
    /// Population N.
    pub replicas: u32,
    /// Acks a write waits for; `None` = every in-sync secondary.
    pub sync_replicas: Option<u32>,
    /// Acks every write needs at least (when the cluster can hold that many copies),
    /// however few secondaries are in sync.
    pub min_sync_acks: u32,
    /// Whether a side without quorum refuses writes.
    pub refuse_writes_without_quorum: bool,
    /// The most mutations a replica keeps in its tail, to catch a lagging secondary
    /// or logging node up without a snapshot (see [`MutationTail`]).
    pub log_tail: usize,
    /// The most bytes of keys and values the tail keeps (plus
    /// [`ENTRY_OVERHEAD`](super::tail::ENTRY_OVERHEAD) for each entry). What is not yet
    /// acknowledged or streamed to the loggers is kept beyond both bounds. Measured with 271 colonies and 3-byte values under
    /// `redis-benchmark --cluster -t set -P 16`: a 4,096-entry tail cost 5.9 µs of node
    /// CPU per write, a 256-entry one 5.1 µs.
    pub log_tail_bytes: usize,
    /// How long secondaries wait for each other's offers before deciding.
    pub election_timeout_ms: u64,
    /// How long an election without a majority of the set waits (with cluster quorum
    /// held all along) before a lone in-sync secondary may promote.
    pub quorum_election_delay_ms: u64,
    /// How long a clone may take before it is abandoned.
    pub transfer_timeout_ms: u64,
    /// How long a refused host is not asked again.
    pub refusal_backoff_ms: u64,
    /// Expired cells removed per tick.
    pub expiry_batch: usize,
    pub placement: PlacementConfig,
    /// After a migration finished (or primacy came here by a hand-off), how long the
    /// colony makes no optional move (drift toward spare resources). Hysteresis keeps a
    /// move from being undone by the next turn on the same numbers; this keeps a
    /// colony from chasing the numbers its own move, and its neighbours' moves, are
    /// still changing. A rule violation is fixed at once whatever it says.
    #[serde(default = "default_move_cooldown_ms")]
    pub move_cooldown_ms: u64,
    /// How long a counted secondary may leave a write unacknowledged while another
    /// secondary acknowledged it, before the primary takes it out of the set
    /// ([`ColonyReplica::evict_laggards`]): a broken link between two hosts that
    /// membership, probing indirectly, still sees alive would otherwise hold every
    /// write of their colonies for as long as it lasts. Below the clients' request
    /// timeout, so the write that found the broken link still succeeds, late.
    #[serde(default = "default_ack_timeout_ms")]
    pub ack_timeout_ms: u64,
}

fn default_move_cooldown_ms() -> u64 {
    10_000
}

fn default_ack_timeout_ms() -> u64 {
    4_000
}

impl Default for ColonyConfig {
    fn default() -> Self {
        ColonyConfig {
            replicas: 3,
            sync_replicas: None,
            min_sync_acks: 1,
            refuse_writes_without_quorum: true,
            log_tail: 4096,
            log_tail_bytes: 64 * 1024,
            election_timeout_ms: 300,
            quorum_election_delay_ms: 6_000,
            transfer_timeout_ms: 30_000,
            refusal_backoff_ms: 10_000,
            expiry_batch: 256,
            placement: PlacementConfig::default(),
            move_cooldown_ms: default_move_cooldown_ms(),
            ack_timeout_ms: default_ack_timeout_ms(),
        }
    }
}

/// The most mutations a storage replica keeps in its tail (values included).
pub const STORAGE_LOG_TAIL: usize = 64;

/// A primary streams its acknowledged mutations to the logging nodes once per tick,
/// or as soon as this many are waiting: a busy colony's entries then travel in
/// batches spread over the tick instead of all colonies' at once at the tick, which
/// kept every client waiting while the whole tick's worth was copied and encoded.
pub const LOG_PUSH_BATCH: Seq = 64;

/// Timers a colony asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColonyTimer {
    /// Decide the election opened in `epoch` (the dead primary's epoch).
    Election { epoch: Epoch, round: u32 },
}

/// Side effects the node carries out for a colony.
#[derive(Debug, Default)]
pub struct Effects {
    pub sends: Vec<(HostId, Msg)>,
    pub timers: Vec<(u64, ColonyId, ColonyTimer)>,
    pub events: Vec<EventKind>,
    pub replies: Vec<(ReplyTo, Reply)>,
    /// Directory entries to publish to every host.
    pub announce: Vec<DirEntry>,
    /// Messages for the primary of another colony (cell migration).
    pub to_colony: Vec<(ColonyId, ColonyMsg)>,
    /// Client commands to route to another colony (a moved cell).
    pub forward: Vec<(ColonyId, ReplyTo, Command)>,
    /// Colonies whose replica on this host must be removed.
    pub remove: Vec<ColonyId>,
}

/// The world as one colony replica sees it for one step.
pub struct Env<'a> {
    pub now: Tick,
    pub me: HostId,
    pub cfg: &'a ColonyConfig,
    pub topo: &'a mut Topology,
    /// Membership's verdict (this host is always alive).
    pub alive: &'a dyn Fn(HostId) -> bool,
    /// Whether this host's side has quorum of the last stable membership.
    pub quorum: bool,
    /// min(N, what the cluster can hold).
    pub target: u32,
    /// Whether this tick is this colony's turn to weigh migrations (and sweep expired
    /// cells): spreads the work of thousands of colonies over several ticks.
    pub placement_turn: bool,
    /// Whether this host is leaving (as its published record says).
    pub leaving: bool,
    /// Whether optional moves (toward a more attractive host, or to spread primaries)
    /// may be made now: not for a while after the cluster formed together, while the
    /// host records still describe every host as it was before the layout (empty).
    pub optimise: bool,
    /// Live logging nodes: a primary streams its acknowledged mutations to each.
    pub loggers: &'a [HostId],
    /// The most bytes this replica's tail keeps: [`ColonyConfig::log_tail_bytes`], or
    /// less when the host holds so many replicas that their tails would pass its
    /// budget (`NodeConfig::tail_budget_bytes`).
    pub tail_bytes: usize,
    pub fx: &'a mut Effects,
}

impl Env<'_> {
    fn send(&mut self, to: HostId, colony: ColonyId, epoch: Epoch, body: ColonyMsg) {
        self.fx.sends.push((
            to,
            Msg::Colony {
                colony,
                epoch,
                body,
            },
        ));
    }

    fn event(&mut self, e: EventKind) {
        self.fx.events.push(e);
    }
}

/// The inputs of a placement turn: the topology's generation (raised at every change of
/// any host's view), the replica set, the refused hosts and whether optional moves are
/// allowed. A turn that found nothing to do finds nothing again while these stay put,
/// which in a settled cluster is almost every turn: a thousand hosts' colonies then skip
/// the member lookups and the ranking walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PlacementMemo {
    generation: u64,
    inputs: u64,
}

impl PlacementMemo {
    fn of(env: &Env, roles: &[(HostId, Role)], exclude: &[HostId]) -> Self {
        let mut h = mix64(u64::from(env.optimise) ^ (roles.len() as u64) << 8);
        for &(host, role) in roles {
            h = mix64(h ^ u64::from(host) ^ u64::from(role == Role::Primary) << 40);
        }
        for &host in exclude {
            h = mix64(h ^ u64::from(host) ^ 1 << 41);
        }
        PlacementMemo {
            generation: env.topo.generation(),
            inputs: h,
        }
    }
}

/// How far a secondary is, as its primary sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberSync {
    /// Asked to hold a replica; no answer yet.
    Offered {
        at: Tick,
    },
    /// A new replica receiving the snapshot taken at `since`; does not count yet.
    Cloning {
        since: Seq,
        at: Tick,
    },
    /// A replica that held acknowledged writes and is catching up on the tail. It
    /// counts, and writes wait for it.
    CatchingUp {
        since: Seq,
    },
    InSync,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub host: HostId,
    pub sync: MemberSync,
    pub acked: Seq,
}

impl Member {
    /// Holds acknowledged writes (or will, from the tail alone).
    fn counts(&self) -> bool {
        matches!(
            self.sync,
            MemberSync::InSync | MemberSync::CatchingUp { .. }
        )
    }

    fn streaming(&self) -> bool {
        !matches!(self.sync, MemberSync::Offered { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Pending {
    seq: Seq,
    /// When it was written (see [`ColonyConfig::ack_timeout_ms`]).
    at: Tick,
    to: Option<ReplyTo>,
    reply: Reply,
}

/// A move in progress: clone onto `to`, then drop `from` (or hand primacy to `to`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Move {
    from: HostId,
    to: HostId,
    role: Role,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HandOff {
    /// Waiting for pending writes to drain before handing primacy to `to`.
    Draining {
        to: HostId,
        since: Tick,
        drop_me: bool,
        /// A hand-off that only balances primaries: this host's primaries when it
        /// chose to (see [`ColonyMsg::HandOff`]).
        balance: Option<u32>,
    },
    /// HandOff sent; waiting for the new primary's Members.
    Sent { to: HostId, since: Tick },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Election {
    /// The dead primary's epoch.
    epoch: Epoch,
    open: bool,
    opened_at: Tick,
    offers: BTreeMap<HostId, (Version, u32)>,
}

/// A cell being moved to another colony.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CellMove {
    to_colony: ColonyId,
    reply: ReplyTo,
}

/// A replica's summary, for status pages and the invariant checker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSummary {
    pub colony: ColonyId,
    pub role: Role,
    pub epoch: Epoch,
    pub seq: Seq,
    /// A secondary: caught up (per its primary). A primary: always true.
    pub in_sync: bool,
    /// A primary that takes writes now.
    pub writable: bool,
    pub cells: u64,
    pub primary: HostId,
    /// A primary's view of its set: host and whether it counts.
    pub members: Vec<MemberInfo>,
    /// A primary: how many mutations its slowest streaming secondary has yet to
    /// acknowledge (0 for a secondary).
    pub lag: Seq,
}

/// Tombstones kept per replica.
pub const TOMBSTONES: usize = 10_000;

/// The most recent deletes of a replica, bounded to [`TOMBSTONES`], oldest dropped first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tombstones {
    by_key: BTreeMap<Key, Version>,
    order: VecDeque<(Key, Version)>,
}

impl Tombstones {
    fn insert(&mut self, key: Key, version: Version) {
        self.by_key.insert(key.clone(), version);
        self.order.push_back((key, version));
        while self.order.len() > TOMBSTONES {
            if let Some((k, v)) = self.order.pop_front() {
                if self.by_key.get(&k) == Some(&v) {
                    self.by_key.remove(&k);
                }
            }
        }
    }

    fn forget(&mut self, key: &[u8]) {
        self.by_key.remove(key);
    }

    pub fn get(&self, key: &[u8]) -> Option<Version> {
        self.by_key.get(key).copied()
    }

    /// Every live tombstone.
    pub fn list(&self) -> Vec<(Key, Version)> {
        self.by_key.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// One replica of one colony on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColonyReplica {
    pub colony: ColonyId,
    pub role: Role,
    /// The epoch this replica follows (or leads).
    pub epoch: Epoch,
    /// The primary it follows (itself when primary).
    pub primary: HostId,
    /// The version of the last applied mutation.
    pub last: Version,
    pub cells: CellStore,
    lineage: Lineage,
    log: MutationTail,
    /// Primary: the highest seq streamed to the logging nodes (every acknowledged
    /// mutation up to it). Secondary: the commit point its primary last reported, so a
    /// promoted secondary streams what its old primary had not.
    logged: Seq,
    /// Secondary: the snapshot has arrived (or it held data already).
    synced: bool,
    /// Secondary: whether the primary counts it (from Members).
    in_sync: bool,
    /// Secondary: its view of the set, for elections. Primary: its secondaries.
    peers: Vec<MemberInfo>,
    members: Vec<Member>,
    pending: VecDeque<Pending>,
    dir_version: u64,
    election: Election,
    moving: Option<Move>,
    /// When the colony last moved (a migration finished, or primacy came here by a
    /// hand-off): optional moves wait [`ColonyConfig::move_cooldown_ms`] after it.
    moved_at: Option<Tick>,
    hand_off: Option<HandOff>,
    /// The old primary of the hand-off that made this one, kept as a secondary until
    /// the others know this primary ([`Self::retire_when_told`]).
    retiring: Option<HostId>,
    refused: BTreeMap<HostId, Tick>,
    /// What the last placement turn that changed nothing looked at: the next turn with
    /// the same inputs would find the same nothing, and is skipped.
    placement_memo: Option<PlacementMemo>,
    reduced: bool,
    cell_moves: BTreeMap<Key, CellMove>,
    /// Cells received from another colony, answered once their write is acknowledged.
    /// Recent deletes (key -> version of the delete), oldest first out: what a merge
    /// needs to tell "deleted here" from "never here".
    pub tombstones: Tombstones,
    cell_in_waiting: Vec<(Seq, ColonyId, Key)>,
    /// A fenced primary: the last acknowledged seq when it stopped serving.
    merge_commit: Option<Seq>,
    /// [`Self::observed`] as its host last recorded it (the host compares it with the
    /// fingerprint after each step instead of computing both).
    pub(crate) seen: u64,
}

fn lineage_has(lineage: &Lineage, v: Version) -> bool {
    v.seq == 0 || lineage.get(&v.epoch).is_some_and(|&s| s >= v.seq)
}

impl ColonyReplica {
    fn blank(colony: ColonyId, role: Role, epoch: Epoch, primary: HostId) -> Self {
        ColonyReplica {
            colony,
            role,
            epoch,
            primary,
            last: Version::default(),
            cells: CellStore::default(),
            lineage: Lineage::new(),
            log: MutationTail::default(),
            logged: 0,
            synced: false,
            in_sync: false,
            peers: Vec::new(),
            members: Vec::new(),
            pending: VecDeque::new(),
            dir_version: 0,
            election: Election::default(),
            moving: None,
            moved_at: None,
            hand_off: None,
            retiring: None,
            refused: BTreeMap::new(),
            placement_memo: None,
            reduced: false,
            cell_moves: BTreeMap::new(),
            tombstones: Tombstones::default(),
            cell_in_waiting: Vec::new(),
            merge_commit: None,
            seen: 0,
        }
    }

    /// A new, empty colony with this host as primary (cluster creation, or a colony
    /// recreated after every holder died).
    pub fn genesis(colony: ColonyId, me: HostId, epoch: Epoch) -> Self {
        let mut r = Self::blank(colony, Role::Primary, epoch, me);
        r.synced = true;
        r.in_sync = true;
        r
    }

    /// An empty replica of a new cluster's initial layout
    /// ([`placement::initial_layout`]): `set` is the colony's replica set, its primary
    /// first, and every member starts in sync at the primary's genesis epoch, as if
    /// the secondaries had been cloned from the empty primary.
    pub fn formed(colony: ColonyId, me: HostId, set: &[HostId]) -> Self {
        let primary = set[0];
        let epoch = Epoch::genesis(primary);
        let mut r = if me == primary {
            let mut r = Self::genesis(colony, me, epoch);
            r.members = set[1..]
                .iter()
                .map(|&host| Member {
                    host,
                    sync: MemberSync::InSync,
                    acked: 0,
                })
                .collect();
            r
        } else {
            let mut r = Self::syncing(colony, epoch, primary);
            r.synced = true;
            r.in_sync = true;
            r.peers = set[1..]
                .iter()
                .map(|&host| MemberInfo {
                    host,
                    in_sync: true,
                })
                .collect();
            r
        };
        r.dir_version = 1;
        r
    }

    /// A primary of the initial layout tells its secondaries the set: a named host
    /// that holds no copy (it restarted, or missed the layout) answers `Gone`, and the
    /// colony clones elsewhere.
    pub fn greet_members(&mut self, env: &mut Env) {
        if self.role == Role::Primary {
            self.announce_members(env);
        }
    }

    /// An empty replica that accepted a clone offer and waits for the snapshot.
    pub fn syncing(colony: ColonyId, epoch: Epoch, primary: HostId) -> Self {
        Self::blank(colony, Role::Secondary, epoch, primary)
    }

    pub fn seq(&self) -> Seq {
        self.last.seq
    }

    /// A primary that takes writes now (quorum aside).
    pub fn serving(&self) -> bool {
        self.role == Role::Primary && self.hand_off.is_none()
    }

    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Whether a tick has nothing to do here but what comes round on the colony's
    /// placement turn: a secondary, or a primary with no write waiting, no transfer,
    /// hand-off, move or cell move under way, no refusal to expire, and every member
    /// in sync. The node ticks a quiet replica only on its placement turn and after a
    /// step touched it.
    pub fn is_quiet(&self) -> bool {
        self.role == Role::Secondary
            || (self.pending.is_empty()
                && self.refused.is_empty()
                && self.hand_off.is_none()
                && self.moving.is_none()
                && self.cell_moves.is_empty()
                && self.members.iter().all(|m| m.sync == MemberSync::InSync))
    }

    pub fn lineage(&self) -> &Lineage {
        &self.lineage
    }

    /// Hosts of this colony's set known here (primary: members; secondary: peers).
    pub fn set_hosts(&self) -> Vec<HostId> {
        match self.role {
            Role::Primary => self.members.iter().map(|m| m.host).collect(),
            Role::Secondary => self.peers.iter().map(|m| m.host).collect(),
        }
    }

    pub fn summary(&self, me: HostId) -> ReplicaSummary {
        ReplicaSummary {
            colony: self.colony,
            role: self.role,
            epoch: self.epoch,
            seq: self.last.seq,
            in_sync: self.role == Role::Primary || (self.synced && self.in_sync),
            writable: self.serving(),
            cells: self.cells.len() as u64,
            primary: if self.role == Role::Primary {
                me
            } else {
                self.primary
            },
            members: self.member_infos(),
            lag: if self.role == Role::Primary {
                self.members
                    .iter()
                    .filter(|m| m.streaming())
                    .map(|m| self.last.seq.saturating_sub(m.acked))
                    .max()
                    .unwrap_or(0)
            } else {
                0
            },
        }
    }

    /// A fingerprint of what [`Self::summary`] shows of this replica's role, epoch,
    /// primary, writability and members: it changes whenever they do, so an observer
    /// can look again only at the replicas whose fingerprint moved.
    pub fn observed(&self) -> u64 {
        use super::types::mix64;
        let mut h = mix64(self.epoch.term ^ u64::from(self.epoch.by) << 32);
        h = mix64(h ^ u64::from(self.primary) ^ u64::from(self.role == Role::Primary) << 40);
        h = mix64(h ^ u64::from(self.serving()) ^ u64::from(self.synced) << 1);
        for m in &self.members {
            let sync = u64::from(m.streaming()) | u64::from(m.counts()) << 1;
            h = mix64(h ^ u64::from(m.host) ^ sync << 32);
        }
        h
    }

    fn member_infos(&self) -> Vec<MemberInfo> {
        self.members
            .iter()
            .filter(|m| m.streaming())
            .map(|m| MemberInfo {
                host: m.host,
                in_sync: m.counts(),
            })
            .collect()
    }

    /// The entry this primary publishes.
    pub fn dir_entry(&self, me: HostId) -> DirEntry {
        DirEntry {
            colony: self.colony,
            epoch: self.epoch,
            version: self.dir_version,
            primary: me,
            secondaries: self
                .members
                .iter()
                .filter(|m| m.counts())
                .map(|m| m.host)
                .collect(),
        }
    }

    /// Publish the set: a new directory entry for every host, Members for the set.
    fn announce(&mut self, env: &mut Env) {
        self.dir_version += 1;
        env.fx.announce.push(self.dir_entry(env.me));
        self.announce_members(env);
    }

    /// The tail's bounds: entries, bytes, and the seq after which nothing is dropped
    /// (what is not yet acknowledged or streamed to the loggers may be sent again).
    fn tail_bounds(&self, env: &Env) -> (usize, usize, Seq) {
        let entries = if self.cells.is_on_disk() {
            env.cfg.log_tail.min(STORAGE_LOG_TAIL)
        } else {
            env.cfg.log_tail
        };
        (entries, env.tail_bytes, self.logged.min(self.committed()))
    }

    /// The bytes of keys and values in the tail of mutations (with
    /// [`ENTRY_OVERHEAD`](super::tail::ENTRY_OVERHEAD) each).
    pub fn tail_bytes(&self) -> usize {
        self.log.bytes()
    }

    fn record(&mut self, m: Mutation, env: &Env) {
        self.cells.apply(&m.op);
        match &m.op {
            Op::Remove {
                key,
                why: RemoveWhy::Deleted,
            } => self.tombstones.insert(key.clone(), m.version),
            Op::Put { key, .. } | Op::Remove { key, .. } => self.tombstones.forget(key),
        }
        self.last = m.version;
        let e = self.lineage.entry(m.version.epoch).or_insert(0);
        *e = (*e).max(m.version.seq);
        while self.lineage.len() > 32 {
            let first = *self.lineage.keys().next().expect("non-empty");
            self.lineage.remove(&first);
        }
        // The tail holds whole values: a storage replica keeps a short one, or its
        // memory would hold what it keeps on disk (a secondary further behind gets a
        // snapshot instead). What is not yet acknowledged or not yet streamed to the
        // loggers stays: it may have to be sent again.
        let (entries, bytes, keep_after) = self.tail_bounds(env);
        self.log.push(m, entries, bytes, keep_after);
    }

    // ----- primary: client writes -------------------------------------------------

    /// A client command for this colony; the node calls this only on a primary.
    pub fn client(&mut self, env: &mut Env, to: ReplyTo, cmd: Command) {
        if !self.serving() {
            env.fx
                .replies
                .push((to, Reply::Error(CommandError::Busy(self.colony))));
            return;
        }
        let key = cmd.key().clone();
        // A moved cell: this colony only forwards.
        let moved = self.cells.get(&key).and_then(|c| match c.dna {
            Dna::Moved(dest) => Some(dest),
            _ => None,
        });
        if let Some(dest) = moved {
            env.fx.forward.push((dest, to, cmd));
            return;
        }
        if !cmd.is_write() {
            let (reply, _) = self.cells.execute(&cmd, env.now, self.last);
            env.fx.replies.push((to, reply));
            return;
        }
        if !env.quorum && env.cfg.refuse_writes_without_quorum {
            env.fx
                .replies
                .push((to, Reply::Error(CommandError::NoQuorum)));
            return;
        }
        if self.cell_moves.contains_key(&key) {
            env.fx
                .replies
                .push((to, Reply::Error(CommandError::Busy(self.colony))));
            return;
        }
        if let Command::MoveCell { to: dest, .. } = cmd {
            self.start_cell_move(env, to, key, dest);
            return;
        }
        let version = Version {
            epoch: self.epoch,
            seq: self.last.seq + 1,
        };
        let (reply, op) = self.cells.execute(&cmd, env.now, version);
        match op {
            None => env.fx.replies.push((to, reply)),
            Some(op) => self.write(env, op, Some(to), reply),
        }
    }

    /// Number, apply and stream one op; answer `to` once acknowledged.
    fn write(&mut self, env: &mut Env, op: Op, to: Option<ReplyTo>, reply: Reply) {
        let m = Mutation {
            version: Version {
                epoch: self.epoch,
                seq: self.last.seq + 1,
            },
            op,
        };
        for mem in self.members.iter().filter(|m| m.streaming()) {
            env.send(
                mem.host,
                self.colony,
                self.epoch,
                ColonyMsg::Replicate {
                    m: m.clone(),
                    commit: self.committed(),
                },
            );
        }
        self.pending.push_back(Pending {
            seq: m.version.seq,
            at: env.now,
            to,
            reply,
        });
        self.record(m, env);
        self.try_complete(env);
    }

    /// Answer the writes that have enough acks, in order.
    fn try_complete(&mut self, env: &mut Env) {
        if !env.quorum && env.cfg.refuse_writes_without_quorum {
            // A side without quorum acknowledges nothing, not even a write it took
            // before: the other side may promote a secondary that lacks it. The write
            // stays pending (its client times out: an uncertain outcome).
            return;
        }
        let counting: Vec<&Member> = self.members.iter().filter(|m| m.counts()).collect();
        // Like Kafka's min.insync.replicas: never acknowledge on the primary's word
        // alone while the cluster can hold a second copy. A primary cut off from all
        // its secondaries then holds writes (they time out) instead of acknowledging
        // what a split may take away.
        // A storage node's own copy counts twice ([`placement::slots`]): alone it holds
        // the whole target of a two-host cluster, and needs no ack.
        let own = placement::host_slots(env.topo, env.me);
        let floor = (env.cfg.min_sync_acks as usize).min(env.target.saturating_sub(own) as usize);
        let needed = env
            .cfg
            .sync_replicas
            .map_or(counting.len(), |k| (k as usize).min(counting.len()))
            .max(floor);
        while let Some(p) = self.pending.front() {
            let got = counting.iter().filter(|m| m.acked >= p.seq).count();
            if got < needed {
                break;
            }
            let p = self.pending.pop_front().expect("front exists");
            if let Some(to) = p.to {
                env.fx.replies.push((to, p.reply));
            }
        }
        if !env.loggers.is_empty() && self.committed() >= self.logged + LOG_PUSH_BATCH {
            self.push_log(env);
        }
        if !self.cell_in_waiting.is_empty() {
            self.flush_cell_in(env);
        }
        if let Some(HandOff::Draining {
            to,
            drop_me,
            balance,
            ..
        }) = self.hand_off
        {
            if self.pending.is_empty() {
                self.send_hand_off(env, to, drop_me.then_some(env.me), balance);
            }
        }
    }

    // ----- logging nodes -----------------------------------------------------------

    /// The highest seq every counting secondary has: what is acknowledged.
    fn committed(&self) -> Seq {
        self.pending.front().map_or(self.last.seq, |p| p.seq - 1)
    }

    /// The mutations of the tail with `after < seq <= upto`. The tail is in seq order, so
    /// this is a binary search and a copy of just those: a commit costs what it
    /// streams, not the length of the tail.
    fn tail_between(&self, after: Seq, upto: Seq) -> Vec<Mutation> {
        self.log
            .after(after)
            .take_while(|m| m.version.seq <= upto)
            .cloned()
            .collect()
    }

    /// Primary, once per tick: stream the mutations acknowledged since the last push to
    /// every logging node, as one message per colony (a tick's worth of writes travels
    /// and is encoded together, which is what keeps a logger cheap for the primaries).
    /// Only acknowledged mutations go to the log, so a log never holds a write a
    /// failover took back. With no logger alive the mark still advances: a logger that
    /// appears later asks for what it lacks ([`Self::serve_log_probe`]).
    fn push_log(&mut self, env: &mut Env) {
        let commit = self.committed();
        if commit <= self.logged {
            return;
        }
        let from = self.logged;
        self.logged = commit;
        let entries = if env.loggers.is_empty() {
            Vec::new()
        } else {
            self.tail_between(from, commit)
        };
        // What was kept for the loggers alone may go now.
        let (max_entries, max_bytes, keep_after) = self.tail_bounds(env);
        self.log.trim(max_entries, max_bytes, keep_after);
        if entries.is_empty() {
            return;
        }
        let (&last, others) = env.loggers.split_last().expect("not empty");
        for &l in others {
            env.fx.sends.push((
                l,
                Msg::Log {
                    colony: self.colony,
                    entries: entries.clone(),
                },
            ));
        }
        env.fx.sends.push((
            last,
            Msg::Log {
                colony: self.colony,
                entries,
            },
        ));
    }

    /// Primary: a logging node has this colony up to `have`. Send it what follows, from
    /// the tail of mutations if the tail reaches back that far, else the whole colony.
    /// A log ahead of everything acknowledged here holds another history (the colony
    /// was recreated after every holder died): it gets the whole colony too. The
    /// snapshot is the primary's state (`last`), which may include a write still
    /// waiting for its acks, like any point-in-time dump.
    pub fn serve_log_probe(&mut self, env: &mut Env, logger: HostId, have: Seq) {
        if self.role != Role::Primary || !self.serving() {
            return;
        }
        self.push_log(env);
        if have == self.logged {
            return;
        }
        let tail_reaches = have < self.logged && self.log.reaches_back_to(have);
        let msg = if tail_reaches {
            Msg::Log {
                colony: self.colony,
                entries: self.tail_between(have, self.logged),
            }
        } else {
            Msg::LogSnapshot {
                colony: self.colony,
                at: self.last,
                cells: self.cells.to_vec(),
            }
        };
        env.fx.sends.push((logger, msg));
    }

    fn sweep_expired(&mut self, env: &mut Env) {
        if !env.quorum && env.cfg.refuse_writes_without_quorum {
            return;
        }
        for key in self.cells.expired(env.now, env.cfg.expiry_batch) {
            if self.cell_moves.contains_key(&key) {
                continue;
            }
            self.write(
                env,
                Op::Remove {
                    key,
                    why: RemoveWhy::Expired,
                },
                None,
                Reply::Ok,
            );
        }
    }

    // ----- cell migration ----------------------------------------------------------

    fn start_cell_move(&mut self, env: &mut Env, to: ReplyTo, key: Key, dest: ColonyId) {
        if dest == self.colony {
            env.fx.replies.push((to, Reply::Ok));
            return;
        }
        let Some(cell) = self.cells.live(&key, env.now).map(|c| c.into_owned()) else {
            env.fx.replies.push((to, Reply::Nil));
            return;
        };
        self.cell_moves.insert(
            key.clone(),
            CellMove {
                to_colony: dest,
                reply: to,
            },
        );
        env.fx.to_colony.push((
            dest,
            ColonyMsg::CellIn {
                from_colony: self.colony,
                key,
                cell,
            },
        ));
    }

    /// The primary of the target colony takes a migrating cell. Answered once the
    /// cell is replicated here (see [`Self::finish_cell_in`]).
    fn accept_cell(&mut self, env: &mut Env, from_colony: ColonyId, key: Key, cell: Cell) {
        if !self.serving() {
            env.fx
                .to_colony
                .push((from_colony, ColonyMsg::CellInDone { key, ok: false }));
            return;
        }
        let mut cell = cell;
        cell.version = Version {
            epoch: self.epoch,
            seq: self.last.seq + 1,
        };
        self.write(
            env,
            Op::Put {
                key: key.clone(),
                cell,
            },
            None,
            Reply::Ok,
        );
        // The ack is sent once this write is acknowledged: piggyback on pending by
        // remembering which colony waits.
        let seq = self.last.seq;
        self.cell_in_waiting.push((seq, from_colony, key));
        self.flush_cell_in(env);
    }

    fn flush_cell_in(&mut self, env: &mut Env) {
        let done_below = self.pending.front().map_or(Seq::MAX, |p| p.seq);
        let colony_waits = std::mem::take(&mut self.cell_in_waiting);
        for (seq, from_colony, key) in colony_waits {
            if seq < done_below {
                env.fx
                    .to_colony
                    .push((from_colony, ColonyMsg::CellInDone { key, ok: true }));
            } else {
                self.cell_in_waiting.push((seq, from_colony, key));
            }
        }
    }

    fn finish_cell_move(&mut self, env: &mut Env, key: Key, ok: bool) {
        let Some(mv) = self.cell_moves.remove(&key) else {
            return;
        };
        if !ok || !self.serving() {
            env.fx
                .replies
                .push((mv.reply, Reply::Error(CommandError::Busy(mv.to_colony))));
            return;
        }
        let expires_at = self.cells.get(&key).and_then(|c| c.expires_at);
        let version = Version {
            epoch: self.epoch,
            seq: self.last.seq + 1,
        };
        self.write(
            env,
            Op::Put {
                key: key.clone(),
                cell: Cell {
                    dna: Dna::Moved(mv.to_colony),
                    version,
                    expires_at,
                },
            },
            Some(mv.reply),
            Reply::Ok,
        );
        env.event(EventKind::CellMigrated {
            colony: self.colony,
            to_colony: mv.to_colony,
            key: String::from_utf8_lossy(&key).into_owned(),
        });
    }
}

// ----- the protocol ------------------------------------------------------------------

impl ColonyReplica {
    /// A colony-protocol message from `from`, stamped with the sender's `epoch`.
    pub fn on_msg(&mut self, env: &mut Env, from: HostId, epoch: Epoch, body: ColonyMsg) {
        match body {
            // Merges and cell transfers cross epochs and lineages by design.
            ColonyMsg::Merge {
                cells,
                lineage,
                deleted,
            } => return self.merge(env, cells, &lineage, deleted),
            ColonyMsg::CellIn {
                from_colony,
                key,
                cell,
            } => return self.accept_cell(env, from_colony, key, cell),
            ColonyMsg::CellInDone { key, ok } => return self.finish_cell_move(env, key, ok),
            ColonyMsg::Offer { have, rank } => return self.on_offer(env, from, epoch, have, rank),
            _ => {}
        }
        if epoch < self.epoch {
            // A stale sender: fence it, unless it only reports on an old epoch.
            if !matches!(body, ColonyMsg::Ack { .. } | ColonyMsg::Refuse { .. }) {
                let primary = if self.role == Role::Primary {
                    env.me
                } else {
                    self.primary
                };
                env.send(
                    from,
                    self.colony,
                    self.epoch,
                    ColonyMsg::Refuse {
                        current: self.epoch,
                        primary,
                    },
                );
            }
            return;
        }
        if let ColonyMsg::CloneOffer { .. } = body {
            return self.reset_for_clone(env, from, epoch);
        }
        if self.role == Role::Primary && epoch > self.epoch {
            match body {
                ColonyMsg::Refuse { current, primary } => {
                    self.deposed(env, primary, current);
                    return;
                }
                ColonyMsg::Drop { reason } => {
                    // The new primary after our hand-off drops us.
                    self.dropped(env, reason);
                    return;
                }
                _ => {
                    let base = match &body {
                        ColonyMsg::Members { base, .. } => Some(*base),
                        _ => None,
                    };
                    let diverged = base.is_none_or(|b| self.last > b);
                    self.step_down(env, from, epoch, diverged);
                    // Tell the new primary where we stand, or it keeps us "catching
                    // up" until its next write, which a quiet colony may never have
                    // (and a leave would wait for it).
                    if self.synced {
                        self.resync(env);
                    }
                }
            }
        }
        match self.role {
            Role::Primary => self.primary_msg(env, from, body),
            Role::Secondary => self.secondary_msg(env, from, epoch, body),
        }
    }

    fn primary_msg(&mut self, env: &mut Env, from: HostId, body: ColonyMsg) {
        match body {
            ColonyMsg::Ack { seq } => self.on_ack(env, from, seq),
            ColonyMsg::Resync { have } => {
                match self.members.iter().find(|m| m.host == from).map(|m| m.sync) {
                    // The host answers the offer (`CloneAccept`, `AlreadyHeld`) with
                    // what it holds when the offer arrives. A Resync ahead of that
                    // answer (links are FIFO) was sent before: it speaks of a copy the
                    // host may have dropped since, as an old primary retired in the
                    // tick that offered it the colony again has.
                    Some(MemberSync::Offered { .. }) => {}
                    Some(_) => self.catch_up(env, from, have),
                    None => env.send(
                        from,
                        self.colony,
                        self.epoch,
                        ColonyMsg::Drop {
                            reason: "not in the replica set".into(),
                        },
                    ),
                }
            }
            ColonyMsg::CloneAccept => {
                let since = self.last.seq;
                let now = env.now;
                let Some(m) = self.members.iter_mut().find(|m| m.host == from) else {
                    return;
                };
                let counted = match m.sync {
                    MemberSync::Offered { .. } => false,
                    // Its snapshot is on the way.
                    MemberSync::Cloning { .. } => return,
                    // The host holds an empty replica waiting for a snapshot, whatever
                    // we counted it for: it counts no more, and gets one.
                    MemberSync::CatchingUp { .. } | MemberSync::InSync => true,
                };
                m.sync = MemberSync::Cloning { since, at: now };
                m.acked = 0;
                if counted {
                    self.announce(env);
                } else {
                    self.announce_members(env);
                }
                self.send_snapshot(env, from);
            }
            ColonyMsg::AlreadyHeld { have } => {
                let offered = self
                    .members
                    .iter()
                    .any(|m| m.host == from && matches!(m.sync, MemberSync::Offered { .. }));
                if offered {
                    self.announce_members(env);
                    self.catch_up(env, from, have);
                }
            }
            ColonyMsg::Gone => self.on_host_down(env, from),
            ColonyMsg::HandOffRefuse => {
                // The host we balance primaries toward has as many as we do by now
                // (others handed it theirs first): stay primary, look elsewhere later.
                if let Some(HandOff::Sent { to, .. }) = self.hand_off {
                    if to == from {
                        self.hand_off = None;
                        self.refused
                            .insert(from, env.now + env.cfg.refusal_backoff_ms);
                    }
                }
            }
            ColonyMsg::CloneRefuse { retry_ms, .. } => {
                self.members.retain(|m| m.host != from);
                let wait = if retry_ms > 0 {
                    retry_ms.min(env.cfg.refusal_backoff_ms)
                } else {
                    env.cfg.refusal_backoff_ms
                };
                self.refused.insert(from, env.now + wait);
                if self.moving.is_some_and(|m| m.to == from) {
                    self.moving = None;
                }
            }
            ColonyMsg::Refuse { .. }
            | ColonyMsg::Members { .. }
            | ColonyMsg::Replicate { .. }
            | ColonyMsg::Snapshot { .. }
            | ColonyMsg::HandOff { .. }
            | ColonyMsg::Drop { .. } => {
                // Same epoch from someone else: only one host opens an epoch, so this
                // is a confused peer; it will converge through the directory.
            }
            _ => {}
        }
    }

    fn secondary_msg(&mut self, env: &mut Env, from: HostId, epoch: Epoch, body: ColonyMsg) {
        let new_epoch = epoch > self.epoch;
        if new_epoch {
            self.epoch = epoch;
            self.primary = from;
            self.election = Election::default();
        }
        match body {
            ColonyMsg::Replicate { m, commit } => {
                if !self.synced || from != self.primary {
                    return;
                }
                self.logged = self.logged.max(commit);
                if new_epoch {
                    self.resync(env);
                } else if m.version.seq == self.last.seq + 1 {
                    self.record(m, env);
                    self.ack(env);
                } else if m.version.seq <= self.last.seq {
                    self.ack(env);
                } else {
                    self.resync(env);
                }
            }
            ColonyMsg::Members { members, .. } => {
                if from != self.primary {
                    return;
                }
                let Some(mine) = members.iter().find(|m| m.host == env.me) else {
                    if self.synced {
                        self.dropped(env, "not in the replica set".into());
                    }
                    return;
                };
                self.in_sync = mine.in_sync;
                self.peers = members;
                if new_epoch && self.synced {
                    self.resync(env);
                }
            }
            ColonyMsg::Snapshot { at, cells, lineage } => {
                if from != self.primary {
                    return;
                }
                self.cells.replace(cells);
                self.last = at;
                self.lineage = lineage;
                self.log.clear();
                self.synced = true;
                self.ack(env);
            }
            ColonyMsg::Drop { reason } if from == self.primary => self.dropped(env, reason),
            ColonyMsg::Evict { host } if from == self.primary => {
                // Our primary took `host` out of the set and may not reach it: pass it on.
                // (The `Members` that follows takes it out of our peers.)
                env.send(
                    host,
                    self.colony,
                    self.epoch,
                    ColonyMsg::Evicted { by: from },
                );
            }
            ColonyMsg::Evicted { by } if by == self.primary && epoch == self.epoch => {
                self.dropped(env, "evicted: left writes unacknowledged".into())
            }
            ColonyMsg::HandOff {
                members, then_drop, ..
            } => {
                if !self.synced {
                    return;
                }
                self.peers = members;
                self.promote(env, "hand_off");
                self.moved_at = Some(env.now);
                if let Some(old) = then_drop {
                    self.retiring = Some(old);
                    self.retire_when_told(env);
                }
            }
            ColonyMsg::Refuse { current, primary } if current > self.epoch => {
                self.epoch = current;
                self.primary = primary;
                self.election = Election::default();
                if self.synced {
                    self.resync(env);
                }
            }
            _ => {}
        }
    }

    fn ack(&mut self, env: &mut Env) {
        env.send(
            self.primary,
            self.colony,
            self.epoch,
            ColonyMsg::Ack { seq: self.last.seq },
        );
    }

    fn resync(&mut self, env: &mut Env) {
        env.send(
            self.primary,
            self.colony,
            self.epoch,
            ColonyMsg::Resync { have: self.last },
        );
    }

    fn dropped(&mut self, env: &mut Env, reason: String) {
        env.fx.remove.push(self.colony);
        env.event(EventKind::ReplicaDropped {
            colony: self.colony,
            epoch: self.epoch,
            reason,
        });
    }

    /// Someone offered us a (new) replica of a colony we already hold: they are the
    /// primary now. A replica with data says so ([`ColonyMsg::AlreadyHeld`]) and keeps
    /// it: the primary sends only the tail after it when its history contains ours, a
    /// snapshot otherwise. A replica still waiting for its snapshot starts over.
    fn reset_for_clone(&mut self, env: &mut Env, from: HostId, epoch: Epoch) {
        if self.role == Role::Primary {
            if epoch == self.epoch {
                return;
            }
            self.step_down(env, from, epoch, true);
        }
        let mut next = Self::syncing(self.colony, epoch, from);
        next.refused = std::mem::take(&mut self.refused);
        next.cells = std::mem::take(&mut self.cells);
        if self.synced {
            next.synced = true;
            next.last = self.last;
            next.lineage = std::mem::take(&mut self.lineage);
            next.log = std::mem::take(&mut self.log);
            next.logged = self.logged;
            next.tombstones = std::mem::take(&mut self.tombstones);
            *self = next;
            env.send(
                from,
                self.colony,
                epoch,
                ColonyMsg::AlreadyHeld { have: self.last },
            );
        } else {
            next.cells.clear();
            *self = next;
            env.send(from, self.colony, epoch, ColonyMsg::CloneAccept);
        }
    }

    /// A primary learns that a newer one exists: it gives its cells to be merged (if
    /// they may hold writes the new one lacks) and becomes a secondary.
    fn step_down(&mut self, env: &mut Env, to: HostId, epoch: Epoch, merge: bool) {
        if merge && !self.cells.is_empty() {
            env.send(to, self.colony, self.epoch, self.merge_payload());
        }
        for p in std::mem::take(&mut self.pending) {
            if let Some(to) = p.to {
                env.fx
                    .replies
                    .push((to, Reply::Error(CommandError::Timeout)));
            }
        }
        for (_, mv) in std::mem::take(&mut self.cell_moves) {
            env.fx
                .replies
                .push((mv.reply, Reply::Error(CommandError::Busy(self.colony))));
        }
        self.role = Role::Secondary;
        self.primary = to;
        self.epoch = epoch;
        self.members.clear();
        self.moving = None;
        self.hand_off = None;
        self.election = Election::default();
        self.in_sync = false;
    }

    /// What a primary that lost its place hands its successor to merge: its cells and
    /// deletes as of its last acknowledged mutation. The writes still waiting for acks
    /// were never acknowledged (their clients hear a timeout); merged in at the heal
    /// they would land after writes the successor acknowledged since (an increment
    /// nobody was told about undoing an acknowledged delete). Their keys go as they
    /// were at the commit point, from the tail of mutations, or not at all when the
    /// tail does not reach back that far.
    pub fn merge_payload(&self) -> ColonyMsg {
        let commit = self.merge_commit.unwrap_or_else(|| self.committed());
        let mut lineage = self.lineage.clone();
        let mut cells = self.cells.to_vec();
        let mut deleted = self.tombstones.list();
        if commit < self.last.seq {
            for s in lineage.values_mut() {
                *s = (*s).min(commit);
            }
            let key_of = |m: &Mutation| -> Key {
                match &m.op {
                    Op::Put { key, .. } | Op::Remove { key, .. } => key.clone(),
                }
            };
            let mut open: std::collections::BTreeSet<Key> = self
                .log
                .iter()
                .filter(|m| m.version.seq > commit)
                .map(key_of)
                .collect();
            let touched = open.clone();
            let mut at_commit: Vec<(Key, Cell)> = Vec::new();
            let mut deleted_at_commit: Vec<(Key, Version)> = Vec::new();
            for m in self.log.iter().rev() {
                if open.is_empty() {
                    break;
                }
                if m.version.seq > commit || !open.remove(&key_of(m)) {
                    continue;
                }
                match &m.op {
                    Op::Put { key, cell } => at_commit.push((key.clone(), cell.clone())),
                    Op::Remove {
                        key,
                        why: RemoveWhy::Deleted,
                    } => deleted_at_commit.push((key.clone(), m.version)),
                    Op::Remove { .. } => {}
                }
            }
            cells.retain(|(k, _)| !touched.contains(k));
            cells.extend(at_commit);
            deleted.retain(|(k, _)| !touched.contains(k));
            deleted.extend(deleted_at_commit);
        }
        ColonyMsg::Merge {
            cells,
            lineage,
            deleted,
        }
    }

    /// This host was declared dead: stop serving. Pending writes get an uncertain
    /// outcome (timeout); the node keeps the cells aside to merge them later.
    pub fn fence(&mut self, fx: &mut Effects) {
        self.merge_commit = Some(self.committed());
        for p in std::mem::take(&mut self.pending) {
            if let Some(to) = p.to {
                fx.replies.push((to, Reply::Error(CommandError::Timeout)));
            }
        }
        for (_, mv) in std::mem::take(&mut self.cell_moves) {
            fx.replies
                .push((mv.reply, Reply::Error(CommandError::Busy(self.colony))));
        }
        self.members.clear();
        self.moving = None;
        self.hand_off = None;
        self.role = Role::Secondary;
    }

    /// A secondary learns from the directory that `primary` leads at `epoch`: follow
    /// it and ask to be caught up (a primary that does not count us answers `Drop`).
    pub fn follow(&mut self, env: &mut Env, epoch: Epoch, primary: HostId) {
        if self.role != Role::Secondary || epoch <= self.epoch {
            return;
        }
        self.epoch = epoch;
        self.primary = primary;
        self.election = Election::default();
        self.resync(env);
    }

    /// The directory names a newer primary that turned out not to exist: open an
    /// epoch above it and announce, so every host follows this primary again.
    pub fn reclaim(&mut self, env: &mut Env, stale: Epoch) {
        if self.role != Role::Primary || stale <= self.epoch {
            return;
        }
        self.epoch = stale.next(env.me);
        self.dir_version = 0;
        env.event(EventKind::ColonyPromoted {
            colony: self.colony,
            epoch: self.epoch,
            seq: self.last.seq,
            reason: "reclaimed".into(),
        });
        self.announce(env);
    }

    /// Gives up a hand-off whose target died or never answered. Once the `HandOff` went
    /// out, the target may have taken primacy at `epoch.next(target)` and told some
    /// hosts and secondaries before it died: this primary would then carry on below an
    /// epoch that fences it, and a later hand-off from it would open an epoch lower than
    /// that dead one, which every directory that heard of it prefers. So it moves above
    /// that epoch first ([`Self::reclaim`]); were the target alive and primary after
    /// all, the older of the two merges into the newer, as after any split.
    fn abandon_hand_off(&mut self, env: &mut Env) {
        if let Some(HandOff::Sent { to, .. }) = self.hand_off.take() {
            let theirs = self.epoch.next(to);
            self.reclaim(env, theirs);
        }
    }

    /// A newer primary refused us: merge into it and leave. Unless that primary is
    /// already dead here (it took primacy and died at once, say right after our own
    /// hand-off to it): the merge would go nowhere and this copy may be the last one,
    /// so this primary takes over above the dead one's epoch instead, as when a claim
    /// finds the directory's primary gone ([`Self::reclaim`]). A survivor that promoted
    /// itself meanwhile meets it at the next message; the older epoch merges into it.
    fn deposed(&mut self, env: &mut Env, primary: HostId, current: Epoch) {
        if !(env.alive)(primary) {
            self.reclaim(env, current);
            return;
        }
        self.step_down(env, primary, current, true);
        self.dropped(env, "deposed by a newer epoch".into());
    }

    // ----- primary: the replica set -----------------------------------------------

    fn announce_members(&mut self, env: &mut Env) {
        let infos = self.member_infos();
        let base = self.last;
        for m in self.members.iter().filter(|m| m.streaming()) {
            env.send(
                m.host,
                self.colony,
                self.epoch,
                ColonyMsg::Members {
                    members: infos.clone(),
                    base,
                },
            );
        }
    }

    fn send_snapshot(&mut self, env: &mut Env, to: HostId) {
        env.send(
            to,
            self.colony,
            self.epoch,
            ColonyMsg::Snapshot {
                at: self.last,
                cells: self.cells.to_vec(),
                lineage: self.lineage.clone(),
            },
        );
    }

    /// Bring `host` up to date from `have`: the tail if the log covers it and its
    /// history is a prefix of ours, a snapshot otherwise.
    fn catch_up(&mut self, env: &mut Env, host: HostId, have: Version) {
        let last = self.last.seq;
        let tail_ok = have.seq <= last
            && lineage_has(&self.lineage, have)
            && (have.seq == last || self.log.reaches_back_to(have.seq));
        let now = env.now;
        let Some(idx) = self.members.iter().position(|m| m.host == host) else {
            return;
        };
        let counted = self.members[idx].counts();
        if tail_ok {
            for m in self.log.after(have.seq) {
                env.send(
                    host,
                    self.colony,
                    self.epoch,
                    ColonyMsg::Replicate {
                        m: m.clone(),
                        commit: last,
                    },
                );
            }
            let mem = &mut self.members[idx];
            mem.acked = have.seq;
            mem.sync = if counted {
                MemberSync::CatchingUp { since: last }
            } else {
                MemberSync::Cloning {
                    since: last,
                    at: now,
                }
            };
            if have.seq == last {
                self.on_ack(env, host, last);
            }
        } else {
            let mem = &mut self.members[idx];
            mem.acked = 0;
            mem.sync = MemberSync::Cloning {
                since: last,
                at: now,
            };
            if counted {
                self.announce(env);
            }
            self.send_snapshot(env, host);
        }
    }

    fn on_ack(&mut self, env: &mut Env, from: HostId, seq: Seq) {
        let Some(m) = self.members.iter_mut().find(|m| m.host == from) else {
            return;
        };
        m.acked = m.acked.max(seq);
        let caught_up = match m.sync {
            MemberSync::Cloning { since, .. } | MemberSync::CatchingUp { since } => seq >= since,
            _ => false,
        };
        let was_clone = matches!(m.sync, MemberSync::Cloning { .. });
        if caught_up {
            m.sync = MemberSync::InSync;
            self.announce(env);
            match self.moving {
                Some(mv) if mv.to == from => self.finish_move(env, mv),
                _ if was_clone => env.event(EventKind::ColonyCloned {
                    colony: self.colony,
                    epoch: self.epoch,
                    to: from,
                    cells: self.cells.len() as u64,
                }),
                _ => {}
            }
        }
        self.try_complete(env);
    }

    fn finish_move(&mut self, env: &mut Env, mv: Move) {
        self.moving = None;
        self.moved_at = Some(env.now);
        match mv.role {
            Role::Secondary => {
                self.members.retain(|m| m.host != mv.from);
                env.send(
                    mv.from,
                    self.colony,
                    self.epoch,
                    ColonyMsg::Drop {
                        reason: "migrated".into(),
                    },
                );
                self.announce(env);
                env.event(EventKind::ColonyMigrated {
                    colony: self.colony,
                    epoch: self.epoch,
                    from: mv.from,
                    to: mv.to,
                    role: Role::Secondary,
                });
            }
            Role::Primary => {
                self.hand_off = Some(HandOff::Draining {
                    to: mv.to,
                    since: env.now,
                    drop_me: true,
                    balance: None,
                });
            }
        }
    }

    fn send_hand_off(
        &mut self,
        env: &mut Env,
        to: HostId,
        then_drop: Option<HostId>,
        balance: Option<u32>,
    ) {
        let mut members: Vec<MemberInfo> = self
            .member_infos()
            .into_iter()
            .filter(|m| m.host != to)
            .collect();
        members.push(MemberInfo {
            host: env.me,
            in_sync: true,
        });
        self.hand_off = Some(HandOff::Sent { to, since: env.now });
        env.send(
            to,
            self.colony,
            self.epoch,
            ColonyMsg::HandOff {
                members,
                then_drop,
                balance,
            },
        );
    }

    /// Drops the old primary of a hand-off (`then_drop`) once every other member has
    /// answered at this epoch, so knows who leads now. Dropped at once, as it used to
    /// be, its copy was gone when this host died before its word reached the others:
    /// they went on following the old primary, alive but empty, and nobody elected.
    /// Kept until then, it is a secondary of this epoch whose election, should this
    /// host die, brings the others along.
    fn retire_when_told(&mut self, env: &mut Env) {
        let Some(old) = self.retiring else {
            return;
        };
        if self.role != Role::Primary || !self.members.iter().any(|m| m.host == old) {
            self.retiring = None;
            return;
        }
        let told = self
            .members
            .iter()
            .all(|m| m.host == old || !matches!(m.sync, MemberSync::CatchingUp { .. }));
        if !told {
            return;
        }
        self.retiring = None;
        self.members.retain(|m| m.host != old);
        env.send(
            old,
            self.colony,
            self.epoch,
            ColonyMsg::Drop {
                reason: "primary handed off".into(),
            },
        );
        self.announce(env);
        env.event(EventKind::ColonyMigrated {
            colony: self.colony,
            epoch: self.epoch,
            from: old,
            to: env.me,
            role: Role::Primary,
        });
    }

    /// Become primary at the next epoch, with the other in-sync peers as members.
    fn promote(&mut self, env: &mut Env, reason: &str) {
        let me = env.me;
        let since = self.last.seq;
        self.role = Role::Primary;
        self.primary = me;
        self.epoch = self.epoch.next(me);
        self.members = self
            .peers
            .iter()
            .filter(|p| p.host != me && p.in_sync && (env.alive)(p.host))
            .map(|p| Member {
                host: p.host,
                sync: MemberSync::CatchingUp { since },
                acked: 0,
            })
            .collect();
        self.peers.clear();
        self.election = Election::default();
        self.dir_version = 0;
        self.synced = true;
        self.in_sync = true;
        env.event(EventKind::ColonyPromoted {
            colony: self.colony,
            epoch: self.epoch,
            seq: since,
            reason: reason.into(),
        });
        self.announce(env);
    }

    // ----- failure: elections -------------------------------------------------------

    /// Membership declared `host` dead (or it left).
    pub fn on_host_down(&mut self, env: &mut Env, host: HostId) {
        match self.role {
            Role::Primary => {
                let before = self.members.len();
                let counted = self.members.iter().any(|m| m.host == host && m.counts());
                self.members.retain(|m| m.host != host);
                if self.moving.is_some_and(|m| m.to == host || m.from == host) {
                    self.moving = None;
                }
                if let Some(HandOff::Draining { to, .. } | HandOff::Sent { to, .. }) = self.hand_off
                {
                    if to == host {
                        self.abandon_hand_off(env);
                    }
                }
                if counted {
                    self.announce(env);
                } else if before != self.members.len() {
                    self.announce_members(env);
                }
                self.try_complete(env);
            }
            Role::Secondary => {
                // Dead peers stay in `peers`: the set's size is the election's
                // denominator, and shrinking it would let a cut-off minority promote.
                if host == self.primary {
                    if self.synced && self.in_sync {
                        self.open_election(env);
                    } else {
                        // Not a candidate, but still a witness that this side holds
                        // part of the set: vote, then go.
                        for p in self.peers.iter().filter(|p| p.host != env.me) {
                            env.fx.sends.push((
                                p.host,
                                Msg::Colony {
                                    colony: self.colony,
                                    epoch: self.epoch,
                                    body: ColonyMsg::Offer {
                                        have: Version::default(),
                                        rank: u32::MAX,
                                    },
                                },
                            ));
                        }
                        self.dropped(env, "primary died before this replica caught up".into());
                    }
                } else if self.election.open {
                    // A candidate that died keeps its vote (it did answer this
                    // election) but can no longer win it: its host may be back as a
                    // new incarnation, alive and empty, which would never promote.
                    if let Some(offer) = self.election.offers.get_mut(&host) {
                        *offer = (Version::default(), u32::MAX);
                    }
                    self.try_decide(env, false);
                }
            }
        }
    }

    fn my_rank(&self, me: HostId) -> u32 {
        self.peers
            .iter()
            .position(|p| p.host == me)
            .map_or(u32::MAX, |i| i as u32)
    }

    fn open_election(&mut self, env: &mut Env) {
        if self.election.epoch != self.epoch {
            self.election = Election {
                epoch: self.epoch,
                ..Election::default()
            };
        }
        if !self.election.open {
            self.election.opened_at = env.now;
        }
        self.election.open = true;
        let rank = self.my_rank(env.me);
        self.election.offers.insert(env.me, (self.last, rank));
        let others: Vec<HostId> = self
            .peers
            .iter()
            .map(|p| p.host)
            .filter(|&h| h != env.me && (env.alive)(h))
            .collect();
        for h in others {
            env.send(
                h,
                self.colony,
                self.epoch,
                ColonyMsg::Offer {
                    have: self.last,
                    rank,
                },
            );
        }
        env.fx.timers.push((
            env.cfg.election_timeout_ms,
            self.colony,
            ColonyTimer::Election {
                epoch: self.epoch,
                round: 0,
            },
        ));
        self.try_decide(env, false);
    }

    fn on_offer(&mut self, env: &mut Env, from: HostId, epoch: Epoch, have: Version, rank: u32) {
        if self.role != Role::Secondary || epoch != self.epoch {
            return;
        }
        if self.election.epoch != epoch {
            self.election = Election {
                epoch,
                ..Election::default()
            };
        }
        self.election.offers.insert(from, (have, rank));
        if self.election.open {
            self.try_decide(env, false);
        }
    }

    fn try_decide(&mut self, env: &mut Env, timed_out: bool) {
        if !self.election.open || self.role != Role::Secondary || !env.quorum {
            return;
        }
        let me = env.me;
        let candidates: Vec<HostId> = self
            .peers
            .iter()
            .filter(|p| p.in_sync && (p.host == me || (env.alive)(p.host)))
            .map(|p| p.host)
            .collect();
        let all_in = candidates
            .iter()
            .all(|h| self.election.offers.contains_key(h));
        if !all_in && !timed_out {
            return;
        }
        // Raft's rule, for the colony's own set: offers (votes) from a strict majority
        // of the last known set, the dead primary included. A side cut off from most of
        // the set never opens an epoch that would later depose the real primary. A set
        // of two cannot have a majority without its primary: there, cluster quorum is
        // the only guard.
        let set_size = self.peers.len() + 1;
        let votes = self
            .peers
            .iter()
            .filter(|p| self.election.offers.contains_key(&p.host))
            .count();
        // Slow path: most of the set is on the other side of a split, and this side
        // has held cluster quorum for longer than a minority needs to notice it lost
        // it. Then this side is the one that serves; take over.
        let quorum_held =
            env.now.saturating_sub(self.election.opened_at) >= env.cfg.quorum_election_delay_ms;
        if set_size > 2 && votes * 2 <= set_size && !quorum_held {
            return;
        }
        let best = self
            .election
            .offers
            .iter()
            .filter(|(_, (v, rank))| *rank != u32::MAX || *v != Version::default())
            .filter(|(h, _)| **h == me || (env.alive)(**h))
            .max_by_key(|(h, (v, rank))| (*v, std::cmp::Reverse(*rank), std::cmp::Reverse(**h)))
            .map(|(h, _)| *h);
        if best == Some(me) {
            self.promote(env, "failover");
        }
    }

    /// A colony timer fired.
    pub fn on_timer(&mut self, env: &mut Env, timer: ColonyTimer) {
        match timer {
            ColonyTimer::Election { epoch, round } => {
                if self.role != Role::Secondary || !self.election.open || epoch != self.epoch {
                    return;
                }
                self.try_decide(env, true);
                if self.role == Role::Secondary && self.election.open && round < 100 {
                    env.fx.timers.push((
                        env.cfg.election_timeout_ms,
                        self.colony,
                        ColonyTimer::Election {
                            epoch,
                            round: round + 1,
                        },
                    ));
                }
            }
        }
    }

    // ----- split brain: merging divergent primaries ---------------------------------

    /// Cells from a fenced or deposed primary. Per cell: history we share is skipped; a
    /// cell only they changed is adopted; a cell both changed is a conflict, won by
    /// the higher version, and reported.
    fn merge(
        &mut self,
        env: &mut Env,
        cells: Vec<(Key, Cell)>,
        theirs: &Lineage,
        deleted: Vec<(Key, Version)>,
    ) {
        if self.role != Role::Primary {
            if self.primary != env.me {
                env.send(
                    self.primary,
                    self.colony,
                    self.epoch,
                    ColonyMsg::Merge {
                        cells,
                        lineage: theirs.clone(),
                        deleted,
                    },
                );
            }
            return;
        }
        for (key, inc) in cells {
            if lineage_has(&self.lineage, inc.version) {
                continue;
            }
            let adopt = match (self.cells.get(&key), self.tombstones.get(&key)) {
                (None, Some(deleted)) => {
                    // We deleted it; they changed it after the split: a conflict.
                    env.event(EventKind::MergeConflict {
                        colony: self.colony,
                        epoch: self.epoch,
                        key: String::from_utf8_lossy(&key).into_owned(),
                    });
                    inc.version > deleted
                }
                (None, None) => true,
                (Some(local), _) if *local == inc => false,
                (Some(local), _) if lineage_has(theirs, local.version) => true,
                (Some(local), _) => {
                    env.event(EventKind::MergeConflict {
                        colony: self.colony,
                        epoch: self.epoch,
                        key: String::from_utf8_lossy(&key).into_owned(),
                    });
                    inc.version > local.version
                }
            };
            if adopt && inc.is_live(env.now) {
                self.write(env, Op::Put { key, cell: inc }, None, Reply::Ok);
            }
        }
        for (key, deleted) in deleted {
            if lineage_has(&self.lineage, deleted) {
                continue;
            }
            let Some(local) = self.cells.get(&key) else {
                continue;
            };
            let remove = if lineage_has(theirs, local.version) {
                // They deleted what we both had: take the delete.
                true
            } else {
                env.event(EventKind::MergeConflict {
                    colony: self.colony,
                    epoch: self.epoch,
                    key: String::from_utf8_lossy(&key).into_owned(),
                });
                deleted > local.version
            };
            if remove {
                let op = Op::Remove {
                    key,
                    why: RemoveWhy::Deleted,
                };
                self.write(env, op, None, Reply::Ok);
            }
        }
    }

    // ----- the periodic step: expiry, watchdogs, population, placement --------------

    /// Called on every node tick.
    /// Whether [`Self::tick`] would do nothing: a secondary whose value log has not
    /// failed.
    pub fn tick_is_idle(&self) -> bool {
        self.role != Role::Primary && !self.cells.has_failure()
    }

    pub fn tick(&mut self, env: &mut Env) {
        if let Some(e) = self.cells.take_failure() {
            // A storage replica whose disk failed holds nothing we can trust.
            self.dropped(env, format!("value log failed: {e}"));
            return;
        }
        if self.role != Role::Primary {
            return;
        }
        if !self.refused.is_empty() {
            self.refused.retain(|_, until| *until > env.now);
        }
        if !env.quorum {
            return;
        }
        if !self.pending.is_empty() {
            // Writes held while this side had no quorum.
            self.try_complete(env);
            self.evict_laggards(env);
        }
        if env.placement_turn {
            self.sweep_expired(env);
        }
        self.push_log(env);
        self.watchdogs(env);
        self.retire_when_told(env);
        self.population_events(env);
        if self.hand_off.is_some() || !self.cell_moves.is_empty() {
            return;
        }
        let me = env.me;
        if env.leaving {
            // This copy goes with the hand-off: first bring the others up to the target
            // without it. A leave while another holder is down (or not yet replaced)
            // would otherwise hand off to the one survivor and drop this copy, and one
            // more death would lose the colony.
            let others = self
                .population(env)
                .saturating_sub(placement::host_slots(env.topo, me));
            if others < env.target {
                if self.clone_in_flight() {
                    return;
                }
                let mut set: Vec<HostId> = vec![me];
                set.extend(self.members.iter().map(|m| m.host));
                let exclude: Vec<HostId> = self.refused.keys().copied().collect();
                if let Some(to) =
                    placement::choose_clone_target(env.topo, &set, &exclude, &env.cfg.placement)
                {
                    self.offer_clone(env, to);
                    return;
                }
            }
            let best = self
                .members
                .iter()
                .filter(|m| m.sync == MemberSync::InSync)
                .filter(|m| {
                    env.topo
                        .get(m.host)
                        .is_some_and(|v| v.state == HostState::Alive)
                })
                .map(|m| m.host)
                .max_by(|a, b| {
                    // Primaries belong in memory: an ordinary host first, a storage
                    // node only when no other member can take it.
                    let key = |h: HostId| {
                        (
                            !placement::is_storage(env.topo, h),
                            env.topo
                                .get(h)
                                .map_or(0.0, |v| placement::attraction(v, &env.cfg.placement)),
                        )
                    };
                    let (oa, sa) = key(*a);
                    let (ob, sb) = key(*b);
                    oa.cmp(&ob).then(sa.total_cmp(&sb)).then(b.cmp(a))
                });
            if let Some(to) = best {
                self.moving = None;
                self.hand_off = Some(HandOff::Draining {
                    to,
                    since: env.now,
                    drop_me: true,
                    balance: None,
                });
                self.try_complete(env);
                return;
            }
        }
        if self.clone_in_flight() {
            return;
        }
        let counted = self.population(env);
        let all_in_sync = self.members.iter().all(|m| m.sync == MemberSync::InSync);
        let mut set: Vec<HostId> = vec![me];
        set.extend(self.members.iter().map(|m| m.host));
        let exclude: Vec<HostId> = self.refused.keys().copied().collect();
        if counted < env.target {
            if let Some(to) =
                placement::choose_clone_target(env.topo, &set, &exclude, &env.cfg.placement)
            {
                self.offer_clone(env, to);
            }
            return;
        }
        // A primary on a storage node with no ordinary host in its set brings one in
        // (then hands primacy to it): clients are served from memory whenever an
        // ordinary host can take the colony, whatever the population.
        let on_storage = placement::is_storage(env.topo, me);
        if on_storage
            && self
                .members
                .iter()
                .all(|m| placement::is_storage(env.topo, m.host))
        {
            let mut not_here = exclude.clone();
            not_here.extend(
                env.topo
                    .hosts()
                    .filter(|v| v.info.role == HostRole::Storage)
                    .map(|v| v.info.id),
            );
            if let Some(to) =
                placement::choose_clone_target(env.topo, &set, &not_here, &env.cfg.placement)
            {
                self.offer_clone(env, to);
                return;
            }
        }
        if !all_in_sync {
            return;
        }
        // (The old primary of a hand-off is dropped by `retire_when_told`.)
        if counted > env.target.max(1)
            && self.retiring.is_none()
            && self.drop_worst(env, &set, counted - env.target.max(1))
        {
            return;
        }
        if self.moving.is_none() && env.placement_turn {
            // A primary on a storage node gives primacy to an in-sync ordinary member
            // before it weighs migrations: the migration toward the (more attractive)
            // other storage node would otherwise move that member away each time, and
            // the colony would clone, drop and migrate in a loop with its primary left
            // on storage.
            if on_storage && self.balance_primaries(env) {
                return;
            }
            let roles: Vec<(HostId, Role)> = std::iter::once((me, Role::Primary))
                .chain(self.members.iter().map(|m| (m.host, Role::Secondary)))
                .collect();
            let memo = PlacementMemo::of(env, &roles, &exclude);
            if self.placement_memo == Some(memo) {
                return;
            }
            let found = placement::choose_migration_with_floor(
                env.topo,
                &roles,
                &exclude,
                &env.cfg.placement,
            );
            // While settling after the layout, only a rule is enforced, and not for a
            // member whose host's record has not arrived here yet (it was in the
            // layout; if it died, its death removes it from the set).
            let allowed = |(m, floor): &(placement::Migration, Option<f64>)| {
                env.optimise || (floor.is_none() && env.topo.contains(m.from))
            };
            if let Some((m, floor)) = found.filter(allowed) {
                let cooling = self
                    .moved_at
                    .is_some_and(|t| env.now < t + env.cfg.move_cooldown_ms);
                if floor.is_some() && cooling {
                    // (No memo: the next turn after the cooldown weighs it again.)
                    return;
                }
                self.moving = Some(Move {
                    from: m.from,
                    to: m.to,
                    role: m.role,
                });
                self.offer_clone_with_floor(env, m.to, floor);
                return;
            }
            if env.optimise && self.balance_primaries(env) {
                return;
            }
            // A secondary on a leaving host with nowhere to go is dropped: the leave
            // must finish, and the population settles on what fits.
            let stuck: Vec<HostId> = self
                .members
                .iter()
                .map(|m| m.host)
                .filter(|h| {
                    // (An unknown host counts as leaving, except while settling after
                    // the layout: its record may not have arrived yet.)
                    env.topo
                        .get(*h)
                        .map_or(env.optimise, |v| v.state == HostState::Leaving)
                })
                .collect();
            if stuck.is_empty() {
                self.placement_memo = Some(memo);
            }
            for h in stuck {
                self.members.retain(|m| m.host != h);
                env.send(
                    h,
                    self.colony,
                    self.epoch,
                    ColonyMsg::Drop {
                        reason: "host leaving, no other host can take it".into(),
                    },
                );
                self.announce(env);
            }
        }
    }

    /// Hand primacy to an in-sync secondary whose host holds at least two primaries
    /// fewer than ours: spreads client load without moving data.
    ///
    /// A primary on a storage node hands off to any in-sync ordinary host (the one with
    /// the fewest primaries): clients are served from memory, and the storage node keeps
    /// its copy as a secondary. Primacy never goes to a storage node this way.
    fn balance_primaries(&mut self, env: &mut Env) -> bool {
        let on_storage = placement::is_storage(env.topo, env.me);
        let mine = env.topo.get(env.me).map_or(0, |v| v.primaries);
        let best = self
            .members
            .iter()
            .filter(|m| m.sync == MemberSync::InSync)
            .filter(|m| !placement::is_storage(env.topo, m.host))
            .filter(|m| on_storage || !self.refused.contains_key(&m.host))
            .filter_map(|m| {
                env.topo
                    .get(m.host)
                    .filter(|v| v.state == HostState::Alive)
                    .map(|v| (v.primaries, m.host))
            })
            .min();
        match best {
            Some((theirs, to)) if on_storage || theirs + 2 <= mine => {
                self.hand_off = Some(HandOff::Draining {
                    to,
                    since: env.now,
                    drop_me: false,
                    balance: (!on_storage).then_some(mine),
                });
                self.try_complete(env);
                // Count the move now, so the other colonies of this host do not all
                // pick the same host before the next load report.
                adjust_primaries(env.topo, env.me, to);
                true
            }
            _ => false,
        }
    }

    fn offer_clone(&mut self, env: &mut Env, to: HostId) {
        self.offer_clone_with_floor(env, to, None);
    }

    /// Offer a clone; `floor` for an optional move (see
    /// [`placement::choose_migration_with_floor`]).
    fn offer_clone_with_floor(&mut self, env: &mut Env, to: HostId, floor: Option<f64>) {
        self.members.push(Member {
            host: to,
            sync: MemberSync::Offered { at: env.now },
            acked: 0,
        });
        env.send(to, self.colony, self.epoch, ColonyMsg::CloneOffer { floor });
    }

    /// Drop the member whose absence leaves the best set, among those whose copy counts
    /// for at most `excess` ([`placement::slots`]): a drop never takes the population
    /// below the target. A primary on a storage node keeps its ordinary members (one
    /// of them takes primacy next). Whether a member was dropped.
    fn drop_worst(&mut self, env: &mut Env, set: &[HostId], excess: u32) -> bool {
        let me = env.me;
        let topo: &Topology = env.topo;
        let on_storage = placement::is_storage(topo, me);
        let droppable = self
            .members
            .iter()
            .map(|m| m.host)
            .filter(|h| placement::host_slots(topo, *h) <= excess)
            .filter(|h| !on_storage || placement::is_storage(topo, *h));
        let worst = droppable.max_by(|a, b| {
            let without =
                |x: HostId| -> Vec<HostId> { set.iter().copied().filter(|h| *h != x).collect() };
            let sa = placement::set_score(env.topo, &without(*a), &env.cfg.placement);
            let sb = placement::set_score(env.topo, &without(*b), &env.cfg.placement);
            sa.total_cmp(&sb).then(a.cmp(b))
        });
        if let Some(h) = worst {
            debug_assert_ne!(h, me);
            self.members.retain(|m| m.host != h);
            env.send(
                h,
                self.colony,
                self.epoch,
                ColonyMsg::Drop {
                    reason: "above target population".into(),
                },
            );
            self.announce(env);
            return true;
        }
        false
    }

    fn watchdogs(&mut self, env: &mut Env) {
        let timeout = env.cfg.transfer_timeout_ms;
        let now = env.now;
        let stale: Vec<HostId> = self
            .members
            .iter()
            .filter(|m| match m.sync {
                MemberSync::Offered { at } | MemberSync::Cloning { at, .. } => {
                    now.saturating_sub(at) > timeout
                }
                _ => false,
            })
            .map(|m| m.host)
            .collect();
        for h in stale {
            self.members.retain(|m| m.host != h);
            self.refused.insert(h, now + env.cfg.refusal_backoff_ms);
            if self.moving.is_some_and(|m| m.to == h) {
                self.moving = None;
            }
            env.send(
                h,
                self.colony,
                self.epoch,
                ColonyMsg::Drop {
                    reason: "clone timed out".into(),
                },
            );
            self.announce_members(env);
        }
        if let Some(HandOff::Draining { since, .. } | HandOff::Sent { since, .. }) = self.hand_off {
            if now.saturating_sub(since) > timeout {
                self.abandon_hand_off(env);
            }
        }
    }

    /// Take out of the set every counted secondary that has left the oldest pending
    /// write unacknowledged for [`ColonyConfig::ack_timeout_ms`] while another
    /// acknowledged it: membership sees its host alive (probing indirectly), but this
    /// primary cannot reach it or it cannot reach us (a broken link, a partial
    /// partition). The writes then complete with the others, and the colony, below its
    /// population, clones a replica elsewhere (the evicted host is refused for a
    /// while). The evicted copy is told directly and, since the broken link may be
    /// ours, through every member that acknowledged the write (it reached us, so it is
    /// reachable): it drops its copy rather than stand in an election, alone, with a
    /// copy that lacks what was acknowledged without it.
    ///
    /// When every counted secondary lags, nothing is evicted: the fault is more likely
    /// this primary's, and the writes wait (as they do with a single secondary).
    fn evict_laggards(&mut self, env: &mut Env) {
        let Some(oldest) = self.pending.front() else {
            return;
        };
        if env.now.saturating_sub(oldest.at) < env.cfg.ack_timeout_ms {
            return;
        }
        let seq = oldest.seq;
        let (keeping_up, lagging): (Vec<&Member>, Vec<&Member>) = self
            .members
            .iter()
            .filter(|m| m.counts())
            .partition(|m| m.acked >= seq);
        if keeping_up.is_empty() || lagging.is_empty() {
            return;
        }
        let relays: Vec<HostId> = keeping_up.iter().map(|m| m.host).collect();
        let lagging: Vec<HostId> = lagging.iter().map(|m| m.host).collect();
        for h in lagging {
            tracing::warn!(
                colony = self.colony,
                host = h,
                seq,
                "a secondary left a write unacknowledged too long; taken out of the set"
            );
            self.members.retain(|m| m.host != h);
            self.refused.insert(h, env.now + env.cfg.refusal_backoff_ms);
            if self.moving.is_some_and(|m| m.from == h || m.to == h) {
                self.moving = None;
            }
            env.send(
                h,
                self.colony,
                self.epoch,
                ColonyMsg::Drop {
                    reason: "left writes unacknowledged".into(),
                },
            );
            for &r in &relays {
                env.send(r, self.colony, self.epoch, ColonyMsg::Evict { host: h });
            }
        }
        if let Some(HandOff::Draining { to, .. }) = self.hand_off {
            if !self.members.iter().any(|m| m.host == to) {
                self.hand_off = None;
            }
        }
        self.announce(env);
        self.try_complete(env);
    }

    /// A new replica is offered or receiving its snapshot.
    fn clone_in_flight(&self) -> bool {
        self.members.iter().any(|m| {
            matches!(
                m.sync,
                MemberSync::Offered { .. } | MemberSync::Cloning { .. }
            )
        })
    }

    /// Replicas that count, as [`placement::slots`] weighs them: this primary and its
    /// counting secondaries (a storage node's copy counts twice).
    fn population(&self, env: &Env) -> u32 {
        placement::host_slots(env.topo, env.me)
            + self
                .members
                .iter()
                .filter(|m| m.counts())
                .map(|m| placement::host_slots(env.topo, m.host))
                .sum::<u32>()
    }

    fn population_events(&mut self, env: &mut Env) {
        let wanted = env.cfg.replicas;
        if env.target < wanted && !self.reduced {
            self.reduced = true;
            env.event(EventKind::PopulationReduced {
                colony: self.colony,
                epoch: self.epoch,
                target: env.target,
                wanted,
            });
        } else if env.target >= wanted && self.reduced {
            let population = self.population(env);
            if population >= wanted {
                self.reduced = false;
                env.event(EventKind::PopulationRestored {
                    colony: self.colony,
                    epoch: self.epoch,
                    population,
                });
            }
        }
    }
}

fn adjust_primaries(topo: &mut Topology, from: HostId, to: HostId) {
    if let Some(mut v) = topo.get(from).cloned() {
        v.primaries = v.primaries.saturating_sub(1);
        topo.upsert(v);
    }
    if let Some(mut v) = topo.get(to).cloned() {
        v.primaries += 1;
        topo.upsert(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::cell::SetCond;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, VecDeque};

    const P: HostId = 0;

    /// One primary and two secondaries wired by hand, with per-link FIFO queues.
    struct Trio {
        reps: BTreeMap<HostId, ColonyReplica>,
        links: BTreeMap<(HostId, HostId), VecDeque<(Epoch, ColonyMsg)>>,
        topo: Topology,
        cfg: ColonyConfig,
        /// The primary's store after each seq.
        history: BTreeMap<Seq, CellStore>,
        acked: Vec<ReplyTo>,
        now: Tick,
        /// Hosts the membership declared dead.
        dead: BTreeSet<HostId>,
        /// Hosts whose replica asked to be removed.
        removed: Vec<HostId>,
        /// Whether a step is the colony's placement turn.
        turn: bool,
    }

    impl Trio {
        fn new() -> Self {
            let mut reps = BTreeMap::new();
            let mut p = ColonyReplica::genesis(0, P, Epoch::genesis(P));
            p.members = [1, 2]
                .iter()
                .map(|&h| Member {
                    host: h,
                    sync: MemberSync::InSync,
                    acked: 0,
                })
                .collect();
            reps.insert(P, p);
            for h in [1, 2] {
                let mut s = ColonyReplica::syncing(0, Epoch::genesis(P), P);
                s.synced = true;
                s.in_sync = true;
                reps.insert(h, s);
            }
            let mut history = BTreeMap::new();
            history.insert(0, CellStore::default());
            Trio {
                reps,
                links: BTreeMap::new(),
                topo: Topology::new(),
                cfg: ColonyConfig {
                    log_tail: 8,
                    ..ColonyConfig::default()
                },
                history,
                acked: Vec::new(),
                now: 0,
                dead: BTreeSet::new(),
                removed: Vec::new(),
                turn: false,
            }
        }

        /// A trio that took `n` writes, every message delivered.
        fn written(n: u64) -> Self {
            let mut t = Trio::new();
            for i in 1..=n {
                t.write(i);
            }
            settle(&mut t);
            t
        }

        fn step(&mut self, host: HostId, f: impl FnOnce(&mut ColonyReplica, &mut Env)) {
            let mut fx = Effects::default();
            let dead = &self.dead;
            let alive = |h: HostId| !dead.contains(&h);
            let leaving = self
                .topo
                .get(host)
                .is_some_and(|v| v.state == HostState::Leaving);
            let mut env = Env {
                now: self.now,
                me: host,
                leaving,
                cfg: &self.cfg,
                topo: &mut self.topo,
                alive: &alive,
                quorum: true,
                target: 3,
                placement_turn: self.turn,
                optimise: true,
                loggers: &[],
                tail_bytes: self.cfg.log_tail_bytes,
                fx: &mut fx,
            };
            f(self.reps.get_mut(&host).unwrap(), &mut env);
            if !fx.remove.is_empty() {
                self.removed.push(host);
            }
            for (to, msg) in fx.sends {
                if let Msg::Colony { epoch, body, .. } = msg {
                    self.links
                        .entry((host, to))
                        .or_default()
                        .push_back((epoch, body));
                }
            }
            self.acked.extend(fx.replies.into_iter().map(|(to, _)| to));
            let p = &self.reps[&P];
            self.history
                .entry(p.last.seq)
                .or_insert_with(|| p.cells.clone());
        }

        fn write(&mut self, i: u64) {
            let cmd = Command::Set {
                key: format!("k{}", i % 5).into(),
                value: format!("v{i}").into(),
                ttl_ms: None,
                cond: SetCond::Always,
            };
            self.step(P, |r, env| r.client(env, ReplyTo::new(P, i), cmd));
        }

        /// Deliver (or drop) the head of the `n`-th non-empty link.
        fn deliver(&mut self, n: usize, drop: bool) {
            let busy: Vec<(HostId, HostId)> = self
                .links
                .iter()
                .filter(|(_, q)| !q.is_empty())
                .map(|(k, _)| *k)
                .collect();
            if busy.is_empty() {
                return;
            }
            let (from, to) = busy[n % busy.len()];
            let (epoch, body) = self
                .links
                .get_mut(&(from, to))
                .unwrap()
                .pop_front()
                .unwrap();
            if drop && matches!(body, ColonyMsg::Replicate { .. } | ColonyMsg::Ack { .. }) {
                return;
            }
            self.step(to, |r, env| r.on_msg(env, from, epoch, body));
        }

        fn check_prefix(&self) {
            let p = &self.reps[&P];
            for h in [1, 2] {
                let s = &self.reps[&h];
                assert!(s.last.seq <= p.last.seq, "secondary ahead of primary");
                let expect = &self.history[&s.last.seq];
                assert_eq!(
                    &s.cells, expect,
                    "secondary {h} at seq {} diverged",
                    s.last.seq
                );
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Action {
        Write,
        Deliver(usize),
        Drop(usize),
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            3 => Just(Action::Write),
            6 => (0usize..8).prop_map(Action::Deliver),
            1 => (0usize..8).prop_map(Action::Drop),
        ]
    }

    proptest! {
        #[test]
        fn secondaries_stay_a_prefix_of_the_primary(actions in proptest::collection::vec(action(), 1..200)) {
            let mut t = Trio::new();
            let mut writes = 0;
            for a in actions {
                match a {
                    Action::Write => { writes += 1; t.write(writes); }
                    Action::Deliver(n) => t.deliver(n, false),
                    Action::Drop(n) => t.deliver(n, true),
                }
                t.check_prefix();
            }
            // Heal: deliver everything; a secondary that lost messages asks again on
            // the next write, so keep writing until all acks are in.
            for round in 0..50 {
                for _ in 0..10_000 {
                    if t.links.values().all(|q| q.is_empty()) { break; }
                    t.deliver(0, false);
                    t.check_prefix();
                }
                if t.acked.len() as u64 == writes + round { break; }
                t.write(10_000 + round);
            }
            let p = &t.reps[&P];
            for h in [1, 2] {
                prop_assert_eq!(&t.reps[&h].cells, &p.cells);
            }
            prop_assert!(p.pending.is_empty(), "every write is eventually acknowledged");
        }
    }

    /// A primary handed off to a host that died at once; a secondary that heard of the
    /// new epoch refuses the old primary. With the newer primary dead, the old one's
    /// copy may be the last: it takes over above the dead epoch instead of merging into
    /// nothing and dropping. With the newer primary alive, it merges and drops.
    #[test]
    fn a_primary_refused_for_a_dead_newer_primary_takes_over() {
        for newer_alive in [false, true] {
            let mut t = Trio::new();
            t.write(1);
            let newer = Epoch::genesis(P).next(2);
            if !newer_alive {
                t.dead.insert(2);
            }
            t.step(P, |r, env| {
                r.on_msg(
                    env,
                    1,
                    newer,
                    ColonyMsg::Refuse {
                        current: newer,
                        primary: 2,
                    },
                )
            });
            let p = &t.reps[&P];
            if newer_alive {
                assert_eq!(t.removed, vec![P], "merged into the live primary and left");
                assert_eq!(p.role, Role::Secondary);
            } else {
                assert!(t.removed.is_empty(), "the last copy is kept");
                assert_eq!(p.role, Role::Primary);
                assert!(p.epoch > newer, "above the dead primary's epoch");
                assert_eq!(p.cells.len(), 1);
            }
        }
    }

    /// The target of a hand-off dies (or never answers) after the `HandOff` went out: it
    /// may have taken primacy at the next epoch and told some hosts. The old primary
    /// carries on above that epoch, so that a later hand-off from it can not open an
    /// epoch every directory that heard of the dead one would ignore. A refused
    /// hand-off (the target never took primacy) leaves the epoch as it was.
    #[test]
    fn a_primary_whose_hand_off_target_died_moves_above_the_epoch_it_may_have_opened() {
        for how in ["died", "timed out", "refused"] {
            let mut t = Trio::new();
            t.write(1);
            settle(&mut t);
            let before = t.reps[&P].epoch;
            t.step(P, |r, env| r.send_hand_off(env, 2, None, None));
            // The HandOff is lost with its target (or ignored, for "timed out").
            t.links.clear();
            match how {
                "died" => {
                    t.dead.insert(2);
                    t.step(P, |r, env| r.on_host_down(env, 2));
                }
                "timed out" => {
                    t.now += t.cfg.transfer_timeout_ms + 1;
                    t.step(P, |r, env| r.watchdogs(env));
                }
                _ => t.step(P, |r, env| {
                    r.on_msg(env, 2, before, ColonyMsg::HandOffRefuse)
                }),
            }
            let p = &t.reps[&P];
            assert_eq!(p.role, Role::Primary, "{how}");
            assert!(p.hand_off.is_none(), "{how}");
            if how == "refused" {
                assert_eq!(p.epoch, before, "a refused hand-off opened no epoch");
            } else {
                assert!(
                    p.epoch > before.next(2),
                    "{how}: {} not above {}",
                    p.epoch,
                    before.next(2)
                );
            }
        }
    }

    /// A hand-off that drops the old primary (`then_drop`, as a leave does) keeps the
    /// old copy until every other member has answered the new primary. Were the new
    /// primary to die first, the others would still follow the old one: with its copy
    /// dropped, nobody would ever elect (`hand-off-kills` found it).
    #[test]
    fn the_old_primary_of_a_hand_off_is_dropped_only_once_the_others_know_the_new_one() {
        let mut t = Trio::new();
        t.write(1);
        settle(&mut t);
        t.step(P, |r, env| r.send_hand_off(env, 1, Some(P), None));
        let (epoch, hand_off) = t
            .links
            .get_mut(&(P, 1))
            .and_then(|q| q.pop_front())
            .expect("the HandOff");
        t.step(1, |r, env| r.on_msg(env, P, epoch, hand_off));
        let drop_sent = |t: &Trio| {
            t.links
                .get(&(1, P))
                .is_some_and(|q| q.iter().any(|(_, m)| matches!(m, ColonyMsg::Drop { .. })))
        };
        assert_eq!(t.reps[&1].role, Role::Primary);
        assert!(!drop_sent(&t), "no Drop before host 2 answered");
        t.step(1, |r, env| r.tick(env));
        assert!(!drop_sent(&t), "nor at a tick");
        assert!(t.reps[&1].members.iter().any(|m| m.host == P));
        // Host 2 hears of the new primary and answers; the next tick lets the old go.
        settle(&mut t);
        t.step(1, |r, env| r.tick(env));
        settle(&mut t);
        assert_eq!(t.removed, vec![P], "the old primary dropped its copy");
        assert!(t.reps[&1].members.iter().all(|m| m.host != P));
        assert_eq!(t.reps[&2].primary, 1);
    }

    /// The candidate that would win an election dies, and its host is back (a new
    /// incarnation, alive and empty) by the time the verdict arrives: its offer keeps
    /// counting as a vote but can no longer win, and the survivor promotes. It used to
    /// wait for the empty host to promote, forever (`hand-off-kills` seed 1025).
    #[test]
    fn a_dead_candidate_back_as_a_new_incarnation_does_not_win_the_election() {
        let mut t = Trio::new();
        t.write(1);
        t.step(P, |r, env| r.announce_members(env));
        settle(&mut t);
        assert_eq!(t.reps[&2].peers.len(), 2, "the secondaries know the set");
        t.dead.insert(P);
        t.step(1, |r, env| r.on_host_down(env, P));
        t.step(2, |r, env| r.on_host_down(env, P));
        let (epoch, offer) = t
            .links
            .get_mut(&(1, 2))
            .and_then(|q| q.pop_front())
            .expect("host 1's offer");
        t.step(2, |r, env| r.on_msg(env, 1, epoch, offer));
        assert_eq!(t.reps[&2].role, Role::Secondary, "host 1 outranks host 2");
        // Host 1 died before it promoted; its verdict arrives after it restarted.
        t.step(2, |r, env| r.on_host_down(env, 1));
        assert_eq!(t.reps[&2].role, Role::Primary);
        assert!(t.reps[&2].epoch > Epoch::genesis(P));
    }

    #[test]
    fn a_write_is_acknowledged_only_after_every_in_sync_secondary() {
        let mut t = Trio::new();
        t.write(1);
        assert!(t.acked.is_empty(), "no ack before the secondaries");
        t.deliver(0, false); // replicate to 1
        t.deliver(0, false); // ack from 1 (or replicate to 2)
        let delivered_all = |t: &Trio| t.links.values().all(|q| q.is_empty());
        while !delivered_all(&t) {
            let before = t.acked.len();
            t.deliver(0, false);
            if !delivered_all(&t) {
                assert_eq!(before, 0);
            }
        }
        assert_eq!(t.acked.len(), 1);
    }

    /// Runs every message until the links are empty.
    fn settle(t: &mut Trio) {
        while t.links.values().any(|q| !q.is_empty()) {
            t.deliver(0, false);
        }
    }

    /// Deliver everything except what crosses the (cut) links between `a` and `b`,
    /// which is lost.
    fn settle_cut(t: &mut Trio, a: HostId, b: HostId) {
        loop {
            for (&(from, to), q) in t.links.iter_mut() {
                if (from, to) == (a, b) || (from, to) == (b, a) {
                    q.clear();
                }
            }
            if t.links.values().all(|q| q.is_empty()) {
                return;
            }
            t.deliver(0, false);
        }
    }

    /// The link between the primary and secondary 2 breaks; membership still sees
    /// both alive. The write waits `ack_timeout_ms` for 2, then 2 is taken out of the
    /// set, the write is acknowledged with 1's ack, and 2 hears of it through 1 (the
    /// direct `Drop` is lost on the cut link) and drops its copy.
    #[test]
    fn a_secondary_that_stops_acknowledging_is_evicted_and_told_through_another() {
        let mut t = Trio::written(1);
        let acked = t.acked.len();
        t.write(2);
        settle_cut(&mut t, P, 2);
        assert_eq!(t.acked.len(), acked, "the write waits for 2");
        t.now += t.cfg.ack_timeout_ms - 1;
        t.step(P, |r, env| r.tick(env));
        assert_eq!(t.reps[&P].members.len(), 2, "not before the timeout");
        t.now += 1;
        t.step(P, |r, env| r.tick(env));
        let p = &t.reps[&P];
        assert_eq!(p.members.iter().map(|m| m.host).collect::<Vec<_>>(), [1]);
        assert!(p.pending.is_empty(), "acknowledged without 2");
        assert_eq!(t.acked.len(), acked + 1);
        assert!(
            p.refused.contains_key(&2),
            "not offered the colony again at once"
        );
        let to_1: Vec<&str> = t.links[&(P, 1)].iter().map(|(_, m)| m.kind()).collect();
        assert!(to_1.contains(&"evict"), "{to_1:?}");
        settle_cut(&mut t, P, 2);
        assert_eq!(t.removed, [2], "2 dropped its copy");
        assert!(
            t.reps[&1].peers.iter().all(|p| p.host != 2),
            "1 no longer elects with 2"
        );
    }

    /// When every secondary lags, the fault is more likely the primary's own: nobody
    /// is evicted and the write waits.
    #[test]
    fn nobody_is_evicted_when_every_secondary_lags() {
        let mut t = Trio::written(1);
        t.write(2);
        for q in t.links.values_mut() {
            q.clear();
        }
        t.now += 10 * t.cfg.ack_timeout_ms;
        t.step(P, |r, env| r.tick(env));
        let p = &t.reps[&P];
        assert_eq!(p.members.len(), 2);
        assert_eq!(p.pending.len(), 1);
        assert!(t.links.values().flatten().all(|(_, m)| m.kind() != "evict"));
    }

    /// Like [`settle`]; the kinds of the messages delivered.
    fn settle_seeing(t: &mut Trio) -> Vec<&'static str> {
        let mut seen = Vec::new();
        while let Some(q) = t.links.values().find(|q| !q.is_empty()) {
            seen.push(q.front().map_or("", |(_, m)| m.kind()));
            t.deliver(0, false);
        }
        seen
    }

    /// The new primary of a hand-off drops the old one (`Drop`) and, in the same tick,
    /// offers it the colony again (a primary on a storage node brings an ordinary host
    /// in). The old copy's Resync, sent before either arrived, reaches the primary
    /// after the offer went out. It must not count the host in sync: the host dropped
    /// that copy and waits, empty, for a snapshot. (At 78e7475 `storage-two` seed 1045
    /// met this: the colony stopped taking writes, and was lost with its storage node.)
    #[test]
    fn a_resync_sent_before_an_offer_arrived_does_not_count_the_host_in_sync() {
        let mut t = Trio::written(3);
        t.step(1, |r, env| r.resync(env));
        t.step(P, |r, env| {
            r.members.retain(|m| m.host != 1);
            let epoch = r.epoch;
            let reason = "primary handed off".into();
            env.send(1, 0, epoch, ColonyMsg::Drop { reason });
            r.offer_clone(env, 1);
        });
        let mut from_p = || {
            t.links
                .get_mut(&(P, 1))
                .and_then(|q| q.pop_front())
                .unwrap()
        };
        let (epoch, drop) = from_p();
        let (_, offer) = from_p();
        assert!(matches!(offer, ColonyMsg::CloneOffer { .. }), "{offer:?}");
        t.step(1, |r, env| r.on_msg(env, P, epoch, drop));
        assert_eq!(t.removed, vec![1], "host 1 dropped its copy");
        // The offer finds no replica on host 1: the node makes an empty one, which
        // accepts (`Node::on_clone_offer`).
        t.reps.insert(1, ColonyReplica::syncing(0, epoch, P));
        t.step(1, |_, env| env.send(P, 0, epoch, ColonyMsg::CloneAccept));
        let seen = settle_seeing(&mut t);
        assert!(seen.contains(&"snapshot"), "{seen:?}");
        let p = &t.reps[&P];
        assert!(t.reps[&1].synced, "host 1 got its snapshot");
        assert_eq!(t.reps[&1].cells, p.cells);
        assert!(p
            .members
            .iter()
            .any(|m| m.host == 1 && m.sync == MemberSync::InSync));
    }

    /// A host counted in sync that answers `CloneAccept` holds an empty replica that
    /// waits for a snapshot, however its copy went: it stops counting until it has
    /// one, and gets one.
    #[test]
    fn a_clone_accept_from_a_counted_member_brings_a_snapshot() {
        let mut t = Trio::written(3);
        let epoch = t.reps[&P].epoch;
        t.reps.insert(1, ColonyReplica::syncing(0, epoch, P));
        t.step(1, |_, env| env.send(P, 0, epoch, ColonyMsg::CloneAccept));
        t.deliver(0, false);
        let sync_of_1 = |t: &Trio| {
            let p = &t.reps[&P];
            p.members.iter().find(|m| m.host == 1).map(|m| m.sync)
        };
        assert!(
            matches!(sync_of_1(&t), Some(MemberSync::Cloning { .. })),
            "{:?}",
            sync_of_1(&t)
        );
        settle(&mut t);
        assert!(t.reps[&1].synced);
        assert_eq!(t.reps[&1].cells, t.reps[&P].cells);
        assert_eq!(sync_of_1(&t), Some(MemberSync::InSync));
    }

    /// The clone offers the primary has sent, in order.
    fn offers_from_p(t: &Trio) -> Vec<HostId> {
        let offered = |(&(from, to), q): (&(HostId, HostId), &VecDeque<(Epoch, ColonyMsg)>)| {
            let offer = q
                .iter()
                .any(|(_, m)| matches!(m, ColonyMsg::CloneOffer { .. }));
            (from == P && offer).then_some(to)
        };
        t.links.iter().filter_map(offered).collect()
    }

    /// Both secondaries sit on busy hosts and two idle hosts are free (each host in a
    /// box and zone of its own). The colony moves one secondary at its placement turn;
    /// the other waits until `move_cooldown_ms` after that move has passed, however
    /// many turns come in between.
    #[test]
    fn an_optional_move_waits_out_the_cooldown_after_the_last() {
        use crate::core::topology::HostView;
        use crate::core::types::{HostInfo, Load, Resources};
        let mut t = Trio::written(1);
        for (id, cpu) in [(P, 1.0), (1, 7.5), (2, 7.5), (3, 0.0), (4, 0.0)] {
            t.topo.upsert(HostView {
                info: HostInfo {
                    id,
                    box_name: format!("b{id}").into(),
                    zone: format!("z{id}").into(),
                    capacity: Resources {
                        cpu: 8.0,
                        memory: 8 << 30,
                    },
                    role: HostRole::Normal,
                },
                load: Load {
                    cpu,
                    memory: 1 << 30,
                },
                replicas: 1,
                primaries: 0,
                state: HostState::Alive,
            });
        }
        t.turn = true;
        t.step(P, |r, env| r.tick(env));
        let first = offers_from_p(&t);
        assert_eq!(first.len(), 1, "one move at a time: {first:?}");
        let to = first[0];
        assert!([3, 4].contains(&to), "toward an idle host, not {to}");
        // The idle host takes it (as `Node::on_clone_offer` does) and catches up.
        t.links.get_mut(&(P, to)).unwrap().clear();
        let epoch = t.reps[&P].epoch;
        t.reps.insert(to, ColonyReplica::syncing(0, epoch, P));
        t.step(to, |_, env| env.send(P, 0, epoch, ColonyMsg::CloneAccept));
        settle(&mut t);
        let hosts =
            |t: &Trio| -> Vec<HostId> { t.reps[&P].members.iter().map(|m| m.host).collect() };
        assert!(hosts(&t).contains(&to), "{:?}", hosts(&t));
        assert_eq!(
            hosts(&t).len(),
            2,
            "the old secondary dropped: {:?}",
            hosts(&t)
        );
        // Turns within the cooldown make no move; the first after it does.
        for _ in 0..4 {
            t.now += 2_000;
            t.step(P, |r, env| r.tick(env));
            assert!(offers_from_p(&t).is_empty(), "moved again at {} ms", t.now);
        }
        t.now += t.cfg.move_cooldown_ms;
        t.step(P, |r, env| r.tick(env));
        let second = offers_from_p(&t);
        assert_eq!(
            second,
            vec![7 - to],
            "the other idle host, after the cooldown"
        );
    }

    #[test]
    fn a_replica_offered_what_it_holds_gets_only_the_tail() {
        let mut t = Trio::written(3);
        // The primary stops counting secondary 1 (say its Drop was lost), writes on,
        // then offers it the colony again.
        t.reps.get_mut(&P).unwrap().members.retain(|m| m.host != 1);
        t.write(4);
        settle(&mut t);
        t.step(P, |r, env| r.offer_clone(env, 1));
        let seen = settle_seeing(&mut t);
        assert!(seen.contains(&"already_held"), "{seen:?}");
        assert!(!seen.contains(&"snapshot"), "{seen:?}");
        let p = &t.reps[&P];
        assert!(p
            .members
            .iter()
            .any(|m| m.host == 1 && m.sync == MemberSync::InSync));
        assert_eq!(t.reps[&1].cells, p.cells);
        assert_eq!(t.reps[&1].last, p.last);

        // A copy whose history the primary does not share gets a snapshot instead.
        t.reps.get_mut(&P).unwrap().members.retain(|m| m.host != 1);
        {
            let s = t.reps.get_mut(&1).unwrap();
            s.last.epoch = Epoch { term: 9, by: 1 };
            s.lineage.insert(s.last.epoch, s.last.seq);
        }
        t.step(P, |r, env| r.offer_clone(env, 1));
        let seen = settle_seeing(&mut t);
        assert!(seen.contains(&"snapshot"), "{seen:?}");
        assert_eq!(t.reps[&1].cells, t.reps[&P].cells);
    }

    #[test]
    fn a_merge_takes_their_deletes_and_keeps_ours() {
        let mut t = Trio::new();
        // Shared history: k0 and k1 written under the primary's epoch.
        t.reps.get_mut(&P).unwrap().epoch = Epoch { term: 3, by: P };
        t.write(0); // k0
        t.write(1); // k1
        settle(&mut t);
        let shared = t.reps[&P].lineage().clone();
        let k = |s: &str| Key::from(s);
        // We delete k1 after the split.
        let del = Command::Del { key: k("k1") };
        t.step(P, |r, env| r.client(env, ReplyTo::new(P, 99), del));
        settle(&mut t);
        assert!(t.reps[&P].cells.get(b"k1").is_none());
        // The other side (an older epoch that shares our first two writes) deleted k0
        // and wrote k1 again.
        let theirs_epoch = Epoch { term: 2, by: 7 };
        let mut theirs = shared.clone();
        theirs.insert(theirs_epoch, 5);
        let their_k1 = Cell {
            dna: Dna::Value(b"theirs".into()),
            version: Version {
                epoch: theirs_epoch,
                seq: 4,
            },
            expires_at: None,
        };
        let deleted = vec![(
            k("k0"),
            Version {
                epoch: theirs_epoch,
                seq: 5,
            },
        )];
        let body = ColonyMsg::Merge {
            cells: vec![(k("k1"), their_k1)],
            lineage: theirs,
            deleted,
        };
        t.step(P, |r, env| r.on_msg(env, 7, theirs_epoch, body));
        settle(&mut t);
        let p = &t.reps[&P];
        assert!(
            p.cells.get(b"k0").is_none(),
            "their delete of a cell we both had is taken"
        );
        assert!(
            p.cells.get(b"k1").is_none(),
            "our later delete beats their older write of k1"
        );
        for h in [1, 2] {
            assert_eq!(t.reps[&h].cells, p.cells, "secondary {h} follows the merge");
        }
    }

    #[test]
    fn an_older_epoch_is_refused() {
        let mut t = Trio::new();
        let old = Epoch::genesis(P);
        let newer = old.next(1);
        t.reps.get_mut(&2).unwrap().epoch = newer;
        t.write(1);
        // Deliver the replicate to host 2 (link 0->2).
        let q = t.links.get_mut(&(P, 2)).unwrap();
        let (epoch, body) = q.pop_front().unwrap();
        t.step(2, |r, env| r.on_msg(env, P, epoch, body));
        assert_eq!(
            t.reps[&2].last.seq, 0,
            "a mutation from an older epoch is not applied"
        );
        let back = t.links.get(&(2, P)).unwrap();
        assert!(
            matches!(back.front(), Some((e, ColonyMsg::Refuse { current, .. })) if *e == newer && *current == newer)
        );
    }
}
