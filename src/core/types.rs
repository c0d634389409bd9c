//! The small vocabulary every core machine shares: time, ids, epochs, resources.
//!
//! Time is a [`Tick`] (milliseconds, virtual in the simulator and monotonic in the node);
//! nothing in the core reads a clock. Ids are small integers so that directories of
//! thousands of colonies on thousands of hosts stay compact.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Milliseconds since an arbitrary origin. The core never reads a clock: every input
/// carries the current `Tick`.
pub type Tick = u64;

/// One `colony node` process.
pub type HostId = u32;

/// A bucket `0..C`; `C` is fixed when the cluster is created.
pub type ColonyId = u32;

/// A mutation number within one colony, assigned by its primary.
pub type Seq = u64;

/// A colony's fencing term. Raised at every promotion or hand-off.
///
/// Ordered by `term`, then by the host that opened the term, so two hosts that promote
/// themselves concurrently at the same term are still totally ordered and the loser
/// steps down. A message carrying an older epoch is refused.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Epoch {
    pub term: u64,
    pub by: HostId,
}

impl Epoch {
    /// The first epoch of a colony created by `host`.
    pub fn genesis(host: HostId) -> Epoch {
        Epoch { term: 1, by: host }
    }

    /// The epoch a host opens when it takes primacy after `self`.
    pub fn next(self, by: HostId) -> Epoch {
        Epoch {
            term: self.term + 1,
            by,
        }
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.term, self.by)
    }
}

/// The position of a mutation in a colony's history: `(epoch, seq)`. A cell's version
/// is the position of the mutation that last wrote it, so versions from two divergent
/// primaries can be compared after a split heals.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Version {
    pub epoch: Epoch,
    pub seq: Seq,
}

/// Capacity or use of cpu and memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// Cores (fractional).
    pub cpu: f64,
    /// Bytes.
    pub memory: u64,
}

/// What a host is and where it stands: its id, its physical box, its zone, its declared
/// capacity. Static for the life of one incarnation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    pub id: HostId,
    /// The physical machine under this host: replicas on one box die together.
    pub box_name: String,
    /// A rack or data centre: mild repulsion.
    pub zone: String,
    pub capacity: Resources,
    /// A storage node (issue: data outlives the cluster) or an ordinary one.
    pub role: HostRole,
}

/// What kind of node a host is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostRole {
    #[default]
    Normal,
    Storage,
    Logger,
}

/// A host's measured load, reported to the core by the shell (sysinfo in the node, the
/// resource model in the simulator).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Load {
    /// Cores in use.
    pub cpu: f64,
    /// Bytes in use.
    pub memory: u64,
}

/// The role of one replica of a colony.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Primary,
    Secondary,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
        })
    }
}

/// `colony_of(key) = hash(key) % C`, with a hash that is stable across processes,
/// platforms and releases (FNV-1a, 64 bit), so every host and every client agree.
pub fn colony_of(key: &[u8], colonies: u32) -> ColonyId {
    (fnv1a(key) % u64::from(colonies.max(1))) as ColonyId
}

/// FNV-1a, 64 bit. Stable by definition; used for key routing and digests.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A 64-bit mix (splitmix64 finaliser): spreads small integers for rendezvous hashing
/// and digests.
pub fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_order_by_term_then_host() {
        let a = Epoch { term: 3, by: 9 };
        let b = Epoch { term: 4, by: 1 };
        let c = Epoch { term: 4, by: 2 };
        assert!(a < b && b < c);
        assert_eq!(a.next(7), Epoch { term: 4, by: 7 });
    }

    #[test]
    fn colony_of_is_stable_and_in_range() {
        // Pinned values: routing must never change between releases.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        for i in 0..1000u32 {
            let k = format!("session:{i}");
            assert!(colony_of(k.as_bytes(), 271) < 271);
        }
        assert_eq!(
            colony_of(b"x", 0),
            0,
            "zero colonies must not divide by zero"
        );
    }
}
