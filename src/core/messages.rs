//! Everything one host says to another: membership packets, directory gossip, the
//! colony protocol (replication, cloning, promotion, hand-off, merge) and forwarded
//! client requests.
//!
//! The same enum travels through the simulator's network as a Rust value and over TCP
//! as a msgpack frame, so every variant is `Serialize + Deserialize`.

use super::cell::{Cell, Command, Key, Op, Reply};
use super::directory::{DirEntry, HostRecord, KeyStamp};
use super::formation::SharedLayout;
use super::types::{ColonyId, Epoch, HostId, Seq, Tick, Version};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A client request id, unique on the host where the client is connected.
pub type ReqId = u64;

/// Who waits for the answer to a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyTo {
    /// The host where the client is connected.
    pub host: HostId,
    pub req: ReqId,
    /// The host that relayed the request around a link to the primary that seemed
    /// broken: the answer goes back through it ([`Msg::RelayReply`]).
    #[serde(default)]
    pub via: Option<HostId>,
}

impl ReplyTo {
    /// The answer goes straight to `host`.
    pub fn new(host: HostId, req: ReqId) -> Self {
        ReplyTo {
            host,
            req,
            via: None,
        }
    }
}

/// One numbered mutation of a colony.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mutation {
    pub version: Version,
    pub op: Op,
}

/// Per epoch, the highest seq this replica applied in it: which part of a colony's
/// history two replicas share, so divergent primaries can be merged after a split.
pub type Lineage = BTreeMap<Epoch, Seq>;

/// A replica-set member as the primary describes it to its secondaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub host: HostId,
    pub in_sync: bool,
}

/// A message between two hosts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Msg {
    /// A SWIM packet (foca's own encoding).
    Swim(Vec<u8>),
    /// A host's record changed (load, state): pushed to every live host.
    HostRecord(Arc<HostRecord>),
    /// A colony's placement changed: pushed by its primary to every host.
    Dir(Arc<DirEntry>),
    /// Anti-entropy, sent every `anti_entropy_ms` to one random peer: the roots of the
    /// directory and the host table ([`super::directory::LwwTable::root`]). A peer
    /// whose roots differ answers with its [`Msg::Digest`]; a converged pair (almost
    /// every pair, almost always) exchanges two numbers and stops there.
    DigestRoots { dir: u64, hosts: u64 },
    /// Anti-entropy: range digests of the directory and the host table; `None` for a
    /// table whose root matched the [`Msg::DigestRoots`] this answers (most often only
    /// one of the two differs: host records change every few seconds somewhere in a
    /// large cluster, directory entries far less often).
    Digest {
        dir: Option<Vec<u64>>,
        hosts: Option<Vec<u64>>,
    },
    /// Anti-entropy, the answer to a [`Msg::Digest`]: the ranges that differed and the
    /// key and stamp of each of the answerer's entries in them.
    DigestStamps {
        dir_ranges: Vec<u32>,
        host_ranges: Vec<u32>,
        dir: Vec<KeyStamp>,
        hosts: Vec<KeyStamp>,
    },
    /// Anti-entropy: the entries the sender holds newer, and the keys it wants (those
    /// the receiver holds newer); answered with those entries when it wants any.
    DigestEntries {
        dir: Vec<Arc<DirEntry>>,
        hosts: Vec<Arc<HostRecord>>,
        want_dir: Vec<u32>,
        want_hosts: Vec<u32>,
    },
    /// The founder of a cluster formed together (`NodeConfig::expect_hosts`) -> every
    /// live host: the hosts of the initial layout. Each receiver computes the same
    /// layout ([`crate::core::placement::initial_layout`]), fills its directory with it
    /// and creates the replicas it gives to this incarnation of the receiver (computed
    /// once per process: [`SharedLayout`]).
    Formation { hosts: SharedLayout },
    /// A client command routed to the primary of `colony`.
    Forward {
        to: ReplyTo,
        colony: ColonyId,
        cmd: Command,
        hops: u8,
    },
    /// The answer to a forwarded command.
    ForwardReply { req: ReqId, reply: Reply },
    /// The answer to a relayed command, to the relay: pass it on to `to.host`.
    RelayReply { to: ReplyTo, reply: Reply },
    /// A graceful leave is complete: the sender holds no replicas and goes.
    Left,
    /// Primary -> logging node: mutations of `colony` that are acknowledged (committed),
    /// in seq order. Sent as commits advance, and in answer to [`Msg::LogProbe`].
    Log {
        colony: ColonyId,
        entries: Vec<Mutation>,
    },
    /// Primary -> logging node: the whole colony at `at`, for a logger whose position is
    /// older than the primary's tail of mutations (a new logger, or one that fell behind).
    LogSnapshot {
        colony: ColonyId,
        at: Version,
        cells: Vec<(Key, Cell)>,
    },
    /// Logging node -> a primary's host: how far the log has each of these colonies
    /// (seq 0: not at all). The primary answers with what is missing.
    LogProbe { have: Vec<(ColonyId, Seq)> },
    /// Is the sender still in contact with this host? `t` is the sender's own clock,
    /// echoed in the [`Msg::Pong`]: a host shows contact with a quorum by answers to
    /// pings it sent after a given time (see `Node`'s quorum confirmation).
    Ping { t: Tick },
    /// The answer to [`Msg::Ping`], echoing its `t`.
    Pong { t: Tick },
    /// The colony protocol, fenced by the sender's epoch.
    Colony {
        colony: ColonyId,
        epoch: Epoch,
        body: ColonyMsg,
    },
}

/// The colony protocol. Every message is stamped (in [`Msg::Colony`]) with the epoch of
/// the sender; a replica refuses anything older than what it has seen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ColonyMsg {
    /// Primary -> secondary: apply this mutation. `commit` is what the primary knows to
    /// be acknowledged.
    Replicate { m: Mutation, commit: Seq },
    /// Secondary -> primary: applied everything up to `seq` (cumulative).
    Ack { seq: Seq },
    /// Secondary -> primary: I cannot apply that (gap, or new epoch): here is what I
    /// have; send me the tail or a snapshot.
    Resync { have: Version },
    /// Anyone -> stale sender: your epoch is old; this is the current one.
    Refuse { current: Epoch, primary: HostId },
    /// Primary -> secondary: the replica set and the history base of this epoch.
    Members {
        members: Vec<MemberInfo>,
        base: Version,
    },
    /// Primary -> secondary: the whole colony at `at`, then the stream continues.
    Snapshot {
        at: Version,
        cells: Vec<(Key, Cell)>,
        lineage: Lineage,
    },
    /// Primary -> target host: will you hold a new replica? `floor`, for an optional
    /// move: refuse unless your attraction, by your own fresh numbers (the replicas you
    /// hold and are receiving), is still at least this
    /// ([`crate::core::placement::choose_migration_with_floor`]).
    CloneOffer { floor: Option<f64> },
    /// Target -> primary: yes (an empty syncing replica exists now).
    CloneAccept,
    /// Target -> primary: yes, and I already hold a copy up to `have` (a replica this
    /// host kept, e.g. one its old primary stopped counting): send what follows it, or
    /// a snapshot if our histories differ.
    AlreadyHeld { have: Version },
    /// Target -> primary: no.
    CloneRefuse {
        reason: String,
        /// When to ask again, in ms; 0 = the sender's default backoff. A host that is
        /// only busy (transfers in flight) asks for a short retry.
        retry_ms: u64,
    },
    /// Host -> sender: this host holds no replica of the colony (any more).
    Gone,
    /// A host the directory names as the colony's primary, but which holds no copy (an
    /// earlier incarnation did: it restarted faster than anyone declared it dead) ->
    /// the named secondaries; and a named secondary without a copy either -> that
    /// host. Handled by the node, outside the epoch rules: a secondary whose primary
    /// says so elects a new one; a host without a copy stops counting the sender.
    Disowned,
    /// Primary -> the host a newer directory entry names as primary: are you? A real
    /// newer primary answers `Refuse` (and we step down); a host that no longer holds
    /// the colony (an undead minority primary) answers `Gone` (and we take over at an
    /// epoch above the stale entry).
    Claim,
    /// Primary -> replica: you are no longer part of the set.
    Drop { reason: String },
    /// Primary -> a member that acknowledged a write: `host` left it unacknowledged too
    /// long and is out of the set; tell it (our link to it may be the broken one).
    Evict { host: HostId },
    /// Member -> evicted host: primary `by` took you out of the set at this epoch.
    Evicted { by: HostId },
    /// Secondary -> other secondaries: the primary is dead; this is how far I got.
    Offer { have: Version, rank: u32 },
    /// Primary -> chosen secondary: take primacy at `epoch.next(you)`; then drop `then_drop`.
    /// `balance`: a hand-off that only spreads primaries, and how many the sender held
    /// when it chose to; the receiver answers [`ColonyMsg::HandOffRefuse`] instead when
    /// it holds so many by now that the move would not spread them.
    HandOff {
        members: Vec<MemberInfo>,
        then_drop: Option<HostId>,
        balance: Option<u32>,
    },
    /// Chosen secondary -> primary: no, keep primacy (a balancing hand-off whose
    /// receiver has as many primaries as the sender by now).
    HandOffRefuse,
    /// A fenced (undead or deposed) primary gives its cells to the current primary,
    /// which merges them per cell by version.
    Merge {
        cells: Vec<(Key, Cell)>,
        lineage: Lineage,
        /// Cells the sender deleted, with the version of the delete (its tombstones),
        /// so a delete made on one side of a split is not undone by the merge.
        #[serde(default)]
        deleted: Vec<(Key, Version)>,
    },
    /// Primary of colony A -> primary of colony B: take this cell (cell migration).
    CellIn {
        from_colony: ColonyId,
        key: Key,
        cell: Cell,
    },
    /// Primary of B -> primary of A: the cell is safe in B.
    CellInDone { key: Key, ok: bool },
}

impl Msg {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Msg::Swim(_) => "swim",
            Msg::HostRecord(_) => "host_record",
            Msg::Dir(_) => "dir",
            Msg::DigestRoots { .. } => "digest_roots",
            Msg::Digest { .. } => "digest",
            Msg::DigestStamps { .. } => "digest_stamps",
            Msg::DigestEntries { .. } => "digest_entries",
            Msg::Formation { .. } => "formation",
            Msg::Forward { .. } => "forward",
            Msg::ForwardReply { .. } => "forward_reply",
            Msg::RelayReply { .. } => "relay_reply",
            Msg::Left => "left",
            Msg::Log { .. } => "log",
            Msg::LogSnapshot { .. } => "log_snapshot",
            Msg::LogProbe { .. } => "log_probe",
            Msg::Ping { .. } => "ping",
            Msg::Pong { .. } => "pong",
            Msg::Colony { body, .. } => body.kind(),
        }
    }
}

impl ColonyMsg {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ColonyMsg::Replicate { .. } => "replicate",
            ColonyMsg::Ack { .. } => "ack",
            ColonyMsg::Resync { .. } => "resync",
            ColonyMsg::Refuse { .. } => "refuse",
            ColonyMsg::Members { .. } => "members",
            ColonyMsg::Snapshot { .. } => "snapshot",
            ColonyMsg::CloneOffer { .. } => "clone_offer",
            ColonyMsg::CloneAccept => "clone_accept",
            ColonyMsg::AlreadyHeld { .. } => "already_held",
            ColonyMsg::CloneRefuse { .. } => "clone_refuse",
            ColonyMsg::Drop { .. } => "drop",
            ColonyMsg::Evict { .. } => "evict",
            ColonyMsg::Evicted { .. } => "evicted",
            ColonyMsg::Gone => "gone",
            ColonyMsg::Disowned => "disowned",
            ColonyMsg::Claim => "claim",
            ColonyMsg::Offer { .. } => "offer",
            ColonyMsg::HandOff { .. } => "hand_off",
            ColonyMsg::HandOffRefuse => "hand_off_refuse",
            ColonyMsg::Merge { .. } => "merge",
            ColonyMsg::CellIn { .. } => "cell_in",
            ColonyMsg::CellInDone { .. } => "cell_in_done",
        }
    }
}
