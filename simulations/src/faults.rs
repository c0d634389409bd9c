//! Fault injection: the scenario's `[[faults]]` turned into timed actions, and what each
//! action does to the world.
//!
//! Hosts named by id are used as given; a fault without a host picks one at random
//! (seeded) among the running hosts when it fires, never a logging node (only
//! `logger_restart` picks loggers) and never a storage node (unless a `random_kills`
//! says `storage = true`). Random and hand-off kills also spare the last surviving
//! holder of a colony since it was last whole ([`World::last_holder_of_some_colony`]).
//! Windows of random kills and rolling restarts reschedule themselves step by step.
//! Every action that changes the cluster is recorded as a fault, which starts the clock
//! of the recovery check.

use crate::hosts::HostSlot;
use crate::network::Partition;
use crate::queue::Time;
use crate::resources::Squeeze;
use crate::scenario::{ms, FaultSpec};
use crate::world::{Item, World};
use colony::core::node::{Input, NodeState};
use colony::core::types::HostId;
use rand::RngExt;

/// What the fault record of a kill right after a hand-off says (counted by
/// `[expect] min_hand_off_kills`).
pub const HAND_OFF_KILL: &str = "after it took primacy by hand-off";

/// A timed action.
#[derive(Clone, Debug)]
pub enum Action {
    /// Start a host of the initial cluster.
    Boot(HostId),
    Kill {
        host: Option<HostId>,
        restart_after: Option<Time>,
    },
    KillBox {
        box_name: Option<String>,
        restart_after: Option<Time>,
    },
    /// Start a new process in a killed host's slot.
    Revive(HostId),
    /// Kill a logging node and start it again on its disk after `down`.
    LoggerRestart {
        host: Option<HostId>,
        down: Time,
    },
    Leave {
        host: Option<HostId>,
        restart_after: Option<Time>,
    },
    Join {
        zone: Option<String>,
        box_name: Option<String>,
    },
    Partition {
        zones: Vec<String>,
        hosts: Vec<HostId>,
        oneway: bool,
        cut_from: Vec<HostId>,
        heal_after: Option<Time>,
    },
    Heal,
    Squeeze {
        host: Option<HostId>,
        squeeze: Squeeze,
        release_after: Option<Time>,
    },
    Release(HostId),
    Slow {
        host: Option<HostId>,
        extra_ms: u64,
        for_ms: Option<Time>,
    },
    Unslow(HostId),
    /// One step of a random-kills window (index into the scenario's faults).
    RandomKill(usize),
    /// Kill `host`, which took primacy by hand-off `after` ms ago (a `hand_off_kills`
    /// window), if that keeps at most `max_down` hosts down.
    HandOffKill {
        host: HostId,
        after: Time,
        max_down: u32,
        restart_after: Time,
    },
    /// One step of a rolling restart: restart the `n`-th host.
    Rolling {
        fault: usize,
        n: usize,
    },
    /// The whole cluster shuts down to disk, then starts again (see [`crate::shutdown`]).
    Shutdown {
        interval: Time,
        down: Time,
    },
    /// Send the next host of a shutdown away.
    ShutdownStep,
    /// Start every host again after a shutdown.
    ColdStart,
    /// Restore the saved cells into the new cluster.
    RestoreStep,
}

/// Schedule the scenario's faults.
pub fn plan(w: &mut World) {
    let faults = w.sc.faults.clone();
    for (i, f) in faults.iter().enumerate() {
        let a = match f {
            FaultSpec::Kill {
                at_s,
                host,
                restart_after_s,
            } => (
                *at_s,
                Action::Kill {
                    host: *host,
                    restart_after: restart_after_s.map(ms),
                },
            ),
            FaultSpec::KillBox {
                at_s,
                box_name,
                restart_after_s,
            } => (
                *at_s,
                Action::KillBox {
                    box_name: box_name.clone(),
                    restart_after: restart_after_s.map(ms),
                },
            ),
            FaultSpec::Restart { at_s, host, down_s } => (
                *at_s,
                Action::Kill {
                    host: *host,
                    restart_after: Some(ms(*down_s)),
                },
            ),
            FaultSpec::RandomKills { from_s, .. } => (*from_s, Action::RandomKill(i)),
            // Driven by the hand-offs themselves (`World::on_hand_off`).
            FaultSpec::HandOffKills { .. } => continue,
            FaultSpec::RollingRestart { at_s, .. } => (*at_s, Action::Rolling { fault: i, n: 0 }),
            FaultSpec::Leave { at_s, host } => (
                *at_s,
                Action::Leave {
                    host: *host,
                    restart_after: None,
                },
            ),
            FaultSpec::Join {
                at_s,
                count,
                zone,
                box_name,
            } => {
                for _ in 0..*count {
                    w.schedule(
                        ms(*at_s),
                        Action::Join {
                            zone: zone.clone(),
                            box_name: box_name.clone(),
                        },
                    );
                }
                continue;
            }
            FaultSpec::Partition {
                at_s,
                zones,
                hosts,
                oneway,
                cut_from,
                heal_after_s,
            } => (
                *at_s,
                Action::Partition {
                    zones: zones.clone(),
                    hosts: hosts.clone(),
                    oneway: *oneway,
                    cut_from: cut_from.clone(),
                    heal_after: heal_after_s.map(ms),
                },
            ),
            FaultSpec::Heal { at_s } => (*at_s, Action::Heal),
            FaultSpec::ShutdownRestart {
                at_s,
                interval_s,
                down_s,
            } => (
                *at_s,
                Action::Shutdown {
                    interval: ms(*interval_s),
                    down: ms(*down_s),
                },
            ),
            FaultSpec::Squeeze {
                at_s,
                host,
                cpu,
                memory,
                for_s,
            } => (
                *at_s,
                Action::Squeeze {
                    host: *host,
                    squeeze: Squeeze {
                        cpu: *cpu,
                        memory: *memory,
                    },
                    release_after: for_s.map(ms),
                },
            ),
            FaultSpec::LoggerRestart { at_s, host, down_s } => (
                *at_s,
                Action::LoggerRestart {
                    host: *host,
                    down: ms(*down_s),
                },
            ),
            FaultSpec::Slow {
                at_s,
                host,
                extra_ms,
                for_s,
            } => (
                *at_s,
                Action::Slow {
                    host: *host,
                    extra_ms: *extra_ms,
                    for_ms: for_s.map(ms),
                },
            ),
        };
        w.schedule(ms(a.0), a.1);
    }
}

impl World {
    pub(crate) fn schedule(&mut self, at: Time, a: Action) {
        self.agenda.push(at, Item::Fault(Box::new(a)));
    }

    /// A host by id if it runs, or a random running one.
    fn resolve(&mut self, host: Option<HostId>) -> Option<HostId> {
        match host {
            Some(h) => self.slot(h).is_some_and(|s| s.node.is_some()).then_some(h),
            None => self.pick_victim(),
        }
    }

    fn uniform(&mut self, [lo, hi]: [f64; 2]) -> Time {
        if hi <= lo {
            return ms(lo);
        }
        ms(self.rng.random_range(lo..=hi))
    }

    pub(crate) fn apply(&mut self, a: Action) {
        let now = self.now;
        match a {
            Action::Boot(h) => self.boot(h),
            Action::Kill {
                host,
                restart_after,
            } => {
                let Some(h) = self.resolve(host) else {
                    return;
                };
                self.kill(h);
                match restart_after {
                    Some(d) => {
                        self.note_local_fault(
                            format!("kill host {h} (restart in {:.1} s)", d as f64 / 1000.0),
                            true,
                        );
                        self.schedule(now + d, Action::Revive(h));
                    }
                    None => self.note_local_fault(format!("kill host {h}"), true),
                }
            }
            Action::KillBox {
                box_name,
                restart_after,
            } => {
                let name = match box_name {
                    Some(b) => b,
                    None => {
                        let Some(h) = self.pick_victim() else {
                            return;
                        };
                        self.slot(h)
                            .map(|s| s.info.box_name.to_string())
                            .unwrap_or_default()
                    }
                };
                let victims: Vec<HostId> = self
                    .hosts
                    .iter()
                    .filter(|s| *s.info.box_name == *name && s.node.is_some())
                    .map(|s| s.info.id)
                    .collect();
                for h in &victims {
                    self.kill(*h);
                    if let Some(d) = restart_after {
                        self.schedule(now + d, Action::Revive(*h));
                    }
                }
                self.note_local_fault(format!("kill box {name} (hosts {victims:?})"), true);
            }
            Action::Revive(h) => {
                if self.slot(h).is_some_and(|s| s.node.is_none() && !s.gone) {
                    self.boot(h);
                    let what = match self.slot(h) {
                        Some(s) if s.is_logger() => format!(
                            "restart logger {h} on its disk ({} appends, {} colonies)",
                            s.log.len(),
                            s.log_positions().len()
                        ),
                        _ => format!("restart host {h}"),
                    };
                    self.note_local_fault(what, false);
                }
            }
            Action::LoggerRestart { host, down } => self.logger_restart(host, down),
            Action::Leave {
                host,
                restart_after,
            } => {
                let Some(h) = self.resolve(host) else {
                    return;
                };
                if let Some(s) = self.slot_mut(h) {
                    s.restart_after_leave = restart_after;
                }
                self.note_fault(format!("host {h} leaves gracefully"), true);
                self.step(h, Input::Leave);
            }
            Action::Join { zone, box_name } => {
                let h = self.add_host(zone.as_deref(), box_name.as_deref());
                let (b, z) = self
                    .slot(h)
                    .map(|s| (s.info.box_name.clone(), s.info.zone.clone()))
                    .unwrap_or_default();
                self.note_fault(format!("host {h} joins (box {b}, zone {z})"), false);
            }
            Action::Partition {
                zones,
                hosts,
                oneway,
                cut_from,
                heal_after,
            } => {
                let mut side: std::collections::BTreeSet<HostId> = hosts.iter().copied().collect();
                for s in &self.hosts {
                    if zones.iter().any(|z| **z == *s.info.zone) {
                        side.insert(s.info.id);
                    }
                }
                let only: std::collections::BTreeSet<HostId> = cut_from.into_iter().collect();
                self.note_fault(
                    format!(
                        "partition {}{:?} (zones {zones:?}) from {}",
                        if oneway { "one-way: " } else { "" },
                        side,
                        if only.is_empty() {
                            "the rest".to_owned()
                        } else {
                            format!("{only:?} only")
                        }
                    ),
                    true,
                );
                self.net.partition(Partition {
                    zones,
                    hosts: side,
                    oneway,
                    only,
                });
                if let Some(d) = heal_after {
                    self.schedule(now + d, Action::Heal);
                }
            }
            Action::Heal => {
                if self.net.partitioned() {
                    self.net.heal();
                    self.note_fault("heal every partition".to_owned(), false);
                }
            }
            Action::Squeeze {
                host,
                squeeze,
                release_after,
            } => {
                let Some(h) = self.resolve(host) else {
                    return;
                };
                let held = self
                    .slot(h)
                    .and_then(|s| s.node.as_ref())
                    .map_or(0, |n| n.replicas().count() as u32);
                self.squeezed.entry(h).or_insert(held);
                if let Some(s) = self.slot_mut(h) {
                    s.squeeze = squeeze;
                }
                self.note_fault(
                    format!(
                        "squeeze host {h} (cpu {:.0}%, memory {:.0}% taken; it holds {held} replicas)",
                        squeeze.cpu * 100.0,
                        squeeze.memory * 100.0
                    ),
                    false,
                );
                self.report_load(h);
                if let Some(d) = release_after {
                    self.schedule(now + d, Action::Release(h));
                }
            }
            Action::Release(h) => {
                if let Some(s) = self.slot_mut(h) {
                    s.squeeze = Squeeze::default();
                }
                self.note_fault(format!("release the squeeze on host {h}"), false);
            }
            Action::Slow {
                host,
                extra_ms,
                for_ms,
            } => {
                let Some(h) = self.resolve(host) else {
                    return;
                };
                self.net.set_slow(h, extra_ms);
                self.note_fault(format!("slow host {h} (+{extra_ms} ms each way)"), false);
                if let Some(d) = for_ms {
                    self.schedule(now + d, Action::Unslow(h));
                }
            }
            Action::Unslow(h) => {
                self.net.set_slow(h, 0);
                self.note_fault(format!("host {h} is fast again"), false);
            }
            Action::RandomKill(i) => self.random_kill(i),
            Action::HandOffKill {
                host,
                after,
                max_down,
                restart_after,
            } => self.hand_off_kill(host, after, max_down, restart_after),
            Action::Rolling { fault, n } => self.rolling(fault, n),
            Action::Shutdown { interval, down } => self.shutdown_begin(interval, down),
            Action::ShutdownStep => self.shutdown_step(),
            Action::ColdStart => self.cold_start(),
            Action::RestoreStep => self.restore_step(),
        }
    }

    /// Replicas' worth of hosts down: a storage node counts for two, a logger for none.
    fn slots_down(&self) -> u32 {
        self.hosts
            .iter()
            .filter(|s| s.down)
            .map(HostSlot::slots)
            .sum()
    }

    fn random_kill(&mut self, i: usize) {
        let FaultSpec::RandomKills {
            to_s,
            every_s,
            restart_after_s,
            max_down,
            storage,
            ..
        } = self.sc.faults[i].clone()
        else {
            return;
        };
        let now = self.now;
        let max_down = max_down.unwrap_or(self.sc.cluster.replicas.saturating_sub(1));
        let down = self.slots_down();
        let fits: Vec<HostId> = self
            .victims(storage)
            .into_iter()
            .filter(|h| down + self.slot(*h).map_or(1, HostSlot::slots) <= max_down)
            .collect();
        if let Some(h) = self.pick_safe_victim(fits) {
            let d = self.uniform(restart_after_s);
            let what = if self.slot(h).is_some_and(HostSlot::is_storage) {
                "storage host"
            } else {
                "host"
            };
            self.kill(h);
            self.note_local_fault(
                format!(
                    "kill {what} {h} (random; restart in {:.1} s)",
                    d as f64 / 1000.0
                ),
                true,
            );
            self.schedule(now + d, Action::Revive(h));
        }
        let next = now + self.uniform(every_s);
        if next <= ms(to_s) {
            self.schedule(next, Action::RandomKill(i));
        }
    }

    /// `host` just took primacy of a colony by hand-off: in an open `hand_off_kills`
    /// window whose last kill is far enough behind (`every_s`, and a check found the
    /// cluster whole since), schedule its kill a few milliseconds from now.
    pub(crate) fn on_hand_off(&mut self, host: HostId) {
        let now = self.now;
        for i in 0..self.sc.faults.len() {
            let FaultSpec::HandOffKills {
                from_s,
                to_s,
                after_ms: [lo, hi],
                every_s,
                restart_after_s,
                max_down,
            } = self.sc.faults[i].clone()
            else {
                continue;
            };
            if now < ms(from_s) || now > ms(to_s) {
                continue;
            }
            if self.hand_off_next.get(&i).is_some_and(|&next| now < next) {
                continue;
            }
            // Not before the cluster was whole again after the previous kill: a holder
            // lost per kill, never every holder of a colony one after another before
            // any was replaced (that is `data_lost`, and allowed, not what this tests).
            if self.hand_off_killed_at > self.checker.recovery.healthy_at() {
                continue;
            }
            self.hand_off_next.insert(i, now + ms(every_s));
            let after = self.rng.random_range(lo..=hi);
            let restart_after = self.uniform(restart_after_s);
            let max_down = max_down.unwrap_or(self.sc.cluster.replicas.saturating_sub(1));
            self.schedule(
                now + after,
                Action::HandOffKill {
                    host,
                    after,
                    max_down,
                    restart_after,
                },
            );
            return;
        }
    }

    fn hand_off_kill(&mut self, host: HostId, after: Time, max_down: u32, restart_after: Time) {
        let down = self.slots_down();
        let fits = self.victims(false).contains(&host)
            && down + self.slot(host).map_or(1, HostSlot::slots) <= max_down
            && !self.last_holder_of_some_colony(host);
        if !fits {
            return;
        }
        self.kill(host);
        self.hand_off_killed_at = self.now;
        self.note_local_fault(
            format!(
                "kill host {host} {after} ms {HAND_OFF_KILL} (restart in {:.1} s)",
                restart_after as f64 / 1000.0
            ),
            true,
        );
        self.schedule(self.now + restart_after, Action::Revive(host));
    }

    fn rolling(&mut self, fault: usize, n: usize) {
        let FaultSpec::RollingRestart {
            interval_s,
            down_s,
            graceful,
            ..
        } = self.sc.faults[fault].clone()
        else {
            return;
        };
        let now = self.now;
        let ids: Vec<HostId> = self
            .hosts
            .iter()
            .filter(|s| !s.gone && !s.is_logger())
            .map(|s| s.info.id)
            .collect();
        let Some(&h) = ids.get(n) else {
            return;
        };
        let running = self
            .slot(h)
            .and_then(|s| s.node.as_ref())
            .is_some_and(|node| node.state() == NodeState::Active);
        if running {
            if graceful {
                self.apply(Action::Leave {
                    host: Some(h),
                    restart_after: Some(ms(down_s)),
                });
            } else {
                self.apply(Action::Kill {
                    host: Some(h),
                    restart_after: Some(ms(down_s)),
                });
            }
        }
        if n + 1 < ids.len() {
            self.schedule(now + ms(interval_s), Action::Rolling { fault, n: n + 1 });
        }
    }
}
