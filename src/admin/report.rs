//! What a node says about itself over the admin API: the `/status` document and the
//! counters behind `/metrics`. The same types are read back by `colony status`,
//! `colony watch` and the tests, so they are `Serialize + Deserialize`.

use crate::core::types::{ColonyId, HostId, Seq};
use crate::wire::Addrs;
use serde::{Deserialize, Serialize};

/// `/status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatusReport {
    pub host: HostId,
    pub incarnation: u32,
    pub cluster: String,
    /// `active`, `leaving` or `left`.
    pub state: String,
    /// Whether this node's side holds quorum of the last stable membership.
    pub quorum: bool,
    pub colonies: u32,
    /// Population N.
    pub replicas: u32,
    /// min(N, what the live hosts can hold).
    pub target: u32,
    pub members: Vec<MemberReport>,
    /// This node's view of where every colony lives.
    pub directory: Vec<DirReport>,
    /// The replicas held on this node.
    pub local: Vec<ReplicaReport>,
    /// Clones this node's primaries are streaming to new hosts.
    pub migrations: Vec<MigrationReport>,
    /// A logging node: where its log stands.
    #[serde(default)]
    pub logger: Option<LoggerReport>,
}

/// A logging node's log: what the core received and what the writer thread wrote.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoggerReport {
    pub dir: String,
    /// Colonies the log holds a position in.
    pub colonies: u32,
    pub sink: crate::core::logsink::SinkStats,
    pub writer: crate::node::log_writer::LogWriterStats,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberReport {
    pub id: HostId,
    /// `alive`, `leaving`, `dead` or `left`.
    pub state: String,
    pub incarnation: u32,
    pub box_name: String,
    pub zone: String,
    pub role: String,
    pub addrs: Option<Addrs>,
    pub cpu_used: f64,
    pub cpu_capacity: f64,
    pub memory_used: u64,
    pub memory_capacity: u64,
    pub replicas: u32,
    pub primaries: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DirReport {
    pub colony: ColonyId,
    /// `term.host`.
    pub epoch: String,
    pub primary: HostId,
    pub secondaries: Vec<HostId>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplicaReport {
    pub colony: ColonyId,
    pub role: String,
    pub epoch: String,
    pub seq: Seq,
    pub cells: u64,
    pub in_sync: bool,
    pub writable: bool,
    /// A primary: mutations its slowest secondary has yet to acknowledge.
    pub lag: Seq,
    /// A primary: its secondaries and whether each counts (in sync or catching up from
    /// the tail); hosts still receiving a clone count as `false`.
    pub members: Vec<(HostId, bool)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MigrationReport {
    pub colony: ColonyId,
    pub to: HostId,
}

/// Counters the host keeps for `/metrics` (monotonic unless noted).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Counters {
    pub writes: u64,
    pub reads: u64,
    pub client_errors: u64,
    /// Writes acknowledged per second over the last few seconds (a gauge).
    pub writes_per_sec: f64,
    /// Client connections open now (a gauge).
    pub sessions: u64,
    pub sessions_opened: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    /// Frames dropped because a peer link was down or its queue full.
    pub frames_dropped: u64,
    /// Messages for hosts whose address is unknown.
    pub unroutable: u64,
    pub handshakes_refused: u64,
    pub promotions: u64,
    pub clones: u64,
    pub migrations: u64,
    pub events: u64,
    /// Local replicas still catching up (a gauge).
    pub replicas_catching_up: u64,
}
