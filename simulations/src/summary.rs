//! What a run produced ([`RunResult`]) and the summary over many runs ([`Summary`]):
//! the table printed at the end and the `--summary-json` object.

use crate::checker::Violation;
use crate::network::NetStats;
use crate::plot::Sample;
use crate::workload::ClientStats;
use colony::core::logsink::SinkStats;
use colony::core::types::HostId;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A violation with what led to it.
#[derive(Clone, Debug)]
pub struct Failure {
    pub violation: Violation,
    /// The last events before it, one JSON line each.
    pub recent_events: Vec<String>,
    /// The faults injected up to then.
    pub faults: Vec<String>,
}

/// What the logging nodes did (every process of every logger).
#[derive(Clone, Copy, Debug, Default)]
pub struct LogSummary {
    pub loggers: u64,
    /// Appends on the loggers' disks (entry batches and snapshots).
    pub appends: u64,
    /// The sinks' counters: mutations logged, snapshots, gaps, duplicates, dropped.
    pub sink: SinkStats,
    /// A hash of every logger's disk (to compare two runs).
    pub hash: u64,
}

impl LogSummary {
    fn add(&mut self, o: &LogSummary) {
        self.loggers += o.loggers;
        self.appends += o.appends;
        crate::hosts::add_stats(&mut self.sink, &o.sink);
        self.hash ^= o.hash;
    }
}

/// What the storage nodes did.
#[derive(Clone, Copy, Debug, Default)]
pub struct StorageSummary {
    /// Storage nodes in the run (summed over runs).
    pub nodes: u64,
    /// Healthy checks at which storage nodes were the only hosts that hold replicas:
    /// every colony was then on a storage node alone, at population 2.
    pub alone_checks: u64,
    /// Runs with at least one such check.
    pub runs_alone: u64,
    /// Primaries on storage nodes at the final check, when an ordinary host was up.
    pub primaries_at_end: u64,
}

impl StorageSummary {
    fn add(&mut self, o: &StorageSummary) {
        self.nodes += o.nodes;
        self.alone_checks += o.alone_checks;
        self.runs_alone += o.runs_alone;
        self.primaries_at_end += o.primaries_at_end;
    }
}

/// The outcome of one scenario run with one seed.
#[derive(Clone, Debug, Default)]
pub struct RunResult {
    pub scenario: String,
    pub seed: u64,
    pub failure: Option<Failure>,
    /// The scenario's own expectations that this run did not meet.
    pub unmet: Vec<String>,
    pub writes_acked: u64,
    pub writes_lost: u64,
    pub data_lost_events: u64,
    pub promotions: u64,
    pub promotions_by_reason: BTreeMap<String, u64>,
    pub clones: u64,
    pub migrations: u64,
    pub recovery_s: Vec<f64>,
    /// The longest stretch one colony spent below the target population (or without
    /// a single primary) after formation, in s ([`crate::stall`]).
    pub colony_below_target_max_s: f64,
    pub formation_s: Option<f64>,
    pub placement_violations: u64,
    pub sim_seconds: f64,
    pub wall_seconds: f64,
    pub event_lines: u64,
    pub event_hash: u64,
    /// The event stream, when captured.
    pub events: Option<Vec<u8>>,
    pub event_counts: BTreeMap<String, u64>,
    /// Event name -> (first, last) time in ms.
    pub event_seen: BTreeMap<String, (u64, u64)>,
    pub client: ClientStats,
    pub net: NetStats,
    /// Squeezed hosts: replicas held when squeezed, and at the end (None: gone).
    pub squeezed: Vec<(HostId, u32, Option<u32>)>,
    pub samples: Vec<Sample>,
    pub faults: Vec<String>,
    pub items: u64,
    pub log: LogSummary,
    pub storage: StorageSummary,
}

impl RunResult {
    pub fn passed(&self) -> bool {
        self.failure.is_none() && self.unmet.is_empty()
    }

    /// Why the run failed, in a few lines (seed, time, violation, recent events).
    pub fn failure_report(&self) -> String {
        let mut s = String::new();
        if let Some(f) = &self.failure {
            let _ = writeln!(
                s,
                "VIOLATION in scenario {} with seed {} at simulated {:.3} s",
                self.scenario,
                self.seed,
                f.violation.t as f64 / 1000.0
            );
            let _ = writeln!(s, "  {}", f.violation);
            let _ = writeln!(s, "  faults injected so far:");
            for x in &f.faults {
                let _ = writeln!(s, "    {x}");
            }
            let _ = writeln!(s, "  the last {} events:", f.recent_events.len());
            for e in &f.recent_events {
                let _ = writeln!(s, "    {e}");
            }
            let _ = writeln!(
                s,
                "  reproduce: cargo run -p colony-sim --release -- run {} --seed {} --events events.jsonl",
                self.scenario, self.seed
            );
        }
        for u in &self.unmet {
            let _ = writeln!(
                s,
                "EXPECTATION not met in scenario {} with seed {}: {u}",
                self.scenario, self.seed
            );
        }
        s
    }
}

/// The summary over every seed run, with exactly the keys scripts rely on.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub runs: u64,
    pub failed_seeds: Vec<u64>,
    pub writes_acked: u64,
    pub writes_lost: u64,
    pub data_lost_events: u64,
    pub promotions: u64,
    pub clones: u64,
    pub migrations: u64,
    pub recovery_p50_s: f64,
    pub recovery_p99_s: f64,
    pub placement_violations: u64,
    pub sim_seconds_per_wall_second: f64,
}

/// The `p`-quantile (nearest rank) of `v`, 0 when empty.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

/// Extra figures for the table that are not in the JSON.
#[derive(Clone, Debug, Default)]
pub struct Extra {
    pub promotions_by_reason: BTreeMap<String, u64>,
    pub recoveries: u64,
    pub colony_below_target_max_s: f64,
    pub formation_max_s: f64,
    pub client: ClientStats,
    pub sim_seconds: f64,
    pub wall_seconds: f64,
    pub messages: u64,
    pub events: u64,
    pub log: LogSummary,
    pub storage: StorageSummary,
}

impl Summary {
    pub fn of(results: &[RunResult]) -> (Summary, Extra) {
        let mut s = Summary::default();
        let mut x = Extra::default();
        let mut recov = Vec::new();
        for r in results {
            s.runs += 1;
            if !r.passed() {
                s.failed_seeds.push(r.seed);
            }
            s.writes_acked += r.writes_acked;
            s.writes_lost += r.writes_lost;
            s.data_lost_events += r.data_lost_events;
            s.promotions += r.promotions;
            s.clones += r.clones;
            s.migrations += r.migrations;
            s.placement_violations += r.placement_violations;
            recov.extend_from_slice(&r.recovery_s);
            for (k, v) in &r.promotions_by_reason {
                *x.promotions_by_reason.entry(k.clone()).or_insert(0) += v;
            }
            x.formation_max_s = x.formation_max_s.max(r.formation_s.unwrap_or(0.0));
            x.colony_below_target_max_s =
                x.colony_below_target_max_s.max(r.colony_below_target_max_s);
            x.client.issued += r.client.issued;
            x.client.writes_acked += r.client.writes_acked;
            x.client.writes_refused += r.client.writes_refused;
            x.client.writes_uncertain += r.client.writes_uncertain;
            x.client.reads += r.client.reads;
            x.client.stale_reads += r.client.stale_reads;
            x.client.odd_replies += r.client.odd_replies;
            x.client.no_host += r.client.no_host;
            x.sim_seconds += r.sim_seconds;
            x.wall_seconds += r.wall_seconds;
            x.messages += r.net.sent;
            x.events += r.event_lines;
            x.log.add(&r.log);
            x.storage.add(&r.storage);
        }
        s.failed_seeds.sort_unstable();
        x.recoveries = recov.len() as u64;
        s.recovery_p50_s = percentile(&recov, 0.50);
        s.recovery_p99_s = percentile(&recov, 0.99);
        s.sim_seconds_per_wall_second = if x.wall_seconds > 0.0 {
            x.sim_seconds / x.wall_seconds
        } else {
            0.0
        };
        (s, x)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("summary serialises")
    }

    /// The table printed at the end of a run.
    pub fn table(&self, scenario: &str, x: &Extra) -> String {
        let reasons: Vec<String> = x
            .promotions_by_reason
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let failed = if self.failed_seeds.is_empty() {
            "none".to_owned()
        } else {
            let shown: Vec<String> = self
                .failed_seeds
                .iter()
                .take(20)
                .map(u64::to_string)
                .collect();
            format!(
                "{}{}",
                shown.join(", "),
                if self.failed_seeds.len() > 20 {
                    ", ..."
                } else {
                    ""
                }
            )
        };
        let mut rows: Vec<(&str, String)> = vec![
            ("scenario", scenario.to_owned()),
            ("runs (seeds)", self.runs.to_string()),
            ("failed seeds", failed),
            ("writes acknowledged", self.writes_acked.to_string()),
            (
                "writes refused / uncertain",
                format!(
                    "{} / {}  ({} ops found no host)",
                    x.client.writes_refused, x.client.writes_uncertain, x.client.no_host
                ),
            ),
            ("writes lost (reported)", self.writes_lost.to_string()),
            ("data_lost events", self.data_lost_events.to_string()),
            (
                "reads (stale)",
                format!("{} ({})", x.client.reads, x.client.stale_reads),
            ),
            (
                "promotions",
                format!("{} ({})", self.promotions, reasons.join(", ")),
            ),
            ("clones", self.clones.to_string()),
            ("migrations", self.migrations.to_string()),
            (
                "time to recover p50 / p99",
                format!(
                    "{:.1} s / {:.1} s  ({} recoveries)",
                    self.recovery_p50_s, self.recovery_p99_s, x.recoveries
                ),
            ),
            (
                "longest colony below target",
                format!("{:.1} s", x.colony_below_target_max_s),
            ),
            (
                "cluster formed within",
                format!("{:.1} s", x.formation_max_s),
            ),
            (
                "placement violations",
                self.placement_violations.to_string(),
            ),
            (
                "simulated / wall",
                format!("{:.0} s / {:.2} s", x.sim_seconds, x.wall_seconds),
            ),
            (
                "simulated s per wall s",
                format!("{:.1}", self.sim_seconds_per_wall_second),
            ),
            (
                "messages / events",
                format!("{} / {}", x.messages, x.events),
            ),
        ];
        if x.log.loggers > 0 {
            let l = &x.log;
            rows.push((
                "logged: mutations / snapshots",
                format!(
                    "{} / {}  ({} appends by {} loggers)",
                    l.sink.entries, l.sink.snapshots, l.appends, l.loggers
                ),
            ));
            rows.push((
                "log gaps / duplicates / dropped",
                format!(
                    "{} / {} / {}",
                    l.sink.gaps, l.sink.duplicates, l.sink.dropped
                ),
            ));
        }
        if x.storage.nodes > 0 {
            let st = &x.storage;
            rows.push((
                "storage nodes alone (runs / checks)",
                format!("{} / {}", st.runs_alone, st.alone_checks),
            ));
            rows.push((
                "primaries on storage at the end",
                st.primaries_at_end.to_string(),
            ));
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let vwidth = rows.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        let line = format!("+{}+{}+\n", "-".repeat(width + 2), "-".repeat(vwidth + 2));
        let mut out = line.clone();
        for (k, v) in rows {
            let _ = writeln!(out, "| {k:<width$} | {v:<vwidth$} |");
        }
        out.push_str(&line);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn json_has_exactly_the_documented_keys() {
        let (s, _) = Summary::of(&[]);
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = vec![
            "runs",
            "failed_seeds",
            "writes_acked",
            "writes_lost",
            "data_lost_events",
            "promotions",
            "clones",
            "migrations",
            "recovery_p50_s",
            "recovery_p99_s",
            "placement_violations",
            "sim_seconds_per_wall_second",
        ];
        let mut keys = keys;
        keys.sort_unstable();
        want.sort_unstable();
        assert_eq!(keys, want);
    }
}
