//! The client-side subcommands of the `colony` binary.

pub mod backup;
pub mod demo;
pub mod http;
pub mod log;
pub mod resp_client;
pub mod status;
pub mod watch;
