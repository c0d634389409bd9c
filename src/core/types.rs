//! The small vocabulary every core machine shares: time, ids, epochs, resources.
//!
//! Time is a [`Tick`] (milliseconds, virtual in the simulator and monotonic in the node);
//! nothing in the core reads a clock. Ids are small integers so that directories of
//! thousands of colonies on thousands of hosts stay compact.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

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
    /// Shared (`Arc<str>`, serialised as a string): every host holds every host's
    /// record twice (host table and topology), and copies of a record share its names.
    pub box_name: Arc<str>,
    /// A rack or data centre: mild repulsion.
    pub zone: Arc<str>,
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

/// The number of hash slots, as in Redis Cluster: a key's slot is
/// `CRC16(key) mod 16384`, where only the part between the first `{` and the next `}`
/// is hashed when that part is non-empty (a hash tag), so `{user:7}:cart` and
/// `{user:7}:session` share a slot. Colonies own contiguous ranges of slots, which is
/// what lets Redis Cluster clients (`CLUSTER SLOTS`) send each key to its primary.
pub const SLOTS: u32 = 16384;

/// The CRC16 Redis Cluster uses (XMODEM: polynomial 0x1021, initial value 0).
const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);

/// The hash slot of a key, exactly as Redis Cluster computes it (hash tags included).
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let tag = &key[open + 1..];
            let close = tag.iter().position(|b| *b == b'}')?;
            (close > 0).then(|| &tag[..close])
        })
        .unwrap_or(key);
    CRC16.checksum(hashed) % SLOTS as u16
}

/// The colony that owns a slot: colony `c` of `C` owns the slots `s` with
/// `s * C / 16384 == c`, one contiguous range each (`C <= 16384`, which the node's
/// configuration enforces, gives every colony at least one slot).
pub fn slot_colony(slot: u16, colonies: u32) -> ColonyId {
    ((u64::from(slot) * u64::from(colonies.max(1))) / u64::from(SLOTS)) as ColonyId
}

/// The slots colony `c` of `colonies` owns, first and last (inclusive); `None` when it
/// owns none (only possible with more colonies than slots).
pub fn colony_slots(colony: ColonyId, colonies: u32) -> Option<(u16, u16)> {
    let colonies = u64::from(colonies.max(1));
    // The smallest s with s * C >= c * 16384 starts colony c's range.
    let start = |c: u64| (c * u64::from(SLOTS)).div_ceil(colonies);
    let (first, end) = (start(u64::from(colony)), start(u64::from(colony) + 1));
    (first < end && end <= u64::from(SLOTS)).then(|| (first as u16, (end - 1) as u16))
}

/// `colony_of(key)`: the colony owning the key's hash slot. Stable across processes,
/// platforms and releases, so every host and every client agree.
pub fn colony_of(key: &[u8], colonies: u32) -> ColonyId {
    slot_colony(key_slot(key), colonies)
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

/// Host ids below this are kept in an [`IdMap`]'s array; larger ones (a node id derived
/// from a hashed address) in its ordered map.
const DENSE_IDS: HostId = 1 << 16;

/// A map keyed by host id, found with one array access when ids are small (as they are
/// when the operator numbers the hosts, and in the simulator), by an ordered map
/// otherwise. Iterates in ascending id order.
#[derive(Clone, Debug)]
pub struct IdMap<V> {
    dense: Vec<Option<V>>,
    sparse: std::collections::BTreeMap<HostId, V>,
    len: usize,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap {
            dense: Vec::new(),
            sparse: std::collections::BTreeMap::new(),
            len: 0,
        }
    }
}

impl<V> IdMap<V> {
    pub fn get(&self, id: HostId) -> Option<&V> {
        if id < DENSE_IDS {
            self.dense.get(id as usize)?.as_ref()
        } else {
            self.sparse.get(&id)
        }
    }

    pub fn get_mut(&mut self, id: HostId) -> Option<&mut V> {
        if id < DENSE_IDS {
            self.dense.get_mut(id as usize)?.as_mut()
        } else {
            self.sparse.get_mut(&id)
        }
    }

    pub fn contains(&self, id: HostId) -> bool {
        self.get(id).is_some()
    }

    /// The value of `id`, inserted from `make` if absent.
    pub fn get_or_insert_with(&mut self, id: HostId, make: impl FnOnce() -> V) -> &mut V {
        if id < DENSE_IDS {
            let i = id as usize;
            if i >= self.dense.len() {
                self.dense.resize_with(i + 1, || None);
            }
            let slot = &mut self.dense[i];
            if slot.is_none() {
                self.len += 1;
            }
            slot.get_or_insert_with(make)
        } else {
            let len = &mut self.len;
            self.sparse.entry(id).or_insert_with(|| {
                *len += 1;
                make()
            })
        }
    }

    /// Sets the value of `id`, returning the one it replaces.
    pub fn insert(&mut self, id: HostId, v: V) -> Option<V> {
        let old = if id < DENSE_IDS {
            let i = id as usize;
            if i >= self.dense.len() {
                self.dense.resize_with(i + 1, || None);
            }
            self.dense[i].replace(v)
        } else {
            self.sparse.insert(id, v)
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub fn remove(&mut self, id: HostId) -> Option<V> {
        let old = if id < DENSE_IDS {
            self.dense.get_mut(id as usize)?.take()
        } else {
            self.sparse.remove(&id)
        };
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries in ascending id order.
    pub fn iter(&self) -> impl Iterator<Item = (HostId, &V)> {
        let dense = self
            .dense
            .iter()
            .enumerate()
            .filter_map(|(i, v)| Some((i as HostId, v.as_ref()?)));
        dense.chain(self.sparse.iter().map(|(k, v)| (*k, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_maps_keep_small_and_large_ids_in_order() {
        let mut m = IdMap::default();
        for id in [7, 1 << 20, 3, DENSE_IDS, 0, u32::MAX] {
            assert_eq!(m.insert(id, id), None);
        }
        assert_eq!(m.insert(3, 33), Some(3));
        assert_eq!(m.len(), 6);
        let ids: Vec<HostId> = m.iter().map(|(k, _)| k).collect();
        assert_eq!(ids, vec![0, 3, 7, DENSE_IDS, 1 << 20, u32::MAX]);
        assert_eq!(m.get(3), Some(&33));
        assert_eq!(m.remove(1 << 20), Some(1 << 20));
        assert_eq!(m.remove(1 << 20), None);
        assert!(!m.contains(5) && !m.contains(1 << 20) && m.contains(u32::MAX));
        *m.get_or_insert_with(5, || 50) += 1;
        *m.get_or_insert_with(1 << 21, || 9) += 1;
        assert_eq!(
            (m.get(5), m.get(1 << 21), m.len()),
            (Some(&51), Some(&10), 7)
        );
    }

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

    #[test]
    fn key_slots_match_redis_cluster() {
        // Values from Redis Cluster (`CLUSTER KEYSLOT`) and its specification.
        assert_eq!(key_slot(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"hello"), 866);
        assert_eq!(key_slot(b""), 0);
        // Hash tags: only the first {...} with something inside is hashed.
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"{unclosed"), key_slot(b"{unclosed"));
    }

    #[test]
    fn colonies_own_contiguous_slot_ranges_that_cover_every_slot_once() {
        for colonies in [1u32, 2, 3, 16, 271, 1000, 10_000, 16_384] {
            let mut next = 0u32;
            for c in 0..colonies {
                let (first, last) = colony_slots(c, colonies).expect("every colony owns a slot");
                assert_eq!(
                    u32::from(first),
                    next,
                    "{colonies} colonies: gap before {c}"
                );
                assert!(first <= last);
                assert_eq!(slot_colony(first, colonies), c);
                assert_eq!(slot_colony(last, colonies), c);
                next = u32::from(last) + 1;
            }
            assert_eq!(next, SLOTS, "{colonies} colonies must cover every slot");
        }
        // More colonies than slots: exactly 16384 of them own one slot each.
        let owning = (0..20_000)
            .filter_map(|c| colony_slots(c, 20_000))
            .collect::<Vec<_>>();
        assert_eq!(owning.len(), SLOTS as usize);
        assert!(owning.iter().all(|(first, last)| first == last));
        assert_eq!(colony_of(b"{t}a", 271), colony_of(b"{t}b", 271));
    }
}
