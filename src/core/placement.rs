//! Where a colony's replicas should live: repulsion, attraction, hysteresis, feasibility.
//!
//! A replica set is scored by [`set_score`]: each member's [`attraction`] (spare cpu and
//! memory) minus, for every pair of members, a repulsion that depends on their
//! [`Topology::distance`] — forbidden on one host, strong on one box, mild in one zone.
//! A colony's primary uses this module to decide
//!
//! - where to clone when below its population ([`choose_clone_target`]): a host on a box
//!   no member uses, then in a zone no member uses, then the one with most spare room;
//! - whether to move one replica ([`choose_migration`]): rule violations (a member on a
//!   leaving host, two members on one box when another box could take one) are fixed
//!   regardless of cost; otherwise a move must improve the score by more than a hysteresis
//!   margin, a larger one for the primary, so sets do not flap;
//! - how many replicas per colony the cluster can hold at all ([`feasible_population`]);
//! - where every colony of a cluster formed together starts ([`initial_layout`]);
//!
//! and the invariant checker uses [`placement_violation`].
//!
//! Every function is pure and deterministic: candidates are visited in the order of
//! [`Topology::ranked`] (attraction, then id) and every tie is broken by [`HostId`].
//! With a warm ranking, choosing costs O(`max_candidates` × N) for a set of N replicas:
//! only the top `max_candidates` eligible hosts are examined, and all hosts only when none
//! of those avoids sharing a box with the set.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::topology::{HostState, HostView, Spot, Topology};
use super::types::{HostId, HostRole, Role};

/// Weights and limits of placement. Missing fields take their defaults when deserialised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlacementConfig {
    /// Penalty for two replicas on one box.
    pub box_repulsion: f64,
    /// Penalty for two replicas in one zone (on different boxes).
    pub zone_repulsion: f64,
    /// Weight of a host's spare cpu fraction.
    pub cpu_attraction: f64,
    /// Weight of a host's spare memory fraction.
    pub memory_attraction: f64,
    /// Subtracted from a host's attraction per replica it holds: hosts whose measured
    /// load is alike (idle, or data too small to show) still share colonies evenly, so a
    /// host that joins gets its share. With the default hysteresis, hosts settle within
    /// about `hysteresis / per_replica` replicas of each other.
    pub per_replica: f64,
    /// An optional move must improve the set score by more than this.
    pub hysteresis: f64,
    /// Multiplies `hysteresis` when the replica to move is the primary.
    pub primary_reluctance: f64,
    /// How far down the ranking to look before scanning every host.
    pub max_candidates: usize,
    /// Bytes one replica is assumed to need when a host admits it.
    pub replica_memory: u64,
}

impl Default for PlacementConfig {
    fn default() -> Self {
        PlacementConfig {
            box_repulsion: 100.0,
            zone_repulsion: 10.0,
            cpu_attraction: 4.0,
            memory_attraction: 4.0,
            per_replica: 0.1,
            hysteresis: 1.5,
            primary_reluctance: 3.0,
            max_candidates: 32,
            replica_memory: 64 << 20,
        }
    }
}

/// A move of one replica from one host to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Migration {
    pub from: HostId,
    pub to: HostId,
    /// The role of the replica that moves.
    pub role: Role,
}

/// Whether a host may hold replicas at all: alive and not a logger.
fn eligible(view: &HostView) -> bool {
    view.state == HostState::Alive && view.info.role != HostRole::Logger
}

/// How many replicas of one colony a host's copy counts for: a storage node stands in
/// for two hosts (its one copy on disk counts as a primary and a secondary), a logger
/// holds none, every other host one.
pub fn slots(role: HostRole) -> u32 {
    match role {
        HostRole::Normal => 1,
        HostRole::Storage => 2,
        HostRole::Logger => 0,
    }
}

/// [`slots`] of `host` as `topo` knows it; an unknown host counts as an ordinary one.
pub fn host_slots(topo: &Topology, host: HostId) -> u32 {
    if !topo.has_special_roles() {
        return 1;
    }
    topo.get(host).map_or(1, |v| slots(v.info.role))
}

/// Whether `host` is a storage node.
pub fn is_storage(topo: &Topology, host: HostId) -> bool {
    topo.has_special_roles()
        && topo
            .get(host)
            .is_some_and(|v| v.info.role == HostRole::Storage)
}

/// Spare fraction of a cpu capacity, in [0, 1]; an unknown (non-positive or non-finite)
/// capacity counts as idle.
fn spare_cpu(capacity: f64, used: f64) -> f64 {
    if !capacity.is_finite() || capacity <= 0.0 {
        return 1.0;
    }
    let spare = (capacity - used) / capacity;
    if spare.is_nan() {
        0.0
    } else {
        spare.clamp(0.0, 1.0)
    }
}

/// Spare fraction of a memory capacity, in [0, 1]; capacity 0 means unknown: idle.
fn spare_memory(capacity: u64, used: u64) -> f64 {
    if capacity == 0 {
        return 1.0;
    }
    capacity.saturating_sub(used) as f64 / capacity as f64
}

/// How much a host attracts replicas: `cpu_attraction × spare cpu + memory_attraction ×
/// spare memory − per_replica × replicas held`, each spare a fraction of capacity
/// clamped to [0, 1] (an undeclared capacity counts as idle). A storage node always
/// counts as idle: it keeps replicas on disk, so colonies are drawn to it and only the
/// per-replica term limits how many it takes. A leaving host or a logger gets
/// `f64::NEG_INFINITY`.
pub fn attraction(view: &HostView, cfg: &PlacementConfig) -> f64 {
    if !eligible(view) {
        return f64::NEG_INFINITY;
    }
    let (cpu, memory) = if view.info.role == HostRole::Storage {
        (1.0, 1.0)
    } else {
        (
            spare_cpu(view.info.capacity.cpu, view.load.cpu),
            spare_memory(view.info.capacity.memory, view.load.memory),
        )
    };
    cfg.cpu_attraction * cpu + cfg.memory_attraction * memory
        - cfg.per_replica * f64::from(view.replicas)
}

/// Everything [`attraction`] reads from a config, bit for bit: the topology's cached
/// ranking is valid for every config with the same key.
pub fn attraction_key(cfg: &PlacementConfig) -> [u64; 3] {
    [
        cfg.cpu_attraction.to_bits(),
        cfg.memory_attraction.to_bits(),
        cfg.per_replica.to_bits(),
    ]
}

/// Repulsion between replicas at a given distance.
fn repulsion_at(distance: u8, cfg: &PlacementConfig) -> f64 {
    match distance {
        0 => f64::INFINITY,
        1 => cfg.box_repulsion,
        2 => cfg.zone_repulsion,
        _ => 0.0,
    }
}

/// Repulsion between replicas on `a` and `b`: infinite on one host, `box_repulsion` on
/// one box, `zone_repulsion` in one zone, 0 otherwise.
pub fn repulsion(topo: &Topology, a: HostId, b: HostId, cfg: &PlacementConfig) -> f64 {
    repulsion_at(topo.distance(a, b), cfg)
}

/// The score of a replica set: the sum of its members' attractions minus the repulsion of
/// every pair. `f64::NEG_INFINITY` when two members share a host or a member stands on a
/// leaving, logger or unknown host. The empty set scores 0.
pub fn set_score(topo: &Topology, hosts: &[HostId], cfg: &PlacementConfig) -> f64 {
    let mut score = 0.0;
    for (i, &a) in hosts.iter().enumerate() {
        score += topo
            .get(a)
            .map_or(f64::NEG_INFINITY, |v| attraction(v, cfg));
        for &b in &hosts[i + 1..] {
            score -= repulsion(topo, a, b, cfg);
        }
    }
    score
}

/// Whether a host can take one more replica: alive, not a logger, and with
/// `replica_memory` bytes to spare (a capacity of 0 means unknown: assume yes; a storage
/// node keeps replicas on disk: always yes).
pub fn admits(view: &HostView, cfg: &PlacementConfig) -> bool {
    eligible(view)
        && (view.info.capacity.memory == 0
            || view.info.role == HostRole::Storage
            || view.info.capacity.memory.saturating_sub(view.load.memory) >= cfg.replica_memory)
}

/// The ranking for `cfg`, refreshed: borrowed from the cache, computed only if the cache
/// somehow is not fresh.
fn ranking<'a>(topo: &'a mut Topology, cfg: &PlacementConfig) -> (&'a Topology, Cow<'a, [HostId]>) {
    topo.refresh(cfg);
    let topo: &'a Topology = topo;
    let ranked = match topo.ranked_cached(cfg) {
        Some(ids) => Cow::Borrowed(ids),
        None => Cow::Owned(topo.ranked_uncached(cfg)),
    };
    (topo, ranked)
}

/// The view of `host` if it could take a replica joining `set`: known, admitting, not in
/// the set and not excluded.
fn candidate<'a>(
    topo: &'a Topology,
    host: HostId,
    in_set: impl Fn(HostId) -> bool,
    exclude: &[HostId],
    cfg: &PlacementConfig,
) -> Option<&'a HostView> {
    let view = topo.get(host)?;
    (!in_set(host) && !exclude.contains(&host) && admits(view, cfg)).then_some(view)
}

/// The best host to add to the replica set `current`: never a member, never one in
/// `exclude`, only hosts that [`admits`]. Prefers (in this order) fewer members on its
/// box, fewer members in its zone, more attraction, lower id.
///
/// Looks at the top `max_candidates` eligible hosts of the ranking, and at all hosts
/// only when none of those avoids sharing a box with the set. The first host found on a
/// box and in a zone that no member uses is the answer (the ranking is by attraction).
/// `None` if no host qualifies.
pub fn choose_clone_target(
    topo: &mut Topology,
    current: &[HostId],
    exclude: &[HostId],
    cfg: &PlacementConfig,
) -> Option<HostId> {
    let (topo, ranked) = ranking(topo, cfg);
    // (members on its box, members in its zone, host); the first found of a class is the
    // most attractive of the class.
    let mut best: Option<(usize, usize, HostId)> = None;
    let mut examined = 0usize;
    for &host in ranked.iter() {
        if examined >= cfg.max_candidates && best.is_some_and(|(boxed, _, _)| boxed == 0) {
            break;
        }
        if candidate(topo, host, |h| current.contains(&h), exclude, cfg).is_none() {
            continue;
        }
        examined += 1;
        let (mut boxed, mut zoned) = (0usize, 0usize);
        for &member in current {
            match topo.distance(host, member) {
                0 | 1 => {
                    boxed += 1;
                    zoned += 1;
                }
                2 => zoned += 1,
                _ => {}
            }
        }
        if boxed == 0 && zoned == 0 {
            return Some(host);
        }
        if best.is_none_or(|(b, z, _)| (boxed, zoned) < (b, z)) {
            best = Some((boxed, zoned, host));
        }
    }
    best.map(|(_, _, host)| host)
}

/// What is known about one member of a replica set while choosing a migration.
struct Member {
    host: HostId,
    role: Role,
    /// Its attraction minus its repulsion with the other members.
    contrib: f64,
    /// On an unknown, leaving or logger host, or on the same host as another member.
    bad: bool,
    /// Other members on its box (or host).
    boxed: usize,
    /// What its copy counts for ([`slots`]).
    slots: u32,
}

/// The best destination found so far for one member.
#[derive(Clone, Copy)]
struct Move {
    to: HostId,
    /// The destination's attraction as this topology knows it.
    attr: f64,
    gain: f64,
    /// Other members on the destination's box.
    boxed: usize,
}

/// Keeps `slot` as the better of itself and `new`: fewer box-mates first when
/// `box_first`, then higher gain, then lower id.
fn keep_best(slot: &mut Option<Move>, new: Move, box_first: bool) {
    let better = match slot {
        None => true,
        Some(old) => {
            if box_first && new.boxed != old.boxed {
                new.boxed < old.boxed
            } else if new.gain != old.gain {
                new.gain > old.gain
            } else {
                new.to < old.to
            }
        }
    };
    if better {
        *slot = Some(new);
    }
}

fn role_rank(role: Role) -> u8 {
    match role {
        Role::Secondary => 0,
        Role::Primary => 1,
    }
}

/// Given a replica set as (host, role) — exactly one primary — the single move (one member
/// replaced by a host outside the set, not in `exclude`, that [`admits`]) to make, if any.
///
/// In order:
/// 1. A member on a leaving, logger or unknown host, or sharing a host with another
///    member, is moved regardless of hysteresis, preferably to a host on a box no other
///    member uses.
/// 2. A member sharing a box with another member is moved regardless of hysteresis when a
///    host on a box no other member uses admits it.
/// 3. Otherwise the move that most improves [`set_score`] is made if its gain exceeds
///    `hysteresis` (for the primary, `hysteresis × primary_reluctance`): the move with the
///    largest gain over its own threshold wins, so a secondary is preferred unless the
///    primary's gain is larger by more than the difference of thresholds. An optional
///    move never puts a member on a box shared with more members than before.
///
/// An optional move (3) never replaces a storage node by an ordinary host: a storage
/// node's copy counts for two ([`slots`]), so that would take the population below its
/// target (and the colony would clone straight back). The other way is allowed: the
/// colony then holds a replica too many and drops an ordinary one, which is how
/// colonies are drawn to a storage node. Rules 1 and 2 move across freely (the colony
/// then clones or drops to get back to its target).
///
/// Within 1 and 2 secondaries go first (the primary's turn comes on a later call); every
/// tie is broken by host id. Each move either fixes a violation or raises the score by
/// more than the (non-negative) hysteresis, so repeated calls reach a fixpoint and a move
/// is never undone by the next call.
pub fn choose_migration(
    topo: &mut Topology,
    current: &[(HostId, Role)],
    exclude: &[HostId],
    cfg: &PlacementConfig,
) -> Option<Migration> {
    choose_migration_with_floor(topo, current, exclude, cfg).map(|(m, _)| m)
}

/// [`choose_migration`], and for an optional move (rule 3) the *floor*: the lowest
/// attraction the destination may have for the move still to clear its hysteresis (its
/// attraction as this topology knows it, minus the gain in excess of the threshold).
/// The destination checks it against its own fresh numbers when offered the clone
/// ([`still_attractive`]): host records travel by gossip and are seconds old, and
/// without this check every colony of the cluster picks the same idle-looking host at
/// once, overloads it, and then leaves it again (placement flapping). `None` for a move
/// that fixes a rule violation: it is made whatever the destination's load.
pub fn choose_migration_with_floor(
    topo: &mut Topology,
    current: &[(HostId, Role)],
    exclude: &[HostId],
    cfg: &PlacementConfig,
) -> Option<(Migration, Option<f64>)> {
    if current.is_empty() {
        return None;
    }
    let peak = topo.peak_attraction(cfg);
    // Each member looked up once.
    let spots: Vec<Spot> = current.iter().map(|&(host, _)| topo.spot(host)).collect();
    let members: Vec<Member> = current
        .iter()
        .enumerate()
        .map(|(i, &(host, role))| {
            let view = spots[i].view;
            let mut contrib = view.map_or(f64::NEG_INFINITY, |v| attraction(v, cfg));
            let mut duplicate = false;
            let mut boxed = 0;
            for (j, &other) in spots.iter().enumerate() {
                if j == i {
                    continue;
                }
                let d = Spot::distance(spots[i], other);
                duplicate |= d == 0;
                boxed += usize::from(d <= 1);
                contrib -= repulsion_at(d, cfg);
            }
            Member {
                host,
                role,
                contrib,
                bad: duplicate || !view.is_some_and(eligible),
                boxed,
                slots: view.map_or(1, |v| slots(v.info.role)),
            }
        })
        .collect();
    let n = members.len();
    let threshold = |role: Role| -> f64 {
        let base = cfg.hysteresis.max(0.0);
        match role {
            Role::Secondary => base,
            Role::Primary => (base * cfg.primary_reluctance).max(base),
        }
    };
    // Nothing to fix, and no host attractive enough for any member's replacement to
    // clear its threshold (a move gains at most the peak attraction minus what the
    // member contributes): no move, and no candidate needs to be looked at. This is
    // the answer for almost every settled colony.
    if members
        .iter()
        .all(|m| !m.bad && m.boxed == 0 && peak - m.contrib <= threshold(m.role))
    {
        return None;
    }
    let (topo, ranked) = ranking(topo, cfg);

    // Best destination per member for: a bad member (1), a box-sharing member to a
    // box-free host (2), an optional move (3).
    let mut rescue: Vec<Option<Move>> = vec![None; n];
    let mut unbox: Vec<Option<Move>> = vec![None; n];
    let mut improve: Vec<Option<Move>> = vec![None; n];
    let mut distances = vec![0u8; n];
    let mut examined = 0usize;
    let mut found_box_free = false;
    for &host in ranked.iter() {
        if examined >= cfg.max_candidates && found_box_free {
            break;
        }
        let Some(view) = candidate(
            topo,
            host,
            |h| current.iter().any(|&(m, _)| m == h),
            exclude,
            cfg,
        ) else {
            continue;
        };
        examined += 1;
        let attr = attraction(view, cfg);
        let mut total_repulsion = 0.0;
        let mut total_boxed = 0usize;
        for (d, m) in distances.iter_mut().zip(&members) {
            *d = topo.distance(host, m.host);
            total_repulsion += repulsion_at(*d, cfg);
            total_boxed += usize::from(*d <= 1);
        }
        found_box_free |= total_boxed == 0;
        for (i, m) in members.iter().enumerate() {
            // Replacing member i by `host`: its relations to member i no longer count.
            let own = usize::from(distances[i] <= 1);
            let boxed = total_boxed - own;
            let contrib = attr - (total_repulsion - repulsion_at(distances[i], cfg));
            let mv = Move {
                to: host,
                attr,
                gain: contrib - m.contrib,
                boxed,
            };
            if m.bad {
                keep_best(&mut rescue[i], mv, true);
                continue;
            }
            if m.boxed > 0 && boxed == 0 {
                keep_best(&mut unbox[i], mv, false);
            }
            if boxed <= m.boxed && slots(view.info.role) >= m.slots {
                keep_best(&mut improve[i], mv, false);
            }
        }
    }

    // Rules first: a bad member, then a box-sharing one; secondaries first, then the
    // larger gain, then the lower host id.
    for forced in [&rescue, &unbox] {
        let pick = members
            .iter()
            .zip(forced.iter())
            .filter_map(|(m, mv)| mv.map(|mv| (m, mv)))
            .min_by(|(a, amv), (b, bmv)| {
                role_rank(a.role)
                    .cmp(&role_rank(b.role))
                    .then(bmv.gain.total_cmp(&amv.gain))
                    .then(a.host.cmp(&b.host))
            });
        if let Some((m, mv)) = pick {
            return Some((
                Migration {
                    from: m.host,
                    to: mv.to,
                    role: m.role,
                },
                None,
            ));
        }
    }

    // Then optimisation, with hysteresis.
    members
        .iter()
        .zip(improve.iter())
        .filter_map(|(m, mv)| {
            let mv = (*mv)?;
            let excess = mv.gain - threshold(m.role);
            (excess > 0.0).then_some((m, mv, excess))
        })
        .min_by(|(a, _, ax), (b, _, bx)| {
            bx.total_cmp(ax)
                .then(role_rank(a.role).cmp(&role_rank(b.role)))
                .then(a.host.cmp(&b.host))
        })
        .map(|(m, mv, excess)| {
            (
                Migration {
                    from: m.host,
                    to: mv.to,
                    role: m.role,
                },
                Some(mv.attr - excess),
            )
        })
}

/// Whether a host offered a replica for an optional move still clears the mover's
/// `floor` (see [`choose_migration_with_floor`]) by its own fresh view of itself.
pub fn still_attractive(me: &HostView, floor: Option<f64>, cfg: &PlacementConfig) -> bool {
    floor.is_none_or(|f| attraction(me, cfg) >= f)
}

/// How many replicas per colony the cluster can hold: the largest `p <= wanted` with
/// `p <=` the [`slots`] of the eligible hosts (alive, not loggers; a storage node counts
/// twice) and `p × colonies <=` the sum over eligible hosts of `min(room, slots ×
/// colonies)`, where `room = capacity.memory / replica_memory` (capacity 0, or
/// `replica_memory` 0, or a storage node, is unlimited). 0 without eligible hosts.
pub fn feasible_population(
    topo: &Topology,
    wanted: u32,
    colonies: u32,
    cfg: &PlacementConfig,
) -> u32 {
    let (copies, room) = topo.feasible_sums(colonies, cfg.replica_memory);
    let mut p = u64::from(wanted).min(copies);
    if colonies > 0 {
        p = p.min(room / u64::from(colonies));
    }
    // p <= wanted, so it fits.
    u32::try_from(p).unwrap_or(wanted)
}

/// What one host adds to [`feasible_population`]'s sums: the replicas of one colony it
/// counts for, and the replicas it has room for (at most that many per colony).
pub fn feasible_share(view: &HostView, colonies: u32, replica_memory: u64) -> (u64, u64) {
    if !eligible(view) {
        return (0, 0);
    }
    let per_colony = u64::from(slots(view.info.role));
    let capacity = view.info.capacity.memory;
    let fits = if capacity == 0 || replica_memory == 0 || view.info.role == HostRole::Storage {
        u64::MAX
    } else {
        capacity / replica_memory
    };
    (per_colony, fits.min(per_colony * u64::from(colonies)))
}

/// The placement rule as the invariant checker sees it: `Some(reason)` when two replicas
/// share a host, or two share a box while a host outside the set, on a box no replica
/// uses, [`admits`] one.
pub fn placement_violation(
    topo: &Topology,
    hosts: &[HostId],
    cfg: &PlacementConfig,
) -> Option<String> {
    let mut shared_box = None;
    for (i, &a) in hosts.iter().enumerate() {
        for &b in &hosts[i + 1..] {
            match topo.distance(a, b) {
                0 => return Some(format!("two replicas on host {a}")),
                1 if shared_box.is_none() => shared_box = Some((a, b)),
                _ => {}
            }
        }
    }
    let (a, b) = shared_box?;
    let alternative = topo.hosts().find(|v| {
        let id = v.info.id;
        !hosts.contains(&id) && admits(v, cfg) && hosts.iter().all(|&m| topo.distance(id, m) >= 2)
    })?;
    let box_name = topo.get(a).map_or("?", |v| v.info.box_name.as_ref());
    Some(format!(
        "replicas on hosts {a} and {b} share box {box_name} while host {} on box {} admits one",
        alternative.info.id, alternative.info.box_name
    ))
}

/// One host as the initial layout of a new cluster sees it (see [`initial_layout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutHost {
    pub id: HostId,
    /// The incarnation the layout was made for: a host that restarted since holds none
    /// of the replicas the layout gives it.
    pub incarnation: u32,
    /// Its zone: hosts with the same number share a zone.
    pub zone: u32,
    /// Its box: hosts with the same number share a box (numbers are unique across
    /// zones).
    pub box_id: u32,
    /// How many replicas it can take (`u32::MAX`: no limit).
    pub room: u32,
}

/// The replica sets of every colony of a new cluster: colony `c`'s set is
/// [`InitialLayout::set`]`(c)`, its primary first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialLayout {
    /// Replicas per colony (some colonies may have fewer when hosts lack room).
    pub population: u32,
    /// `population` slots per colony, in colony order; unfilled slots are [`NO_HOST`].
    slots: Vec<HostId>,
}

/// An unfilled slot of an [`InitialLayout`].
pub const NO_HOST: HostId = HostId::MAX;

impl InitialLayout {
    /// Colony `c`'s replica set, its primary first (empty if the layout has no host).
    pub fn set(&self, c: u32) -> impl Iterator<Item = HostId> + '_ {
        let p = self.population as usize;
        let lo = (c as usize * p).min(self.slots.len());
        let hi = (lo + p).min(self.slots.len());
        self.slots[lo..hi].iter().copied().filter(|h| *h != NO_HOST)
    }

    /// Number of colonies laid out.
    pub fn colonies(&self) -> u32 {
        self.slots
            .len()
            .checked_div(self.population as usize)
            .unwrap_or(0) as u32
    }
}

/// How a layout candidate ranks for a set (lower is better): members on its box, in
/// its zone, replicas it holds already, distance from the preferred position.
type LayoutRank = (usize, usize, u64, usize);

/// `a/b < c/d` for positive denominators, exactly.
fn frac_lt(a: u64, b: u64, c: u64, d: u64) -> bool {
    u128::from(a) * u128::from(d) < u128::from(c) * u128::from(b)
}

/// Interleaves groups proportionally: the `k`-th of a group of `n` members sits at
/// `(2k+1)/2n` of the way; ties by group order. Returns the members in that order.
fn interleave<T: Copy>(groups: &[Vec<T>]) -> Vec<T> {
    let mut keyed: Vec<(u64, u64, usize, T)> = Vec::new();
    for (g, members) in groups.iter().enumerate() {
        let n = members.len() as u64;
        for (k, m) in members.iter().enumerate() {
            keyed.push((2 * k as u64 + 1, 2 * n, g, *m));
        }
    }
    keyed.sort_by(|a, b| {
        if frac_lt(a.0, a.1, b.0, b.1) {
            std::cmp::Ordering::Less
        } else if frac_lt(b.0, b.1, a.0, a.1) {
            std::cmp::Ordering::Greater
        } else {
            a.2.cmp(&b.2)
        }
    });
    keyed.into_iter().map(|(_, _, _, m)| m).collect()
}

/// Where every colony of a new cluster starts: a pure function of the hosts (in any
/// order: they are sorted by id first), the number of colonies and the wanted
/// population, so every host that is handed the same list computes the same layout.
///
/// The population is `min(replicas, hosts, what their room holds)` (as
/// [`feasible_population`] computes it). Hosts are put in a *spread order*: zones
/// interleaved in proportion to their sizes, and within a zone its boxes the same way,
/// so neighbours in that order stand on different boxes and, where the zones allow,
/// in different zones. Colony `c`'s primary is the host at position `c mod H` (every
/// host leads `C/H` colonies, give or take one); its secondaries are looked for at
/// fixed strides after it (the stride changes with each round of `H` colonies, so
/// sets differ between rounds), each the best host of a small window from there
/// (fewest box-mates in the set, then zone-mates, then replicas held, then the
/// nearest); all hosts are scanned only when the window has none on a free box while
/// another box exists. A
/// host is never given two replicas of one colony, nor more than its `room`.
///
/// Costs O(C × population) for well-spread clusters.
pub fn initial_layout(hosts: &[LayoutHost], colonies: u32, replicas: u32) -> InitialLayout {
    let mut hosts: Vec<LayoutHost> = hosts.to_vec();
    hosts.sort_by_key(|h| h.id);
    hosts.dedup_by_key(|h| h.id);
    let h_count = hosts.len();
    let total_room: u64 = hosts
        .iter()
        .map(|h| u64::from(h.room).min(u64::from(colonies)))
        .sum();
    let population = u64::from(replicas)
        .min(h_count as u64)
        .min(total_room.checked_div(u64::from(colonies)).unwrap_or(0)) as u32;
    let per = population as usize;
    let mut slots = vec![NO_HOST; colonies as usize * per];
    if per == 0 {
        return InitialLayout { population, slots };
    }

    // The spread order: boxes interleaved within each zone, then the zones. Hosts
    // grouped by zone, then box, each group in id order.
    let mut grouped: Vec<usize> = (0..h_count).collect();
    grouped.sort_unstable_by_key(|&i| (hosts[i].zone, hosts[i].box_id, i));
    let mut zone_lists: Vec<Vec<usize>> = Vec::new();
    let mut per_box: Vec<Vec<usize>> = Vec::new();
    for (k, &i) in grouped.iter().enumerate() {
        let prev = k.checked_sub(1).map(|p| &hosts[grouped[p]]);
        let (zone, box_id) = (hosts[i].zone, hosts[i].box_id);
        if prev.is_some_and(|p| p.zone != zone) {
            zone_lists.push(interleave(&per_box));
            per_box.clear();
        }
        match prev {
            Some(p) if p.zone == zone && p.box_id == box_id => {
                per_box.last_mut().expect("a box begun").push(i);
            }
            _ => per_box.push(vec![i]),
        }
    }
    if !per_box.is_empty() {
        zone_lists.push(interleave(&per_box));
    }
    let order: Vec<usize> = interleave(&zone_lists);
    let mut box_ids: Vec<u32> = hosts.iter().map(|h| h.box_id).collect();
    box_ids.sort_unstable();
    box_ids.dedup();
    let box_count = box_ids.len();

    let mut room: Vec<u64> = hosts
        .iter()
        .map(|h| u64::from(h.room).min(u64::from(colonies)))
        .collect();
    let mut held = vec![0u64; h_count];
    let window = h_count.min(8);
    let stride_cap = ((h_count - 1) / per.saturating_sub(1).max(1)).clamp(1, 8);
    let mut set: Vec<usize> = Vec::with_capacity(per);
    for c in 0..colonies as usize {
        set.clear();
        let base = c % h_count;
        let stride = 1 + (c / h_count) % stride_cap;
        // The primary: the host at `base`, or the next with room.
        if let Some(p) = (0..h_count)
            .map(|t| order[(base + t) % h_count])
            .find(|&i| room[i] > 0)
        {
            set.push(p);
        }
        for j in 1..per {
            if set.is_empty() {
                break;
            }
            let start = base + j * stride;
            let conflicts = |i: usize, set: &[usize]| -> (usize, usize) {
                let mut boxed = 0;
                let mut zoned = 0;
                for &m in set {
                    if hosts[m].box_id == hosts[i].box_id {
                        boxed += 1;
                    }
                    if hosts[m].zone == hosts[i].zone {
                        zoned += 1;
                    }
                }
                (boxed, zoned)
            };
            // The best host among the `span` positions from `start`: fewest box-mates,
            // then zone-mates, then replicas held, then the nearest.
            let scan = |span: usize, best: &mut Option<(LayoutRank, usize)>| {
                let mut at = start % h_count;
                for t in 0..span {
                    let i = order[at];
                    at = if at + 1 == h_count { 0 } else { at + 1 };
                    if room[i] == 0 || set.contains(&i) {
                        continue;
                    }
                    let (boxed, zoned) = conflicts(i, &set);
                    let key = (boxed, zoned, held[i], t);
                    if best.is_none_or(|(k, _)| key < k) {
                        *best = Some((key, i));
                    }
                }
            };
            let mut best = None;
            scan(window, &mut best);
            let box_free_exists = box_count > set.len();
            if best.is_none_or(|((boxed, _, _, _), _)| boxed > 0) && box_free_exists {
                scan(h_count, &mut best);
            }
            match best {
                Some((_, i)) => set.push(i),
                None => break,
            }
        }
        for (k, &i) in set.iter().enumerate() {
            room[i] -= 1;
            held[i] += 1;
            slots[c * per + k] = hosts[i].id;
        }
    }
    InitialLayout { population, slots }
}

#[cfg(test)]
mod tests {
    use super::super::types::{HostInfo, Load, Resources};
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    /// A host with 8 cores and 8 GiB.
    fn host(id: HostId, zone: &str, box_name: &str, cpu_used: f64, mem_used: u64) -> HostView {
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

    fn leaving(mut v: HostView) -> HostView {
        v.state = HostState::Leaving;
        v
    }

    fn with_role(mut v: HostView, role: HostRole) -> HostView {
        v.info.role = role;
        v
    }

    fn topo(views: impl IntoIterator<Item = HostView>) -> Topology {
        let mut t = Topology::new();
        for v in views {
            t.upsert(v);
        }
        t
    }

    /// z1: b1 {1, 2}, b2 {3}; z2: b3 {4}; all idle.
    fn layout() -> Topology {
        topo([
            host(1, "z1", "b1", 0.0, 0),
            host(2, "z1", "b1", 0.0, 0),
            host(3, "z1", "b2", 0.0, 0),
            host(4, "z2", "b3", 0.0, 0),
        ])
    }

    fn cfg() -> PlacementConfig {
        PlacementConfig::default()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = cfg();
        assert_eq!(c.box_repulsion, 100.0);
        assert_eq!(c.zone_repulsion, 10.0);
        assert_eq!((c.cpu_attraction, c.memory_attraction), (4.0, 4.0));
        assert_eq!(c.per_replica, 0.1);
        assert_eq!((c.hysteresis, c.primary_reluctance), (1.5, 3.0));
        assert_eq!((c.max_candidates, c.replica_memory), (32, 64 * MIB));
        let partial: PlacementConfig = serde_json::from_str(r#"{"hysteresis": 2.0}"#).unwrap();
        assert_eq!(
            partial,
            PlacementConfig {
                hysteresis: 2.0,
                ..cfg()
            }
        );
    }

    #[test]
    fn attraction_is_weighted_spare_fractions() {
        let c = cfg();
        assert_eq!(attraction(&host(1, "z", "b", 0.0, 0), &c), 8.0);
        assert_eq!(attraction(&host(1, "z", "b", 4.0, 4 * GIB), &c), 4.0);
        assert_eq!(attraction(&host(1, "z", "b", 2.0, 8 * GIB), &c), 3.0);
        // Over-use clamps to 0, negative use to full.
        assert_eq!(attraction(&host(1, "z", "b", 16.0, 9 * GIB), &c), 0.0);
        assert_eq!(attraction(&host(1, "z", "b", -3.0, 8 * GIB), &c), 4.0);
        let mut unknown = host(1, "z", "b", 3.0, 3 * GIB);
        unknown.info.capacity = Resources::default();
        assert_eq!(attraction(&unknown, &c), 8.0);
        assert_eq!(
            attraction(&leaving(host(1, "z", "b", 0.0, 0)), &c),
            f64::NEG_INFINITY
        );
        let logger = with_role(host(1, "z", "b", 0.0, 0), HostRole::Logger);
        assert_eq!(attraction(&logger, &c), f64::NEG_INFINITY);
        let storage = with_role(host(1, "z", "b", 0.0, 0), HostRole::Storage);
        assert_eq!(attraction(&storage, &c), 8.0);
    }

    #[test]
    fn set_score_adds_attraction_and_subtracts_repulsion() {
        let t = layout();
        let c = cfg();
        assert_eq!(set_score(&t, &[], &c), 0.0);
        assert_eq!(set_score(&t, &[1], &c), 8.0);
        assert_eq!(set_score(&t, &[1, 2], &c), 16.0 - 100.0);
        assert_eq!(set_score(&t, &[1, 3], &c), 16.0 - 10.0);
        assert_eq!(set_score(&t, &[1, 4], &c), 16.0);
        assert_eq!(set_score(&t, &[1, 2, 3, 4], &c), 32.0 - 100.0 - 10.0 - 10.0);
        assert_eq!(set_score(&t, &[1, 1], &c), f64::NEG_INFINITY);
        assert_eq!(set_score(&t, &[1, 99], &c), f64::NEG_INFINITY);
        assert_eq!(repulsion(&t, 3, 2, &c), 10.0);
    }

    #[test]
    fn admits_needs_alive_non_logger_with_memory() {
        let c = cfg();
        assert!(admits(&host(1, "z", "b", 8.0, 8 * GIB - 64 * MIB), &c));
        assert!(!admits(&host(1, "z", "b", 0.0, 8 * GIB - 63 * MIB), &c));
        assert!(!admits(&host(1, "z", "b", 0.0, 9 * GIB), &c));
        let mut unknown = host(1, "z", "b", 0.0, 9 * GIB);
        unknown.info.capacity.memory = 0;
        assert!(admits(&unknown, &c));
        assert!(!admits(&leaving(host(1, "z", "b", 0.0, 0)), &c));
        assert!(!admits(
            &with_role(host(1, "z", "b", 0.0, 0), HostRole::Logger),
            &c
        ));
        assert!(admits(
            &with_role(host(1, "z", "b", 0.0, 0), HostRole::Storage),
            &c
        ));
    }

    #[test]
    fn clone_target_avoids_the_same_box_then_the_same_zone() {
        let mut t = layout();
        // 4 is busier than 2 and 3 but the only one in another zone.
        t.upsert(host(4, "z2", "b3", 6.0, 6 * GIB));
        let c = cfg();
        assert_eq!(choose_clone_target(&mut t, &[1], &[], &c), Some(4));
        assert_eq!(choose_clone_target(&mut t, &[1], &[4], &c), Some(3));
        assert_eq!(choose_clone_target(&mut t, &[1, 4], &[], &c), Some(3));
        // Only a box-mate is left: better than nothing.
        assert_eq!(choose_clone_target(&mut t, &[1], &[3, 4], &c), Some(2));
        assert_eq!(choose_clone_target(&mut t, &[1, 3, 4], &[], &c), Some(2));
        assert_eq!(choose_clone_target(&mut t, &[1, 2, 3, 4], &[], &c), None);
        assert_eq!(choose_clone_target(&mut t, &[], &[], &c), Some(1));
    }

    #[test]
    fn clone_target_prefers_the_emptier_host_then_the_lower_id() {
        let c = cfg();
        let mut t = topo([
            host(1, "z1", "b1", 0.0, 0),
            host(5, "z2", "b5", 4.0, 2 * GIB),
            host(6, "z2", "b6", 1.0, GIB),
            host(7, "z2", "b7", 6.0, 0),
        ]);
        assert_eq!(choose_clone_target(&mut t, &[1], &[], &c), Some(6));
        t.upsert(host(5, "z2", "b5", 1.0, GIB));
        assert_eq!(choose_clone_target(&mut t, &[1], &[], &c), Some(5));
        t.upsert(host(5, "z2", "b5", 1.0, GIB + 1));
        assert_eq!(choose_clone_target(&mut t, &[1], &[], &c), Some(6));
    }

    #[test]
    fn clone_target_refuses_leaving_logger_and_full_hosts() {
        let c = cfg();
        let mut t = topo([
            host(1, "z1", "b1", 0.0, 0),
            host(3, "z1", "b2", 7.0, 7 * GIB),
            leaving(host(5, "z2", "b5", 0.0, 0)),
            with_role(host(6, "z2", "b6", 0.0, 0), HostRole::Logger),
            host(7, "z2", "b7", 0.0, 8 * GIB - MIB),
        ]);
        assert_eq!(choose_clone_target(&mut t, &[1], &[], &c), Some(3));
        assert_eq!(choose_clone_target(&mut t, &[1], &[3], &c), None);
        t.upsert(host(7, "z2", "b7", 0.0, 8 * GIB - 64 * MIB));
        assert_eq!(choose_clone_target(&mut t, &[1], &[], &c), Some(7));
    }

    #[test]
    fn clone_target_scans_past_the_top_when_all_of_it_shares_a_box() {
        // The ten most attractive hosts stand on the member's box; host 50 is far down.
        let mut views: Vec<HostView> = (1..=10).map(|id| host(id, "z1", "b1", 0.0, 0)).collect();
        views.extend((20..40).map(|id| host(id, "z1", "b1", 2.0, 0)));
        views.push(host(50, "z2", "b9", 7.0, 7 * GIB));
        let mut t = topo(views);
        let c = PlacementConfig {
            max_candidates: 4,
            ..cfg()
        };
        assert_eq!(choose_clone_target(&mut t, &[1], &[], &c), Some(50));
        let mut migrate_from = vec![(1, Role::Primary), (2, Role::Secondary)];
        let m = choose_migration(&mut t, &migrate_from, &[], &c);
        assert_eq!(
            m,
            Some(Migration {
                from: 2,
                to: 50,
                role: Role::Secondary
            })
        );
        migrate_from[1].0 = 50;
        assert_eq!(choose_migration(&mut t, &migrate_from, &[], &c), None);
    }

    #[test]
    fn migration_leaves_a_shared_box_when_an_alternative_exists() {
        let c = cfg();
        let mut t = topo([
            host(1, "z1", "b1", 0.0, 0),
            host(2, "z1", "b1", 0.0, 0),
            host(3, "z1", "b2", 7.5, 7 * GIB),
        ]);
        let set = [(1, Role::Primary), (2, Role::Secondary)];
        let m = choose_migration(&mut t, &set, &[], &c);
        assert_eq!(
            m,
            Some(Migration {
                from: 2,
                to: 3,
                role: Role::Secondary
            })
        );
        // Primary listed second: still the secondary moves.
        let set = [(2, Role::Secondary), (1, Role::Primary)];
        assert_eq!(
            choose_migration(&mut t, &set, &[], &c).map(|m| m.from),
            Some(2)
        );
        // No other box can take it: the shared box stays.
        t.upsert(host(3, "z1", "b2", 0.0, 8 * GIB));
        assert_eq!(choose_migration(&mut t, &set, &[], &c), None);
        t.upsert(host(3, "z1", "b2", 0.0, 0));
        assert_eq!(choose_migration(&mut t, &set, &[3], &c), None);
        // `exclude` is the caller's business: the rule itself still sees host 3.
        assert!(placement_violation(&t, &[1, 2], &c).is_some());
    }

    #[test]
    fn a_member_on_a_leaving_host_is_moved_whatever_the_gain() {
        let c = cfg();
        let mut t = topo([
            host(1, "z1", "b1", 0.0, 0),
            leaving(host(2, "z2", "b2", 0.0, 0)),
            host(3, "z2", "b3", 7.9, 7 * GIB),
            host(4, "z1", "b4", 0.0, 0),
        ]);
        let set = [(1, Role::Primary), (2, Role::Secondary)];
        // 3 is nearly full but in the other zone; 4 is idle but in the primary's zone.
        assert_eq!(
            choose_migration(&mut t, &set, &[], &c),
            Some(Migration {
                from: 2,
                to: 3,
                role: Role::Secondary
            })
        );
        // A leaving primary hands off too.
        let set = [(2, Role::Primary), (1, Role::Secondary)];
        assert_eq!(
            choose_migration(&mut t, &set, &[], &c),
            Some(Migration {
                from: 2,
                to: 3,
                role: Role::Primary
            })
        );
        // Nowhere to go: stay.
        assert_eq!(choose_migration(&mut t, &set, &[3, 4], &c), None);
    }

    /// z1/b1: the primary's host 1; the secondary on host 2 (z2/b2, loaded by `s_load`
    /// cores); an idle host 3 in z3.
    fn hysteresis_layout(s_load: f64) -> Topology {
        topo([
            host(1, "z1", "b1", 0.0, 0),
            host(2, "z2", "b2", s_load, 0),
            host(3, "z3", "b3", 0.0, 0),
        ])
    }

    #[test]
    fn hysteresis_blocks_a_tiny_gain_and_there_is_no_flapping() {
        let c = cfg();
        let set = [(1, Role::Primary), (2, Role::Secondary)];
        // Moving 2 -> 3 gains 4 × 2/8 = 1.0 < 1.5.
        let mut t = hysteresis_layout(2.0);
        assert_eq!(choose_migration(&mut t, &set, &[], &c), None);
        // Gains 4 × 4/8 = 2.0 > 1.5: move.
        let mut t = hysteresis_layout(4.0);
        let m = choose_migration(&mut t, &set, &[], &c);
        assert_eq!(
            m,
            Some(Migration {
                from: 2,
                to: 3,
                role: Role::Secondary
            })
        );
        let before = set_score(&t, &[1, 2], &c);
        let after = set_score(&t, &[1, 3], &c);
        assert!(after - before > c.hysteresis);
        // The replica left host 2, whose load drops a little; still no way back.
        t.upsert(host(2, "z2", "b2", 3.0, 0));
        t.upsert(host(3, "z3", "b3", 1.0, 0));
        let moved = [(1, Role::Primary), (3, Role::Secondary)];
        assert_eq!(choose_migration(&mut t, &moved, &[], &c), None);
    }

    #[test]
    fn a_gain_of_exactly_the_hysteresis_moves_nothing_and_a_host_freed_later_is_seen() {
        let c = cfg();
        let set = [(1, Role::Primary), (2, Role::Secondary)];
        // Host 2 at attraction 6.0, host 3 at 7.5: a gain of exactly 1.5.
        let mut t = topo([
            host(1, "z1", "b1", 0.0, 0),
            host(2, "z2", "b2", 4.0, 0),
            host(3, "z3", "b3", 1.0, 0),
        ]);
        assert_eq!(choose_migration(&mut t, &set, &[], &c), None);
        // Host 3 frees a little more: 1.6 > 1.5.
        t.upsert(host(3, "z3", "b3", 0.8, 0));
        assert_eq!(
            choose_migration(&mut t, &set, &[], &c).map(|m| (m.from, m.to)),
            Some((2, 3))
        );
        // The idle host fills up (the top drops), then another one frees up.
        t.upsert(host(3, "z3", "b3", 4.0, 0));
        assert_eq!(choose_migration(&mut t, &set, &[], &c), None);
        t.upsert(host(4, "z4", "b4", 0.0, 0));
        assert_eq!(
            choose_migration(&mut t, &set, &[], &c).map(|m| (m.from, m.to)),
            Some((2, 4))
        );
    }

    #[test]
    fn the_primary_moves_only_for_a_larger_gain() {
        let c = cfg();
        // The primary on host 2 (loaded), a secondary on host 1, an idle host 3.
        let set = [(2, Role::Primary), (1, Role::Secondary)];
        // Gain 3.0: enough for a secondary (1.5) but not for the primary (4.5).
        let mut t = hysteresis_layout(6.0);
        assert_eq!(choose_migration(&mut t, &set, &[], &c), None);
        let as_secondary = [(1, Role::Primary), (2, Role::Secondary)];
        assert_eq!(
            choose_migration(&mut t, &as_secondary, &[], &c).map(|m| m.from),
            Some(2)
        );
        // Gain 4 × 7/8 + 4 × 4/8 = 5.5 > 4.5: the primary moves.
        let mut t = hysteresis_layout(7.0);
        t.upsert(host(2, "z2", "b2", 7.0, 4 * GIB));
        assert_eq!(
            choose_migration(&mut t, &set, &[], &c),
            Some(Migration {
                from: 2,
                to: 3,
                role: Role::Primary
            })
        );
    }

    #[test]
    fn a_secondary_is_preferred_when_gains_are_similar() {
        let c = cfg();
        // Primary on 1 and secondary on 2 both loaded alike; idle hosts 3 and 4 elsewhere.
        let mut t = topo([
            host(1, "z1", "b1", 7.0, 4 * GIB),
            host(2, "z2", "b2", 7.0, 4 * GIB),
            host(3, "z3", "b3", 0.0, 0),
            host(4, "z4", "b4", 0.0, 0),
        ]);
        let set = [(1, Role::Primary), (2, Role::Secondary)];
        assert_eq!(
            choose_migration(&mut t, &set, &[], &c),
            Some(Migration {
                from: 2,
                to: 3,
                role: Role::Secondary
            })
        );
        // Once the secondary moved, the primary's gain alone justifies its move.
        let set = [(1, Role::Primary), (3, Role::Secondary)];
        assert_eq!(
            choose_migration(&mut t, &set, &[], &c),
            Some(Migration {
                from: 1,
                to: 4,
                role: Role::Primary
            })
        );
        // But when the primary's gain dwarfs the secondary's, the primary goes first.
        t.upsert(host(2, "z2", "b2", 4.0, 0));
        t.upsert(host(1, "z1", "b1", 8.0, 8 * GIB));
        let set = [(1, Role::Primary), (2, Role::Secondary)];
        assert_eq!(
            choose_migration(&mut t, &set, &[], &c).map(|m| m.role),
            Some(Role::Primary)
        );
    }

    #[test]
    fn migration_never_targets_a_host_that_does_not_admit() {
        let c = cfg();
        let mut t = topo([
            host(1, "z1", "b1", 8.0, 7 * GIB),
            host(2, "z2", "b2", 8.0, 7 * GIB),
            host(3, "z3", "b3", 0.0, 8 * GIB - MIB),
            leaving(host(4, "z4", "b4", 0.0, 0)),
            with_role(host(5, "z5", "b5", 0.0, 0), HostRole::Logger),
        ]);
        let set = [(1, Role::Primary), (2, Role::Secondary)];
        assert_eq!(choose_migration(&mut t, &set, &[], &c), None);
        assert_eq!(choose_migration(&mut t, &[], &[], &c), None);
    }

    #[test]
    fn feasible_population_with_few_hosts() {
        let c = cfg();
        // Four hosts of 8 GiB: 128 slots each, 512 in all.
        let t = layout();
        assert_eq!(feasible_population(&t, 3, 100, &c), 3);
        assert_eq!(feasible_population(&t, 5, 100, &c), 4);
        assert_eq!(feasible_population(&t, 5, 0, &c), 4);
        // 271 colonies: only 512 / 271 = 1 replica each fits.
        assert_eq!(feasible_population(&t, 3, 271, &c), 1);
        assert_eq!(feasible_population(&Topology::new(), 3, 271, &c), 0);
        let t = topo([
            host(1, "z1", "b1", 0.0, 0),
            leaving(host(2, "z1", "b2", 0.0, 0)),
            with_role(host(3, "z1", "b3", 0.0, 0), HostRole::Logger),
        ]);
        assert_eq!(feasible_population(&t, 3, 10, &c), 1);
        let t = topo([leaving(host(2, "z1", "b2", 0.0, 0))]);
        assert_eq!(feasible_population(&t, 3, 10, &c), 0);
    }

    #[test]
    fn a_storage_node_stands_in_for_two_hosts() {
        let c = cfg();
        let storage = |id: HostId, b: &str| {
            let mut v = with_role(host(id, "z1", b, 8.0, 8 * GIB), HostRole::Storage);
            // Busy and full by its own measure: a storage node still counts as idle.
            v.info.capacity.memory = 8 * GIB;
            v
        };
        assert_eq!(attraction(&storage(9, "b9"), &c), 8.0);
        assert!(admits(&storage(9, "b9"), &c));
        // Alone it holds two of the three replicas of every colony.
        let t = topo([storage(9, "b9")]);
        assert_eq!(feasible_population(&t, 3, 271, &c), 2);
        assert_eq!(feasible_population(&t, 2, 271, &c), 2);
        assert_eq!(host_slots(&t, 9), 2);
        assert_eq!(host_slots(&t, 42), 1, "an unknown host counts as one");
        // With one ordinary host, three.
        let t = topo([storage(9, "b9"), host(1, "z1", "b1", 0.0, 0)]);
        assert_eq!(feasible_population(&t, 3, 100, &c), 3);
        assert_eq!(feasible_population(&t, 5, 100, &c), 3);
        let t = topo([with_role(host(1, "z1", "b1", 0.0, 0), HostRole::Logger)]);
        assert_eq!(host_slots(&t, 1), 0);
    }

    #[test]
    fn an_optional_move_never_replaces_a_storage_node_by_an_ordinary_host() {
        let c = cfg();
        let mut busy_storage = with_role(host(3, "z3", "b3", 0.0, 0), HostRole::Storage);
        busy_storage.replicas = 200;
        // A set on 1 and the storage node 3; 4 is far more attractive than 3 now, but
        // swapping them would turn three counted replicas into two.
        let mut t = topo([
            host(1, "z1", "b1", 6.0, 6 * GIB),
            busy_storage,
            host(4, "z4", "b4", 0.0, 0),
        ]);
        let set = [(1, Role::Primary), (3, Role::Secondary)];
        let mv = choose_migration(&mut t, &set, &[], &c);
        assert!(mv.is_none_or(|m| m.from != 3), "{mv:?}");
        // The other way is an ordinary optional move: a busy secondary goes to the idle
        // storage node (the colony then drops a surplus ordinary copy).
        let mut t = topo([
            host(1, "z1", "b1", 6.0, 6 * GIB),
            host(2, "z2", "b2", 7.0, 7 * GIB),
            with_role(host(3, "z3", "b3", 0.0, 0), HostRole::Storage),
        ]);
        assert_eq!(
            choose_migration(&mut t, &[(1, Role::Primary), (2, Role::Secondary)], &[], &c),
            Some(Migration {
                from: 2,
                to: 3,
                role: Role::Secondary
            })
        );
        // A leaving storage node is still moved off.
        let mut t = topo([
            host(1, "z1", "b1", 6.0, 6 * GIB),
            leaving(with_role(host(3, "z3", "b3", 0.0, 0), HostRole::Storage)),
            host(4, "z4", "b4", 0.0, 0),
        ]);
        assert_eq!(
            choose_migration(&mut t, &set, &[], &c),
            Some(Migration {
                from: 3,
                to: 4,
                role: Role::Secondary
            })
        );
    }

    #[test]
    fn feasible_population_with_memory_limited_hosts() {
        let c = cfg();
        // Three hosts of 128 MiB: 2 slots each.
        let small = |id: HostId, b: &str| {
            let mut v = host(id, "z1", b, 0.0, 0);
            v.info.capacity.memory = 128 * MIB;
            v
        };
        let mut t = topo([small(1, "b1"), small(2, "b2"), small(3, "b3")]);
        assert_eq!(feasible_population(&t, 3, 1, &c), 3);
        assert_eq!(feasible_population(&t, 3, 2, &c), 3);
        assert_eq!(feasible_population(&t, 3, 3, &c), 2);
        assert_eq!(feasible_population(&t, 3, 4, &c), 1);
        assert_eq!(feasible_population(&t, 3, 7, &c), 0);
        // An unlimited host adds min(∞, colonies) slots.
        let mut big = host(4, "z1", "b4", 0.0, 0);
        big.info.capacity.memory = 0;
        t.upsert(big);
        assert_eq!(feasible_population(&t, 3, 7, &c), 1);
        assert_eq!(feasible_population(&t, 3, 4, &c), 2);
    }

    #[test]
    fn placement_violation_finds_shared_hosts_and_avoidable_shared_boxes() {
        let c = cfg();
        let mut t = layout();
        assert_eq!(placement_violation(&t, &[1, 3, 4], &c), None);
        assert!(placement_violation(&t, &[1, 1], &c)
            .unwrap()
            .contains("host 1"));
        let reason = placement_violation(&t, &[1, 2], &c).unwrap();
        assert!(reason.contains("b1"), "{reason}");
        // 3 and 4 both on boxes of their own: still avoidable.
        assert!(placement_violation(&t, &[1, 2, 3], &c).is_some());
        // Every box is used: the shared one is unavoidable.
        assert_eq!(placement_violation(&t, &[1, 2, 3, 4], &c), None);
        // The only free boxes are full: unavoidable.
        t.upsert(host(4, "z2", "b3", 0.0, 8 * GIB));
        assert_eq!(placement_violation(&t, &[1, 2, 3], &c), None);
        t.upsert(leaving(host(4, "z2", "b3", 0.0, 0)));
        assert_eq!(placement_violation(&t, &[1, 2, 3], &c), None);
    }

    #[test]
    fn many_hosts_stay_deterministic_and_box_free() {
        // 1,000 hosts on 250 boxes in 4 zones, loads from a fixed hash.
        let c = cfg();
        let views: Vec<HostView> = (0..1000u32)
            .map(|id| {
                let h = super::super::types::mix64(u64::from(id));
                host(
                    id,
                    &format!("z{}", (id / 4) % 4),
                    &format!("b{}", id / 4),
                    (h % 800) as f64 / 100.0,
                    (h >> 20) % (8 * GIB),
                )
            })
            .collect();
        let mut t = topo(views);
        let mut again = t.clone();
        for colony in 0..200u32 {
            let mut set = Vec::new();
            while set.len() < 3 {
                let h = choose_clone_target(&mut t, &set, &[colony], &c).unwrap();
                assert_eq!(
                    choose_clone_target(&mut again, &set, &[colony], &c),
                    Some(h)
                );
                set.push(h);
            }
            assert_eq!(placement_violation(&t, &set, &c), None);
            let zones: BTreeSet<&str> = set
                .iter()
                .map(|&h| t.get(h).unwrap().info.zone.as_ref())
                .collect();
            assert_eq!(zones.len(), 3);
            let roles: Vec<(HostId, Role)> = set
                .iter()
                .enumerate()
                .map(|(i, &h)| {
                    (
                        h,
                        if i == 0 {
                            Role::Primary
                        } else {
                            Role::Secondary
                        },
                    )
                })
                .collect();
            assert_eq!(choose_migration(&mut t, &roles, &[], &c), None);
        }
    }

    // ---- properties ----

    /// 1–30 hosts over random boxes (each box in one zone) with random loads, states and
    /// roles. Ids are 1..=n.
    fn arb_topology() -> impl Strategy<Value = Topology> {
        (1usize..=30, 1u32..=10, 1u32..=4).prop_flat_map(|(n, boxes, zones)| {
            proptest::collection::vec((0..boxes, 0u8..=8, 0u64..=8, 0u8..12, 0u8..8), n).prop_map(
                move |hosts| {
                    let mut t = Topology::new();
                    for (i, (b, cpu, mem, kind, cap)) in hosts.into_iter().enumerate() {
                        let mut v = host(
                            i as HostId + 1,
                            &format!("z{}", b % zones),
                            &format!("b{b}"),
                            f64::from(cpu),
                            mem * GIB,
                        );
                        match kind {
                            0 => v.state = HostState::Leaving,
                            1 => v.info.role = HostRole::Logger,
                            2 => v.info.role = HostRole::Storage,
                            _ => {}
                        }
                        if cap == 0 {
                            v.info.capacity.memory = 0;
                        }
                        t.upsert(v);
                    }
                    t
                },
            )
        })
    }

    /// Distinct ids picked from `raw` modulo `n`, in order of first appearance.
    fn pick(raw: &[u32], n: usize) -> Vec<HostId> {
        let mut out = Vec::new();
        for &r in raw {
            let id = r % n as u32 + 1;
            if !out.contains(&id) {
                out.push(id);
            }
        }
        out
    }

    fn arb_cfg() -> impl Strategy<Value = PlacementConfig> {
        (1usize..=40).prop_map(|max_candidates| PlacementConfig {
            max_candidates,
            ..PlacementConfig::default()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn clone_target_is_outside_the_set_and_admits(
            mut t in arb_topology(),
            cfg in arb_cfg(),
            set in proptest::collection::vec(any::<u32>(), 0..6),
            exclude in proptest::collection::vec(any::<u32>(), 0..4),
        ) {
            let set = pick(&set, t.len());
            let exclude = pick(&exclude, t.len());
            if let Some(h) = choose_clone_target(&mut t, &set, &exclude, &cfg) {
                prop_assert!(!set.contains(&h));
                prop_assert!(!exclude.contains(&h));
                prop_assert!(admits(t.get(h).unwrap(), &cfg));
            } else {
                prop_assert!(t
                    .hosts()
                    .all(|v| set.contains(&v.info.id) || exclude.contains(&v.info.id) || !admits(v, &cfg)));
            }
        }

        #[test]
        fn migrations_reach_a_fixpoint_without_lowering_the_score(
            mut t in arb_topology(),
            cfg in arb_cfg(),
            set in proptest::collection::vec(any::<u32>(), 1..6),
            exclude in proptest::collection::vec(any::<u32>(), 0..3),
        ) {
            let hosts = pick(&set, t.len());
            let exclude = pick(&exclude, t.len());
            let mut set: Vec<(HostId, Role)> = hosts
                .iter()
                .enumerate()
                .map(|(i, &h)| (h, if i == 0 { Role::Primary } else { Role::Secondary }))
                .collect();
            let mut seen = BTreeSet::new();
            let mut fixpoint = false;
            for _ in 0..20 {
                let key: BTreeSet<HostId> = set.iter().map(|&(h, _)| h).collect();
                prop_assert!(seen.insert(key), "a set came back: cycle");
                let Some(m) = choose_migration(&mut t, &set, &exclude, &cfg) else {
                    fixpoint = true;
                    break;
                };
                prop_assert!(set.iter().all(|&(h, _)| h != m.to));
                prop_assert!(!exclude.contains(&m.to));
                prop_assert!(admits(t.get(m.to).unwrap(), &cfg));
                let slot = set.iter().position(|&(h, r)| h == m.from && r == m.role);
                prop_assert!(slot.is_some(), "{:?} moves no member of {:?}", m, set);
                let ids = |s: &[(HostId, Role)]| s.iter().map(|&(h, _)| h).collect::<Vec<_>>();
                let before = set_score(&t, &ids(&set), &cfg);
                set[slot.unwrap()].0 = m.to;
                let after = set_score(&t, &ids(&set), &cfg);
                prop_assert!(after >= before, "{:?}: {} -> {}", m, before, after);
            }
            prop_assert!(fixpoint, "no fixpoint after 20 moves");
        }

        #[test]
        fn filling_with_clone_targets_violates_nothing(
            mut t in arb_topology(),
            cfg in arb_cfg(),
            wanted in 1u32..=5,
        ) {
            let target = wanted.min(feasible_population(&t, wanted, 1, &cfg)) as usize;
            let mut set = Vec::new();
            while set.len() < target {
                match choose_clone_target(&mut t, &set, &[], &cfg) {
                    Some(h) => set.push(h),
                    None => break,
                }
            }
            prop_assert_eq!(placement_violation(&t, &set, &cfg), None);
            let admitting: Vec<&HostView> = t.hosts().filter(|v| admits(v, &cfg)).collect();
            if admitting.len() >= target {
                prop_assert_eq!(set.len(), target);
            }
            let free_boxes: BTreeSet<(&str, &str)> = admitting
                .iter()
                .map(|v| (v.info.zone.as_ref(), v.info.box_name.as_ref()))
                .collect();
            if t.boxes() >= wanted as usize && free_boxes.len() >= target {
                let used: BTreeSet<(&str, &str)> = set
                    .iter()
                    .map(|&h| {
                        let v = t.get(h).unwrap();
                        (v.info.zone.as_ref(), v.info.box_name.as_ref())
                    })
                    .collect();
                prop_assert_eq!(used.len(), set.len());
            }
        }
    }

    fn layout_hosts(n: u32, boxes: u32, zones: u32) -> Vec<LayoutHost> {
        (0..n)
            .map(|i| LayoutHost {
                id: i + 1,
                incarnation: 0,
                zone: (i % boxes) % zones,
                box_id: i % boxes,
                room: u32::MAX,
            })
            .collect()
    }

    /// Per host: (primaries, replicas).
    fn layout_counts(l: &InitialLayout) -> BTreeMap<HostId, (u32, u32)> {
        let mut counts = BTreeMap::new();
        for c in 0..l.colonies() {
            for (k, h) in l.set(c).enumerate() {
                let e = counts.entry(h).or_insert((0, 0));
                e.0 += u32::from(k == 0);
                e.1 += 1;
            }
        }
        counts
    }

    #[test]
    fn the_initial_layout_of_the_benchmark_is_spread_and_even() {
        let hosts = layout_hosts(1000, 200, 10);
        let l = initial_layout(&hosts, 10_000, 3);
        assert_eq!((l.population, l.colonies()), (3, 10_000));
        let by_id: BTreeMap<HostId, LayoutHost> = hosts.iter().map(|h| (h.id, *h)).collect();
        for c in 0..10_000 {
            let set: Vec<LayoutHost> = l.set(c).map(|h| by_id[&h]).collect();
            assert_eq!(set.len(), 3, "colony {c}");
            for (i, a) in set.iter().enumerate() {
                for b in &set[i + 1..] {
                    assert_ne!(a.box_id, b.box_id, "colony {c}: one box");
                    assert_ne!(a.zone, b.zone, "colony {c}: one zone");
                }
            }
        }
        let counts = layout_counts(&l);
        assert_eq!(counts.len(), 1000);
        assert!(counts.values().all(|&(p, _)| p == 10), "{counts:?}");
        let (lo, hi) = counts
            .values()
            .fold((u32::MAX, 0), |(lo, hi), &(_, r)| (lo.min(r), hi.max(r)));
        assert!(lo >= 29 && hi <= 31, "replicas per host {lo}..={hi}");
        // Sets differ from one round of hosts to the next.
        let first: Vec<HostId> = l.set(0).collect();
        let next: Vec<HostId> = l.set(1000).collect();
        assert_eq!(first[0], next[0]);
        assert_ne!(first, next);
    }

    #[test]
    fn the_initial_layout_ignores_the_order_of_its_hosts() {
        let hosts = layout_hosts(7, 7, 3);
        let mut shuffled = hosts.clone();
        shuffled.reverse();
        shuffled.swap(1, 4);
        shuffled.push(hosts[2]);
        assert_eq!(
            initial_layout(&hosts, 64, 3),
            initial_layout(&shuffled, 64, 3)
        );
    }

    #[test]
    fn the_initial_layout_keeps_small_uneven_clusters_off_shared_boxes() {
        // 7 hosts, 3 zones of 3, 2, 2 boxes.
        let l = initial_layout(&layout_hosts(7, 7, 3), 64, 3);
        let counts = layout_counts(&l);
        assert!(
            counts.values().all(|&(p, _)| p == 9 || p == 10),
            "{counts:?}"
        );
        // Zone z0 has 3 hosts, z1 and z2 two each: a set in three zones puts a third of
        // the replicas on each zone, so z0's hosts hold fewer; within a zone, evenly.
        for zone in 0..3 {
            let r: Vec<u32> = counts
                .iter()
                .filter(|(h, _)| ((*h - 1) % 7) % 3 == zone)
                .map(|(_, &(_, r))| r)
                .collect();
            let spread = r.iter().max().unwrap() - r.iter().min().unwrap();
            assert!(spread <= 1, "zone {zone}: {counts:?}");
        }
        for c in 0..64 {
            let set: Vec<HostId> = l.set(c).collect();
            let zones: BTreeSet<u32> = set.iter().map(|h| ((h - 1) % 7) % 3).collect();
            assert_eq!(set.len(), 3);
            assert_eq!(zones.len(), 3, "colony {c}: {set:?}");
        }
        // 6 hosts on 3 boxes: never two replicas of a colony on one box.
        let hosts = layout_hosts(6, 3, 1);
        let l = initial_layout(&hosts, 30, 3);
        for c in 0..30 {
            let boxes: BTreeSet<u32> = l.set(c).map(|h| (h - 1) % 3).collect();
            assert_eq!(boxes.len(), 3, "colony {c}");
        }
        // 4 hosts on 2 boxes, N = 3: two on a box is unavoidable, never three.
        let l = initial_layout(&layout_hosts(4, 2, 1), 10, 3);
        for c in 0..10 {
            let set: Vec<HostId> = l.set(c).collect();
            let boxes: BTreeSet<u32> = set.iter().map(|h| (h - 1) % 2).collect();
            assert_eq!((set.len(), boxes.len()), (3, 2), "colony {c}: {set:?}");
        }
    }

    #[test]
    fn the_initial_layout_settles_on_what_fits() {
        // Two hosts for N = 3.
        let l = initial_layout(&layout_hosts(2, 2, 1), 8, 3);
        assert_eq!(l.population, 2);
        assert!((0..8).all(|c| l.set(c).count() == 2));
        // Room for 6 replicas of 4 colonies: one each, never more than a host's room.
        let mut hosts = layout_hosts(3, 3, 1);
        for h in &mut hosts {
            h.room = 2;
        }
        let l = initial_layout(&hosts, 4, 3);
        assert_eq!(l.population, 1);
        assert!(layout_counts(&l).values().all(|&(_, r)| r <= 2));
        assert!((0..4).all(|c| l.set(c).count() == 1));
        // No hosts, no colonies.
        assert_eq!(initial_layout(&[], 4, 3).population, 0);
        assert_eq!(initial_layout(&hosts, 0, 3).colonies(), 0);
    }
}
