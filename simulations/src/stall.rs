//! Per-colony liveness: no colony may stay unhealthy (not at the target population
//! under one primary, see [`crate::view::ColonyView::healthy`]) for longer than the
//! recovery bound after the last fault that concerned it.
//!
//! The cluster-wide bound ([`crate::recovery`]) restarts at every fault, so in a
//! scenario that kills a host every 15-25 s it never fires while the kills go on: one
//! colony that cannot take writes for minutes in the middle of a run would go unseen
//! unless it lost data. Here a kill restarts the clock only of the colonies it
//! touched: those the killed host held a replica of (syncing ones included) or was
//! offered, as the last check saw them. Every other fault (a partition, a heal, a
//! leave, a join, a squeeze, a slow host, a shutdown) concerns every colony.

use crate::queue::Time;
use colony::core::types::ColonyId;

/// A colony unhealthy for longer than the bound.
#[derive(Debug, PartialEq, Eq)]
pub struct Stall {
    pub colony: ColonyId,
    /// Start of its unhealthy stretch.
    pub since: Time,
    /// The last fault that concerned it (0 for none).
    pub fault_at: Time,
}

/// Per-colony liveness bookkeeping for one run.
pub struct Stalls {
    bound: Time,
    /// The last fault that concerned every colony.
    all_at: Time,
    /// Per colony, the last kill that touched it.
    touched_at: Vec<Time>,
    /// Per colony, the first check of its current unhealthy stretch.
    since: Vec<Option<Time>>,
    /// The longest unhealthy stretch of any colony that ended in a healthy check.
    pub longest: Time,
}

impl Stalls {
    pub fn new(colonies: u32, bound: Time) -> Self {
        Stalls {
            bound,
            all_at: 0,
            touched_at: vec![0; colonies as usize],
            since: vec![None; colonies as usize],
            longest: 0,
        }
    }

    /// A fault at `now` that concerns every colony.
    pub fn fault_on_all(&mut self, now: Time) {
        self.all_at = now;
    }

    /// A fault at `now` that concerns `colony` only (among others named the same way).
    pub fn fault_on(&mut self, colony: ColonyId, now: Time) {
        if let Some(t) = self.touched_at.get_mut(colony as usize) {
            *t = now;
        }
    }

    /// One check of `colony`: a [`Stall`] if it has been unhealthy for longer than the
    /// bound, counted from the start of its unhealthy stretch or from the last fault
    /// that concerned it, whichever came later.
    pub fn observe(&mut self, now: Time, colony: ColonyId, healthy: bool) -> Result<(), Stall> {
        let i = colony as usize;
        let Some(slot) = self.since.get_mut(i) else {
            return Ok(());
        };
        if healthy {
            if let Some(since) = slot.take() {
                self.longest = self.longest.max(now - since);
            }
            return Ok(());
        }
        let since = *slot.get_or_insert(now);
        let fault_at = self.touched_at[i].max(self.all_at);
        if now > since.max(fault_at) + self.bound {
            return Err(Stall {
                colony,
                since,
                fault_at,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kill_elsewhere_does_not_restart_a_stalled_colonys_clock() {
        let mut s = Stalls::new(2, 60_000);
        s.fault_on(0, 10_000);
        assert_eq!(s.observe(11_000, 0, false), Ok(()));
        // Kills of hosts that hold colony 1 only, every 20 s.
        for t in (30_000..=70_000).step_by(20_000) {
            s.fault_on(1, t);
            assert_eq!(s.observe(t, 0, false), Ok(()));
        }
        assert_eq!(
            s.observe(71_500, 0, false),
            Err(Stall {
                colony: 0,
                since: 11_000,
                fault_at: 10_000
            })
        );
        // Colony 1, unhealthy all along, is within the bound of its last kill.
        assert_eq!(s.observe(71_500, 1, false), Ok(()));
    }

    #[test]
    fn a_fault_on_every_colony_or_a_healthy_check_restarts_the_clock() {
        let mut s = Stalls::new(1, 60_000);
        assert_eq!(s.observe(1_000, 0, false), Ok(()));
        s.fault_on_all(50_000);
        assert_eq!(s.observe(100_000, 0, false), Ok(()));
        assert!(s.observe(110_001, 0, false).is_err());
        assert_eq!(s.observe(110_002, 0, true), Ok(()));
        assert_eq!(s.longest, 109_002);
        assert_eq!(s.observe(150_000, 0, false), Ok(()));
        assert_eq!(s.observe(210_000, 0, false), Ok(()));
        assert!(s.observe(210_001, 0, false).is_err());
    }
}
