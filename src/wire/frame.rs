//! The frames two hosts exchange over TCP and their codec: a 4-byte big-endian body
//! length, then the body as msgpack (`rmp-serde`).
//!
//! The decoder checks the announced length against its limit before it waits for (or
//! buffers) the body, so a peer cannot make it reserve memory by announcing a huge
//! frame; the encoder refuses to produce a frame the receiving side would refuse.

use super::error::WireError;
use crate::core::messages::Msg;
use crate::core::types::HostId;
use bytes::{Buf, BufMut, BytesMut};
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Decoder, Encoder};

/// The version of this protocol; peers must agree on it exactly. 2: keys and values as
/// msgpack `bin`; 3: `ColonyMsg::AlreadyHeld` (a storage node, or any host, offered a
/// colony it already holds); 4: `Msg::Ping` / `Msg::Pong` (quorum confirmation),
/// `HostIdentity::since`, `CloneOffer { floor }`, `HandOff { balance }` and
/// `HandOffRefuse` (a host checks an optional move against its own fresh numbers), and
/// anti-entropy by stamps (`DigestStamps`, `DigestEntries` replace `DigestReply`); 5:
/// `Msg::Formation` (a cluster formed together from one layout), and keys placed by
/// hash slot (`colony_of` = the colony owning CRC16(key) mod 16384, as Redis Cluster),
/// so hosts of version 4 would route keys elsewhere; 6: a hash cell's fields and values
/// as msgpack `bin` (they were arrays of integers; keys and values are `Blob`s); 7:
/// `Msg::Digest` carries an optional list per table (only the tables whose roots
/// differ), and membership packets of up to 64 KiB (version 6 refused those over 1,400
/// bytes).
pub const PROTOCOL_VERSION: u32 = 7;

/// The default limit on a frame body (a colony snapshot travels as one frame).
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024 * 1024;

/// Bytes of the length prefix.
const PREFIX: usize = 4;

/// The advertised addresses of a node (`host:port`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Addrs {
    /// Where peers dial this node (this protocol).
    pub peer: String,
    /// Where clients connect (RESP).
    pub client: String,
    /// The admin HTTP endpoint.
    pub admin: String,
}

/// A known member of the cluster, as one host tells another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerEntry {
    pub host: HostId,
    pub incarnation: u32,
    pub addrs: Addrs,
}

/// The first frame of each side of a handshake: who I am and what cluster I belong to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Must equal the peer's [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The cluster name; must be equal on both sides.
    pub cluster: String,
    /// The number of colonies; must be equal on both sides (key routing depends on it).
    pub colonies: u32,
    pub host: HostId,
    pub incarnation: u32,
    pub addrs: Addrs,
    /// Fresh random bytes for this handshake; the peer's proof covers them.
    pub nonce: [u8; 32],
}

/// One frame of the peer protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    /// Handshake: who I am.
    Hello(Hello),
    /// Handshake: HMAC-SHA256 proof of knowledge of the cluster secret.
    Proof(Vec<u8>),
    /// I am closing this connection, and why.
    Refused(String),
    /// The members this host knows of (sent after the handshake and on changes).
    Peers(Vec<PeerEntry>),
    /// A core message.
    Msg(Msg),
}

impl Frame {
    /// A short name for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Hello(_) => "hello",
            Frame::Proof(_) => "proof",
            Frame::Refused(_) => "refused",
            Frame::Peers(_) => "peers",
            Frame::Msg(m) => m.kind(),
        }
    }
}

/// Length-prefixed msgpack frames, with a limit on the body length in both directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameCodec {
    /// The largest body accepted or produced, in bytes.
    pub max: usize,
}

impl FrameCodec {
    pub fn new(max: usize) -> FrameCodec {
        FrameCodec { max }
    }

    /// The effective limit: `max`, but never more than the prefix can express.
    fn limit(&self) -> usize {
        self.max.min(u32::MAX as usize)
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new(DEFAULT_MAX_FRAME)
    }
}

/// Decodes one body; it must be exactly one `Frame`, with nothing after it.
///
/// The body is read in place (`from_read_ref`): strings and byte strings are borrowed
/// from it, not copied into a scratch buffer first. That reader does not say where it
/// stopped, so trailing bytes are found by reading one more marker with [`Probe`]: only
/// an empty rest fails with end-of-input at the marker itself.
fn decode_body(body: &[u8]) -> Result<Frame, WireError> {
    let mut de = rmp_serde::Deserializer::from_read_ref(body);
    let frame = Frame::deserialize(&mut de).map_err(|e| WireError::Garbage(e.to_string()))?;
    match serde::Deserializer::deserialize_any(&mut de, Probe) {
        Err(rmp_serde::decode::Error::InvalidMarkerRead(e))
            if e.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            Ok(frame)
        }
        _ => Err(WireError::Garbage(
            "trailing bytes after the frame".to_string(),
        )),
    }
}

/// Accepts no value at all, so it never reads past the marker of the value it is
/// offered: a marker that is there fails with "invalid type", not with end-of-input.
struct Probe;

impl serde::de::Visitor<'_> for Probe {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("the end of the frame")
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        let Some(prefix) = src.get(..PREFIX) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        let max = self.limit();
        if len > max {
            return Err(WireError::TooLarge { len, max });
        }
        // No `reserve(len)` here: the buffer grows only with bytes that actually arrive.
        if src.len() - PREFIX < len {
            return Ok(None);
        }
        src.advance(PREFIX);
        let body = src.split_to(len);
        decode_body(&body).map(Some)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            // The peer closed in the middle of a frame.
            None => Err(WireError::Closed),
        }
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = WireError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), WireError> {
        let start = dst.len();
        dst.put_u32(0);
        let written = rmp_serde::encode::write(&mut (&mut *dst).writer(), frame);
        if let Err(e) = written {
            dst.truncate(start);
            return Err(WireError::Encode(e.to_string()));
        }
        let len = dst.len() - start - PREFIX;
        let max = self.limit();
        if len > max {
            dst.truncate(start);
            return Err(WireError::TooLarge { len, max });
        }
        // `len <= max <= u32::MAX`, so the cast is exact.
        dst[start..start + PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(())
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = WireError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), WireError> {
        self.encode(&frame, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::cell::{Cell, Dna};
    use crate::core::messages::{ColonyMsg, Msg};
    use crate::core::types::{Epoch, Version};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn addrs(n: u32) -> Addrs {
        Addrs {
            peer: format!("10.0.0.{n}:7000"),
            client: format!("10.0.0.{n}:6379"),
            admin: format!("10.0.0.{n}:8080"),
        }
    }

    fn snapshot() -> Msg {
        let v = Version {
            epoch: Epoch { term: 3, by: 2 },
            seq: 41,
        };
        let mut map = BTreeMap::new();
        map.insert(b"f".into(), b"v".into());
        let cells = vec![
            (
                b"session:1".into(),
                Cell {
                    dna: Dna::Value(vec![0, 1, 2, 255].into()),
                    version: v,
                    expires_at: Some(99_000),
                },
            ),
            (
                b"cart:7".into(),
                Cell {
                    dna: Dna::Map(map.into()),
                    version: v,
                    expires_at: None,
                },
            ),
            (
                b"moved".into(),
                Cell {
                    dna: Dna::Moved(12),
                    version: v,
                    expires_at: None,
                },
            ),
        ];
        let mut lineage = BTreeMap::new();
        lineage.insert(Epoch { term: 1, by: 1 }, 17);
        lineage.insert(Epoch { term: 3, by: 2 }, 41);
        Msg::Colony {
            colony: 5,
            epoch: Epoch { term: 3, by: 2 },
            body: ColonyMsg::Snapshot {
                at: v,
                cells,
                lineage,
            },
        }
    }

    fn every_variant() -> Vec<Frame> {
        vec![
            Frame::Hello(Hello {
                version: PROTOCOL_VERSION,
                cluster: "prod-eu".into(),
                colonies: 271,
                host: 3,
                incarnation: 2,
                addrs: addrs(3),
                nonce: [7; 32],
            }),
            Frame::Proof(vec![0xAB; 32]),
            Frame::Refused("bad cluster secret".into()),
            Frame::Peers(vec![
                PeerEntry {
                    host: 1,
                    incarnation: 0,
                    addrs: addrs(1),
                },
                PeerEntry {
                    host: 2,
                    incarnation: 5,
                    addrs: addrs(2),
                },
            ]),
            Frame::Peers(vec![]),
            Frame::Msg(Msg::Left),
            Frame::Msg(Msg::Swim(vec![1, 2, 3])),
            Frame::Msg(snapshot()),
        ]
    }

    fn encode(codec: &mut FrameCodec, frame: &Frame) -> BytesMut {
        let mut buf = BytesMut::new();
        codec.encode(frame, &mut buf).expect("encodes");
        buf
    }

    #[test]
    fn every_variant_round_trips() {
        let mut codec = FrameCodec::default();
        for frame in every_variant() {
            let mut buf = encode(&mut codec, &frame);
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            assert_eq!(len, buf.len() - 4, "prefix is the body length");
            let back = codec.decode(&mut buf).expect("decodes").expect("whole");
            assert_eq!(back, frame);
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn owned_and_borrowed_encoders_agree() {
        let mut codec = FrameCodec::default();
        let frame = Frame::Msg(snapshot());
        let a = encode(&mut codec, &frame);
        let mut b = BytesMut::new();
        codec.encode(frame, &mut b).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn byte_by_byte_input_yields_every_frame_once() {
        let mut codec = FrameCodec::default();
        let frames = every_variant();
        let mut wire = BytesMut::new();
        for f in &frames {
            codec.encode(f, &mut wire).unwrap();
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(f) = codec.decode(&mut buf).expect("no error") {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
        assert!(buf.is_empty());
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
    }

    #[test]
    fn huge_prefix_is_refused_before_the_body_arrives() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&[0xFF, 0xFF, 0xFF, 0xFF][..]);
        let cap = buf.capacity();
        match codec.decode(&mut buf) {
            Err(WireError::TooLarge { len, max }) => {
                assert_eq!(len, 0xFFFF_FFFF);
                assert_eq!(max, DEFAULT_MAX_FRAME);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert_eq!(buf.capacity(), cap, "nothing reserved for the body");
    }

    #[test]
    fn allowed_length_does_not_reserve_the_body() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&(DEFAULT_MAX_FRAME as u32).to_be_bytes()[..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(buf.capacity() < 1024, "capacity {}", buf.capacity());
    }

    #[test]
    fn limit_applies_to_the_body_exactly() {
        let frame = Frame::Proof(vec![1; 32]);
        let len = encode(&mut FrameCodec::default(), &frame).len() - 4;
        let mut exact = FrameCodec::new(len);
        let mut buf = encode(&mut exact, &frame);
        assert_eq!(exact.decode(&mut buf).unwrap(), Some(frame.clone()));

        let mut small = FrameCodec::new(len - 1);
        let mut out = BytesMut::from(&b"kept"[..]);
        match small.encode(&frame, &mut out) {
            Err(WireError::TooLarge { len: l, max }) => assert_eq!((l, max), (len, len - 1)),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert_eq!(
            &out[..],
            b"kept",
            "a refused frame leaves the buffer as it was"
        );
        let mut buf = encode(&mut FrameCodec::default(), &frame);
        assert!(matches!(
            small.decode(&mut buf),
            Err(WireError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_body_is_garbage() {
        let mut codec = FrameCodec::default();
        for body in [&b"\xc1"[..], b"hello world", b"\x81\xa5Nopeh\xc0", b""] {
            let mut buf = BytesMut::new();
            buf.put_u32(body.len() as u32);
            buf.put_slice(body);
            assert!(
                matches!(codec.decode(&mut buf), Err(WireError::Garbage(_))),
                "body {body:?}"
            );
        }
    }

    #[test]
    fn trailing_bytes_are_garbage() {
        let mut codec = FrameCodec::default();
        let good = encode(&mut codec, &Frame::Msg(Msg::Left));
        // A whole value, the reserved marker, the start of an array cut short.
        for trailing in [&[0u8][..], &[0xc1], &[0x92], &[0x92, 1, 2]] {
            let mut buf = BytesMut::new();
            buf.put_u32((good.len() - 4 + trailing.len()) as u32);
            buf.put_slice(&good[4..]);
            buf.put_slice(trailing);
            assert!(
                matches!(codec.decode(&mut buf), Err(WireError::Garbage(_))),
                "{trailing:?}"
            );
        }
        let mut exact = BytesMut::from(&good[..]);
        assert!(matches!(
            codec.decode(&mut exact),
            Ok(Some(Frame::Msg(Msg::Left)))
        ));
    }

    #[test]
    fn eof_inside_a_frame_is_closed() {
        let mut codec = FrameCodec::default();
        let whole = encode(&mut codec, &Frame::Msg(snapshot()));
        let mut buf = BytesMut::from(&whole[..whole.len() - 1]);
        assert!(matches!(codec.decode_eof(&mut buf), Err(WireError::Closed)));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048),
                                       max in 0usize..4096) {
            let mut codec = FrameCodec::new(max);
            let mut buf = BytesMut::from(&bytes[..]);
            // Decode until the codec wants more bytes or reports an error.
            while let Ok(Some(_)) = codec.decode(&mut buf) {}
            let _ = codec.decode_eof(&mut buf);
        }

        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut codec = FrameCodec::default();
            let mut buf = BytesMut::new();
            buf.put_u32(body.len() as u32);
            buf.put_slice(&body);
            let _ = codec.decode(&mut buf);
        }

        #[test]
        fn mutated_frames_never_panic(idx in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut codec = FrameCodec::default();
            let mut wire = encode(&mut codec, &Frame::Msg(snapshot()));
            let i = idx.index(wire.len());
            wire[i] = byte;
            while let Ok(Some(_)) = codec.decode(&mut wire) {}
        }
    }
}
