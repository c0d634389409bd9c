//! The invariant checker: the invariants of the design, judged from the clients' ledger
//! and from the replicas' actual contents, never from a replica's opinion of itself.
//!
//! 1. No acknowledged write lost: the leader's cell for every key is one the ledger
//!    allows, unless a `data_lost` (colony) or `merge_conflict` (key) was reported after
//!    the key's last acknowledgement — then it counts as lost-and-reported. Full scans
//!    run while the cluster is quiet and at the end; contradictions seen in replies (an
//!    INCR that skipped an acknowledged increment) are judged the same way.
//! 2. At most one writable primary per colony among hosts with quorum: two at the same
//!    epoch is always a violation; at different epochs they may overlap for a short
//!    window (a deposed primary that has not heard yet).
//! 3. Placement: the leader's replica set never has two replicas on one host, nor two on
//!    one box when another box could take one — judged while quiet, after a grace.
//! 4. Recovery: see [`crate::recovery`] (the whole cluster) and [`crate::stall`] (each
//!    colony, counted from the last fault that concerned it).
//! 5. Directories: every live host's entry for every colony names the leader and its
//!    epoch, by the end.

use crate::events::EventLog;
use crate::ledger::KeyLedger;
use crate::queue::Time;
use crate::recovery::Recovery;
use crate::scenario::{ms, CheckSpec};
use crate::stall::Stalls;
use crate::view::{find, topology_of, ClusterView, LiveHost};
use colony::core::placement::{feasible_population, placement_violation, PlacementConfig};
use colony::core::types::{colony_of, ColonyId};
use std::collections::BTreeMap;

/// A broken invariant.
#[derive(Clone, Debug)]
pub struct Violation {
    pub t: Time,
    pub invariant: &'static str,
    pub what: String,
}

impl Violation {
    fn recovery(t: Time, what: String) -> Self {
        Violation {
            t,
            invariant: "recovery",
            what,
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{:.3} s] {}: {}",
            self.t as f64 / 1000.0,
            self.invariant,
            self.what
        )
    }
}

/// A reply that showed an acknowledged write gone; judged once the loss had time to be
/// reported.
struct Suspect {
    key: usize,
    colony: ColonyId,
    since: Time,
    seen: Time,
    detail: String,
}

/// Everything a check needs, borrowed from the world for one call.
pub struct CheckCtx<'a, 'b> {
    pub now: Time,
    pub live: &'b [LiveHost<'a>],
    pub view: &'b ClusterView,
    pub keys: &'b mut [KeyLedger],
    pub log: &'b EventLog,
    pub colonies: u32,
    /// Whether no fault is active (no partition, nobody slowed or squeezed mid-way...).
    pub calm: bool,
    /// The final check of the run.
    pub last: bool,
}

/// The checker's state across a run.
pub struct Checker {
    spec: CheckSpec,
    replicas: u32,
    placement_cfg: PlacementConfig,
    overlap_since: BTreeMap<ColonyId, Time>,
    misplaced_since: BTreeMap<ColonyId, Time>,
    suspects: Vec<Suspect>,
    last_scan: Option<Time>,
    pub recovery: Recovery,
    pub stalls: Stalls,
    pub writes_lost: u64,
    pub placement_violations: u64,
    pub ledger_scans: u64,
    /// Messages about recoveries, for a verbose run.
    pub recovered: Vec<(Time, String, f64)>,
    /// The last target and the shape of the live hosts it was computed for (see
    /// [`Checker::target`]).
    target_cache: Option<(Vec<ShapeKey>, u32)>,
}

/// What the feasible population depends on, for one live host: id, role, memory
/// capacity, whether it is active.
type ShapeKey = (u32, colony::core::types::HostRole, u64, bool);

impl Checker {
    pub fn new(
        spec: CheckSpec,
        replicas: u32,
        colonies: u32,
        placement_cfg: PlacementConfig,
    ) -> Self {
        Checker {
            recovery: Recovery::new(ms(spec.recovery_bound_s), ms(spec.formation_bound_s)),
            stalls: Stalls::new(colonies, ms(spec.recovery_bound_s)),
            spec,
            replicas,
            placement_cfg,
            overlap_since: BTreeMap::new(),
            misplaced_since: BTreeMap::new(),
            suspects: Vec::new(),
            last_scan: None,
            writes_lost: 0,
            placement_violations: 0,
            ledger_scans: 0,
            recovered: Vec::new(),
            target_cache: None,
        }
    }

    /// min(N, what the live hosts can hold). Computed again only when a live host's
    /// id, role, capacity or state differs from the last call (the feasible population
    /// depends on nothing else).
    pub fn target(&mut self, live: &[LiveHost], colonies: u32) -> u32 {
        let shape: Vec<ShapeKey> = live
            .iter()
            .map(|h| {
                let info = h.node.info();
                let active = h.node.state() == colony::core::node::NodeState::Active;
                (info.id, info.role, info.capacity.memory, active)
            })
            .collect();
        if let Some((cached, target)) = &self.target_cache {
            if *cached == shape {
                return *target;
            }
        }
        let topo = topology_of(live);
        let target = feasible_population(&topo, self.replicas, colonies, &self.placement_cfg)
            .min(self.replicas)
            .max(1);
        self.target_cache = Some((shape, target));
        target
    }

    /// A reply contradicted the ledger for `key` (last acknowledged at `since`).
    pub fn suspect(
        &mut self,
        now: Time,
        key: usize,
        colony: ColonyId,
        since: Time,
        detail: String,
    ) {
        self.suspects.push(Suspect {
            key,
            colony,
            since,
            seen: now,
            detail,
        });
    }

    /// The periodic check. `target` is min(N, feasible) for the live hosts.
    pub fn check(&mut self, cx: &mut CheckCtx, target: u32) -> Result<(), Violation> {
        self.check_primaries(cx)?;
        let healthy = self.check_colonies(cx, target)?;
        match self.recovery.observe(cx.now, healthy) {
            Ok(done) => {
                for (what, s) in done {
                    self.recovered.push((cx.now, what, s));
                }
            }
            Err(o) => {
                let what = format!(
                    "not every colony is back to {target} in-sync replicas under one primary {:.0} s after {} (at {:.1} s); {}",
                    o.bound as f64 / 1000.0,
                    o.fault,
                    o.at as f64 / 1000.0,
                    unhealthy_report(cx.view, target)
                );
                return Err(Violation::recovery(cx.now, what));
            }
        }
        let quiet = cx.calm
            && self.recovery.is_healthy()
            && cx.now >= self.recovery.last_fault_at() + ms(self.spec.recovery_bound_s);
        let scan_due = self
            .last_scan
            .is_none_or(|t| cx.now >= t + ms(self.spec.quiet_check_every_s));
        if cx.last || (quiet && scan_due) {
            self.last_scan = Some(cx.now);
            self.scan_ledger(cx)?;
            self.check_placement(cx, true)?;
        } else if !quiet {
            self.check_placement(cx, false)?;
        }
        self.judge_suspects(cx)?;
        Ok(())
    }

    /// Invariant 4 per colony ([`Stalls`]): whether every colony is healthy.
    fn check_colonies(&mut self, cx: &CheckCtx, target: u32) -> Result<bool, Violation> {
        let formed = self.recovery.formed_at().is_some();
        let mut healthy = true;
        for (c, cv) in cx.view.colonies.iter().enumerate() {
            let ok = cv.healthy(target);
            healthy &= ok;
            if !formed {
                continue;
            }
            if let Err(s) = self.stalls.observe(cx.now, c as ColonyId, ok) {
                let what = format!(
                    "colony {c} not back to {target} in-sync replicas under one primary since {:.1} s, {:.0} s after the last fault that concerned it (at {:.1} s); population {}: {}",
                    s.since as f64 / 1000.0,
                    ms(self.spec.recovery_bound_s) as f64 / 1000.0,
                    s.fault_at as f64 / 1000.0,
                    cv.population(),
                    cv.describe()
                );
                return Err(Violation::recovery(cx.now, what));
            }
        }
        Ok(healthy)
    }

    /// Invariant 2.
    fn check_primaries(&mut self, cx: &CheckCtx) -> Result<(), Violation> {
        let window = self.spec.dual_primary_window_ms;
        for (c, cv) in cx.view.colonies.iter().enumerate() {
            let c = c as ColonyId;
            let w: Vec<_> = cv
                .primaries
                .iter()
                .filter(|p| p.writable && p.quorum)
                .collect();
            if w.len() < 2 {
                self.overlap_since.remove(&c);
                continue;
            }
            for (i, a) in w.iter().enumerate() {
                if let Some(b) = w[i + 1..].iter().find(|b| b.epoch == a.epoch) {
                    return Err(Violation {
                        t: cx.now,
                        invariant: "one primary",
                        what: format!(
                            "colony {c}: hosts {} and {} are both writable primaries at epoch {}",
                            a.host, b.host, a.epoch
                        ),
                    });
                }
            }
            let since = *self.overlap_since.entry(c).or_insert(cx.now);
            if cx.now - since > window {
                return Err(Violation {
                    t: cx.now,
                    invariant: "one primary",
                    what: format!(
                        "colony {c}: {} writable primaries on sides with quorum for {:.1} s (allowed {:.1} s): {}",
                        w.len(),
                        (cx.now - since) as f64 / 1000.0,
                        window as f64 / 1000.0,
                        cv.describe()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Invariant 1, full scan.
    pub fn scan_ledger(&mut self, cx: &mut CheckCtx) -> Result<(), Violation> {
        self.ledger_scans += 1;
        for key in cx.keys.iter_mut() {
            let colony = colony_of(key.name.as_bytes(), cx.colonies);
            let Some(leader) = cx.view.colony(colony).leader() else {
                continue;
            };
            let Some(host) = find(cx.live, leader.host) else {
                continue;
            };
            let Some(replica) = host.node.replica(colony) else {
                continue;
            };
            let found = replica.cells.get(key.name.as_bytes());
            let cell = found.as_deref();
            if key.allows(cell, cx.now) {
                continue;
            }
            let since = key.anchor.unwrap_or(0);
            if cx.log.loss_reported(colony, &key.name, since) {
                self.writes_lost += 1;
                key.rebase(cell, cx.now);
                continue;
            }
            return Err(Violation {
                t: cx.now,
                invariant: "no acknowledged write lost",
                what: format!(
                    "key {} (colony {colony}): primary {} at epoch {} holds {:?}; the acknowledged history allows only {:?}{}; the expected state rests on writes acknowledged from {:.3} s on; no data_lost or merge_conflict reported since",
                    key.name,
                    leader.host,
                    leader.epoch,
                    cell,
                    key.states,
                    key.inflight
                        .as_ref()
                        .map_or(String::new(), |w| format!(" (or those after {:?} in flight)", w.op)),
                    since as f64 / 1000.0
                ),
            });
        }
        Ok(())
    }

    /// Contradictions from replies: reported by now (or within the recovery bound) or a
    /// violation.
    fn judge_suspects(&mut self, cx: &mut CheckCtx) -> Result<(), Violation> {
        let bound = ms(self.spec.recovery_bound_s);
        let mut keep = Vec::new();
        for s in std::mem::take(&mut self.suspects) {
            let name = &cx.keys[s.key].name;
            if cx.log.loss_reported(s.colony, name, s.since) {
                self.writes_lost += 1;
            } else if cx.last || cx.now > s.seen + bound {
                return Err(Violation {
                    t: cx.now,
                    invariant: "no acknowledged write lost",
                    what: format!(
                        "key {name} (colony {}), at {:.3} s: {}; the expected state rests on writes acknowledged from {:.3} s on; no data_lost or merge_conflict reported since",
                        s.colony,
                        s.seen as f64 / 1000.0,
                        s.detail,
                        s.since as f64 / 1000.0
                    ),
                });
            } else {
                keep.push(s);
            }
        }
        self.suspects = keep;
        Ok(())
    }

    /// Invariant 3. `quiet`: judge; otherwise only forget violations that went away.
    fn check_placement(&mut self, cx: &CheckCtx, quiet: bool) -> Result<(), Violation> {
        if !quiet {
            self.misplaced_since.clear();
            return Ok(());
        }
        let topo = topology_of(cx.live);
        let grace = ms(self.spec.placement_grace_s);
        for (c, cv) in cx.view.colonies.iter().enumerate() {
            let c = c as ColonyId;
            let Some(leader) = cv.leader() else {
                continue;
            };
            if leader.members.iter().any(|m| !m.in_sync) {
                // A transfer in flight: judge the set once it settles.
                continue;
            }
            let Some(set) = cv.leader_set() else {
                continue;
            };
            match placement_violation(&topo, &set, &self.placement_cfg) {
                None => {
                    self.misplaced_since.remove(&c);
                }
                Some(why) => {
                    let since = *self.misplaced_since.entry(c).or_insert(cx.now);
                    if cx.now - since >= grace || cx.last {
                        self.placement_violations += 1;
                        return Err(Violation {
                            t: cx.now,
                            invariant: "placement",
                            what: format!(
                                "colony {c} (set {set:?}): {why}, for {:.1} s while quiet",
                                (cx.now - since) as f64 / 1000.0
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// Invariant 5: hosts whose directory disagrees with the leaders (up to a few).
pub fn directory_mismatches(live: &[LiveHost], view: &ClusterView) -> (u64, Vec<String>) {
    let mut n = 0;
    let mut first = Vec::new();
    for h in live {
        let dir = h.node.directory();
        for (c, cv) in view.colonies.iter().enumerate() {
            let Some(l) = cv.leader() else {
                continue;
            };
            let got = dir.entry(c as ColonyId).map(|e| (e.epoch, e.primary));
            if got != Some((l.epoch, l.host)) {
                n += 1;
                if first.len() < 5 {
                    first.push(format!(
                        "host {} says colony {c} is {}, the replicas say primary {} at epoch {}",
                        h.id(),
                        got.map_or("unknown".to_owned(), |(e, p)| format!(
                            "primary {p} at epoch {e}"
                        )),
                        l.host,
                        l.epoch
                    ));
                }
            }
        }
    }
    (n, first)
}

/// The first few unhealthy colonies, described.
pub fn unhealthy_report(view: &ClusterView, target: u32) -> String {
    let bad: Vec<String> = view
        .colonies
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.healthy(target))
        .take(3)
        .map(|(i, c)| {
            format!(
                "colony {i} (population {}): {}",
                c.population(),
                c.describe()
            )
        })
        .collect();
    let total = view.colonies.iter().filter(|c| !c.healthy(target)).count();
    format!("{total} unhealthy, e.g. {}", bad.join(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Sink;
    use crate::view::{ColonyView, PrimaryView};
    use colony::core::types::Epoch;
    use smallvec::{smallvec, SmallVec};

    fn led(host: u32) -> ColonyView {
        ColonyView {
            primaries: smallvec![PrimaryView {
                host,
                epoch: Epoch { term: 1, by: host },
                writable: true,
                quorum: true,
                members: SmallVec::new(),
                slots: 1,
            }],
            secondaries: SmallVec::new(),
        }
    }

    /// One colony stays without a primary while kills of hosts that hold only the
    /// other one go on every 20 s: the cluster-wide bound, restarted by each kill,
    /// never fires; the colony's own bound does.
    #[test]
    fn a_colony_stalled_through_kills_elsewhere_is_a_violation() {
        let spec = CheckSpec {
            recovery_bound_s: 60.0,
            ..CheckSpec::default()
        };
        let mut checker = Checker::new(spec, 1, 2, PlacementConfig::default());
        let log = EventLog::new(Sink::None);
        let mut view = ClusterView {
            colonies: vec![led(1), led(2)],
        };
        let check = |checker: &mut Checker, view: &ClusterView, now: Time| {
            let mut cx = CheckCtx {
                now,
                live: &[],
                view,
                keys: &mut [],
                log: &log,
                colonies: 2,
                calm: true,
                last: false,
            };
            checker.check(&mut cx, 1)
        };
        check(&mut checker, &view, 1_000).expect("formed and healthy");
        // Colony 0 loses its primary at 10 s (its host is killed).
        checker.stalls.fault_on(0, 10_000);
        checker.recovery.fault(10_000, "kill host 1", true);
        view.colonies[0].primaries.clear();
        let mut t = 11_000;
        let verdict = loop {
            if t % 20_000 == 0 {
                checker.stalls.fault_on(1, t);
                checker.recovery.fault(t, "kill a host of colony 1", true);
            }
            if let Err(v) = check(&mut checker, &view, t) {
                break v;
            }
            t += 1_000;
            assert!(t < 200_000, "never flagged");
        };
        assert_eq!(verdict.t, 72_000, "{verdict}");
        assert!(verdict.what.starts_with("colony 0 "), "{verdict}");
        assert!(
            checker.recovery.within_bound(t),
            "the cluster-wide bound held"
        );
    }
}
