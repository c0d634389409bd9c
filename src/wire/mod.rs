//! The peer-to-peer wire protocol: how two `colony node` processes talk over TCP.
//!
//! # Frames
//!
//! Every frame is a 4-byte big-endian body length followed by the body, one
//! [`Frame`] in msgpack (`rmp-serde`, compact form):
//!
//! ```text
//! +----------------+---------------------------------+
//! | len: u32 (BE)  | body: msgpack Frame (len bytes) |
//! +----------------+---------------------------------+
//! ```
//!
//! A receiver refuses a length above its limit ([`WireError::TooLarge`]) as soon as
//! the four prefix bytes arrive, before buffering any of the body; a body that is not
//! exactly one `Frame` is [`WireError::Garbage`]. The limit is [`HANDSHAKE_MAX_FRAME`]
//! until the peer is authenticated, then [`Local::max_frame`] (default
//! [`DEFAULT_MAX_FRAME`]). Any error ends the connection.
//!
//! # Handshake
//!
//! ```text
//! dialer D                                       acceptor A
//!   |-- Hello(version, cluster, colonies, host, ...,  nD) -->|
//!   |                 A checks version, cluster, colonies, host:
//!   |<------------------- Refused(reason) -------------------|  (mismatch: both stop)
//!   |<-- Hello(version, cluster, colonies, host, ..., nA) ---|
//!   | D checks the same (mismatch: Refused, stop)            |
//!   |-- Proof(HMAC(k, "colony-dial"   | HelloD | HelloA)) -->|
//!   |                 A verifies (bad: Refused("bad cluster secret"), stop)
//!   |<-- Proof(HMAC(k, "colony-accept" | HelloD | HelloA)) --|  A is done
//!   | D verifies (bad: Refused, stop); D is done             |
//! ```
//!
//! `k` is the cluster secret; it never travels. Each side draws a fresh 32-byte nonce
//! per handshake (`nD`, `nA`) and the proofs cover both Hellos whole, nonces included:
//! - over *both* nonces, so a proof recorded from one connection is useless in the next
//!   (the verifier's own fresh nonce is in what it checks: no replay), and each side's
//!   nonce keeps its own side safe even if the other side's generator were weak;
//! - under a *role label*, so an acceptor's proof cannot be sent back as a dialer's
//!   (no reflection), and a Hello that echoes mine is a self-connection anyway;
//! - over *every Hello field*, so a tampered Hello (advertised addresses, incarnation)
//!   fails the proof.
//!
//! The dialer proves first, so an unauthenticated dialer never obtains a proof from
//! us. Proofs are compared in constant time. The handshake authenticates the peer at
//! connection time only: frames are neither encrypted nor individually authenticated,
//! so across an untrusted network the peer port belongs inside TLS or a VPN.

mod error;
mod frame;
mod handshake;
mod send;

pub use error::WireError;
pub use frame::{Addrs, Frame, FrameCodec, Hello, PeerEntry, DEFAULT_MAX_FRAME, PROTOCOL_VERSION};
pub use handshake::{accept, dial, Local, DEFAULT_HANDSHAKE_TIMEOUT, HANDSHAKE_MAX_FRAME};
pub use send::send;
