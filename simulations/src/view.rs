//! A snapshot of the cluster as the checker sees it: for every colony, which live hosts
//! hold it as primary or secondary, read directly from the hosts' replicas.
//!
//! A colony's *leader* is its live primary with the highest epoch; its *population* is
//! the leader plus the members the leader counts as caught up that really hold a
//! secondary replica following the leader at its epoch. A colony is *healthy* when it
//! has exactly one live primary and a population of at least the target.

use colony::core::messages::MemberInfo;
use colony::core::node::{Node, NodeState};
use colony::core::topology::{HostState, HostView, Topology};
use colony::core::types::{ColonyId, Epoch, HostId, Load, Role};

/// A host that is up (not killed, not gone), with the load it last reported.
pub struct LiveHost<'a> {
    pub node: &'a Node,
    pub load: Load,
}

impl LiveHost<'_> {
    pub fn id(&self) -> HostId {
        self.node.id()
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

/// Find a live host by id (`live` is sorted by id).
pub fn find<'a, 'b>(live: &'b [LiveHost<'a>], id: HostId) -> Option<&'b LiveHost<'a>> {
    live.binary_search_by_key(&id, |h| h.id())
        .ok()
        .map(|i| &live[i])
}

#[derive(Clone, Debug)]
pub struct PrimaryView {
    pub host: HostId,
    pub epoch: Epoch,
    pub writable: bool,
    /// Whether its host has quorum.
    pub quorum: bool,
    pub members: Vec<MemberInfo>,
}

#[derive(Clone, Copy, Debug)]
pub struct SecondaryView {
    pub host: HostId,
    pub epoch: Epoch,
    pub primary: HostId,
    /// Whether it and the leader can talk both ways (no partition between them).
    pub reachable: bool,
}

#[derive(Clone, Debug, Default)]
pub struct ColonyView {
    pub primaries: Vec<PrimaryView>,
    pub secondaries: Vec<SecondaryView>,
}

impl ColonyView {
    /// The live primary with the highest epoch.
    pub fn leader(&self) -> Option<&PrimaryView> {
        self.primaries.iter().max_by_key(|p| (p.epoch, p.host))
    }

    /// Replicas that count: the leader and its caught-up members that really follow it
    /// and that the network lets it reach.
    pub fn population(&self) -> u32 {
        let Some(l) = self.leader() else {
            return 0;
        };
        1 + l
            .members
            .iter()
            .filter(|m| m.in_sync && m.host != l.host)
            .filter(|m| {
                self.secondaries.iter().any(|s| {
                    s.host == m.host && s.epoch == l.epoch && s.primary == l.host && s.reachable
                })
            })
            .count() as u32
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
                    "primary {} epoch {}{}{} members [{}]",
                    p.host,
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
            .map(|s| format!("{}(follows {} @{})", s.host, s.primary, s.epoch))
            .collect();
        format!("{}; secondaries {}", prim.join("; "), sec.join(","))
    }
}

/// Every colony, from every live host.
pub struct ClusterView {
    pub colonies: Vec<ColonyView>,
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
                            members: s.members,
                        });
                    }
                    Role::Secondary => slot.secondaries.push(SecondaryView {
                        host: me,
                        epoch: r.epoch,
                        primary: r.primary,
                        reachable: true,
                    }),
                }
            }
        }
        for c in &mut cv {
            if let Some(l) = c.leader().map(|l| l.host) {
                for s in &mut c.secondaries {
                    s.reachable = reach(l, s.host);
                }
            }
        }
        ClusterView { colonies: cv }
    }

    pub fn colony(&self, c: ColonyId) -> &ColonyView {
        &self.colonies[c as usize]
    }
}
