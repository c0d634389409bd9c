//! The `colony` binary: `colony node` runs a node; `status`, `watch` and `leave` talk to
//! a running node's admin port; `demo` starts a local five-node cluster and shows it
//! absorb a kill, a join and a leave. The chaos simulator is `colony-sim`
//! (crate `simulations/`).

mod cli;

/// mimalloc instead of the system allocator: a node allocates and frees small buffers
/// (keys, values, frames, replies) on every request, and glibc's malloc spent half of a
/// loaded node's cpu in `_int_malloc`, `_int_free` and `malloc_consolidate`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use colony::node::config::{LogFormat, NodeArgs, DEFAULT_ADMIN};

#[derive(Parser)]
#[command(
    name = "colony",
    version,
    about = "colony: replicated in-memory state for clusters"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a node (see `colony node --help` for every flag).
    Node(Box<NodeArgs>),
    /// Print a node's view of the cluster: hosts and colonies as tables.
    Status {
        /// Admin address of any node.
        #[arg(default_value = DEFAULT_ADMIN)]
        addr: String,
        /// Print the raw /status JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Follow the live event stream of every node of the cluster.
    Watch {
        /// Admin address of any node.
        #[arg(default_value = DEFAULT_ADMIN)]
        addr: String,
        /// One JSON object per line instead of readable lines.
        #[arg(long)]
        json: bool,
        /// Replay the events the nodes still keep before following.
        #[arg(long)]
        from_start: bool,
    },
    /// Ask a node to leave gracefully (hand off its replicas, then exit).
    Leave {
        /// Admin address of the node that should leave.
        #[arg(default_value = DEFAULT_ADMIN)]
        addr: String,
    },
    /// Take an online backup of every colony into one file (written atomically).
    Backup {
        /// Admin address of any node.
        addr: String,
        /// The backup file.
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Restore a backup or shutdown file, or a logging node's log, into a running
    /// cluster.
    Restore {
        /// Admin address of any node.
        addr: String,
        /// The backup or shutdown file.
        #[arg(required_unless_present = "from_log", conflicts_with = "from_log")]
        file: Option<std::path::PathBuf>,
        /// A logging node's directory, or one log file (compacted or not), instead.
        #[arg(long, value_name = "DIR")]
        from_log: Option<std::path::PathBuf>,
        /// Keep every good record of a file corrupt in the middle.
        #[arg(long)]
        salvage: bool,
    },
    /// Tools for a logging node's directory.
    #[command(subcommand)]
    Log(LogCmd),
    /// Start a local five-node cluster, write sessions, kill a host, add one, let one
    /// leave, and show the events live.
    Demo(cli::demo::DemoArgs),
    /// Print the version and the protocol version.
    Version,
}

#[derive(Subcommand)]
enum LogCmd {
    /// Keep only the last entry of every live cell: rewrite the finished segments (and
    /// an earlier compaction) into one compacted file. Safe while the logger runs.
    Compact {
        /// The logging node's data directory.
        dir: std::path::PathBuf,
        /// Keep every good record of a file corrupt in the middle.
        #[arg(long)]
        salvage: bool,
    },
}

fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Node(args) => {
            let args = (*args).merged()?;
            init_logs(args.log_format.unwrap_or_default());
            let machine = colony::node::sensing::Sensor::new().machine();
            let settings = args.resolve(machine)?;
            colony::node::run(settings)?;
        }
        Cmd::Status { addr, json } => cli::status::run(&addr, json)?,
        Cmd::Watch {
            addr,
            json,
            from_start,
        } => cli::watch::run(&addr, json, from_start)?,
        Cmd::Leave { addr } => cli::http::post(&addr, "/leave").map(|_| {
            println!("{addr}: leaving");
        })?,
        Cmd::Demo(args) => cli::demo::run(args)?,
        Cmd::Backup { addr, to } => cli::backup::backup(&addr, &to)?,
        Cmd::Restore {
            addr,
            file,
            from_log,
            salvage,
        } => match (file, from_log) {
            (_, Some(dir)) => cli::log::restore(&addr, &dir, salvage)?,
            (Some(file), None) => cli::backup::restore(&addr, &file, salvage)?,
            (None, None) => anyhow::bail!("give a backup FILE or --from-log DIR"),
        },
        Cmd::Log(LogCmd::Compact { dir, salvage }) => cli::log::compact(&dir, salvage)?,
        Cmd::Version => println!(
            "colony {} (peer protocol {})",
            env!("CARGO_PKG_VERSION"),
            colony::wire::PROTOCOL_VERSION
        ),
    }
    Ok(())
}
