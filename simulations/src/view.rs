//! A snapshot of the cluster as the checker sees it: for every colony, which live hosts
//! hold it as primary or secondary, read directly from the hosts' replicas.
//!
//! A colony's *leader* is its live primary with the highest epoch; its *population* is
//! the leader plus the members the leader counts as caught up that really hold a
//! secondary replica following the leader at its epoch, with the data, and that the
//! network lets it reach (or that hold everything it has), each weighed by the
//! [`slots`] of its host (a storage node's copy counts for two, as in the core). A
//! colony is *healthy* when it has exactly one live primary and a population of at
//! least the target.
//!
//! [`slots`]: colony::core::placement::slots

use colony::core::messages::MemberInfo;
use colony::core::node::{Node, NodeState};
use colony::core::placement;
use colony::core::topology::{HostState, HostView, Topology};
use colony::core::types::{ColonyId, Epoch, HostId, HostRole, Load, Role};
use smallvec::SmallVec;
use std::collections::BTreeMap;

/// A host that is up (not killed, not gone), with the load it last reported.
pub struct LiveHost<'a> {
    pub node: &'a Node,
    pub load: Load,
}

impl LiveHost<'_> {
    pub fn id(&self) -> HostId {
        self.node.id()
    }

    /// How many replicas a copy on this host counts for ([`placement::slots`]).
    pub fn slots(&self) -> u32 {
        placement::slots(self.node.info().role)
    }

    /// How the host stands for placement.
    pub fn host_view(&self) -> HostView {
        HostView {
            info: self.node.info().clone(),
            load: self.load,
            replicas: self.node.replicas().count() as u32,
            primaries: self
                .node
                .replicas()
                .filter(|r| r.role == Role::Primary)
                .count() as u32,
            state: if self.node.state() == NodeState::Active {
                HostState::Alive
            } else {
                HostState::Leaving
            },
        }
    }
}

/// The live hosts as a placement topology.
pub fn topology_of(live: &[LiveHost]) -> Topology {
    let mut t = Topology::new();
    for h in live {
        t.upsert(h.host_view());
    }
    t
}

/// Whether the hosts that can hold replicas are all storage nodes (and there is one).
pub fn storage_alone(live: &[LiveHost]) -> bool {
    let mut holders = live.iter().filter(|h| h.slots() > 0).peekable();
    holders.peek().is_some() && holders.all(|h| h.node.info().role == HostRole::Storage)
}

/// Find a live host by id (`live` is sorted by id).
pub fn find<'a, 'b>(live: &'b [LiveHost<'a>], id: HostId) -> Option<&'b LiveHost<'a>> {
    live.binary_search_by_key(&id, |h| h.id())
        .ok()
        .map(|i| &live[i])
}

#[derive(Clone, Debug, PartialEq)]
pub struct PrimaryView {
    pub host: HostId,
    pub epoch: Epoch,
    pub writable: bool,
    /// Whether its host has quorum.
    pub quorum: bool,
    /// Inline (a replica set rarely has more than four members): the checker copies
    /// every primary's view into its colony's at every check.
    pub members: SmallVec<[MemberInfo; 4]>,
    /// What its copy counts for ([`placement::slots`] of its host).
    pub slots: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SecondaryView {
    pub host: HostId,
    pub epoch: Epoch,
    pub primary: HostId,
    /// Whether it holds the colony's data (its snapshot arrived), whatever its
    /// primary counts it for.
    pub synced: bool,
    /// Whether the leader can count on it: they can talk both ways (no partition
    /// between them); or only their own link is cut (a partial partition: the
    /// secondary still reaches most live hosts) and it holds everything the leader has
    /// (the same last version). A quiet colony's copy across a broken link lacks
    /// nothing and could be elected; one that fell behind must be replaced
    /// ([`colony::core::colony::ColonyConfig::ack_timeout_ms`]).
    pub reachable: bool,
    /// What its copy counts for ([`placement::slots`] of its host).
    pub slots: u32,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ColonyView {
    pub primaries: SmallVec<[PrimaryView; 1]>,
    pub secondaries: SmallVec<[SecondaryView; 3]>,
}

impl ColonyView {
    /// The live primary with the highest epoch.
    pub fn leader(&self) -> Option<&PrimaryView> {
        self.primaries.iter().max_by_key(|p| (p.epoch, p.host))
    }

    /// Replicas that count, each weighed by its host's slots: the leader and its
    /// caught-up members that really follow it, hold its data and that the network
    /// lets it reach. (A member its primary counts in sync while it waits, empty, for
    /// a snapshot does not count.)
    pub fn population(&self) -> u32 {
        let Some(l) = self.leader() else {
            return 0;
        };
        let members: u32 = l
            .members
            .iter()
            .filter(|m| m.in_sync && m.host != l.host)
            .filter_map(|m| {
                self.secondaries.iter().find(|s| {
                    s.host == m.host
                        && s.epoch == l.epoch
                        && s.primary == l.host
                        && s.synced
                        && s.reachable
                })
            })
            .map(|s| s.slots)
            .sum();
        l.slots + members
    }

    pub fn healthy(&self, target: u32) -> bool {
        self.primaries.len() == 1 && self.population() >= target
    }

    /// Hosts of the leader's replica set (itself and every member it streams to).
    pub fn leader_set(&self) -> Option<Vec<HostId>> {
        let l = self.leader()?;
        let mut set = vec![l.host];
        set.extend(l.members.iter().map(|m| m.host));
        Some(set)
    }

    pub fn describe(&self) -> String {
        let prim: Vec<String> = self
            .primaries
            .iter()
            .map(|p| {
                let members: Vec<String> = p
                    .members
                    .iter()
                    .map(|m| format!("{}{}", m.host, if m.in_sync { "" } else { "(syncing)" }))
                    .collect();
                format!(
                    "primary {}{} epoch {}{}{} members [{}]",
                    p.host,
                    storage_mark(p.slots),
                    p.epoch,
                    if p.writable { "" } else { " not-writable" },
                    if p.quorum { "" } else { " no-quorum" },
                    members.join(",")
                )
            })
            .collect();
        let sec: Vec<String> = self
            .secondaries
            .iter()
            .map(|s| {
                let mark = storage_mark(s.slots);
                let empty = if s.synced { "" } else { ", empty" };
                format!(
                    "{}{mark}(follows {} @{}{empty})",
                    s.host, s.primary, s.epoch
                )
            })
            .collect();
        format!("{}; secondaries {}", prim.join("; "), sec.join(","))
    }
}

/// How a description marks a copy that counts for more than one replica.
fn storage_mark(slots: u32) -> String {
    if slots == 1 {
        String::new()
    } else {
        format!("[x{slots}]")
    }
}

/// Every colony, from every live host.
#[derive(Debug, Default, PartialEq)]
pub struct ClusterView {
    pub colonies: Vec<ColonyView>,
}

/// What one host's replicas showed when last read, and when.
#[derive(Default)]
struct HostRead {
    /// Incarnation, [`Node::observed_generation`] and quorum at the read.
    stamp: Option<(u32, u64, bool)>,
    primaries: Vec<(ColonyId, PrimaryView)>,
    secondaries: Vec<(ColonyId, SecondaryView)>,
}

impl HostRead {
    fn colonies(&self) -> impl Iterator<Item = ColonyId> + '_ {
        let primaries = self.primaries.iter().map(|(c, _)| *c);
        primaries.chain(self.secondaries.iter().map(|(c, _)| *c))
    }
}

/// The replicas of every host as last read, for [`ClusterView::rebuild`], and what the
/// view was last built from.
#[derive(Default)]
pub struct ViewCache {
    hosts: BTreeMap<HostId, HostRead>,
    /// The live hosts of the last rebuild, ascending.
    live: Vec<HostId>,
    /// For each colony, the live hosts whose last read holds it, ascending.
    holders: Vec<SmallVec<[HostId; 4]>>,
    /// Whether the last rebuild was made whole under reach that held everywhere.
    calm: bool,
}

impl ViewCache {
    /// Lists `h` among the holders of every colony its last read holds.
    fn add_holder(&mut self, h: HostId) {
        let Some(read) = self.hosts.get(&h) else {
            return;
        };
        for c in read.colonies() {
            if let Some(hs) = self.holders.get_mut(c as usize) {
                if let Err(at) = hs.binary_search(&h) {
                    hs.insert(at, h);
                }
            }
        }
    }

    /// `h`'s replicas, read again if they changed since the last read; when they did,
    /// the colonies of the old read and of the new one are added to `changed`.
    fn read(&mut self, h: &LiveHost, changed: &mut Vec<ColonyId>) -> &HostRead {
        let node = h.node;
        let stamp = (
            node.incarnation(),
            node.observed_generation(),
            node.has_quorum(),
        );
        let read = self.hosts.entry(h.id()).or_default();
        if read.stamp != Some(stamp) {
            changed.extend(read.colonies());
            read.stamp = Some(stamp);
            read.primaries.clear();
            read.secondaries.clear();
            let me = h.id();
            let slots = h.slots();
            for r in node.replicas() {
                match r.role {
                    Role::Primary => {
                        let s = r.summary(me);
                        read.primaries.push((
                            r.colony,
                            PrimaryView {
                                host: me,
                                epoch: s.epoch,
                                writable: s.writable,
                                quorum: stamp.2,
                                members: SmallVec::from_slice(&s.members),
                                slots,
                            },
                        ));
                    }
                    Role::Secondary => read.secondaries.push((
                        r.colony,
                        SecondaryView {
                            host: me,
                            epoch: r.epoch,
                            primary: r.primary,
                            synced: r.is_synced(),
                            reachable: true,
                            slots,
                        },
                    )),
                }
            }
            changed.extend(read.colonies());
        }
        read
    }
}

impl ClusterView {
    /// `reach(a, b)`: whether `a` and `b` can talk both ways right now.
    pub fn build(
        live: &[LiveHost],
        colonies: u32,
        reach: &dyn Fn(HostId, HostId) -> bool,
    ) -> ClusterView {
        let mut cv: Vec<ColonyView> = vec![ColonyView::default(); colonies as usize];
        for h in live {
            let me = h.id();
            let quorum = h.node.has_quorum();
            let slots = h.slots();
            for r in h.node.replicas() {
                let Some(slot) = cv.get_mut(r.colony as usize) else {
                    continue;
                };
                match r.role {
                    Role::Primary => {
                        let s = r.summary(me);
                        slot.primaries.push(PrimaryView {
                            host: me,
                            epoch: s.epoch,
                            writable: s.writable,
                            quorum,
                            members: SmallVec::from_slice(&s.members),
                            slots,
                        });
                    }
                    Role::Secondary => slot.secondaries.push(SecondaryView {
                        host: me,
                        epoch: r.epoch,
                        primary: r.primary,
                        synced: r.is_synced(),
                        reachable: true,
                        slots,
                    }),
                }
            }
        }
        let mut view = ClusterView { colonies: cv };
        view.set_reach(live, reach);
        view
    }

    /// Whether each secondary and its colony's leader can talk, or only their link is
    /// cut and the secondary holds everything the leader has (looked up on the hosts
    /// only across a cut link).
    fn set_reach(&mut self, live: &[LiveHost], reach: &dyn Fn(HostId, HostId) -> bool) {
        let reaches_most = |h: HostId| {
            let reached = live.iter().filter(|x| x.id() == h || reach(h, x.id()));
            reached.count() * 2 > live.len()
        };
        for (c, cv) in self.colonies.iter_mut().enumerate() {
            let Some(l) = cv.leader().map(|l| l.host) else {
                continue;
            };
            let last_on = |h: HostId| {
                find(live, h)
                    .and_then(|x| x.node.replica(c as ColonyId))
                    .map(|r| r.last)
            };
            for s in &mut cv.secondaries {
                s.reachable = reach(l, s.host) || {
                    let theirs = last_on(s.host);
                    theirs.is_some() && theirs == last_on(l) && reaches_most(s.host)
                };
            }
        }
    }

    /// [`ClusterView::build`] again, in place, reading only the hosts whose replicas
    /// changed since `cache` last read them ([`Node::observed_generation`]) and
    /// rebuilding only the colonies those hosts hold or held. `calm`: `reach` holds for
    /// every pair (no partition), so every secondary is reachable; otherwise (and at
    /// the first check after a partition) every colony is rebuilt and its reach looked
    /// at. In a cluster of a thousand hosts, reading every replica every simulated
    /// second was a tenth of the run, and copying every colony's view again most of
    /// what was left of the checks.
    pub fn rebuild(
        &mut self,
        live: &[LiveHost],
        colonies: u32,
        reach: &dyn Fn(HostId, HostId) -> bool,
        calm: bool,
        cache: &mut ViewCache,
    ) {
        let whole = !calm || !cache.calm || self.colonies.len() != colonies as usize;
        cache.holders.resize_with(colonies as usize, SmallVec::new);
        let mut changed = Vec::new();
        // Hosts gone since the last rebuild: their colonies change, they hold them no
        // more, and their read is forgotten (a host that comes back is read again).
        let mut now_live = Vec::with_capacity(live.len());
        now_live.extend(live.iter().map(LiveHost::id));
        for gone in cache
            .live
            .iter()
            .filter(|h| now_live.binary_search(h).is_err())
        {
            if let Some(read) = cache.hosts.remove(gone) {
                for c in read.colonies() {
                    if let Some(hs) = cache.holders.get_mut(c as usize) {
                        hs.retain(|x| x != gone);
                    }
                    changed.push(c);
                }
            }
        }
        cache.live = now_live;
        // Read the live hosts; each read again adds the colonies of its old read and
        // of its new one to `changed` (`refreshed` keeps where).
        let mut refreshed = Vec::new();
        for h in live {
            let from = changed.len();
            cache.read(h, &mut changed);
            if changed.len() > from {
                refreshed.push((h.id(), from..changed.len()));
            }
        }
        if whole {
            for hs in &mut cache.holders {
                hs.clear();
            }
            for h in live {
                cache.add_holder(h.id());
            }
            changed = (0..colonies).collect();
        } else {
            // Keep the holders of each colony in step with the new reads.
            for (h, touched) in refreshed {
                for &c in &changed[touched] {
                    if let Some(hs) = cache.holders.get_mut(c as usize) {
                        hs.retain(|x| *x != h);
                    }
                }
                cache.add_holder(h);
            }
            changed.sort_unstable();
            changed.dedup();
        }
        self.colonies
            .resize_with(colonies as usize, ColonyView::default);
        for &c in &changed {
            let Some(view) = self.colonies.get_mut(c as usize) else {
                continue;
            };
            view.primaries.clear();
            view.secondaries.clear();
            for h in &cache.holders[c as usize] {
                let Some(read) = cache.hosts.get(h) else {
                    continue;
                };
                if let Ok(i) = read.primaries.binary_search_by_key(&c, |(x, _)| *x) {
                    view.primaries.push(read.primaries[i].1.clone());
                }
                if let Ok(i) = read.secondaries.binary_search_by_key(&c, |(x, _)| *x) {
                    view.secondaries.push(read.secondaries[i].1);
                }
            }
        }
        if !calm {
            self.set_reach(live, reach);
        }
        cache.calm = calm;
    }

    pub fn colony(&self, c: ColonyId) -> &ColonyView {
        &self.colonies[c as usize]
    }

    /// Live primaries on hosts whose copy counts for more than one replica.
    pub fn storage_primaries(&self) -> u64 {
        let all = self.colonies.iter().flat_map(|c| c.primaries.iter());
        all.filter(|p| p.slots > 1).count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smallvec::smallvec;

    const EPOCH: Epoch = Epoch { term: 4, by: 1 };

    fn primary(host: HostId, slots: u32, members: &[(HostId, bool)]) -> PrimaryView {
        PrimaryView {
            host,
            epoch: EPOCH,
            writable: true,
            quorum: true,
            members: members
                .iter()
                .map(|&(host, in_sync)| MemberInfo { host, in_sync })
                .collect(),
            slots,
        }
    }

    fn follower(host: HostId, slots: u32) -> SecondaryView {
        SecondaryView {
            host,
            epoch: EPOCH,
            primary: 1,
            synced: true,
            reachable: true,
            slots,
        }
    }

    #[test]
    fn population_weighs_each_copy_by_its_hosts_slots() {
        // An ordinary primary and a storage secondary: 1 + 2.
        let cv = ColonyView {
            primaries: smallvec![primary(1, 1, &[(9, true)])],
            secondaries: smallvec![follower(9, 2)],
        };
        assert_eq!(cv.population(), 3);
        assert!(cv.healthy(3));
        // The storage node alone, as primary: 2.
        let alone = ColonyView {
            primaries: smallvec![primary(9, 2, &[])],
            secondaries: smallvec![],
        };
        assert_eq!(alone.population(), 2);
        assert!(alone.healthy(2) && !alone.healthy(3));
        // A storage member still syncing, or following someone else, does not count.
        let syncing = ColonyView {
            primaries: smallvec![primary(1, 1, &[(9, false), (2, true)])],
            secondaries: smallvec![follower(9, 2), follower(2, 1)],
        };
        assert_eq!(syncing.population(), 2);
        let astray = ColonyView {
            primaries: smallvec![primary(1, 1, &[(9, true)])],
            secondaries: smallvec![SecondaryView {
                primary: 5,
                ..follower(9, 2)
            }],
        };
        assert_eq!(astray.population(), 1);
        assert!(astray.describe().contains("9[x2](follows 5 @4.1)"));
        // A member its primary counts in sync that holds no data yet does not count
        // either (storage-two seed 1045 at 78e7475 passed as healthy with one).
        let empty = ColonyView {
            primaries: smallvec![primary(1, 1, &[(9, true), (2, true)])],
            secondaries: smallvec![
                follower(9, 2),
                SecondaryView {
                    synced: false,
                    ..follower(2, 1)
                },
            ],
        };
        assert_eq!(empty.population(), 3);
        assert!(!empty.healthy(4));
        assert!(empty.describe().contains("2(follows 1 @4.1, empty)"));
    }
}
