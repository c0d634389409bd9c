//! colony: a cluster runtime for keyed, replicated, in-memory state.
//!
//! Cells (sessions, carts, device state) live in a fixed number of colonies; each colony
//! keeps N replicas on different hosts, repels its siblings from the same host and box,
//! drifts toward spare resources, promotes a secondary when its primary's host dies and
//! re-clones back to N. See `README.md` and `actors.md`.
//!
//! Layers, one direction of dependency:
//! - [`core`]: deterministic state machines (time and randomness are inputs). The
//!   simulator (`colony-sim`) and the node both drive exactly this code.

pub mod actors;
pub mod admin;
pub mod core;
pub mod node;
pub mod resp;
pub mod store;
pub mod wire;
