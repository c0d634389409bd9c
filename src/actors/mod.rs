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

/// The mailbox capacity of actors that must never make a sender wait (`do_send` from
/// the host to peers and back): as large as actix allows. Not `usize::MAX`: actix
/// computes `MAX_CAPACITY - capacity` when an address is cloned, which overflows (a
/// panic in a debug build) for anything above its internal maximum, `usize::MAX >> 1`.
pub const UNBOUNDED_MAILBOX: usize = usize::MAX >> 2;
