//! Every host's map of the cluster: where every colony lives (`colony -> (epoch,
//! primary, secondaries)`) and what every host is (labels, capacity, load, state).
//!
//! Both tables are last-writer-wins by a stamp the owner raises: a colony entry is
//! stamped `(epoch, version)` by the colony's primary, a host record `(incarnation,
//! version)` by the host itself. Updates are pushed when they happen; anti-entropy
//! repairs what was missed: hosts exchange XOR digests of fixed ranges; for the ranges
//! that differ the other side answers with the stamps of its entries, and then each
//! side sends only the entries it holds newer. A converged pair exchanges a few hundred
//! bytes however large the cluster is, and a pair that differs in a few entries ships
//! those entries, not the whole 64-entry ranges around them.

use super::topology::HostView;
use super::types::{mix64, ColonyId, Epoch, HostId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// Where one colony lives, as announced by its primary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub colony: ColonyId,
    pub epoch: Epoch,
    /// Raised by the primary at every change of the replica set within one epoch.
    pub version: u64,
    pub primary: HostId,
    /// In-sync secondaries (a replica still catching up is not listed: it does not
    /// hold the acknowledged writes yet).
    pub secondaries: Hosts,
}

/// A few host ids (a directory entry's secondaries): up to three held inline, more on
/// the heap. Every host keeps an entry per colony, so a cluster of a thousand hosts
/// with ten thousand colonies holds ten million of them: no allocation of their own
/// and 48 bytes an entry, not 56 plus a heap block. Serialised as a plain sequence,
/// exactly as a `Vec<HostId>`.
#[derive(Clone)]
pub enum Hosts {
    Inline { len: u8, ids: [HostId; 3] },
    Spilled(Box<Vec<HostId>>),
}

impl Default for Hosts {
    fn default() -> Self {
        Hosts::Inline {
            len: 0,
            ids: [0; 3],
        }
    }
}

impl Deref for Hosts {
    type Target = [HostId];

    fn deref(&self) -> &[HostId] {
        match self {
            Hosts::Inline { len, ids } => &ids[..usize::from(*len)],
            Hosts::Spilled(v) => v,
        }
    }
}

impl From<&[HostId]> for Hosts {
    fn from(hosts: &[HostId]) -> Self {
        match hosts.len() {
            n @ 0..=3 => {
                let mut ids = [0; 3];
                ids[..n].copy_from_slice(hosts);
                Hosts::Inline { len: n as u8, ids }
            }
            _ => Hosts::Spilled(Box::new(hosts.to_vec())),
        }
    }
}

impl From<Vec<HostId>> for Hosts {
    fn from(hosts: Vec<HostId>) -> Self {
        if hosts.len() <= 3 {
            Hosts::from(&hosts[..])
        } else {
            Hosts::Spilled(Box::new(hosts))
        }
    }
}

impl FromIterator<HostId> for Hosts {
    fn from_iter<I: IntoIterator<Item = HostId>>(iter: I) -> Self {
        let mut ids = [0; 3];
        let mut len = 0;
        let mut iter = iter.into_iter();
        for id in iter.by_ref() {
            if len == 3 {
                let mut all = ids.to_vec();
                all.push(id);
                all.extend(iter);
                return Hosts::Spilled(Box::new(all));
            }
            ids[len] = id;
            len += 1;
        }
        Hosts::Inline {
            len: len as u8,
            ids,
        }
    }
}

impl<'a> IntoIterator for &'a Hosts {
    type Item = &'a HostId;
    type IntoIter = std::slice::Iter<'a, HostId>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl PartialEq for Hosts {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Hosts {}

impl fmt::Debug for Hosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Hosts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Hosts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<HostId>::deserialize(d).map(Hosts::from)
    }
}

impl DirEntry {
    /// Every host that holds the colony's acknowledged writes.
    pub fn holders(&self) -> impl Iterator<Item = HostId> + '_ {
        std::iter::once(self.primary).chain(self.secondaries.iter().copied())
    }
}

/// What one host says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostRecord {
    /// Shared with the topologies that hold this host (see [`super::topology`]).
    pub view: Arc<HostView>,
    pub incarnation: u32,
    pub version: u64,
}

/// An entry of a last-writer-wins table.
pub trait Stamped: Clone {
    fn key(&self) -> u32;
    fn stamp(&self) -> (u64, u64, u64);
}

impl Stamped for DirEntry {
    fn key(&self) -> u32 {
        self.colony
    }
    fn stamp(&self) -> (u64, u64, u64) {
        (self.epoch.term, u64::from(self.epoch.by), self.version)
    }
}

/// A shared entry: the directory holds colony entries and host records as `Arc`s, so
/// the copies of one announcement that reach every host (and, in the simulator, the
/// thousand directories of one process) are one value, not ten million.
impl<V: Stamped> Stamped for Arc<V> {
    fn key(&self) -> u32 {
        (**self).key()
    }
    fn stamp(&self) -> (u64, u64, u64) {
        (**self).stamp()
    }
}

impl Stamped for HostRecord {
    fn key(&self) -> u32 {
        self.view.info.id
    }
    fn stamp(&self) -> (u64, u64, u64) {
        (u64::from(self.incarnation), self.version, 0)
    }
}

/// An entry's key and stamp, as anti-entropy compares them.
pub type KeyStamp = (u32, (u64, u64, u64));

/// Keys per digest range.
pub const RANGE: u32 = 64;

/// A dense last-writer-wins table keyed by small integers, with per-range digests.
#[derive(Clone, Debug, PartialEq)]
pub struct LwwTable<V: Stamped> {
    slots: Vec<Option<V>>,
    digests: Vec<u64>,
    /// The XOR of every range digest (of every entry's hash): equal roots mean equal
    /// tables (but for a 2^-64 chance), so a converged pair compares one number.
    root: u64,
}

impl<V: Stamped> Default for LwwTable<V> {
    fn default() -> Self {
        LwwTable {
            slots: Vec::new(),
            digests: Vec::new(),
            root: 0,
        }
    }
}

fn entry_hash<V: Stamped>(v: &V) -> u64 {
    let (a, b, c) = v.stamp();
    mix64(u64::from(v.key()) ^ mix64(a ^ mix64(b ^ mix64(c))))
}

impl<V: Stamped> LwwTable<V> {
    pub fn get(&self, key: u32) -> Option<&V> {
        self.slots.get(key as usize).and_then(Option::as_ref)
    }

    pub fn iter(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().flatten()
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    /// Insert if newer than what is there. Returns whether it changed the table.
    pub fn merge(&mut self, v: V) -> bool {
        let k = v.key() as usize;
        if k >= self.slots.len() {
            self.slots.resize_with(k + 1, || None);
            let ranges = self.slots.len().div_ceil(RANGE as usize);
            self.digests.resize(ranges, 0);
        }
        let range = k / RANGE as usize;
        match &self.slots[k] {
            Some(old) if old.stamp() >= v.stamp() => return false,
            Some(old) => {
                let h = entry_hash(old);
                self.digests[range] ^= h;
                self.root ^= h;
            }
            None => {}
        }
        let h = entry_hash(&v);
        self.digests[range] ^= h;
        self.root ^= h;
        self.slots[k] = Some(v);
        true
    }

    /// Remove an entry outright (a host that left for good).
    pub fn remove(&mut self, key: u32) -> Option<V> {
        let old = self.slots.get_mut(key as usize)?.take()?;
        let h = entry_hash(&old);
        self.digests[key as usize / RANGE as usize] ^= h;
        self.root ^= h;
        Some(old)
    }

    /// One digest per range of [`RANGE`] keys.
    pub fn digests(&self) -> &[u64] {
        &self.digests
    }

    /// The digest of the whole table (the XOR of [`Self::digests`]).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// The ranges whose digest differs from `theirs` (missing ranges count as 0).
    pub fn differing(&self, theirs: &[u64]) -> Vec<u32> {
        let n = self.digests.len().max(theirs.len());
        (0..n)
            .filter(|&i| {
                self.digests.get(i).copied().unwrap_or(0) != theirs.get(i).copied().unwrap_or(0)
            })
            .map(|i| i as u32)
            .collect()
    }

    fn range_slots(&self, r: u32) -> &[Option<V>] {
        let lo = (r as usize * RANGE as usize).min(self.slots.len());
        let hi = (lo + RANGE as usize).min(self.slots.len());
        &self.slots[lo..hi]
    }

    /// The entries in the given ranges.
    pub fn entries_in(&self, ranges: &[u32]) -> Vec<V> {
        let mut out = Vec::new();
        for &r in ranges {
            out.extend(self.range_slots(r).iter().flatten().cloned());
        }
        out
    }

    /// Key and stamp of every entry in the given ranges, in key order per range.
    pub fn stamps_in(&self, ranges: &[u32]) -> Vec<KeyStamp> {
        let mut out = Vec::with_capacity(ranges.len() * RANGE as usize);
        for &r in ranges {
            out.extend(
                self.range_slots(r)
                    .iter()
                    .flatten()
                    .map(|v| (v.key(), v.stamp())),
            );
        }
        out
    }

    /// Against the other side's entries of `ranges` (`theirs`, from [`Self::stamps_in`]):
    /// the entries this table holds newer (or they lack), and the keys they hold newer
    /// (or this table lacks).
    pub fn compare(&self, ranges: &[u32], theirs: &[KeyStamp]) -> (Vec<V>, Vec<u32>) {
        // Both sides list keys in ascending order (ranges ascending, keys ascending in
        // each): one merge walk. Anything else is put in that order first.
        let sorted_ranges = ranges.windows(2).all(|w| w[0] < w[1]);
        let sorted_theirs = theirs.windows(2).all(|w| w[0].0 < w[1].0);
        let (ranges, theirs): (std::borrow::Cow<[u32]>, std::borrow::Cow<[KeyStamp]>) =
            if sorted_ranges && sorted_theirs {
                (ranges.into(), theirs.into())
            } else {
                let mut r = ranges.to_vec();
                r.sort_unstable();
                r.dedup();
                let mut t = theirs.to_vec();
                t.sort_unstable();
                t.dedup_by_key(|(k, _)| *k);
                (r.into(), t.into())
            };
        let mut newer_here = Vec::new();
        let mut newer_there = Vec::new();
        let mut j = 0;
        for &r in ranges.iter() {
            let (lo, hi) = (
                r.saturating_mul(RANGE),
                r.saturating_add(1).saturating_mul(RANGE),
            );
            // Their keys below this range lie in no listed range: skip them.
            while j < theirs.len() && theirs[j].0 < lo {
                j += 1;
            }
            for v in self.range_slots(r).iter().flatten() {
                let k = v.key();
                let mine = v.stamp();
                while j < theirs.len() && theirs[j].0 < k {
                    newer_there.push(theirs[j].0);
                    j += 1;
                }
                if j < theirs.len() && theirs[j].0 == k {
                    let t = theirs[j].1;
                    j += 1;
                    if t > mine {
                        newer_there.push(k);
                        continue;
                    }
                    if t == mine {
                        continue;
                    }
                }
                newer_here.push(v.clone());
            }
            while j < theirs.len() && theirs[j].0 < hi {
                newer_there.push(theirs[j].0);
                j += 1;
            }
        }
        (newer_here, newer_there)
    }

    /// The entries with these keys (those this table holds).
    pub fn entries_for(&self, keys: &[u32]) -> Vec<V> {
        keys.iter().filter_map(|k| self.get(*k).cloned()).collect()
    }
}

/// A host's view of the whole cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Directory {
    /// Shared entries: one announcement is one allocation, whichever hosts hold it.
    pub colonies: LwwTable<Arc<DirEntry>>,
    /// Shared records, likewise.
    pub hosts: LwwTable<Arc<HostRecord>>,
}

impl Directory {
    pub fn entry(&self, colony: ColonyId) -> Option<&DirEntry> {
        self.colonies.get(colony).map(|e| &**e)
    }

    pub fn primary_of(&self, colony: ColonyId) -> Option<HostId> {
        self.entry(colony).map(|e| e.primary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(colony: u32, term: u64, version: u64, primary: u32) -> DirEntry {
        DirEntry {
            colony,
            epoch: Epoch { term, by: primary },
            version,
            primary,
            secondaries: vec![primary + 1].into(),
        }
    }

    #[test]
    fn an_entry_is_small_and_holds_any_number_of_secondaries() {
        assert!(std::mem::size_of::<Option<DirEntry>>() <= 48);
        for n in 0..7u32 {
            let ids: Vec<HostId> = (10..10 + n).collect();
            let a = Hosts::from(ids.clone());
            let b: Hosts = ids.iter().copied().collect();
            let c = Hosts::from(&ids[..]);
            assert_eq!(&a[..], &ids[..]);
            assert_eq!((&a, &a), (&b, &c));
            assert_eq!(format!("{a:?}"), format!("{ids:?}"));
            // The wire format of a Vec<HostId>.
            let bytes = rmp_serde::to_vec(&a).unwrap();
            assert_eq!(bytes, rmp_serde::to_vec(&ids).unwrap());
            assert_eq!(rmp_serde::from_slice::<Hosts>(&bytes).unwrap(), a);
        }
    }

    #[test]
    fn newer_stamp_wins_and_older_is_ignored() {
        let mut t = LwwTable::default();
        assert!(t.merge(entry(5, 1, 0, 1)));
        assert!(t.merge(entry(5, 1, 1, 1)));
        assert!(!t.merge(entry(5, 1, 0, 1)), "older version");
        assert!(t.merge(entry(5, 2, 0, 2)));
        assert!(
            !t.merge(entry(5, 1, 9, 1)),
            "older epoch, whatever the version"
        );
        assert_eq!(t.get(5).unwrap().primary, 2);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn digests_find_exactly_the_differing_ranges_and_repair_converges() {
        let mut a = LwwTable::default();
        let mut b = LwwTable::default();
        for c in 0..1000 {
            a.merge(entry(c, 1, 0, c % 7));
            b.merge(entry(c, 1, 0, c % 7));
        }
        assert!(a.differing(b.digests()).is_empty());
        assert_eq!(a.root(), b.root());
        b.merge(entry(130, 2, 0, 3));
        b.merge(entry(900, 1, 4, 6));
        assert_ne!(a.root(), b.root());
        let ranges = a.differing(b.digests());
        assert_eq!(ranges, vec![130 / RANGE, 900 / RANGE]);
        for e in b.entries_in(&ranges) {
            a.merge(e);
        }
        assert!(a.differing(b.digests()).is_empty());
        assert_eq!(a.root(), b.root());
        assert_eq!(a, b);
    }

    /// The root is the XOR of the range digests whatever the merges and removals that
    /// led there, and tells apart tables that differ in one stamp or one entry.
    #[test]
    fn the_root_sums_up_the_ranges_through_merges_and_removals() {
        let mut a = LwwTable::default();
        assert_eq!(a.root(), 0);
        for c in 0..500 {
            a.merge(entry(c, 1, 0, c % 5));
        }
        a.merge(entry(7, 2, 1, 3));
        a.merge(entry(7, 1, 9, 4)); // older: ignored
        a.remove(300);
        a.remove(301);
        a.merge(entry(301, 3, 0, 1));
        let xor = a.digests().iter().fold(0, |acc, d| acc ^ d);
        assert_eq!(a.root(), xor);
        let mut b = a.clone();
        b.merge(entry(7, 2, 2, 3));
        assert_ne!(a.root(), b.root());
        let mut c = a.clone();
        c.remove(0);
        assert_ne!(a.root(), c.root());
        c.merge(entry(0, 1, 0, 0));
        assert_eq!(a.root(), c.root());
    }

    #[test]
    fn stamps_ship_only_the_entries_that_differ_both_ways() {
        let mut a = LwwTable::default();
        let mut b = LwwTable::default();
        for c in 0..1000 {
            a.merge(entry(c, 1, 0, c % 7));
            b.merge(entry(c, 1, 0, c % 7));
        }
        b.merge(entry(130, 2, 0, 3)); // b newer
        a.merge(entry(131, 1, 5, 131 % 7)); // a newer
        a.merge(entry(1000, 1, 0, 3)); // only a has it
        b.merge(entry(1001, 1, 0, 3)); // only b has it
        b.remove(900); // a has it, b lost it
        let ranges = b.differing(a.digests());
        let theirs = b.stamps_in(&ranges);
        let (push, want) = a.compare(&ranges, &theirs);
        let pushed: Vec<u32> = push.iter().map(|e| e.colony).collect();
        assert_eq!(pushed, vec![131, 900, 1000]);
        assert_eq!(want, vec![130, 1001]);
        for e in push {
            b.merge(e);
        }
        for e in b.entries_for(&want) {
            a.merge(e);
        }
        assert!(a.differing(b.digests()).is_empty());
        assert_eq!(a, b);
    }

    #[test]
    fn digest_is_independent_of_insertion_order() {
        let mut a = LwwTable::default();
        let mut b = LwwTable::default();
        for c in 0..200 {
            a.merge(entry(c, 1, 0, 1));
        }
        for c in (0..200).rev() {
            b.merge(entry(c, 1, 0, 1));
        }
        assert_eq!(a.digests(), b.digests());
        a.remove(7);
        assert_ne!(a.digests(), b.digests());
    }
}
