//! The initial layout of a cluster formed together, as the founder sends it
//! ([`crate::core::messages::Msg::Formation`]) and as every host turns it into its
//! directory.
//!
//! The layout is a pure function of the host list, the colony count and the
//! population ([`placement::initial_layout`]): every receiver computes the same one.
//! [`SharedLayout`] carries the host list and remembers the directory entries the
//! first reader computed from it, so every copy of one message (a simulator's thousand
//! deliveries of one send, all in one process) computes the layout once and its
//! readers' directories share one allocation per entry instead of holding ten million
//! copies. Over the wire it is the plain host list; a node that decodes it computes
//! its own entries, once.

use super::directory::DirEntry;
use super::placement::{self, LayoutHost};
use super::types::Epoch;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::{Arc, OnceLock};

/// The hosts of an initial layout, with the entries computed from them.
#[derive(Clone)]
pub struct SharedLayout(Arc<Inner>);

struct Inner {
    hosts: Vec<LayoutHost>,
    laid_out: OnceLock<LaidOut>,
}

/// Entries computed for one colony count and population.
struct LaidOut {
    colonies: u32,
    replicas: u32,
    entries: Arc<[Arc<DirEntry>]>,
}

impl SharedLayout {
    pub fn new(hosts: Vec<LayoutHost>) -> Self {
        SharedLayout(Arc::new(Inner {
            hosts,
            laid_out: OnceLock::new(),
        }))
    }

    /// The hosts the founder laid the colonies out over.
    pub fn hosts(&self) -> &[LayoutHost] {
        &self.0.hosts
    }

    /// The genesis directory entry of every colony the layout places, in colony order
    /// (a colony no host could take has none): the primary first in the replica set,
    /// [`Epoch::genesis`] of it, version 1. Computed at the first call and shared by
    /// every later one with the same `colonies` and `replicas` (a receiver configured
    /// otherwise, which is a misconfiguration, gets its own).
    pub fn entries(&self, colonies: u32, replicas: u32) -> Arc<[Arc<DirEntry>]> {
        let laid_out = self.0.laid_out.get_or_init(|| LaidOut {
            colonies,
            replicas,
            entries: lay_out(&self.0.hosts, colonies, replicas),
        });
        if (laid_out.colonies, laid_out.replicas) == (colonies, replicas) {
            laid_out.entries.clone()
        } else {
            lay_out(&self.0.hosts, colonies, replicas)
        }
    }
}

fn lay_out(hosts: &[LayoutHost], colonies: u32, replicas: u32) -> Arc<[Arc<DirEntry>]> {
    let layout = placement::initial_layout(hosts, colonies, replicas);
    let mut set = Vec::with_capacity(layout.population as usize);
    let mut entries = Vec::with_capacity(layout.colonies() as usize);
    for c in 0..layout.colonies() {
        set.clear();
        set.extend(layout.set(c));
        let Some(&primary) = set.first() else {
            continue;
        };
        entries.push(Arc::new(DirEntry {
            colony: c,
            epoch: Epoch::genesis(primary),
            version: 1,
            primary,
            secondaries: set[1..].into(),
        }));
    }
    entries.into()
}

impl PartialEq for SharedLayout {
    fn eq(&self, other: &Self) -> bool {
        self.hosts() == other.hosts()
    }
}

impl fmt::Debug for SharedLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.hosts().fmt(f)
    }
}

impl Serialize for SharedLayout {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.hosts().serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedLayout {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<LayoutHost>::deserialize(d).map(SharedLayout::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(n: u32) -> Vec<LayoutHost> {
        (0..n)
            .map(|id| LayoutHost {
                id,
                incarnation: 1,
                zone: id % 3,
                box_id: id / 2,
                room: u32::MAX,
            })
            .collect()
    }

    /// The entries are the layout's sets, primary first, whoever reads them first.
    #[test]
    fn entries_are_the_initial_layout() {
        let shared = SharedLayout::new(hosts(7));
        let layout = placement::initial_layout(&hosts(7), 50, 3);
        let entries = shared.entries(50, 3);
        assert_eq!(entries.len(), 50);
        for (c, e) in entries.iter().enumerate() {
            let set: Vec<_> = layout.set(c as u32).collect();
            assert_eq!(e.colony, c as u32);
            assert_eq!(e.primary, set[0]);
            assert_eq!(&e.secondaries[..], &set[1..]);
            assert_eq!((e.epoch, e.version), (Epoch::genesis(set[0]), 1));
        }
    }

    /// Copies of one message share one computation; a reader configured otherwise gets
    /// its own layout, and a decoded copy computes afresh the same entries.
    #[test]
    fn copies_share_the_entries_and_the_wire_carries_only_hosts() {
        let sent = SharedLayout::new(hosts(9));
        let copy = sent.clone();
        let a = sent.entries(40, 3);
        let b = copy.entries(40, 3);
        assert!(Arc::ptr_eq(&a, &b));
        let other = copy.entries(40, 2);
        assert!(!Arc::ptr_eq(&a, &other));
        assert!(other.iter().all(|e| e.secondaries.len() == 1));

        let bytes = rmp_serde::to_vec(&sent).unwrap();
        assert_eq!(bytes, rmp_serde::to_vec(&hosts(9)).unwrap());
        let decoded: SharedLayout = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(decoded, sent);
        let c = decoded.entries(40, 3);
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(&a[..], &c[..]);
    }

    /// A layout over no host places nothing.
    #[test]
    fn no_hosts_no_entries() {
        assert!(SharedLayout::new(Vec::new()).entries(10, 3).is_empty());
    }
}
