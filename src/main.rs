//! The `colony` binary. For now it offers `colony version`; the node comes with the
//! actix shell. The chaos simulator is `colony-sim` (crate `simulations/`).

use clap::{Parser, Subcommand};

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
    /// Print the version and the protocol's fixed parameters.
    Version,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Version => println!("colony {}", env!("CARGO_PKG_VERSION")),
    }
    Ok(())
}
