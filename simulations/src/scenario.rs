//! Scenarios as data: the TOML files of `simulations/scenarios/`, parsed and validated.
//!
//! A scenario says what cluster to build, how the network behaves, what the clients do,
//! which faults to inject and when, what the checker must tolerate, and what the run is
//! expected to show. The format is documented in `simulations/SCENARIOS.md`; every
//! field except the cluster's size has a default.

use anyhow::{bail, Context, Result};
use colony::core::types::HostId;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One scenario file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The active phase: workload and faults happen within it.
    pub duration_s: f64,
    /// A quiet tail after the active phase (no faults, no new client ops) before the
    /// final checks.
    #[serde(default = "d_settle")]
    pub settle_s: f64,
    pub cluster: ClusterSpec,
    #[serde(default)]
    pub network: NetworkSpec,
    #[serde(default)]
    pub resources: ResourceSpec,
    #[serde(default)]
    pub workload: WorkloadSpec,
    #[serde(default)]
    pub checks: CheckSpec,
    #[serde(default)]
    pub expect: ExpectSpec,
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// Not run by the test suite (the scale benchmark).
    #[serde(default)]
    pub benchmark: bool,
}

fn d_settle() -> f64 {
    60.0
}

/// Whether a side without quorum refuses writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitBrain {
    #[default]
    Refuse,
    Accept,
}

/// The cluster's shape: hosts round-robin over boxes, boxes round-robin over zones.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    pub hosts: u32,
    /// Defaults to one box per host.
    #[serde(default)]
    pub boxes: Option<u32>,
    #[serde(default = "d_one")]
    pub zones: u32,
    /// Cores per host.
    #[serde(default = "d_cpu")]
    pub cpu: f64,
    /// Memory per host, GiB.
    #[serde(default = "d_memory")]
    pub memory_gib: f64,
    pub colonies: u32,
    #[serde(default = "d_replicas")]
    pub replicas: u32,
    /// Acks a write waits for (default: every in-sync secondary).
    #[serde(default)]
    pub sync_replicas: Option<u32>,
    #[serde(default)]
    pub split_brain: SplitBrain,
    /// Delay between the starts of two hosts at formation.
    #[serde(default = "d_stagger")]
    pub start_stagger_ms: u64,
    /// Logging nodes (`HostRole::Logger`) besides the `hosts`: ids after theirs, each on
    /// a box of its own, started after them (they join the running cluster). They hold
    /// no replicas, serve no clients, and no fault picks them unless it targets loggers.
    #[serde(default)]
    pub loggers: u32,
    /// Storage nodes (`HostRole::Storage`) besides the `hosts` and the loggers: ids after
    /// theirs, each on a box of its own, started after them. Their replicas keep cells in
    /// a value log (in memory in the simulator) and each copy counts for two replicas;
    /// they serve clients like any host, but no fault picks them at random unless it
    /// says so (`random_kills` with `storage = true`).
    #[serde(default)]
    pub storage: u32,
    /// Form the cluster together (`NodeConfig::expect_hosts`): host 1 waits until it
    /// sees this many hosts, then lays every colony out over them at once. Default:
    /// host 1 creates every colony and they spread by cloning.
    #[serde(default)]
    pub expect_hosts: Option<u32>,
}

fn d_one() -> u32 {
    1
}
fn d_cpu() -> f64 {
    8.0
}
fn d_memory() -> f64 {
    16.0
}
fn d_replicas() -> u32 {
    3
}
fn d_stagger() -> u64 {
    50
}

impl ClusterSpec {
    pub fn boxes(&self) -> u32 {
        self.boxes.unwrap_or(self.hosts).max(1)
    }
}

/// The simulated network.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSpec {
    /// One-way latency, uniform in `[min, max]` ms.
    pub latency_ms: [u64; 2],
    /// Probability that a message is lost (membership packets only, unless `loss_all`).
    pub loss: f64,
    /// Lose any kind of message, not only membership packets (breaks the per-link
    /// delivery guarantee the colony protocol is entitled to: use with care).
    pub loss_all: bool,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        NetworkSpec {
            latency_ms: [1, 5],
            loss: 0.0,
            loss_all: false,
        }
    }
}

/// The resource model: what a host reports as its load every simulated second.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceSpec {
    /// Memory one replica is assumed to take (also the placement's admission unit).
    pub replica_memory_mib: u64,
    pub base_cpu: f64,
    pub base_memory_mib: u64,
    /// Cores one primary replica uses (it serves the clients).
    pub primary_cpu: f64,
    /// Cores one secondary replica uses.
    pub secondary_cpu: f64,
    /// Relative noise on every report, uniform in `[-jitter, +jitter]`.
    pub jitter: f64,
}

impl Default for ResourceSpec {
    fn default() -> Self {
        ResourceSpec {
            replica_memory_mib: 128,
            base_cpu: 0.2,
            base_memory_mib: 512,
            primary_cpu: 0.05,
            secondary_cpu: 0.02,
            jitter: 0.02,
        }
    }
}

/// Relative weights of the client operations.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mix {
    pub set: u32,
    /// `SET ... PX ttl`.
    pub set_px: u32,
    pub hset: u32,
    pub incr: u32,
    pub del: u32,
    pub get: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            set: 25,
            set_px: 10,
            hset: 15,
            incr: 15,
            del: 5,
            get: 30,
        }
    }
}

/// The clients.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadSpec {
    /// Operations per simulated second (exponential inter-arrival times).
    pub rate: f64,
    /// Distinct keys; key `i` is a string (i % 3 == 0), a hash (1) or a counter (2).
    pub keys: u32,
    pub start_s: f64,
    pub mix: Mix,
    /// TTL of `SET PX`, uniform in `[min, max]` ms.
    pub ttl_ms: [u64; 2],
    /// A key whose last write had an uncertain outcome is left alone this long, so a
    /// straggling copy of that write cannot land after the next one.
    pub quarantine_ms: u64,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            rate: 50.0,
            keys: 300,
            start_s: 5.0,
            mix: Mix::default(),
            ttl_ms: [5_000, 60_000],
            quarantine_ms: 2_000,
        }
    }
}

/// What the checker tolerates and how often it looks.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckSpec {
    pub check_every_ms: u64,
    /// After a fault with no other fault for this long, every colony must be back to
    /// min(N, feasible) in-sync replicas within this long; and each colony within this
    /// long of the last fault that concerned it ([`crate::stall`]).
    pub recovery_bound_s: f64,
    /// The cluster must be fully formed within this long after the start.
    pub formation_bound_s: f64,
    /// How long two writable primaries (different epochs) may coexist on quorum sides.
    pub dual_primary_window_ms: u64,
    /// How long a placement violation may persist while the cluster is quiet.
    pub placement_grace_s: f64,
    /// Cadence of the full ledger scan and placement check while the cluster is quiet.
    pub quiet_check_every_s: f64,
    /// After the settle phase, how long directories may take to converge.
    pub directory_grace_s: f64,
}

impl Default for CheckSpec {
    fn default() -> Self {
        CheckSpec {
            check_every_ms: 1_000,
            recovery_bound_s: 60.0,
            formation_bound_s: 60.0,
            dual_primary_window_ms: 5_000,
            placement_grace_s: 30.0,
            quiet_check_every_s: 10.0,
            directory_grace_s: 10.0,
        }
    }
}

/// What a run of this scenario must show besides the invariants.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExpectSpec {
    /// Event names that must appear, in this order (each after the first occurrence of
    /// the previous one).
    pub events: Vec<String>,
    pub min_promotions: Option<u64>,
    /// Promotions with reason `failover`.
    pub max_failover_promotions: Option<u64>,
    pub max_writes_lost: Option<u64>,
    pub min_writes_acked: Option<u64>,
    pub min_migrations: Option<u64>,
    /// Kills of a host that had just taken primacy by hand-off (`hand_off_kills`).
    pub min_hand_off_kills: Option<u64>,
    /// Every squeezed host ends holding fewer replicas than when it was squeezed.
    pub squeezed_hosts_shed: bool,
    /// Mutations the logging nodes appended (summed over loggers and their restarts).
    pub min_log_entries: Option<u64>,
    /// At some healthy check the storage nodes were the only hosts holding replicas.
    pub storage_alone: bool,
    /// Primaries on storage nodes at the final check (when an ordinary host is up).
    pub max_storage_primaries_at_end: Option<u64>,
}

/// A fault, at a time in the active phase. Hosts are picked by id, or at random (seeded)
/// among the live hosts when `host` is omitted.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultSpec {
    /// Kill a host (SIGKILL: its state is gone); optionally restart it later.
    Kill {
        at_s: f64,
        #[serde(default)]
        host: Option<HostId>,
        #[serde(default)]
        restart_after_s: Option<f64>,
    },
    /// Kill every host of one box at once.
    KillBox {
        at_s: f64,
        #[serde(default, rename = "box")]
        box_name: Option<String>,
        #[serde(default)]
        restart_after_s: Option<f64>,
    },
    /// Kill a host and start it again after `down_s` with a higher incarnation.
    Restart {
        at_s: f64,
        #[serde(default)]
        host: Option<HostId>,
        #[serde(default = "d_down")]
        down_s: f64,
    },
    /// Kill random hosts over a window, never more than `max_down` (default N-1)
    /// replicas' worth down at once (a storage node counts for two, [`slots`]); each comes
    /// back after a delay, empty. Never the last of a colony's holders to survive since
    /// a check last found it whole: a host back empty holds nothing, so "down at once"
    /// alone would let every holder die in one recovery window.
    ///
    /// [`slots`]: colony::core::placement::slots
    RandomKills {
        from_s: f64,
        to_s: f64,
        /// Interval between kills, uniform in `[min, max]` s.
        every_s: [f64; 2],
        /// Delay before the restart, uniform in `[min, max]` s.
        restart_after_s: [f64; 2],
        /// Replicas' worth: a storage node counts for two.
        #[serde(default)]
        max_down: Option<u32>,
        /// Storage nodes may be picked too (each weighs two towards `max_down`).
        #[serde(default)]
        storage: bool,
    },
    /// Over a window, kill the host that has just taken primacy of a colony by hand-off
    /// (a planned move: a migration, a leave, primaries rebalanced), `after_ms` after it
    /// did, while the old primary may still think itself primary and the new one has
    /// told nobody yet. At most one such kill per `every_s`, and not before a check found
    /// the cluster whole after the previous one (a holder lost per kill, never each
    /// holder of a colony in turn before any was replaced), never more than `max_down`
    /// (default N-1) hosts down at once; each comes back after `restart_after_s`. Pair
    /// it with something that moves primaries (a graceful rolling restart, joins).
    HandOffKills {
        from_s: f64,
        to_s: f64,
        /// Delay between the hand-off and the kill, uniform in `[min, max]` ms.
        after_ms: [u64; 2],
        /// Least time between two such kills.
        every_s: f64,
        /// Delay before the restart, uniform in `[min, max]` s.
        restart_after_s: [f64; 2],
        #[serde(default)]
        max_down: Option<u32>,
    },
    /// Restart every host in turn, `interval_s` apart; `graceful` leaves before going.
    RollingRestart {
        at_s: f64,
        interval_s: f64,
        #[serde(default = "d_down")]
        down_s: f64,
        #[serde(default)]
        graceful: bool,
    },
    /// A graceful leave: the host hands everything off, then goes for good.
    Leave {
        at_s: f64,
        #[serde(default)]
        host: Option<HostId>,
    },
    /// New hosts join (new ids), on the given box/zone or continuing the round robin.
    Join {
        at_s: f64,
        #[serde(default = "d_one")]
        count: u32,
        #[serde(default)]
        zone: Option<String>,
        #[serde(default, rename = "box")]
        box_name: Option<String>,
    },
    /// Cut the hosts of `zones` (or the listed `hosts`) from everyone else.
    Partition {
        at_s: f64,
        #[serde(default)]
        zones: Vec<String>,
        #[serde(default)]
        hosts: Vec<HostId>,
        /// Only messages from the cut side to the rest are lost.
        #[serde(default)]
        oneway: bool,
        /// Cut the side from these hosts only, not from everyone: a partial partition
        /// (a broken link, a firewall rule), where both ends still reach every other
        /// host and membership, probing indirectly, sees everyone alive.
        #[serde(default)]
        cut_from: Vec<HostId>,
        #[serde(default)]
        heal_after_s: Option<f64>,
    },
    /// Remove every partition.
    Heal { at_s: f64 },
    /// Something else on the host eats `cpu` and `memory` (fractions of its capacity).
    Squeeze {
        at_s: f64,
        #[serde(default)]
        host: Option<HostId>,
        #[serde(default = "d_squeeze")]
        cpu: f64,
        #[serde(default = "d_squeeze")]
        memory: f64,
        #[serde(default)]
        for_s: Option<f64>,
    },
    /// The whole cluster shuts down to disk and starts again: from `at_s` every host
    /// leaves gracefully, one at a time, `interval_s` apart (each after the previous one
    /// has left); the last one writes what it holds to disk. `down_s` after it left,
    /// every host starts again (a new cluster) and, once every colony has a primary, the
    /// saved cells are restored. Clients are refused from the last leave until the
    /// restore is done.
    #[serde(alias = "shutdown-restart")]
    ShutdownRestart {
        at_s: f64,
        #[serde(default = "d_down")]
        interval_s: f64,
        #[serde(default = "d_down")]
        down_s: f64,
    },
    /// Kill a logging node (a random running one, or `host`, which must be a logger) and
    /// start it again `down_s` later on its disk: what it had appended stays, the
    /// positions are read back from it, and the new incarnation joins through a live
    /// host and fetches what it missed.
    LoggerRestart {
        at_s: f64,
        #[serde(default)]
        host: Option<HostId>,
        #[serde(default = "d_down")]
        down_s: f64,
    },
    /// Every message to or from the host takes `extra_ms` longer.
    Slow {
        at_s: f64,
        #[serde(default)]
        host: Option<HostId>,
        extra_ms: u64,
        #[serde(default)]
        for_s: Option<f64>,
    },
}

fn d_down() -> f64 {
    1.0
}
fn d_squeeze() -> f64 {
    0.9
}

impl FaultSpec {
    /// When the fault (or its window) starts.
    pub fn start_s(&self) -> f64 {
        match self {
            FaultSpec::Kill { at_s, .. }
            | FaultSpec::KillBox { at_s, .. }
            | FaultSpec::Restart { at_s, .. }
            | FaultSpec::RollingRestart { at_s, .. }
            | FaultSpec::Leave { at_s, .. }
            | FaultSpec::Join { at_s, .. }
            | FaultSpec::Partition { at_s, .. }
            | FaultSpec::Heal { at_s }
            | FaultSpec::Squeeze { at_s, .. }
            | FaultSpec::ShutdownRestart { at_s, .. }
            | FaultSpec::LoggerRestart { at_s, .. }
            | FaultSpec::Slow { at_s, .. } => *at_s,
            FaultSpec::RandomKills { from_s, .. } | FaultSpec::HandOffKills { from_s, .. } => {
                *from_s
            }
        }
    }
}

impl Scenario {
    /// Parse a scenario from TOML text.
    pub fn parse(text: &str) -> Result<Scenario> {
        let s: Scenario = toml::from_str(text)?;
        s.validate()?;
        Ok(s)
    }

    /// Read and parse a scenario file.
    pub fn load(path: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading scenario {}", path.display()))?;
        Scenario::parse(&text).with_context(|| format!("parsing scenario {}", path.display()))
    }

    /// A scenario by path, or by bare name in the scenario directories.
    pub fn find(name_or_path: &str) -> Result<Scenario> {
        let direct = Path::new(name_or_path);
        if direct.is_file() {
            return Scenario::load(direct);
        }
        let file = if name_or_path.ends_with(".toml") {
            name_or_path.to_owned()
        } else {
            format!("{name_or_path}.toml")
        };
        for dir in scenario_dirs() {
            let p = dir.join(&file);
            if p.is_file() {
                return Scenario::load(&p);
            }
        }
        bail!("no scenario {name_or_path:?} (try `colony-sim list`)")
    }

    /// Every scenario of the first scenario directory found, sorted by file name.
    pub fn all() -> Result<Vec<(PathBuf, Scenario)>> {
        let Some(dir) = scenario_dirs().into_iter().find(|d| d.is_dir()) else {
            bail!("no scenario directory found");
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|p| Scenario::load(&p).map(|s| (p, s)))
            .collect()
    }

    fn validate(&self) -> Result<()> {
        let c = &self.cluster;
        if c.hosts == 0 || c.colonies == 0 || c.replicas == 0 {
            bail!("cluster.hosts, cluster.colonies and cluster.replicas must be positive");
        }
        if c.zones == 0 || c.zones > c.boxes() {
            bail!("cluster.zones must be between 1 and the number of boxes");
        }
        if self.duration_s <= 0.0 || self.settle_s < 0.0 {
            bail!("duration_s must be positive and settle_s not negative");
        }
        let n = &self.network;
        if n.latency_ms[0] > n.latency_ms[1] || !(0.0..=1.0).contains(&n.loss) {
            bail!("network.latency_ms must be [min, max] and network.loss in [0, 1]");
        }
        if self.workload.ttl_ms[0] > self.workload.ttl_ms[1] || self.workload.rate < 0.0 {
            bail!("workload.ttl_ms must be [min, max] and workload.rate not negative");
        }
        if self.checks.check_every_ms == 0 {
            bail!("checks.check_every_ms must be positive");
        }
        for f in &self.faults {
            if f.start_s() < 0.0 || f.start_s() > self.duration_s {
                bail!("fault at {} s is outside the active phase", f.start_s());
            }
            if let FaultSpec::RandomKills {
                from_s,
                to_s,
                every_s,
                restart_after_s,
                ..
            } = f
            {
                if from_s > to_s || every_s[0] > every_s[1] || every_s[0] <= 0.0 {
                    bail!("random_kills: from_s <= to_s and 0 < every_s[0] <= every_s[1]");
                }
                if restart_after_s[0] > restart_after_s[1] {
                    bail!("random_kills: restart_after_s must be [min, max]");
                }
            }
            if let FaultSpec::HandOffKills {
                from_s,
                to_s,
                after_ms,
                every_s,
                restart_after_s,
                ..
            } = f
            {
                if from_s > to_s || after_ms[0] > after_ms[1] || *every_s < 0.0 {
                    bail!("hand_off_kills: from_s <= to_s, after_ms = [min, max] and every_s not negative");
                }
                if restart_after_s[0] > restart_after_s[1] {
                    bail!("hand_off_kills: restart_after_s must be [min, max]");
                }
            }
            if let FaultSpec::ShutdownRestart {
                interval_s, down_s, ..
            } = f
            {
                if *interval_s < 0.0 || *down_s < 0.0 {
                    bail!("shutdown_restart: interval_s and down_s must not be negative");
                }
                if c.loggers > 0 {
                    bail!("shutdown_restart with cluster.loggers is not modelled (the loggers would outlive the cluster they log)");
                }
                if c.storage > 0 {
                    bail!("shutdown_restart with cluster.storage is not modelled (a storage node would outlive the cluster)");
                }
            }
            if let FaultSpec::LoggerRestart { host, down_s, .. } = f {
                if c.loggers == 0 {
                    bail!("logger_restart needs cluster.loggers > 0");
                }
                if *down_s < 0.0 {
                    bail!("logger_restart: down_s must not be negative");
                }
                if host.is_some_and(|h| h <= c.hosts || h > c.hosts + c.loggers) {
                    bail!(
                        "logger_restart: host must be a logger ({}..={})",
                        c.hosts + 1,
                        c.hosts + c.loggers
                    );
                }
            }
        }
        Ok(())
    }
}

/// Where bare scenario names are looked up: `./scenarios`, `./simulations/scenarios`,
/// and the crate's own `scenarios` directory.
pub fn scenario_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![
        PathBuf::from("scenarios"),
        PathBuf::from("simulations/scenarios"),
    ];
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios"));
    dirs
}

/// Seconds to milliseconds of virtual time.
pub fn ms(s: f64) -> u64 {
    (s * 1000.0).round().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_scenario_parses_with_defaults() {
        let s = Scenario::parse(
            r#"
            name = "tiny"
            duration_s = 10
            [cluster]
            hosts = 3
            colonies = 8
            [[faults]]
            kind = "kill"
            at_s = 5
            "#,
        )
        .unwrap();
        assert_eq!(s.cluster.boxes(), 3);
        assert_eq!(s.network.latency_ms, [1, 5]);
        assert!(matches!(s.faults[0], FaultSpec::Kill { host: None, .. }));
    }

    #[test]
    fn shutdown_restart_parses_under_both_spellings() {
        for kind in ["shutdown_restart", "shutdown-restart"] {
            let s = Scenario::parse(&format!(
                r#"
                name = "off"
                duration_s = 60
                [cluster]
                hosts = 3
                colonies = 8
                [[faults]]
                kind = "{kind}"
                at_s = 20
                down_s = 10
                "#
            ))
            .unwrap();
            assert!(matches!(
                s.faults[0],
                FaultSpec::ShutdownRestart { interval_s, down_s, .. } if interval_s == 1.0 && down_s == 10.0
            ));
        }
    }

    #[test]
    fn loggers_and_logger_restart_parse_and_are_validated() {
        let text = |loggers: u32, host: &str| {
            format!(
                r#"
                name = "log"
                duration_s = 60
                [cluster]
                hosts = 3
                colonies = 8
                loggers = {loggers}
                [[faults]]
                kind = "logger_restart"
                at_s = 20
                down_s = 5
                {host}
                "#
            )
        };
        let s = Scenario::parse(&text(1, "")).unwrap();
        assert_eq!(s.cluster.loggers, 1);
        assert!(matches!(
            s.faults[0],
            FaultSpec::LoggerRestart { host: None, down_s, .. } if down_s == 5.0
        ));
        assert!(Scenario::parse(&text(1, "host = 4")).is_ok());
        assert!(
            Scenario::parse(&text(1, "host = 2")).is_err(),
            "not a logger"
        );
        assert!(
            Scenario::parse(&text(0, "")).is_err(),
            "no logger to restart"
        );
    }

    #[test]
    fn storage_nodes_parse_and_refuse_a_shutdown() {
        let text = |fault: &str| {
            format!(
                r#"
                name = "st"
                duration_s = 60
                [cluster]
                hosts = 3
                colonies = 8
                storage = 1
                [[faults]]
                {fault}
                "#
            )
        };
        let s = Scenario::parse(&text(
            r#"kind = "random_kills"
            from_s = 20
            to_s = 40
            every_s = [5, 5]
            restart_after_s = [1, 1]
            storage = true"#,
        ))
        .unwrap();
        assert_eq!(s.cluster.storage, 1);
        assert!(matches!(
            s.faults[0],
            FaultSpec::RandomKills { storage: true, .. }
        ));
        assert!(
            Scenario::parse(&text("kind = \"shutdown_restart\"\nat_s = 20")).is_err(),
            "a storage node would outlive the shutdown"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = Scenario::parse(
            r#"
            name = "typo"
            duration_s = 10
            [cluster]
            hosts = 3
            colonies = 8
            colonys = 9
            "#,
        );
        assert!(err.is_err());
    }
}
