//! The actix shell around the core: one file per actor, each message next to the actor
//! that handles it. `actors.md` at the repository root says who owns what and who
//! talks to whom.
//!
//! - [`host::HostActor`]: one per node, drives `core::node::Node`.
//! - [`peer::PeerActor`]: one per remote host, its TCP links.
//! - [`session::SessionActor`]: one per client connection (RESP2).
//! - [`event_bus::EventBus`]: the node's event log for `/events`.
//! - [`restore::RestoreActor`]: one per restore job, feeds saved cells back in.

pub mod event_bus;
pub mod host;
pub mod peer;
pub mod restore;
pub mod session;
