//! Many seeds of one scenario, run on several threads. Each run is independent and
//! deterministic, so the results (returned in seed order) do not depend on the number
//! of threads or on which thread ran which seed.

use crate::scenario::Scenario;
use crate::summary::RunResult;
use crate::{run_scenario, RunResult as R};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Threads to use by default: the machine's parallelism.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Run every seed; `on_done` is called as each run finishes (from worker threads).
pub fn run_seeds(
    scenario: &Scenario,
    seeds: &[u64],
    threads: usize,
    on_done: &(dyn Fn(&RunResult) + Sync),
) -> Vec<RunResult> {
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<R>>> = Mutex::new(vec![None; seeds.len()]);
    let threads = threads.clamp(1, seeds.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else {
                    break;
                };
                let r = run_scenario(scenario, seed);
                on_done(&r);
                slots.lock().expect("no poisoned lock")[i] = Some(r);
            });
        }
    });
    slots
        .into_inner()
        .expect("no poisoned lock")
        .into_iter()
        .map(|r| r.expect("every seed ran"))
        .collect()
}

/// Parse `A..B` (B excluded), `A..=B` or a single seed `A`.
pub fn parse_seeds(s: &str) -> Option<Vec<u64>> {
    if let Some((a, b)) = s.split_once("..=") {
        let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        return (a <= b).then(|| (a..=b).collect());
    }
    if let Some((a, b)) = s.split_once("..") {
        let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        return (a < b).then(|| (a..b).collect());
    }
    s.trim().parse().ok().map(|a| vec![a])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges() {
        assert_eq!(parse_seeds("1..4"), Some(vec![1, 2, 3]));
        assert_eq!(parse_seeds("1..=3"), Some(vec![1, 2, 3]));
        assert_eq!(parse_seeds("7"), Some(vec![7]));
        assert_eq!(parse_seeds("5..5"), None);
    }
}
