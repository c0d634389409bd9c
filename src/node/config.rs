//! `colony node` settings: command-line flags, an optional TOML file (`--config`), and
//! the defaults, merged in that order of precedence into one [`Settings`].
//!
//! Every flag has the same name as its key in the file (`--sync-replicas` is
//! `sync-replicas = 2`). Unknown keys in the file are an error, so a typo is caught at
//! start rather than silently ignored.

use crate::core::node::NodeConfig;
use crate::core::types::{HostId, HostInfo, HostRole, Resources};
use crate::wire::Addrs;
use clap::{Args, ValueEnum};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the node listens for peers when `--listen` is not given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7400";
/// Where the node listens for Redis clients when `--client` is not given (6379 is left
/// to a real Redis on the same machine).
pub const DEFAULT_CLIENT: &str = "127.0.0.1:6400";
/// Where the admin HTTP server listens when `--admin` is not given.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:7500";
/// The environment variable that may carry the cluster secret.
pub const SECRET_ENV: &str = "COLONY_SECRET";
/// The secret used when none is configured (with a loud warning): fine on a laptop,
/// never in production.
pub const DEV_SECRET: &str = "colony-dev-secret";

/// The roles a node can take.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleArg {
    #[default]
    Normal,
    Storage,
    Logger,
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Flags of `colony node`; the same keys are accepted in the TOML file.
#[derive(Args, Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeArgs {
    /// TOML file with any of these settings; flags override it.
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Node id (a number unique in the cluster). Default: derived from the advertised
    /// peer address.
    #[arg(long)]
    pub id: Option<HostId>,
    /// Address to listen on for peers.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Peer address other nodes should dial (default: --listen; required when listening
    /// on 0.0.0.0).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Address to serve Redis clients (RESP2) on.
    #[arg(long)]
    pub client: Option<SocketAddr>,
    /// Address of the admin HTTP server (/status, /events, /metrics).
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// Peer address of any member to join through (repeatable). None: create a cluster.
    #[arg(long = "join")]
    pub join: Vec<String>,
    /// Physical machine label: replicas of one colony avoid sharing a box.
    #[arg(long = "box")]
    #[serde(rename = "box")]
    pub box_name: Option<String>,
    /// Zone (rack, data centre) label: replicas mildly avoid sharing a zone.
    #[arg(long)]
    pub zone: Option<String>,
    /// Declared cpu capacity in cores (default: what the machine has).
    #[arg(long)]
    pub cpu: Option<f64>,
    /// Declared memory capacity in MiB (default: what the machine has).
    #[arg(long)]
    pub memory: Option<u64>,
    /// Population N: replicas per colony.
    #[arg(long)]
    pub replicas: Option<u32>,
    /// Acks a write waits for (default: every in-sync secondary).
    #[arg(long)]
    pub sync_replicas: Option<u32>,
    /// Number of colonies (fixed when the cluster is created).
    #[arg(long)]
    pub colonies: Option<u32>,
    /// Cluster name; nodes of another cluster are refused.
    #[arg(long)]
    pub cluster: Option<String>,
    /// File holding the shared cluster secret (else $COLONY_SECRET).
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// Data directory (shutdown to disk, storage and logger roles).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// What kind of node this is.
    #[arg(long, value_enum)]
    pub role: Option<RoleArg>,
    /// Log format (`RUST_LOG` sets the level).
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Largest peer frame accepted, in MiB.
    #[arg(long)]
    pub max_frame_mib: Option<usize>,
    /// A directory of shutdown or backup files to restore before accepting clients
    /// (files in `<data-dir>/restore/` are restored too). Restored files are renamed
    /// `*.restored` so they are not applied twice.
    #[arg(long)]
    pub restore: Option<PathBuf>,
    /// Restore files with corruption in the middle anyway, keeping every good record.
    #[arg(long)]
    #[serde(default)]
    pub salvage: bool,
    /// A logging node: size at which a log segment is finished and the next begun, in
    /// MiB (default 64).
    #[arg(long)]
    pub log_segment_mib: Option<u64>,
    /// A logging node: memory for mutations received but not yet on disk, in MiB
    /// (default 256). Beyond it the logger drops, says so (`logger_behind`) and fetches
    /// the dropped part again from the primaries.
    #[arg(long)]
    pub log_buffer_mib: Option<u64>,
    /// Memory for the tails of recent mutations of all the replicas this node holds,
    /// in MiB (default 64; each replica keeps at most 64 KiB and at least 4 KiB). A
    /// longer tail lets a secondary or logger that fell behind catch up without a
    /// snapshot.
    #[arg(long)]
    pub tail_budget_mib: Option<u64>,
}

/// A size flag given in MiB, in bytes: `default` MiB when absent; 0 is an error.
fn mib(v: Option<u64>, default: u64, flag: &str) -> Result<u64, ConfigError> {
    match v {
        Some(0) => Err(ConfigError::Invalid(format!("--{flag} must be positive"))),
        Some(m) => Ok(m.saturating_mul(1 << 20)),
        None => Ok(default << 20),
    }
}

/// Errors in the node's settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("cannot read secret file {path}: {source}")]
    Secret {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret file {0} is empty")]
    EmptySecret(PathBuf),
    #[error("invalid setting: {0}")]
    Invalid(String),
}

/// Everything a node runs with, resolved.
#[derive(Clone, Debug)]
pub struct Settings {
    pub info: HostInfo,
    pub listen: SocketAddr,
    pub addrs: Addrs,
    pub client: SocketAddr,
    pub admin: SocketAddr,
    pub join: Vec<String>,
    pub cluster: String,
    pub secret: Vec<u8>,
    /// True when no secret was configured and [`DEV_SECRET`] is in use.
    pub dev_secret: bool,
    pub data_dir: Option<PathBuf>,
    pub log_format: LogFormat,
    pub max_frame: usize,
    pub core: NodeConfig,
    /// Directories whose `*.colony` files are restored before clients are accepted.
    pub restore_dirs: Vec<PathBuf>,
    pub salvage: bool,
    /// A logging node's log (None on other roles).
    pub logger: Option<LoggerSettings>,
    /// A storage node's value logs: `DATA_DIR/values` (None on other roles).
    pub values_dir: Option<PathBuf>,
}

/// Where and how a logging node writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggerSettings {
    /// The log directory (the data directory itself).
    pub dir: PathBuf,
    pub segment_bytes: u64,
    pub buffer_bytes: u64,
}

impl NodeArgs {
    /// Reads the TOML file named by `--config`, if any, and lets the flags override it.
    pub fn merged(self) -> Result<NodeArgs, ConfigError> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let file: NodeArgs = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(self.over(file))
    }

    /// `self` (flags) wins over `file` wherever it has a value.
    fn over(self, file: NodeArgs) -> NodeArgs {
        NodeArgs {
            config: self.config,
            id: self.id.or(file.id),
            listen: self.listen.or(file.listen),
            advertise: self.advertise.or(file.advertise),
            client: self.client.or(file.client),
            admin: self.admin.or(file.admin),
            join: if self.join.is_empty() {
                file.join
            } else {
                self.join
            },
            box_name: self.box_name.or(file.box_name),
            zone: self.zone.or(file.zone),
            cpu: self.cpu.or(file.cpu),
            memory: self.memory.or(file.memory),
            replicas: self.replicas.or(file.replicas),
            sync_replicas: self.sync_replicas.or(file.sync_replicas),
            colonies: self.colonies.or(file.colonies),
            cluster: self.cluster.or(file.cluster),
            secret_file: self.secret_file.or(file.secret_file),
            data_dir: self.data_dir.or(file.data_dir),
            role: self.role.or(file.role),
            log_format: self.log_format.or(file.log_format),
            max_frame_mib: self.max_frame_mib.or(file.max_frame_mib),
            restore: self.restore.or(file.restore),
            salvage: self.salvage || file.salvage,
            log_segment_mib: self.log_segment_mib.or(file.log_segment_mib),
            log_buffer_mib: self.log_buffer_mib.or(file.log_buffer_mib),
            tail_budget_mib: self.tail_budget_mib.or(file.tail_budget_mib),
        }
    }

    /// Resolves defaults and checks the values. `machine` is the machine's capacity
    /// (used when cpu or memory is not declared).
    pub fn resolve(self, machine: Resources) -> Result<Settings, ConfigError> {
        let listen = match self.listen {
            Some(a) => a,
            None => parse_addr(DEFAULT_LISTEN)?,
        };
        let advertise = match self.advertise {
            Some(a) => a,
            None if listen.ip().is_unspecified() => {
                return Err(ConfigError::Invalid(format!(
                    "--listen {listen} is a wildcard address: give --advertise HOST:PORT so peers can dial this node"
                )))
            }
            None => listen.to_string(),
        };
        let client = match self.client {
            Some(a) => a,
            None => parse_addr(DEFAULT_CLIENT)?,
        };
        let admin = match self.admin {
            Some(a) => a,
            None => parse_addr(DEFAULT_ADMIN)?,
        };
        let id = self.id.unwrap_or_else(|| {
            (crate::core::types::fnv1a(advertise.as_bytes()) as u32) & 0x7fff_ffff
        });
        let replicas = self.replicas.unwrap_or(3);
        if replicas == 0 {
            return Err(ConfigError::Invalid("--replicas must be at least 1".into()));
        }
        if let Some(s) = self.sync_replicas {
            if s >= replicas {
                return Err(ConfigError::Invalid(format!(
                    "--sync-replicas {s} must be below --replicas {replicas} (it counts secondaries)"
                )));
            }
        }
        let colonies = self.colonies.unwrap_or(271);
        if colonies == 0 || colonies > crate::core::types::SLOTS {
            return Err(ConfigError::Invalid(format!(
                "--colonies {colonies} must be between 1 and 16384 (each colony owns at least one of the 16384 hash slots)"
            )));
        }
        let cpu = self.cpu.unwrap_or(machine.cpu);
        if !(cpu.is_finite() && cpu > 0.0) {
            return Err(ConfigError::Invalid(format!(
                "--cpu {cpu} must be positive"
            )));
        }
        let memory = match self.memory {
            Some(0) => return Err(ConfigError::Invalid("--memory must be positive".into())),
            Some(mib) => mib.saturating_mul(1 << 20),
            None => machine.memory,
        };
        let (secret, dev_secret) = load_secret(self.secret_file.as_deref())?;
        let role = match self.role.unwrap_or_default() {
            RoleArg::Normal => HostRole::Normal,
            RoleArg::Logger => HostRole::Logger,
            RoleArg::Storage => HostRole::Storage,
        };
        let values_dir = if role == HostRole::Storage {
            let Some(dir) = self.data_dir.clone() else {
                return Err(ConfigError::Invalid(
                    "--role storage needs --data-dir (where the replicas' cells are kept)".into(),
                ));
            };
            Some(dir.join("values"))
        } else {
            None
        };
        let logger = if role == HostRole::Logger {
            let Some(dir) = self.data_dir.clone() else {
                return Err(ConfigError::Invalid(
                    "--role logger needs --data-dir (where the log is written)".into(),
                ));
            };
            if self.join.is_empty() {
                return Err(ConfigError::Invalid(
                    "--role logger needs --join: a logging node attaches to a running cluster"
                        .into(),
                ));
            }
            Some(LoggerSettings {
                dir,
                segment_bytes: mib(self.log_segment_mib, 64, "log-segment-mib")?,
                buffer_bytes: mib(self.log_buffer_mib, 256, "log-buffer-mib")?,
            })
        } else {
            None
        };
        let mut core = NodeConfig {
            colonies,
            ..NodeConfig::default()
        };
        core.colony.replicas = replicas;
        core.colony.sync_replicas = self.sync_replicas;
        let budget = mib(self.tail_budget_mib, 64, "tail-budget-mib")?;
        core.tail_budget_bytes = usize::try_from(budget).unwrap_or(usize::MAX);
        core.membership = fast_detection();
        // A logging node holds no cells: nothing to restore into it.
        let restore_dirs: Vec<PathBuf> = if logger.is_some() {
            Vec::new()
        } else {
            self.restore
                .clone()
                .into_iter()
                .chain(self.data_dir.as_ref().map(|d| d.join("restore")))
                .collect()
        };
        let info = HostInfo {
            id,
            box_name: self.box_name.unwrap_or_else(|| format!("box-{id}")).into(),
            zone: self.zone.unwrap_or_else(|| "default".into()).into(),
            capacity: Resources { cpu, memory },
            role,
        };
        Ok(Settings {
            addrs: Addrs {
                peer: advertise,
                client: client.to_string(),
                admin: admin.to_string(),
            },
            info,
            listen,
            client,
            admin,
            join: self.join,
            cluster: self.cluster.unwrap_or_else(|| "colony".into()),
            secret,
            dev_secret,
            data_dir: self.data_dir,
            log_format: self.log_format.unwrap_or_default(),
            max_frame: self.max_frame_mib.unwrap_or(64).max(1) << 20,
            core,
            restore_dirs,
            salvage: self.salvage,
            logger,
            values_dir,
        })
    }
}

/// Failure detection for a real network: TCP between hosts on one LAN answers a probe in
/// well under a millisecond, so a host can be declared dead about a second after it
/// stops answering (see the failover figures in the README).
///
/// Membership packets go over the hosts' TCP links, so they need not fit a datagram:
/// 64 KiB lets the feed that answers a joiner's announce list every member of a
/// cluster of up to about 3,400 hosts ([`MEMBER_BYTES_MAX`] bytes each: a real node's
/// incarnations are timestamps, five bytes apiece). With 1,400 bytes it listed about 70;
/// a joiner of a larger cluster learnt the rest one probe at a time, and meanwhile
/// refused the writes of colonies led by hosts it did not know. Every host of a
/// cluster must use the same size.
///
/// [`MEMBER_BYTES_MAX`]: crate::core::membership::MEMBER_BYTES_MAX
pub fn fast_detection() -> crate::core::membership::MembershipConfig {
    crate::core::membership::MembershipConfig {
        probe_period_ms: 300,
        probe_rtt_ms: 200,
        suspect_to_down_ms: 700,
        max_packet_size: 64 * 1024,
        ..Default::default()
    }
}

/// The handshake gives up after this long.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

fn parse_addr(s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse()
        .map_err(|e| ConfigError::Invalid(format!("address {s}: {e}")))
}

fn load_secret(file: Option<&Path>) -> Result<(Vec<u8>, bool), ConfigError> {
    if let Some(path) = file {
        let raw = std::fs::read(path).map_err(|source| ConfigError::Secret {
            path: path.to_path_buf(),
            source,
        })?;
        let trimmed = raw.trim_ascii().to_vec();
        if trimmed.is_empty() {
            return Err(ConfigError::EmptySecret(path.to_path_buf()));
        }
        return Ok((trimmed, false));
    }
    match std::env::var(SECRET_ENV) {
        Ok(s) if !s.trim().is_empty() => Ok((s.trim().as_bytes().to_vec(), false)),
        _ => Ok((DEV_SECRET.as_bytes().to_vec(), true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Resources {
        Resources {
            cpu: 2.0,
            memory: 1 << 30,
        }
    }

    /// A real node's membership packets hold a feed of every member of a cluster of
    /// 3,000 hosts, however wide their encodings.
    #[test]
    fn a_real_node_s_packets_hold_a_feed_of_thousands_of_members() {
        use crate::core::membership::{HEADER_BYTES_MAX, MEMBER_BYTES_MAX};
        let real = fast_detection().max_packet_size;
        assert!(
            real >= HEADER_BYTES_MAX + 3_000 * MEMBER_BYTES_MAX,
            "{real}"
        );
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let dir = std::env::temp_dir().join(format!("colony-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.toml");
        std::fs::write(
            &path,
            "id = 7\nreplicas = 2\nzone = \"z1\"\nbox = \"b9\"\njoin = [\"127.0.0.1:1\"]\n",
        )
        .unwrap();
        let flags = NodeArgs {
            config: Some(path.clone()),
            replicas: Some(3),
            ..Default::default()
        };
        let s = flags.merged().unwrap().resolve(machine()).unwrap();
        assert_eq!(s.info.id, 7);
        assert_eq!(s.core.colony.replicas, 3, "the flag wins");
        assert_eq!(&*s.info.zone, "z1");
        assert_eq!(&*s.info.box_name, "b9");
        assert_eq!(s.join, vec!["127.0.0.1:1".to_string()]);
        assert_eq!(s.client.to_string(), DEFAULT_CLIENT);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = std::env::temp_dir().join(format!("colony-cfg-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.toml");
        std::fs::write(&path, "replica = 2\n").unwrap();
        let err = NodeArgs {
            config: Some(path),
            ..Default::default()
        }
        .merged()
        .unwrap_err();
        assert!(err.to_string().contains("replica"), "{err}");
        let err = NodeArgs {
            replicas: Some(2),
            sync_replicas: Some(2),
            ..Default::default()
        }
        .resolve(machine())
        .unwrap_err();
        assert!(err.to_string().contains("sync-replicas"), "{err}");
        let err = NodeArgs {
            listen: Some("0.0.0.0:7400".parse().unwrap()),
            ..Default::default()
        }
        .resolve(machine())
        .unwrap_err();
        assert!(err.to_string().contains("--advertise"), "{err}");
        let err = NodeArgs {
            tail_budget_mib: Some(0),
            ..Default::default()
        }
        .resolve(machine())
        .unwrap_err();
        assert!(err.to_string().contains("--tail-budget-mib"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn the_tail_budget_is_given_in_mib() {
        let s = NodeArgs::default().resolve(machine()).unwrap();
        assert_eq!(s.core.tail_budget_bytes, 64 << 20, "the default");
        let s = NodeArgs {
            tail_budget_mib: Some(8),
            ..Default::default()
        }
        .resolve(machine())
        .unwrap();
        assert_eq!(s.core.tail_budget_bytes, 8 << 20);
    }
}
