//! A scenario's own expectations (its `[expect]` table), judged on a finished run: the
//! events it must show and in what order, how many promotions, losses, acknowledged
//! writes and migrations, how many hosts were killed right after a hand-off, whether
//! squeezed hosts shed replicas, how much the logging nodes logged, and whether storage
//! nodes held every colony alone and gave the primaries back.

use crate::faults::HAND_OFF_KILL;
use crate::scenario::ExpectSpec;
use crate::summary::RunResult;

/// The expectations `r` does not meet, one sentence each.
pub fn unmet(e: &ExpectSpec, r: &RunResult) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = 0u64;
    for (i, name) in e.events.iter().enumerate() {
        match r.event_seen.get(name.as_str()) {
            None => out.push(format!("no {name} event")),
            Some((first, last)) => {
                if *last < after {
                    out.push(format!(
                        "no {name} event after the first {}",
                        e.events[i - 1]
                    ));
                }
                after = *first;
            }
        }
    }
    if let Some(min) = e.min_promotions {
        if r.promotions < min {
            out.push(format!(
                "{} promotions, expected at least {min}",
                r.promotions
            ));
        }
    }
    if let Some(max) = e.max_failover_promotions {
        let n = r.promotions_by_reason.get("failover").copied().unwrap_or(0);
        if n > max {
            out.push(format!("{n} failover promotions, expected at most {max}"));
        }
    }
    if let Some(max) = e.max_writes_lost {
        if r.writes_lost > max {
            out.push(format!(
                "{} writes lost, expected at most {max}",
                r.writes_lost
            ));
        }
    }
    if let Some(min) = e.min_writes_acked {
        if r.writes_acked < min {
            out.push(format!(
                "{} writes acknowledged, expected at least {min}",
                r.writes_acked
            ));
        }
    }
    if let Some(min) = e.min_hand_off_kills {
        let n = r
            .faults
            .iter()
            .filter(|f| f.contains(HAND_OFF_KILL))
            .count() as u64;
        if n < min {
            out.push(format!(
                "{n} kills right after a hand-off, expected at least {min}"
            ));
        }
    }
    if let Some(min) = e.min_migrations {
        if r.migrations < min {
            out.push(format!(
                "{} migrations, expected at least {min}",
                r.migrations
            ));
        }
    }
    if let Some(min) = e.min_log_entries {
        if r.log.sink.entries < min {
            out.push(format!(
                "{} mutations logged, expected at least {min}",
                r.log.sink.entries
            ));
        }
    }
    if e.storage_alone && r.storage.alone_checks == 0 {
        out.push("the storage nodes never held every colony alone".to_owned());
    }
    if let Some(max) = e.max_storage_primaries_at_end {
        if r.storage.primaries_at_end > max {
            out.push(format!(
                "{} primaries on storage nodes at the end, expected at most {max}",
                r.storage.primaries_at_end
            ));
        }
    }
    if e.squeezed_hosts_shed {
        if r.squeezed.is_empty() {
            out.push("no host was squeezed".to_owned());
        }
        for (h, before, after) in &r.squeezed {
            match after {
                Some(a) if a < before => {}
                Some(a) => out.push(format!(
                    "squeezed host {h} held {before} replicas when squeezed and {a} at the end"
                )),
                None => out.push(format!("squeezed host {h} is gone at the end")),
            }
        }
    }
    out
}
