//! The event vocabulary: what the cluster says about itself, one JSON object per line.
//!
//! The same events come out of the simulator and out of a real node, so a person who
//! learned to read one can read the other. Every event carries a timestamp (virtual in
//! the simulator), the host that saw it, and where it applies the colony and its epoch.

use super::types::{ColonyId, Epoch, HostId, Seq, Tick};
use serde::{Deserialize, Serialize};

/// One thing that happened, as seen by one host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Milliseconds (virtual in the simulator).
    pub t: Tick,
    /// The host that reports it.
    pub host: HostId,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened. Serialised with `"event": "<snake_case name>"` plus the fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// A host became a member (seen by `host`).
    HostJoined { member: HostId },
    /// A host left gracefully: its replicas had been handed off.
    HostLeft { member: HostId },
    /// A host is suspected by the failure detector (not yet dead).
    HostSuspected { member: HostId },
    /// A host was declared dead.
    HostDead { member: HostId },
    /// This host learned it had been declared dead; it dropped its replicas and rejoined
    /// with a new incarnation.
    HostUndead { incarnation: u32, dropped: u32 },
    /// A new replica of `colony` finished catching up on `to` and now counts.
    ColonyCloned {
        colony: ColonyId,
        epoch: Epoch,
        to: HostId,
        cells: u64,
    },
    /// A replica moved from `from` to `to` (clone, catch up, drop the old one).
    ColonyMigrated {
        colony: ColonyId,
        epoch: Epoch,
        from: HostId,
        to: HostId,
        role: super::types::Role,
    },
    /// `host` became the primary of `colony` at `epoch`.
    ColonyPromoted {
        colony: ColonyId,
        epoch: Epoch,
        seq: Seq,
        /// Why: `failover` (the primary's host died), `hand_off` (planned), `split`
        /// (a reconciliation step) or `recreated` (no replica survived).
        reason: String,
    },
    /// A replica was dropped on `host`.
    ReplicaDropped {
        colony: ColonyId,
        epoch: Epoch,
        reason: String,
    },
    /// The cluster cannot hold N replicas of every colony: this colony settles on fewer.
    PopulationReduced {
        colony: ColonyId,
        epoch: Epoch,
        target: u32,
        wanted: u32,
    },
    /// Room appeared: the colony is back to its full population.
    PopulationRestored {
        colony: ColonyId,
        epoch: Epoch,
        population: u32,
    },
    /// A cell moved between colonies.
    CellMigrated {
        colony: ColonyId,
        to_colony: ColonyId,
        key: String,
    },
    /// This host lost quorum of the last stable membership.
    SplitDetected { live: u32, stable: u32 },
    /// Quorum is back.
    SplitHealed { live: u32, stable: u32 },
    /// Two primaries of one colony wrote the same cell while split.
    MergeConflict {
        colony: ColonyId,
        epoch: Epoch,
        key: String,
    },
    /// Every holder of the colony died: acknowledged writes may be lost.
    DataLost {
        colony: ColonyId,
        epoch: Epoch,
        last_holders: Vec<HostId>,
    },
    /// This host served its part of an online backup: a consistent snapshot of each of
    /// its primaries.
    BackupDone { colonies: u32, cells: u64 },
    /// Cells were restored (from a shutdown file, a backup or a log) through this host.
    RestoreDone {
        colonies: u32,
        cells: u64,
        /// Cells not restored because their expiry had passed.
        #[serde(default)]
        skipped: u64,
    },
    /// The last host left while still holding replicas: the shell writes them to disk.
    ShutdownToDisk { colonies: u32, cells: u64 },
    /// A logging node could not keep up: its write buffer was full and it dropped
    /// `dropped` entries of `colonies` colonies since the last such event. It fetches
    /// them again from the primaries (their tails, or a snapshot), so the log heals;
    /// until then it is behind.
    LoggerBehind {
        dropped: u64,
        colonies: u32,
        buffered_bytes: u64,
    },
    /// A logging node fetched a colony's whole state because the primary no longer had
    /// the mutations it was missing (a new logger, or one that fell far behind).
    LogSnapshot {
        colony: ColonyId,
        epoch: Epoch,
        cells: u64,
    },
}

impl EventKind {
    /// The snake_case name, as in the JSON.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::HostJoined { .. } => "host_joined",
            EventKind::HostLeft { .. } => "host_left",
            EventKind::HostSuspected { .. } => "host_suspected",
            EventKind::HostDead { .. } => "host_dead",
            EventKind::HostUndead { .. } => "host_undead",
            EventKind::ColonyCloned { .. } => "colony_cloned",
            EventKind::ColonyMigrated { .. } => "colony_migrated",
            EventKind::ColonyPromoted { .. } => "colony_promoted",
            EventKind::ReplicaDropped { .. } => "replica_dropped",
            EventKind::PopulationReduced { .. } => "population_reduced",
            EventKind::PopulationRestored { .. } => "population_restored",
            EventKind::CellMigrated { .. } => "cell_migrated",
            EventKind::SplitDetected { .. } => "split_detected",
            EventKind::SplitHealed { .. } => "split_healed",
            EventKind::MergeConflict { .. } => "merge_conflict",
            EventKind::DataLost { .. } => "data_lost",
            EventKind::BackupDone { .. } => "backup_done",
            EventKind::RestoreDone { .. } => "restore_done",
            EventKind::ShutdownToDisk { .. } => "shutdown_to_disk",
            EventKind::LoggerBehind { .. } => "logger_behind",
            EventKind::LogSnapshot { .. } => "log_snapshot",
        }
    }

    /// The colony the event is about, if any.
    pub fn colony(&self) -> Option<ColonyId> {
        match self {
            EventKind::ColonyCloned { colony, .. }
            | EventKind::ColonyMigrated { colony, .. }
            | EventKind::ColonyPromoted { colony, .. }
            | EventKind::ReplicaDropped { colony, .. }
            | EventKind::PopulationReduced { colony, .. }
            | EventKind::PopulationRestored { colony, .. }
            | EventKind::CellMigrated { colony, .. }
            | EventKind::MergeConflict { colony, .. }
            | EventKind::DataLost { colony, .. }
            | EventKind::LogSnapshot { colony, .. } => Some(*colony),
            _ => None,
        }
    }
}

impl Event {
    /// One JSON line (no trailing newline). Field order is fixed by the types, so the
    /// same event is the same bytes.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_with_their_snake_case_name() {
        let e = Event {
            t: 1500,
            host: 3,
            kind: EventKind::ColonyPromoted {
                colony: 7,
                epoch: Epoch { term: 2, by: 3 },
                seq: 41,
                reason: "failover".into(),
            },
        };
        let json = e.to_json();
        assert_eq!(
            json,
            r#"{"t":1500,"host":3,"event":"colony_promoted","colony":7,"epoch":{"term":2,"by":3},"seq":41,"reason":"failover"}"#
        );
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.kind.name(), "colony_promoted");
        assert_eq!(back.kind.colony(), Some(7));
    }
}
