//! Recovery times: how long after each fault every colony was back to min(N, feasible)
//! in-sync replicas under a single primary, and whether that took longer than the
//! scenario's bound.
//!
//! A fault stays *open* until the first check that finds the whole cluster healthy;
//! every open fault then gets its sample (that check's time minus the fault's). The bound
//! applies to the latest fault: if the cluster is still unhealthy `bound` after it (no
//! later fault reset the clock), recovery failed. The initial formation of the cluster is
//! tracked the same way, with its own bound, and reported apart.

use crate::queue::Time;

/// Recovery bookkeeping for one run.
pub struct Recovery {
    bound: Time,
    formation_bound: Time,
    open: Vec<(Time, String)>,
    formed_at: Option<Time>,
    last_fault: Option<(Time, String)>,
    /// Start of the current unhealthy stretch.
    unhealthy_since: Option<Time>,
    /// The last check that found the cluster healthy.
    healthy_at: Time,
    /// Seconds from each fault to full recovery.
    pub samples: Vec<f64>,
}

/// A recovery that did not happen in time.
#[derive(Debug)]
pub struct Overdue {
    pub fault: String,
    pub at: Time,
    pub bound: Time,
}

impl Recovery {
    pub fn new(bound: Time, formation_bound: Time) -> Self {
        Recovery {
            bound,
            formation_bound,
            open: Vec::new(),
            formed_at: None,
            last_fault: None,
            unhealthy_since: None,
            healthy_at: 0,
            samples: Vec::new(),
        }
    }

    /// A fault at `now`. Every fault restarts the clock of the bound; a `disruptive`
    /// one (a kill, a partition, a leave) also gets a recovery-time sample.
    pub fn fault(&mut self, now: Time, what: &str, disruptive: bool) {
        if disruptive {
            self.open.push((now, what.to_owned()));
        }
        self.last_fault = Some((now, what.to_owned()));
    }

    /// When the cluster was first fully formed.
    pub fn formed_at(&self) -> Option<Time> {
        self.formed_at
    }

    /// Time of the latest fault (0 before any).
    pub fn last_fault_at(&self) -> Time {
        self.last_fault.as_ref().map_or(0, |(t, _)| *t)
    }

    /// Whether the last check found everything healthy (and no fault came since).
    pub fn is_healthy(&self) -> bool {
        self.formed_at.is_some() && self.unhealthy_since.is_none()
    }

    /// The last check that found the whole cluster healthy (0 before any).
    pub fn healthy_at(&self) -> Time {
        self.healthy_at
    }

    /// Faults not recovered from yet.
    pub fn open_faults(&self) -> usize {
        self.open.len()
    }

    /// The deadline of the current unhealthy stretch: `bound` after the latest fault if
    /// it came after the last healthy check, else `bound` after the stretch began
    /// (formation: its own bound from time 0).
    fn deadline(&self, now: Time) -> (Time, String) {
        if self.formed_at.is_none() {
            return (self.formation_bound, "cluster formation".to_owned());
        }
        let since = self.unhealthy_since.unwrap_or(now);
        match &self.last_fault {
            Some((t, what)) if *t >= self.healthy_at => (t + self.bound, what.clone()),
            _ => (
                since + self.bound,
                format!("no fault (unhealthy since {:.1} s)", since as f64 / 1000.0),
            ),
        }
    }

    /// Whether an unhealthy cluster still has time to recover.
    pub fn within_bound(&self, now: Time) -> bool {
        now <= self.deadline(now).0
    }

    /// One check's verdict: the faults recovered from (with their recovery times), or
    /// the fault whose recovery is overdue.
    pub fn observe(&mut self, now: Time, healthy: bool) -> Result<Vec<(String, f64)>, Overdue> {
        if healthy {
            self.unhealthy_since = None;
            self.healthy_at = now;
            if self.formed_at.is_none() {
                self.formed_at = Some(now);
            }
            let done: Vec<(String, f64)> = self
                .open
                .drain(..)
                .map(|(t, what)| (what, (now - t) as f64 / 1000.0))
                .collect();
            self.samples.extend(done.iter().map(|(_, s)| *s));
            return Ok(done);
        }
        self.unhealthy_since.get_or_insert(now);
        let (deadline, fault) = self.deadline(now);
        if now <= deadline {
            return Ok(Vec::new());
        }
        let at = deadline.saturating_sub(if self.formed_at.is_none() {
            self.formation_bound
        } else {
            self.bound
        });
        Err(Overdue {
            fault,
            at,
            bound: if self.formed_at.is_none() {
                self.formation_bound
            } else {
                self.bound
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_and_bound() {
        let mut r = Recovery::new(10_000, 30_000);
        assert!(r.observe(1_000, false).is_ok());
        assert!(r.observe(5_000, true).is_ok());
        assert_eq!(r.formed_at(), Some(5_000));
        r.fault(20_000, "kill host 1", true);
        assert!(r.observe(25_000, false).is_ok());
        r.fault(26_000, "restart host 1", true);
        let done = r.observe(30_000, true).unwrap();
        assert_eq!(done.len(), 2);
        assert_eq!(r.samples, vec![10.0, 4.0]);
        r.fault(40_000, "kill host 2", true);
        assert!(r.observe(50_000, false).is_ok());
        assert!(r.observe(50_001, false).is_err());
    }
}
