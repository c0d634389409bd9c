//! `colony node`: settings, resource sensing, and the start-up that wires the actors
//! (see `actors.md`) to their sockets.

pub mod config;
pub mod log_writer;
pub mod restore;
pub mod run;
pub mod sensing;

pub use config::{NodeArgs, Settings};
pub use run::{run, NodeError};
