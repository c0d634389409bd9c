//! The handshake that opens every peer connection: both sides check that they speak
//! the same protocol, belong to the same cluster with the same number of colonies, are
//! not the same host, and prove to each other that they know the cluster secret
//! without sending it.
//!
//! Each proof is an HMAC-SHA256 under the secret of a role label and the whole
//! transcript (the dialer's Hello, then the acceptor's, each with its fresh nonce), so
//! a proof is worthless in any other connection (replay: the other side's nonce is
//! new) and in the other role (reflection: the label differs). Because the transcript
//! covers every Hello field, a tampered Hello (e.g. forged advertised addresses) fails
//! the proof as well.

use super::error::WireError;
use super::frame::{Frame, FrameCodec, Hello};
use super::send::send;
use futures_util::StreamExt;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

/// The frame limit until the peer is authenticated: a Hello, a proof or a refusal is
/// small, so an unauthenticated peer cannot make us buffer a large frame.
pub const HANDSHAKE_MAX_FRAME: usize = 64 * 1024;

/// A reasonable bound on a whole handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The reason sent to a peer whose proof does not verify.
const BAD_SECRET: &str = "bad cluster secret";

/// What the dialer's proof is labelled with.
const DIAL: &[u8] = b"colony-dial";
/// What the acceptor's proof is labelled with.
const ACCEPT: &[u8] = b"colony-accept";

/// This host's side of every handshake.
#[derive(Clone)]
pub struct Local {
    /// Who I am. The nonce in it is ignored: every handshake draws a fresh one.
    pub hello: Hello,
    /// The cluster secret, shared by every host of the cluster.
    pub secret: Vec<u8>,
    /// The frame limit once the peer is authenticated.
    pub max_frame: usize,
    /// The bound on the whole handshake.
    pub timeout: Duration,
}

impl Local {
    /// With the default frame limit and handshake timeout.
    pub fn new(hello: Hello, secret: Vec<u8>) -> Local {
        Local {
            hello,
            secret,
            max_frame: super::frame::DEFAULT_MAX_FRAME,
            timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

impl fmt::Debug for Local {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Local")
            .field("hello", &self.hello)
            .field("secret", &"<redacted>")
            .field("max_frame", &self.max_frame)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Opens a connection I dialled: returns the framed stream (limit `local.max_frame`)
/// and the peer's Hello, or why the peer is not accepted.
pub async fn dial<S>(stream: S, local: &Local) -> Result<(Framed<S, FrameCodec>, Hello), WireError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    bounded(local.timeout, dial_steps(stream, local)).await
}

/// Opens a connection a peer dialled: returns the framed stream (limit
/// `local.max_frame`) and the peer's Hello, or why the peer is not accepted.
pub async fn accept<S>(
    stream: S,
    local: &Local,
) -> Result<(Framed<S, FrameCodec>, Hello), WireError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    bounded(local.timeout, accept_steps(stream, local)).await
}

async fn bounded<T>(
    limit: Duration,
    steps: impl std::future::Future<Output = Result<T, WireError>>,
) -> Result<T, WireError> {
    tokio::time::timeout(limit, steps)
        .await
        .unwrap_or(Err(WireError::Timeout))
}

async fn dial_steps<S>(
    stream: S,
    local: &Local,
) -> Result<(Framed<S, FrameCodec>, Hello), WireError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mine = fresh(&local.hello);
    let mut framed = Framed::new(stream, FrameCodec::new(handshake_limit(local)));
    send(&mut framed, &Frame::Hello(mine.clone())).await?;

    let theirs = match recv(&mut framed).await? {
        Frame::Hello(h) => h,
        other => return Err(unexpected(&mut framed, other, "hello").await),
    };
    if let Err(e) = check(&mine, &theirs) {
        return Err(refuse(&mut framed, e).await);
    }

    send(
        &mut framed,
        &Frame::Proof(prove(&local.secret, DIAL, &mine, &theirs)?),
    )
    .await?;
    match recv(&mut framed).await? {
        Frame::Proof(p) if verify(&local.secret, ACCEPT, &mine, &theirs, &p)? => {}
        Frame::Proof(_) => return Err(refuse(&mut framed, WireError::BadProof).await),
        other => return Err(unexpected(&mut framed, other, "proof").await),
    }

    framed.codec_mut().max = local.max_frame;
    Ok((framed, theirs))
}

async fn accept_steps<S>(
    stream: S,
    local: &Local,
) -> Result<(Framed<S, FrameCodec>, Hello), WireError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mine = fresh(&local.hello);
    let mut framed = Framed::new(stream, FrameCodec::new(handshake_limit(local)));

    let theirs = match recv(&mut framed).await? {
        Frame::Hello(h) => h,
        other => return Err(unexpected(&mut framed, other, "hello").await),
    };
    match check(&mine, &theirs) {
        Ok(()) => {}
        Err(WireError::SelfConnection) => {
            // Show the dialer my Hello too, so it learns the same thing for itself.
            let _ = send(&mut framed, &Frame::Hello(mine)).await;
            return Err(refuse(&mut framed, WireError::SelfConnection).await);
        }
        Err(e) => return Err(refuse(&mut framed, e).await),
    }
    send(&mut framed, &Frame::Hello(mine.clone())).await?;

    // The dialer proves first, so an unauthenticated dialer never sees a proof of ours.
    match recv(&mut framed).await? {
        Frame::Proof(p) if verify(&local.secret, DIAL, &theirs, &mine, &p)? => {}
        Frame::Proof(_) => return Err(refuse(&mut framed, WireError::BadProof).await),
        other => return Err(unexpected(&mut framed, other, "proof").await),
    }
    send(
        &mut framed,
        &Frame::Proof(prove(&local.secret, ACCEPT, &theirs, &mine)?),
    )
    .await?;

    framed.codec_mut().max = local.max_frame;
    Ok((framed, theirs))
}

fn handshake_limit(local: &Local) -> usize {
    HANDSHAKE_MAX_FRAME.min(local.max_frame)
}

/// My Hello with a fresh nonce.
fn fresh(hello: &Hello) -> Hello {
    let mut hello = hello.clone();
    rand::fill(&mut hello.nonce[..]);
    hello
}

/// The next frame; a frame that does not decode is refused.
async fn recv<S>(framed: &mut Framed<S, FrameCodec>) -> Result<Frame, WireError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match framed.next().await {
        Some(Ok(frame)) => Ok(frame),
        Some(Err(e @ (WireError::Garbage(_) | WireError::TooLarge { .. }))) => {
            Err(refuse(framed, e).await)
        }
        Some(Err(e)) => Err(e),
        None => Err(WireError::Closed),
    }
}

/// A frame other than `wanted`: the peer's refusal, or a protocol violation.
async fn unexpected<S>(framed: &mut Framed<S, FrameCodec>, got: Frame, wanted: &str) -> WireError
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match got {
        Frame::Refused(reason) => WireError::Refused(reason),
        other => {
            let e = WireError::Unexpected(format!("{} instead of {wanted}", other.kind()));
            refuse(framed, e).await
        }
    }
}

/// Tells the peer why I am closing (best effort: it may be gone already), and returns
/// the error for my caller.
async fn refuse<S>(framed: &mut Framed<S, FrameCodec>, e: WireError) -> WireError
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let reason = match &e {
        WireError::BadProof => BAD_SECRET.to_string(),
        other => other.to_string(),
    };
    let _ = send(framed, &Frame::Refused(reason)).await;
    e
}

/// Whether `theirs` may talk to `mine` (the same checks on both sides).
fn check(mine: &Hello, theirs: &Hello) -> Result<(), WireError> {
    if theirs.version != mine.version {
        return Err(WireError::WrongVersion {
            ours: mine.version,
            theirs: theirs.version,
        });
    }
    if theirs.cluster != mine.cluster {
        return Err(WireError::WrongCluster {
            ours: mine.cluster.clone(),
            theirs: theirs.cluster.clone(),
        });
    }
    if theirs.colonies != mine.colonies {
        return Err(WireError::WrongColonies {
            ours: mine.colonies,
            theirs: theirs.colonies,
        });
    }
    if theirs.host == mine.host {
        return Err(WireError::SelfConnection);
    }
    Ok(())
}

/// HMAC(secret, label || dialer's Hello || acceptor's Hello), every field length- or
/// width-delimited so that no two transcripts share an encoding.
fn mac(
    secret: &[u8],
    label: &[u8],
    dialer: &Hello,
    acceptor: &Hello,
) -> Result<Hmac<Sha256>, WireError> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .map_err(|e| WireError::Encode(format!("hmac key: {e}")))?;
    put_bytes(&mut mac, label);
    for h in [dialer, acceptor] {
        mac.update(&h.version.to_be_bytes());
        put_bytes(&mut mac, h.cluster.as_bytes());
        mac.update(&h.colonies.to_be_bytes());
        mac.update(&h.host.to_be_bytes());
        mac.update(&h.incarnation.to_be_bytes());
        put_bytes(&mut mac, h.addrs.peer.as_bytes());
        put_bytes(&mut mac, h.addrs.client.as_bytes());
        put_bytes(&mut mac, h.addrs.admin.as_bytes());
        mac.update(&h.nonce);
    }
    Ok(mac)
}

fn put_bytes(mac: &mut Hmac<Sha256>, bytes: &[u8]) {
    mac.update(&(bytes.len() as u64).to_be_bytes());
    mac.update(bytes);
}

fn prove(
    secret: &[u8],
    label: &[u8],
    dialer: &Hello,
    acceptor: &Hello,
) -> Result<Vec<u8>, WireError> {
    Ok(mac(secret, label, dialer, acceptor)?
        .finalize()
        .into_bytes()
        .to_vec())
}

/// Constant-time comparison of `proof` with the expected one.
fn verify(
    secret: &[u8],
    label: &[u8],
    dialer: &Hello,
    acceptor: &Hello,
    proof: &[u8],
) -> Result<bool, WireError> {
    Ok(mac(secret, label, dialer, acceptor)?
        .verify_slice(proof)
        .is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::messages::Msg;
    use crate::wire::frame::{Addrs, PeerEntry, PROTOCOL_VERSION};
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

    type Outcome = Result<(Framed<DuplexStream, FrameCodec>, Hello), WireError>;

    fn local(host: u32) -> Local {
        Local {
            hello: Hello {
                version: PROTOCOL_VERSION,
                cluster: "test".into(),
                colonies: 64,
                host,
                incarnation: host + 100,
                addrs: Addrs {
                    peer: format!("10.0.0.{host}:7000"),
                    client: format!("10.0.0.{host}:6379"),
                    admin: format!("10.0.0.{host}:8080"),
                },
                nonce: [0; 32],
            },
            secret: b"correct horse battery staple".to_vec(),
            max_frame: crate::wire::DEFAULT_MAX_FRAME,
            timeout: Duration::from_secs(5),
        }
    }

    async fn both(d: &Local, a: &Local) -> (Outcome, Outcome) {
        let (x, y) = duplex(1 << 16);
        tokio::join!(dial(x, d), accept(y, a))
    }

    fn same_but_nonce(got: &Hello, want: &Hello) -> bool {
        Hello {
            nonce: want.nonce,
            ..got.clone()
        } == *want
    }

    #[tokio::test]
    async fn both_sides_learn_each_other_and_then_talk() {
        let (d, a) = (local(1), local(2));
        let (dr, ar) = both(&d, &a).await;
        let (mut dconn, seen_by_dialer) = dr.expect("dialer succeeds");
        let (mut aconn, seen_by_acceptor) = ar.expect("acceptor succeeds");
        assert!(same_but_nonce(&seen_by_dialer, &a.hello));
        assert!(same_but_nonce(&seen_by_acceptor, &d.hello));
        assert_ne!(seen_by_dialer.nonce, [0; 32], "a fresh nonce was drawn");
        assert_ne!(seen_by_dialer.nonce, seen_by_acceptor.nonce);

        // After the handshake the full frame limit applies, both ways.
        let big = Frame::Msg(Msg::Swim(vec![7; 3 * HANDSHAKE_MAX_FRAME]));
        let peers = Frame::Peers(vec![PeerEntry {
            host: 1,
            incarnation: 101,
            addrs: d.hello.addrs.clone(),
        }]);
        let (sent, got) = tokio::join!(send(&mut dconn, &big), aconn.next());
        sent.unwrap();
        assert_eq!(got.unwrap().unwrap(), big);
        let (sent, got) = tokio::join!(send(&mut aconn, &peers), dconn.next());
        sent.unwrap();
        assert_eq!(got.unwrap().unwrap(), peers);
    }

    #[tokio::test]
    async fn wrong_secret_fails_on_both_sides() {
        let d = local(1);
        let mut a = local(2);
        a.secret = b"another secret".to_vec();
        let (dr, ar) = both(&d, &a).await;
        assert!(matches!(ar, Err(WireError::BadProof)), "{:?}", ar.err());
        match dr {
            Err(WireError::Refused(r)) => assert_eq!(r, BAD_SECRET),
            other => panic!("dialer: {:?}", other.err()),
        }
    }

    #[tokio::test]
    async fn wrong_version_is_refused() {
        let d = local(1);
        let mut a = local(2);
        a.hello.version = PROTOCOL_VERSION + 1;
        let (dr, ar) = both(&d, &a).await;
        assert!(matches!(
            ar,
            Err(WireError::WrongVersion { ours, theirs }) if ours == PROTOCOL_VERSION + 1 && theirs == PROTOCOL_VERSION
        ));
        assert!(matches!(dr, Err(WireError::Refused(_))));
    }

    #[tokio::test]
    async fn wrong_cluster_is_refused() {
        let d = local(1);
        let mut a = local(2);
        a.hello.cluster = "other".into();
        let (dr, ar) = both(&d, &a).await;
        assert!(matches!(
            ar,
            Err(WireError::WrongCluster { ref ours, ref theirs }) if ours == "other" && theirs == "test"
        ));
        match dr {
            Err(WireError::Refused(r)) => assert!(r.contains("cluster"), "{r}"),
            other => panic!("dialer: {:?}", other.err()),
        }
    }

    #[tokio::test]
    async fn wrong_colony_count_is_refused() {
        let d = local(1);
        let mut a = local(2);
        a.hello.colonies = 65;
        let (dr, ar) = both(&d, &a).await;
        assert!(matches!(
            ar,
            Err(WireError::WrongColonies {
                ours: 65,
                theirs: 64
            })
        ));
        assert!(matches!(dr, Err(WireError::Refused(_))));
    }

    #[tokio::test]
    async fn self_connection_is_detected_on_both_sides() {
        let me = local(1);
        let (dr, ar) = both(&me, &me).await;
        assert!(
            matches!(ar, Err(WireError::SelfConnection)),
            "{:?}",
            ar.err()
        );
        assert!(
            matches!(dr, Err(WireError::SelfConnection)),
            "{:?}",
            dr.err()
        );
    }

    #[tokio::test]
    async fn garbage_instead_of_hello() {
        let a = local(2);
        let (mut x, y) = duplex(1 << 16);
        let peer = async {
            x.write_all(&[0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o'])
                .await
                .unwrap();
            // The acceptor says why it closes.
            let mut rest = Vec::new();
            let _ = x.read_to_end(&mut rest).await;
            let mut buf = bytes::BytesMut::from(&rest[..]);
            tokio_util::codec::Decoder::decode(&mut FrameCodec::default(), &mut buf)
        };
        let (ar, refusal) = tokio::join!(accept(y, &a), peer);
        assert!(matches!(ar, Err(WireError::Garbage(_))), "{:?}", ar.err());
        assert!(matches!(refusal, Ok(Some(Frame::Refused(_)))));
    }

    #[tokio::test]
    async fn huge_frame_instead_of_hello() {
        let (d, a) = (local(1), local(2));
        let (mut x, y) = duplex(1 << 16);
        x.write_all(&(HANDSHAKE_MAX_FRAME as u32 + 1).to_be_bytes())
            .await
            .unwrap();
        let ar = accept(y, &a).await;
        assert!(
            matches!(ar, Err(WireError::TooLarge { .. })),
            "{:?}",
            ar.err()
        );

        // And the dialer side, against an acceptor that answers garbage.
        let (x, mut y) = duplex(1 << 16);
        let peer = async {
            let mut hello = [0u8; 512];
            let _ = y.read(&mut hello).await;
            y.write_all(b"\x00\x00\x00\x01\xc1").await.unwrap();
            y
        };
        let (dr, _y) = tokio::join!(dial(x, &d), peer);
        assert!(matches!(dr, Err(WireError::Garbage(_))), "{:?}", dr.err());
    }

    #[tokio::test]
    async fn proof_before_hello_is_unexpected() {
        let a = local(2);
        let (x, y) = duplex(1 << 16);
        let mut peer = Framed::new(x, FrameCodec::default());
        send(&mut peer, &Frame::Proof(vec![0; 32])).await.unwrap();
        let ar = accept(y, &a).await;
        assert!(
            matches!(ar, Err(WireError::Unexpected(_))),
            "{:?}",
            ar.err()
        );
        assert!(matches!(peer.next().await, Some(Ok(Frame::Refused(_)))));
    }

    #[tokio::test]
    async fn silent_peer_times_out() {
        let mut d = local(1);
        d.timeout = Duration::from_millis(100);
        let (x, _y) = duplex(1 << 16);
        assert!(matches!(dial(x, &d).await, Err(WireError::Timeout)));

        let mut a = local(2);
        a.timeout = Duration::from_millis(100);
        let (_x, y) = duplex(1 << 16);
        assert!(matches!(accept(y, &a).await, Err(WireError::Timeout)));
    }

    #[tokio::test]
    async fn peer_that_hangs_up_is_closed() {
        let a = local(2);
        let (x, y) = duplex(1 << 16);
        drop(x);
        assert!(matches!(accept(y, &a).await, Err(WireError::Closed)));
    }

    #[tokio::test]
    async fn a_replayed_dial_proof_is_refused() {
        // A recorded dial proof from an earlier handshake does not verify against the
        // acceptor's new nonce.
        let (d, a) = (local(1), local(2));
        let old_dialer = fresh(&d.hello);
        let old_acceptor = fresh(&a.hello);
        let recorded = prove(&d.secret, DIAL, &old_dialer, &old_acceptor).unwrap();

        let (x, y) = duplex(1 << 16);
        let mut attacker = Framed::new(x, FrameCodec::default());
        let replay = async {
            send(&mut attacker, &Frame::Hello(old_dialer.clone()))
                .await
                .unwrap();
            let _their_hello = attacker.next().await;
            send(&mut attacker, &Frame::Proof(recorded)).await.unwrap();
            attacker.next().await
        };
        let (ar, answer) = tokio::join!(accept(y, &a), replay);
        assert!(matches!(ar, Err(WireError::BadProof)), "{:?}", ar.err());
        assert!(matches!(answer, Some(Ok(Frame::Refused(_)))));
    }

    #[test]
    fn proofs_depend_on_role_nonces_and_every_field() {
        let (d, a) = (fresh(&local(1).hello), fresh(&local(2).hello));
        let s = b"s";
        let p = prove(s, DIAL, &d, &a).unwrap();
        assert_eq!(p.len(), 32);
        assert!(verify(s, DIAL, &d, &a, &p).unwrap());
        assert!(!verify(s, ACCEPT, &d, &a, &p).unwrap(), "no reflection");
        assert!(!verify(s, DIAL, &a, &d, &p).unwrap(), "roles are ordered");
        assert!(!verify(b"t", DIAL, &d, &a, &p).unwrap(), "secret matters");
        assert!(!verify(s, DIAL, &d, &a, &p[..31]).unwrap(), "short proof");
        assert!(!verify(s, DIAL, &d, &a, &[]).unwrap(), "empty proof");
        let mut other = a.clone();
        other.nonce[0] ^= 1;
        assert!(!verify(s, DIAL, &d, &other, &p).unwrap(), "nonce matters");
        let mut other = a.clone();
        other.addrs.peer = "6.6.6.6:7000".into();
        assert!(!verify(s, DIAL, &d, &other, &p).unwrap(), "addrs matter");
    }

    #[test]
    fn debug_redacts_the_secret() {
        let l = local(1);
        assert!(!format!("{l:?}").contains("horse"));
    }
}
