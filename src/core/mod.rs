//! The protocol logic of colony as deterministic, sans-IO state machines.
//!
//! Nothing here touches a socket, a clock, a runtime or a global RNG. Every machine takes
//! the current [`Tick`](types::Tick) and its inputs, and writes messages, timers and
//! events into an output buffer. The simulator drives these machines directly; the
//! actix actors of the node drive the very same code.
//!
//! - [`types`]: ids, epochs, versions, resources, key routing.
//! - [`blob`]: shared immutable byte strings (keys, values, fields).
//! - [`cell`]: cells, commands, replies and the replicated ops.
//! - [`cell_store`]: a replica's cells, in memory or (storage node) on disk.
//! - [`events`]: the event vocabulary.
//! - [`topology`]: zones > boxes > hosts (petgraph) and host views.
//! - [`placement`]: repulsion, attraction, hysteresis, feasibility.
//! - [`membership`]: SWIM (foca) with incarnations, suspicion and the undead.
//! - [`directory`]: every host's table of where every colony lives, with anti-entropy.
//! - [`formation`]: the initial layout a founder sends, computed once per process.
//! - [`tail`]: a replica's bounded tail of recent mutations.
//! - [`colony`]: one replica of one colony: replication, cloning, promotion, migration.
//! - [`logsink`]: a logging node's position in every colony's history, gaps and resyncs.
//! - [`node`]: one host: composes the machines above and routes between them.

pub mod blob;
pub mod cell;
pub mod cell_store;
pub mod colony;
pub mod directory;
pub mod events;
pub mod formation;
pub mod logsink;
pub mod membership;
pub mod messages;
pub mod node;
pub mod placement;
pub mod tail;
#[cfg(test)]
pub(crate) mod testkit;
pub mod topology;
pub mod types;
