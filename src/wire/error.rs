//! Everything that can go wrong on a peer connection: framing, decoding, the handshake
//! and the transport underneath.

/// An error of the peer wire protocol. Every variant ends the connection: the caller
/// drops the stream and, for a dialer, retries later.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The transport failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),

    /// A frame (announced by the peer, or about to be sent) exceeds the frame limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },

    /// A frame body that does not decode as a [`Frame`](super::Frame).
    #[error("undecodable frame: {0}")]
    Garbage(String),

    /// A frame that could not be serialised (a bug, not a peer's fault).
    #[error("cannot encode frame: {0}")]
    Encode(String),

    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: ours {ours}, theirs {theirs}")]
    WrongVersion { ours: u32, theirs: u32 },

    /// The peer belongs to another cluster.
    #[error("cluster name mismatch: ours {ours:?}, theirs {theirs:?}")]
    WrongCluster { ours: String, theirs: String },

    /// The peer was created with another number of colonies (routing would disagree).
    #[error("colony count mismatch: ours {ours}, theirs {theirs}")]
    WrongColonies { ours: u32, theirs: u32 },

    /// The peer's proof does not match: it does not know the cluster secret.
    #[error("bad cluster secret: the peer's proof does not verify")]
    BadProof,

    /// The peer refused the connection, with its reason.
    #[error("refused by peer: {0}")]
    Refused(String),

    /// The peer sent a frame that has no place at this point of the protocol.
    #[error("unexpected frame: {0}")]
    Unexpected(String),

    /// The handshake did not complete in time.
    #[error("handshake timed out")]
    Timeout,

    /// The peer closed the connection (possibly in the middle of a frame).
    #[error("connection closed by peer")]
    Closed,

    /// The peer claims my own host id: I dialled myself, or two processes share an id.
    #[error("peer claims my own host id")]
    SelfConnection,
}
