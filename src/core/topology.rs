//! Where hosts stand: zones > boxes > hosts, and what each host last said about itself.
//!
//! The containment tree is a `petgraph` [`StableGraph`] with one node per zone, per box
//! and per host, and an edge from each container to what it contains. The distance
//! between two hosts is how far up the tree one must climb to find a common ancestor:
//! 0 same host, 1 same box, 2 same zone, 3 different zones. Placement
//! ([`super::placement`]) turns distances into repulsion.
//!
//! A box is identified by its zone *and* its name: a box belongs to exactly one zone, so
//! two hosts that name the same box in two different zones stand on two different boxes.
//! Empty boxes and zones are pruned when their last host goes.
//!
//! Next to the tree, the topology keeps each host's [`HostView`] (its last reported load,
//! replica count and state; shared with the host record it came from, not copied) and a
//! ranking of all hosts by placement attraction, best
//! first. The ranking is a cache: [`Topology::upsert`] and [`Topology::remove`] only note
//! which hosts changed, and [`Topology::refresh`] (called by [`Topology::ranked`], which
//! is why that takes `&mut self`) brings it up to date on the next read — by re-placing
//! the few changed hosts when only a few changed, by one full sort otherwise. A change
//! to a host's replica count alone does not touch the ranking. The topology also keeps
//! the highest attraction of any host exact as views change
//! ([`Topology::peak_attraction`]), so placement can tell at once that no host is worth
//! a move.
//!
//! Everything is ordered by [`HostId`] (`BTreeMap`s, sorts with id tie-breaks), so no
//! hash order can leak into a placement decision.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use petgraph::stable_graph::{NodeIndex, StableGraph};
use petgraph::Direction;
use serde::{Deserialize, Serialize};

use super::placement::{attraction, attraction_key, feasible_share, PlacementConfig};
use super::types::{HostId, HostInfo, HostRole, IdMap, Load};

/// Whether a host takes replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    /// A member in good standing.
    Alive,
    /// Draining: takes no new replicas, and the replicas it holds should move away.
    Leaving,
}

/// What the cluster knows about one host: who and where it is, and what it last reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostView {
    pub info: HostInfo,
    /// Last reported load.
    pub load: Load,
    /// Replicas it holds, as last reported.
    pub replicas: u32,
    /// Of those, primaries: colonies hand primacy to a secondary on a host with
    /// markedly fewer, so client load spreads without moving any data.
    #[serde(default)]
    pub primaries: u32,
    pub state: HostState,
}

/// A host, found once in a [`Topology`]: its view (None if unknown) and its place in the
/// tree.
#[derive(Clone, Copy, Debug)]
pub struct Spot<'a> {
    pub host: HostId,
    pub view: Option<&'a HostView>,
    nodes: Option<(NodeIndex, NodeIndex, Option<NodeIndex>)>,
}

impl Spot<'_> {
    /// [`Topology::distance`] between two spots.
    pub fn distance(a: Spot, b: Spot) -> u8 {
        if a.host == b.host {
            return 0;
        }
        let (Some((node_a, box_a, zone_a)), Some((node_b, box_b, zone_b))) = (a.nodes, b.nodes)
        else {
            return 3;
        };
        if node_a == node_b {
            0
        } else if box_a == box_b {
            1
        } else if zone_a.is_some() && zone_a == zone_b {
            2
        } else {
            3
        }
    }
}

/// A node of the containment tree.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Place {
    Zone(String),
    Box(String),
    Host(HostId),
}

#[derive(Clone, Debug)]
struct Entry {
    /// Shared with the host record it came from: every host of a cluster holds every
    /// host's view, and a record pushed to all of them is one value.
    view: Arc<HostView>,
    /// The host's node in the graph.
    node: NodeIndex,
    /// Its box's and its zone's nodes (cached: [`Topology::distance`] is called for
    /// every pair a placement decision weighs).
    box_node: NodeIndex,
    zone_node: Option<NodeIndex>,
}

/// Hosts by attraction, best first, ties by id; `scores[i]` is the attraction of `ids[i]`
/// under weights whose [`attraction_key`] is `key`.
#[derive(Clone, Debug)]
struct Ranking {
    key: [u64; 3],
    ids: Vec<HostId>,
    scores: Vec<f64>,
}

/// Up to this many changed hosts are re-placed one by one in the ranking (O(hosts) each);
/// more than this and the whole ranking is sorted again.
const INCREMENTAL_LIMIT: usize = 8;

/// Ranking order: higher attraction first, then lower id.
fn rank_order(a_score: f64, a_id: HostId, b_score: f64, b_id: HostId) -> Ordering {
    b_score.total_cmp(&a_score).then(a_id.cmp(&b_id))
}

impl Ranking {
    fn build<'a>(views: impl Iterator<Item = &'a HostView>, cfg: &PlacementConfig) -> Ranking {
        let mut order: Vec<(f64, HostId)> =
            views.map(|v| (attraction(v, cfg), v.info.id)).collect();
        order.sort_by(|a, b| rank_order(a.0, a.1, b.0, b.1));
        Ranking {
            key: attraction_key(cfg),
            ids: order.iter().map(|&(_, id)| id).collect(),
            scores: order.iter().map(|&(s, _)| s).collect(),
        }
    }

    fn take_out(&mut self, id: HostId) {
        if let Some(pos) = self.ids.iter().position(|&x| x == id) {
            self.ids.remove(pos);
            self.scores.remove(pos);
        }
    }

    fn put_in(&mut self, id: HostId, score: f64) {
        let (mut lo, mut hi) = (0, self.ids.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if rank_order(self.scores[mid], self.ids[mid], score, id) == Ordering::Less {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        self.ids.insert(lo, id);
        self.scores.insert(lo, score);
    }
}

/// The hosts of the cluster as a zone > box > host tree, with their last reported views
/// and a lazily refreshed ranking by placement attraction.
///
/// Equality compares the host views only (the graph and the ranking are derived from them).
#[derive(Clone, Debug, Default)]
pub struct Topology {
    graph: StableGraph<Place, ()>,
    /// Every host's entry, in a slab (`free` lists the empty places).
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    /// Host id to its place in `entries`, ascending (what iterates).
    hosts: BTreeMap<HostId, u32>,
    /// The same, by id (what looks up: placement asks for a few hosts at every turn of
    /// every colony).
    index: IdMap<u32>,
    zones: BTreeMap<String, NodeIndex>,
    /// Zone name -> box name -> the box node.
    boxes: BTreeMap<String, BTreeMap<String, NodeIndex>>,
    /// Boxes in `boxes`.
    box_count: usize,
    ranking: Option<Ranking>,
    /// Hosts whose attraction may have changed since `ranking` was brought up to date.
    pending: BTreeSet<HostId>,
    /// Raised at every change of a view: what is derived from all views (the feasible
    /// population) is computed again only when it moved.
    generation: u64,
    /// Raised when a host comes, goes, or changes what it can hold (capacity, role,
    /// state), not when only its load or replica count moves.
    shape: u64,
    /// Every host by attraction under some weights, kept exact as views change: the
    /// highest attraction at hand.
    peak: Option<Peak>,
    /// Hosts that are not ordinary (storage nodes, loggers): while there are none,
    /// every host counts for one replica and none is a storage node, without a lookup.
    special: usize,
    /// The sums of [`feasible_share`] over the hosts for some parameters, kept as views
    /// change once [`Topology::track_feasible`] asked for them.
    feasible: Option<Feasible>,
}

#[derive(Clone, Copy, Debug)]
struct Feasible {
    colonies: u32,
    replica_memory: u64,
    copies: u64,
    room: u64,
}

impl Feasible {
    fn change(&mut self, old: Option<&HostView>, new: Option<&HostView>) {
        if let Some(v) = old {
            let (c, r) = feasible_share(v, self.colonies, self.replica_memory);
            self.copies -= c;
            self.room -= r;
        }
        if let Some(v) = new {
            let (c, r) = feasible_share(v, self.colonies, self.replica_memory);
            self.copies += c;
            self.room += r;
        }
    }
}

/// Keeps the peak exact as one host's view goes from `old` to `new`.
fn peak_change(peak: &mut Option<Peak>, old: Option<&HostView>, new: Option<&HostView>) {
    let Some(p) = peak else {
        return;
    };
    if let Some(v) = old {
        let key = ordered(attraction(v, &p.cfg));
        p.by_attraction.remove(&(key, v.info.id));
        if p.top == Some(key) {
            p.top = p.by_attraction.last().map(|&(k, _)| k);
        }
    }
    if let Some(v) = new {
        let key = ordered(attraction(v, &p.cfg));
        p.by_attraction.insert((key, v.info.id));
        p.top = p.top.max(Some(key));
    }
}

/// A float as an integer of the same order ([`f64::total_cmp`]).
fn ordered(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// The float of [`ordered`].
fn unordered(key: u64) -> f64 {
    f64::from_bits(if key >> 63 == 1 {
        key & !(1 << 63)
    } else {
        !key
    })
}

/// See [`Topology::peak_attraction`]: every host by its attraction under `cfg`, kept in
/// step with the views (O(log hosts) per change), so the highest is always at hand.
#[derive(Clone, Debug)]
struct Peak {
    cfg: PlacementConfig,
    by_attraction: BTreeSet<(u64, HostId)>,
    /// The highest key of `by_attraction`.
    top: Option<u64>,
}

impl PartialEq for Topology {
    fn eq(&self, other: &Self) -> bool {
        self.hosts.len() == other.hosts.len() && self.hosts().eq(other.hosts())
    }
}

impl Topology {
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes that `host`'s attraction may have changed (nothing to note while there is
    /// no ranking: the first read builds it from scratch).
    fn note_pending(&mut self, host: HostId) {
        if self.ranking.is_some() {
            self.pending.insert(host);
        }
    }

    fn entry(&self, host: HostId) -> Option<&Entry> {
        let slot = *self.index.get(host)?;
        self.entries[slot as usize].as_ref()
    }

    fn insert_entry(&mut self, id: HostId, entry: Entry) {
        if let Some(f) = &mut self.feasible {
            f.change(None, Some(&entry.view));
        }
        self.special += usize::from(entry.view.info.role != HostRole::Normal);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.entries[slot as usize] = Some(entry);
                slot
            }
            None => {
                self.entries.push(Some(entry));
                (self.entries.len() - 1) as u32
            }
        };
        self.hosts.insert(id, slot);
        self.index.insert(id, slot);
    }

    fn remove_entry(&mut self, id: HostId) -> Option<Entry> {
        let slot = self.index.remove(id)?;
        self.hosts.remove(&id);
        self.free.push(slot);
        let entry = self.entries[slot as usize].take()?;
        if let Some(f) = &mut self.feasible {
            f.change(Some(&entry.view), None);
        }
        self.special -= usize::from(entry.view.info.role != HostRole::Normal);
        Some(entry)
    }

    /// Adds a host or replaces its view. A new incarnation may stand on another box or
    /// in another zone: the host is then moved in the tree.
    pub fn upsert(&mut self, view: HostView) {
        self.upsert_shared(&Arc::new(view));
    }

    /// [`Topology::upsert`] of a shared view (a host record's): the topology keeps the
    /// `Arc`, not a copy.
    pub fn upsert_shared(&mut self, view: &Arc<HostView>) {
        let id = view.info.id;
        if let Some(&slot) = self.index.get(id) {
            let entry = self.entries[slot as usize].as_mut().expect("indexed");
            let old = &entry.view;
            if Arc::ptr_eq(old, view) || *old == *view {
                return;
            }
            self.generation += 1;
            let moved = old.info.zone != view.info.zone || old.info.box_name != view.info.box_name;
            if !moved {
                peak_change(&mut self.peak, Some(old), Some(view));
                let shape_changed = old.info.capacity != view.info.capacity
                    || old.info.role != view.info.role
                    || old.state != view.state;
                let rank_changed = shape_changed || old.load != view.load;
                if shape_changed {
                    self.shape += 1;
                    if let Some(f) = &mut self.feasible {
                        f.change(Some(old), Some(view));
                    }
                }
                if old.info.role != view.info.role {
                    let (was, is) = (old.info.role, view.info.role);
                    self.special = self.special + usize::from(is != HostRole::Normal)
                        - usize::from(was != HostRole::Normal);
                }
                entry.view = view.clone();
                if rank_changed {
                    self.note_pending(id);
                }
                return;
            }
            self.remove(id);
        }
        let view = view.clone();
        self.generation += 1;
        self.shape += 1;
        peak_change(&mut self.peak, None, Some(&view));
        let box_node = self.box_node(&view.info.zone, &view.info.box_name);
        let zone_node = self.parent(box_node);
        let node = self.graph.add_node(Place::Host(id));
        self.graph.add_edge(box_node, node, ());
        self.insert_entry(
            id,
            Entry {
                view,
                node,
                box_node,
                zone_node,
            },
        );
        self.note_pending(id);
    }

    /// Removes a host; its box and zone go too when it was their last host.
    pub fn remove(&mut self, host: HostId) {
        let Some(entry) = self.remove_entry(host) else {
            return;
        };
        self.generation += 1;
        self.shape += 1;
        self.note_pending(host);
        peak_change(&mut self.peak, Some(&entry.view), None);
        let box_node = self.parent(entry.node);
        self.graph.remove_node(entry.node);
        let Some(box_node) = box_node else {
            return;
        };
        if self.has_children(box_node) {
            return;
        }
        let zone_node = self.parent(box_node);
        self.graph.remove_node(box_node);
        let info = &entry.view.info;
        if let Some(in_zone) = self.boxes.get_mut(&*info.zone) {
            if in_zone.remove(&*info.box_name).is_some() {
                self.box_count -= 1;
            }
            if in_zone.is_empty() {
                self.boxes.remove(&*info.zone);
            }
        }
        if let Some(zone_node) = zone_node {
            if !self.has_children(zone_node) {
                self.graph.remove_node(zone_node);
                self.zones.remove(&*info.zone);
            }
        }
    }

    pub fn get(&self, host: HostId) -> Option<&HostView> {
        self.entry(host).map(|e| &*e.view)
    }

    /// Keep the sums of [`feasible_share`] for these parameters up to date from now on,
    /// so that [`Topology::feasible_sums`] answers at once.
    pub fn track_feasible(&mut self, colonies: u32, replica_memory: u64) {
        let (copies, room) = self.feasible_sums(colonies, replica_memory);
        self.feasible = Some(Feasible {
            colonies,
            replica_memory,
            copies,
            room,
        });
    }

    /// The sums over the hosts of [`feasible_share`]: at once when tracked for these
    /// parameters, by one pass over the hosts otherwise.
    pub fn feasible_sums(&self, colonies: u32, replica_memory: u64) -> (u64, u64) {
        if let Some(f) = &self.feasible {
            if f.colonies == colonies && f.replica_memory == replica_memory {
                return (f.copies, f.room);
            }
        }
        self.hosts()
            .map(|v| feasible_share(v, colonies, replica_memory))
            .fold((0, 0), |(c, r), (dc, dr)| (c + dc, r + dr))
    }

    /// Whether any host present is a storage node or a logger.
    pub fn has_special_roles(&self) -> bool {
        self.special > 0
    }

    pub fn contains(&self, host: HostId) -> bool {
        self.index.contains(host)
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// All host views, ordered by id.
    pub fn hosts(&self) -> impl Iterator<Item = &HostView> {
        self.hosts
            .values()
            .filter_map(|&slot| self.entries[slot as usize].as_ref())
            .map(|e| &*e.view)
    }

    /// All host ids, ascending.
    pub fn host_ids(&self) -> Vec<HostId> {
        self.hosts.keys().copied().collect()
    }

    /// 0 same host, 1 same box, 2 same zone (different box), 3 different zones.
    ///
    /// Two different ids of which one is unknown are at distance 3 (nothing is known to
    /// tie them together); an id is always at distance 0 from itself.
    pub fn distance(&self, a: HostId, b: HostId) -> u8 {
        Spot::distance(self.spot(a), self.spot(b))
    }

    /// Where `host` stands, to weigh its distance to several others with one lookup
    /// ([`Spot::distance`]), and its view.
    pub fn spot(&self, host: HostId) -> Spot<'_> {
        let entry = self.entry(host);
        Spot {
            host,
            view: entry.map(|e| &*e.view),
            nodes: entry.map(|e| (e.node, e.box_node, e.zone_node)),
        }
    }

    /// Raised at every change of any host's view (see the field).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Raised when a host comes or goes or changes its capacity, role or state: what
    /// depends only on those ([`super::placement::feasible_population`]) moves only then.
    pub fn shape_generation(&self) -> u64 {
        self.shape
    }

    /// Whether two hosts stand on one box (a host shares its box with itself).
    pub fn same_box(&self, a: HostId, b: HostId) -> bool {
        self.distance(a, b) <= 1
    }

    /// Distinct boxes among the hosts present.
    pub fn boxes(&self) -> usize {
        self.box_count
    }

    /// Distinct zones among the hosts present.
    pub fn zones(&self) -> usize {
        self.zones.len()
    }

    /// The highest [`attraction`] of any host under `cfg`'s weights (−∞ without an
    /// eligible host): no host can gain a replica set more than this minus what a
    /// member contributes. Exact; every host is ordered by attraction once for `cfg`'s
    /// weights, and kept in order as views change (O(log hosts) per change).
    pub fn peak_attraction(&mut self, cfg: &PlacementConfig) -> f64 {
        let current = self
            .peak
            .as_ref()
            .is_some_and(|p| attraction_key(&p.cfg) == attraction_key(cfg));
        if !current {
            let by_attraction: BTreeSet<(u64, HostId)> = self
                .hosts()
                .map(|v| (ordered(attraction(v, cfg)), v.info.id))
                .collect();
            self.peak = Some(Peak {
                cfg: cfg.clone(),
                top: by_attraction.last().map(|&(k, _)| k),
                by_attraction,
            });
        }
        self.peak
            .as_ref()
            .and_then(|p| p.top)
            .map_or(f64::NEG_INFINITY, unordered)
    }

    /// Brings the attraction ranking up to date for `cfg` (no-op when it already is). Only
    /// the attraction weights of `cfg` matter: changing another field ranks nothing again.
    pub fn refresh(&mut self, cfg: &PlacementConfig) {
        if let Some(r) = self.ranking.as_mut() {
            if r.key == attraction_key(cfg) {
                if self.pending.is_empty() {
                    return;
                }
                if self.pending.len() <= INCREMENTAL_LIMIT {
                    for id in std::mem::take(&mut self.pending) {
                        r.take_out(id);
                        let e = self
                            .index
                            .get(id)
                            .and_then(|&slot| self.entries[slot as usize].as_ref());
                        if let Some(e) = e {
                            r.put_in(id, attraction(&e.view, cfg));
                        }
                    }
                    return;
                }
            }
        }
        self.ranking = Some(Ranking::build(self.hosts(), cfg));
        self.pending.clear();
    }

    /// All hosts sorted by placement attraction, best first, ties by id. Leaving hosts and
    /// loggers (attraction −∞) come last. Refreshes the cache first (hence `&mut self`).
    pub fn ranked(&mut self, cfg: &PlacementConfig) -> &[HostId] {
        self.refresh(cfg);
        self.ranking.as_ref().map_or(&[], |r| &r.ids)
    }

    /// The ranking if it is up to date for `cfg` (after [`Topology::refresh`] it is),
    /// without refreshing: lets a caller hold the ranking and read views at the same time.
    pub fn ranked_cached(&self, cfg: &PlacementConfig) -> Option<&[HostId]> {
        match &self.ranking {
            Some(r) if self.pending.is_empty() && r.key == attraction_key(cfg) => Some(&r.ids),
            _ => None,
        }
    }

    /// The ranking computed from scratch, uncached (a fallback for readers holding `&self`
    /// of a topology whose cache is stale).
    pub fn ranked_uncached(&self, cfg: &PlacementConfig) -> Vec<HostId> {
        Ranking::build(self.hosts(), cfg).ids
    }

    fn parent(&self, node: NodeIndex) -> Option<NodeIndex> {
        self.graph
            .neighbors_directed(node, Direction::Incoming)
            .next()
    }

    fn has_children(&self, node: NodeIndex) -> bool {
        self.graph
            .neighbors_directed(node, Direction::Outgoing)
            .next()
            .is_some()
    }

    /// The node of box `name` in `zone`, created (with its zone) if missing.
    fn box_node(&mut self, zone: &str, name: &str) -> NodeIndex {
        if let Some(&node) = self.boxes.get(zone).and_then(|in_zone| in_zone.get(name)) {
            return node;
        }
        let zone_node = match self.zones.get(zone) {
            Some(&node) => node,
            None => {
                let node = self.graph.add_node(Place::Zone(zone.to_owned()));
                self.zones.insert(zone.to_owned(), node);
                node
            }
        };
        let node = self.graph.add_node(Place::Box(name.to_owned()));
        self.graph.add_edge(zone_node, node, ());
        self.boxes
            .entry(zone.to_owned())
            .or_default()
            .insert(name.to_owned(), node);
        self.box_count += 1;
        node
    }
}

#[cfg(test)]
mod tests {
    use super::super::types::{HostRole, Resources};
    use super::*;
    use proptest::prelude::*;

    const GIB: u64 = 1 << 30;

    fn view(id: HostId, zone: &str, box_name: &str, cpu_used: f64, mem_used: u64) -> HostView {
        HostView {
            info: HostInfo {
                id,
                box_name: box_name.into(),
                zone: zone.into(),
                capacity: Resources {
                    cpu: 8.0,
                    memory: 8 * GIB,
                },
                role: HostRole::Normal,
            },
            load: Load {
                cpu: cpu_used,
                memory: mem_used,
            },
            replicas: 0,
            primaries: 0,
            state: HostState::Alive,
        }
    }

    /// z1: b1 {1, 2}, b2 {3}; z2: b3 {4}.
    fn layout() -> Topology {
        let mut t = Topology::new();
        t.upsert(view(4, "z2", "b3", 0.0, 0));
        t.upsert(view(2, "z1", "b1", 0.0, 0));
        t.upsert(view(3, "z1", "b2", 0.0, 0));
        t.upsert(view(1, "z1", "b1", 0.0, 0));
        t
    }

    #[test]
    fn distances_follow_zone_box_host() {
        let t = layout();
        assert_eq!(t.distance(1, 1), 0);
        assert_eq!(t.distance(1, 2), 1);
        assert_eq!(t.distance(2, 1), 1);
        assert_eq!(t.distance(1, 3), 2);
        assert_eq!(t.distance(3, 2), 2);
        assert_eq!(t.distance(1, 4), 3);
        assert_eq!(t.distance(4, 3), 3);
        assert_eq!(t.distance(1, 99), 3, "unknown hosts are far");
        assert_eq!(t.distance(99, 99), 0);
        assert!(t.same_box(1, 2) && t.same_box(1, 1));
        assert!(!t.same_box(1, 3) && !t.same_box(1, 4));
        assert_eq!((t.len(), t.boxes(), t.zones()), (4, 3, 2));
    }

    #[test]
    fn the_shape_moves_with_hosts_and_capacity_not_with_load() {
        let mut t = layout();
        let shape = t.shape_generation();
        let mut v = view(3, "z1", "b2", 5.0, GIB);
        v.replicas = 9;
        t.upsert(v.clone());
        assert_eq!(t.shape_generation(), shape, "load and replicas only");
        v.info.capacity.memory *= 2;
        t.upsert(v.clone());
        assert!(t.shape_generation() > shape);
        let shape = t.shape_generation();
        v.state = HostState::Leaving;
        t.upsert(v);
        assert!(t.shape_generation() > shape);
        let shape = t.shape_generation();
        t.remove(3);
        assert!(t.shape_generation() > shape);
    }

    #[test]
    fn hosts_are_ordered_by_id() {
        let t = layout();
        assert_eq!(t.host_ids(), vec![1, 2, 3, 4]);
        let ids: Vec<HostId> = t.hosts().map(|v| v.info.id).collect();
        assert_eq!(ids, vec![1, 2, 3, 4]);
        assert!(t.contains(3) && !t.contains(5));
        assert_eq!(t.get(3).map(|v| v.info.box_name.as_ref()), Some("b2"));
    }

    #[test]
    fn a_box_name_is_scoped_by_its_zone() {
        let mut t = Topology::new();
        t.upsert(view(1, "z1", "rack-box", 0.0, 0));
        t.upsert(view(2, "z2", "rack-box", 0.0, 0));
        assert_eq!(t.distance(1, 2), 3);
        assert_eq!(t.boxes(), 2);
    }

    #[test]
    fn removing_the_last_host_prunes_box_and_zone() {
        let mut t = layout();
        t.remove(4);
        assert_eq!((t.len(), t.boxes(), t.zones()), (3, 2, 1));
        t.remove(3);
        assert_eq!((t.boxes(), t.zones()), (1, 1));
        t.remove(1);
        assert_eq!((t.boxes(), t.zones()), (1, 1), "host 2 still stands on b1");
        t.remove(2);
        t.remove(2);
        assert!(t.is_empty());
        assert_eq!((t.boxes(), t.zones()), (0, 0));
        assert_eq!(t.graph.node_count(), 0);
    }

    #[test]
    fn a_new_incarnation_can_move_to_another_box() {
        let mut t = layout();
        t.upsert(view(2, "z1", "b2", 0.0, 0));
        assert_eq!(t.distance(1, 2), 2);
        assert_eq!(t.distance(2, 3), 1);
        assert_eq!((t.boxes(), t.zones()), (3, 2));
        t.upsert(view(4, "z1", "b1", 0.0, 0));
        assert_eq!(t.distance(1, 4), 1);
        assert_eq!((t.boxes(), t.zones()), (2, 1), "b3 and z2 are gone");
        assert_eq!(t.graph.node_count(), 4 + 2 + 1);
    }

    #[test]
    fn ranking_is_by_attraction_then_id_and_follows_updates() {
        let cfg = PlacementConfig::default();
        let mut t = layout();
        // All idle: ties by id.
        assert_eq!(t.ranked(&cfg), &[1, 2, 3, 4]);
        t.upsert(view(1, "z1", "b1", 6.0, 6 * GIB));
        t.upsert(view(3, "z1", "b2", 2.0, 0));
        assert_eq!(t.ranked(&cfg), &[2, 4, 3, 1]);
        let mut leaving = view(2, "z1", "b1", 0.0, 0);
        leaving.state = HostState::Leaving;
        t.upsert(leaving);
        let mut logger = view(5, "z2", "b9", 0.0, 0);
        logger.info.role = HostRole::Logger;
        t.upsert(logger);
        assert_eq!(t.ranked(&cfg), &[4, 3, 1, 2, 5]);
        t.remove(4);
        assert_eq!(t.ranked(&cfg), &[3, 1, 2, 5]);
        // Another weighting ranks again.
        let cpu_only = PlacementConfig {
            memory_attraction: 0.0,
            ..cfg.clone()
        };
        assert_eq!(t.ranked(&cpu_only), &[3, 1, 2, 5]);
        assert_eq!(t.ranked_cached(&cpu_only), Some(&[3, 1, 2, 5][..]));
        assert_eq!(t.ranked_cached(&cfg), None);
    }

    #[test]
    fn replica_count_alone_does_not_invalidate_the_ranking() {
        let cfg = PlacementConfig::default();
        let mut t = layout();
        t.refresh(&cfg);
        let mut v = view(3, "z1", "b2", 0.0, 0);
        v.replicas = 17;
        t.upsert(v);
        assert!(t.ranked_cached(&cfg).is_some());
        assert_eq!(t.get(3).map(|v| v.replicas), Some(17));
        t.upsert(view(3, "z1", "b2", 1.0, 0));
        assert!(t.ranked_cached(&cfg).is_none());
    }

    #[test]
    fn only_the_attraction_weights_key_the_ranking() {
        let cfg = PlacementConfig::default();
        let mut t = layout();
        t.upsert(view(2, "z1", "b1", 4.0, 0));
        t.refresh(&cfg);
        let calmer = PlacementConfig {
            hysteresis: 9.0,
            max_candidates: 1,
            ..cfg.clone()
        };
        assert_eq!(t.ranked_cached(&calmer), Some(&[1, 3, 4, 2][..]));
        // Even a NaN weight gives a stable cache (compared bit for bit).
        let odd = PlacementConfig {
            cpu_attraction: f64::NAN,
            ..cfg
        };
        let first = t.ranked(&odd).to_vec();
        assert_eq!(t.ranked_cached(&odd), Some(&first[..]));
    }

    #[test]
    fn equality_compares_views() {
        let a = layout();
        let mut b = Topology::new();
        for id in [1, 2, 3, 4] {
            b.upsert(a.get(id).cloned().unwrap());
        }
        assert_eq!(a, b);
        b.upsert(view(4, "z2", "b3", 1.0, 0));
        assert_ne!(a, b);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Upsert {
            id: HostId,
            zone: u8,
            box_: u8,
            cpu: u8,
            leaving: bool,
        },
        Remove(HostId),
        Read,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u32..20, 0u8..3, 0u8..4, 0u8..9, any::<bool>()).prop_map(
                |(id, zone, box_, cpu, leaving)| Op::Upsert { id, zone, box_, cpu, leaving }
            ),
            1 => (0u32..20).prop_map(Op::Remove),
            2 => Just(Op::Read),
        ]
    }

    proptest! {
        /// The cached ranking, however it was patched, equals a ranking from scratch, and
        /// the tree always matches the host views.
        #[test]
        fn cached_ranking_matches_a_fresh_one(ops in proptest::collection::vec(op(), 1..80)) {
            let cfg = PlacementConfig::default();
            let mut t = Topology::new();
            t.track_feasible(100, GIB);
            for op in ops {
                match op {
                    Op::Upsert { id, zone, box_, cpu, leaving } => {
                        let mut v = view(id, &format!("z{zone}"), &format!("b{box_}"), f64::from(cpu), 0);
                        if leaving {
                            v.state = HostState::Leaving;
                        }
                        // Some hosts are storage nodes (the same id changes role at times).
                        if (id + u32::from(cpu)).is_multiple_of(7) {
                            v.info.role = HostRole::Storage;
                        }
                        t.upsert(v);
                    }
                    Op::Remove(id) => t.remove(id),
                    Op::Read => {
                        let fresh = t.ranked_uncached(&cfg);
                        prop_assert_eq!(t.ranked(&cfg), &fresh[..]);
                    }
                }
                // The feasible sums, kept up to date across changes, are those of a pass.
                let pass = t
                    .hosts()
                    .map(|v| feasible_share(v, 100, GIB))
                    .fold((0, 0), |(c, r), (dc, dr)| (c + dc, r + dr));
                prop_assert_eq!(t.feasible_sums(100, GIB), pass);
                // The peak, kept up to date across changes, is the top attraction.
                let top = t.hosts().map(|v| attraction(v, &cfg)).fold(f64::NEG_INFINITY, f64::max);
                prop_assert_eq!(t.peak_attraction(&cfg), top);
            }
            let fresh = t.ranked_uncached(&cfg);
            prop_assert_eq!(t.ranked(&cfg), &fresh[..]);
            let views: Vec<HostView> = t.hosts().cloned().collect();
            let boxes: BTreeSet<(String, String)> =
                views.iter().map(|v| (v.info.zone.to_string(), v.info.box_name.to_string())).collect();
            let zones: BTreeSet<String> = views.iter().map(|v| v.info.zone.to_string()).collect();
            prop_assert_eq!(
                t.has_special_roles(),
                views.iter().any(|v| v.info.role != HostRole::Normal)
            );
            prop_assert_eq!(t.boxes(), boxes.len());
            prop_assert_eq!(t.zones(), zones.len());
            prop_assert_eq!(t.graph.node_count(), views.len() + boxes.len() + zones.len());
            for a in &views {
                for b in &views {
                    let expect = if a.info.id == b.info.id {
                        0
                    } else if a.info.zone != b.info.zone {
                        3
                    } else if a.info.box_name != b.info.box_name {
                        2
                    } else {
                        1
                    };
                    prop_assert_eq!(t.distance(a.info.id, b.info.id), expect);
                }
            }
        }
    }
}
