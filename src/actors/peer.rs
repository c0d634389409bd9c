//! `PeerActor`: one per remote host. Owns the links to that host:
//!
//! - the **outbound** link, dialed here (handshake, then a writer task fed through a
//!   bounded channel). Frames queue while it is down; it is redialed with exponential
//!   backoff when there is something to send. Like Cassandra's internode messaging,
//!   each direction has its own connection, so there is no dial race to break.
//! - the **inbound** link that host dialed to us (handshaken by the [`HostActor`]),
//!   read by a task that hands every frame straight to the host actor.
//!
//! A link that delivers garbage, an oversized frame or a handshake frame after the
//! handshake is dropped with a logged reason; the node keeps serving.

use super::host::{dial, FramesDropped, FromPeer, HostActor, PeerList};
use super::UNBOUNDED_MAILBOX;
use crate::core::messages::Msg;
use crate::core::types::HostId;
use crate::wire::{Frame, FrameCodec, Local, PeerEntry, WireError};
use actix::prelude::*;
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

/// Frames kept for a peer whose link is down; older ones are dropped beyond this
/// (the core tolerates loss: replication resyncs, membership re-probes).
const MAX_QUEUED: usize = 100_000;
/// Batches in flight to the writer task.
const CHANNEL: usize = 1024;
/// Most frames read from an inbound link handed to the host actor in one message.
const MAX_FRAMES_PER_MESSAGE: usize = 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

pub struct PeerActor {
    entry: PeerEntry,
    local: Arc<Local>,
    owner: Addr<HostActor>,
    link: Option<mpsc::Sender<Vec<Frame>>>,
    /// Raised whenever the outbound link is replaced, so news of an old link's death
    /// does not take down a new one.
    link_gen: u64,
    connecting: bool,
    backoff: Duration,
    next_attempt: Instant,
    queue: VecDeque<Frame>,
    retry_scheduled: bool,
    inbound: Option<actix_rt::task::JoinHandle<()>>,
    outbound_reader: Option<actix_rt::task::JoinHandle<()>>,
    dropped: u64,
}

impl PeerActor {
    pub fn new(entry: PeerEntry, local: Arc<Local>, owner: Addr<HostActor>) -> Self {
        PeerActor {
            entry,
            local,
            owner,
            link: None,
            link_gen: 0,
            connecting: false,
            backoff: BACKOFF_MIN,
            next_attempt: Instant::now(),
            queue: VecDeque::new(),
            retry_scheduled: false,
            inbound: None,
            outbound_reader: None,
            dropped: 0,
        }
    }

    /// Hands queued frames to the writer, or dials when there is no link.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.queue.is_empty() {
            return;
        }
        match &self.link {
            Some(tx) => {
                let batch: Vec<Frame> = self.queue.drain(..).collect();
                match tx.try_send(batch) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(batch)) => {
                        // The socket is slower than we produce: keep the frames and try
                        // again shortly, instead of growing the channel without bound.
                        self.queue = batch.into();
                        self.schedule_retry(ctx, Duration::from_millis(2));
                    }
                    Err(mpsc::error::TrySendError::Closed(batch)) => {
                        self.queue = batch.into();
                        self.link_down(ctx, self.link_gen, None);
                    }
                }
            }
            None => self.connect(ctx),
        }
    }

    fn schedule_retry(&mut self, ctx: &mut Context<Self>, after: Duration) {
        if !self.retry_scheduled {
            self.retry_scheduled = true;
            ctx.run_later(after, |act, ctx| {
                act.retry_scheduled = false;
                act.flush(ctx);
            });
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.connecting {
            return;
        }
        let now = Instant::now();
        if now < self.next_attempt {
            self.schedule_retry(ctx, self.next_attempt - now);
            return;
        }
        self.connecting = true;
        let addr = self.entry.addrs.peer.clone();
        let local = self.local.clone();
        let fut = async move { dial(&addr, &local).await };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            act.connecting = false;
            match res {
                Ok((framed, hello)) if hello.host == act.entry.host => {
                    act.backoff = BACKOFF_MIN;
                    act.attach_outbound(ctx, framed);
                }
                Ok((_, hello)) => {
                    tracing::warn!(
                        peer = act.entry.host,
                        answered = hello.host,
                        addr = %act.entry.addrs.peer,
                        "another node answers at this peer's address"
                    );
                    act.failed_attempt(ctx);
                }
                Err(e) => {
                    match &e {
                        WireError::Io(_) | WireError::Timeout => {
                            tracing::debug!(peer = act.entry.host, error = %e, "dial failed")
                        }
                        _ => tracing::warn!(peer = act.entry.host, error = %e, "peer refused our handshake"),
                    }
                    act.failed_attempt(ctx);
                }
            }
        }));
    }

    fn failed_attempt(&mut self, ctx: &mut Context<Self>) {
        self.next_attempt = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        self.trim_queue();
        if !self.queue.is_empty() {
            let wait = self.next_attempt - Instant::now();
            self.schedule_retry(ctx, wait);
        }
    }

    fn trim_queue(&mut self) {
        while self.queue.len() > MAX_QUEUED {
            self.queue.pop_front();
            self.dropped += 1;
        }
        if self.dropped > 0 {
            self.owner
                .do_send(FramesDropped(std::mem::take(&mut self.dropped)));
        }
    }

    fn attach_outbound(&mut self, ctx: &mut Context<Self>, framed: Framed<TcpStream, FrameCodec>) {
        self.link_gen += 1;
        let gen = self.link_gen;
        let (mut sink, mut stream) = framed.split();
        let (tx, mut rx) = mpsc::channel::<Vec<Frame>>(CHANNEL);
        let me = ctx.address();
        let peer = self.entry.host;
        actix::spawn(async move {
            let result: Result<(), WireError> = async {
                while let Some(batch) = rx.recv().await {
                    for f in batch {
                        sink.feed(f).await?;
                    }
                    while let Ok(batch) = rx.try_recv() {
                        for f in batch {
                            sink.feed(f).await?;
                        }
                    }
                    sink.flush().await?;
                }
                Ok(())
            }
            .await;
            if let Err(e) = result {
                tracing::debug!(peer, error = %e, "outbound link write failed");
                me.do_send(LinkDown {
                    gen,
                    error: Some(e.to_string()),
                });
            }
        });
        // The other side never writes on this link; reading it tells us when it closes.
        let me = ctx.address();
        if let Some(old) = self.outbound_reader.take() {
            old.abort();
        }
        self.outbound_reader = Some(actix::spawn(async move {
            let error = match stream.next().await {
                None => None,
                Some(Ok(_)) => Some("unexpected frame on an outbound link".to_string()),
                Some(Err(e)) => Some(e.to_string()),
            };
            me.do_send(LinkDown { gen, error });
        }));
        self.link = Some(tx);
        self.flush(ctx);
    }

    fn link_down(&mut self, ctx: &mut Context<Self>, gen: u64, error: Option<String>) {
        if gen != self.link_gen || self.link.is_none() {
            return;
        }
        match error {
            Some(e) => tracing::info!(peer = self.entry.host, error = %e, "outbound link down"),
            None => tracing::info!(peer = self.entry.host, "outbound link closed by peer"),
        }
        self.link = None;
        self.next_attempt = Instant::now() + self.backoff;
        if !self.queue.is_empty() {
            self.schedule_retry(ctx, self.backoff);
        }
    }
}

impl Actor for PeerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(UNBOUNDED_MAILBOX);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(h) = self.inbound.take() {
            h.abort();
        }
        if let Some(h) = self.outbound_reader.take() {
            h.abort();
        }
    }
}

/// Frames for this peer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendFrames(pub Vec<Frame>);

impl Handler<SendFrames> for PeerActor {
    type Result = ();

    fn handle(&mut self, m: SendFrames, ctx: &mut Context<Self>) {
        self.queue.extend(m.0);
        if self.link.is_none() {
            self.trim_queue();
        }
        self.flush(ctx);
    }
}

/// Hands the messages read so far to the host actor, in one message.
fn deliver(owner: &Addr<HostActor>, from: HostId, msgs: &mut Vec<Msg>) {
    if !msgs.is_empty() {
        owner.do_send(FromPeer {
            from,
            msgs: std::mem::take(msgs),
        });
    }
}

/// A handshaken connection this peer dialed to us.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachInbound(pub Framed<TcpStream, FrameCodec>);

impl Handler<AttachInbound> for PeerActor {
    type Result = ();

    fn handle(&mut self, m: AttachInbound, _: &mut Context<Self>) {
        if let Some(old) = self.inbound.take() {
            old.abort();
        }
        let from = self.entry.host;
        let owner = self.owner.clone();
        let (_sink, mut stream) = StreamExt::split::<Frame>(m.0);
        self.inbound = Some(actix::spawn(async move {
            let _keep_open = _sink;
            // Every frame already decoded from what the socket had goes to the host
            // actor in one message, not one message per frame.
            while let Some(first) = stream.next().await {
                let mut msgs = Vec::new();
                let mut item = Some(first);
                while let Some(it) = item.take() {
                    match it {
                        Ok(Frame::Msg(msg)) => msgs.push(msg),
                        Ok(Frame::Peers(list)) => {
                            deliver(&owner, from, &mut msgs);
                            owner.do_send(PeerList(list));
                        }
                        Ok(other) => {
                            deliver(&owner, from, &mut msgs);
                            tracing::warn!(
                                peer = from,
                                frame = other.kind(),
                                "handshake frame after the handshake; dropping the link"
                            );
                            return;
                        }
                        Err(e) => {
                            deliver(&owner, from, &mut msgs);
                            tracing::warn!(peer = from, error = %e, "bad frame; dropping the link");
                            return;
                        }
                    }
                    if msgs.len() >= MAX_FRAMES_PER_MESSAGE {
                        deliver(&owner, from, &mut msgs);
                    }
                    // The next frame only if it is already there (decoded from the
                    // buffer, or readable without waiting).
                    item = stream.next().now_or_never().flatten();
                }
                deliver(&owner, from, &mut msgs);
            }
            tracing::debug!(peer = from, "inbound link closed");
        }));
    }
}

/// A handshaken connection we dialed (to a seed, before this actor existed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachOutbound(pub Framed<TcpStream, FrameCodec>);

impl Handler<AttachOutbound> for PeerActor {
    type Result = ();

    fn handle(&mut self, m: AttachOutbound, ctx: &mut Context<Self>) {
        self.attach_outbound(ctx, m.0);
    }
}

/// The peer restarted (new incarnation) or moved: drop the link, dial the new address.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateEntry(pub PeerEntry);

impl Handler<UpdateEntry> for PeerActor {
    type Result = ();

    fn handle(&mut self, m: UpdateEntry, ctx: &mut Context<Self>) {
        let moved = m.0.addrs.peer != self.entry.addrs.peer;
        let restarted = m.0.incarnation != self.entry.incarnation;
        self.entry = m.0;
        if moved || restarted {
            self.link_gen += 1;
            self.link = None;
            self.backoff = BACKOFF_MIN;
            self.next_attempt = Instant::now();
            self.flush(ctx);
        }
    }
}

/// The outbound link `gen` failed or closed.
#[derive(Message)]
#[rtype(result = "()")]
struct LinkDown {
    gen: u64,
    error: Option<String>,
}

impl Handler<LinkDown> for PeerActor {
    type Result = ();

    fn handle(&mut self, m: LinkDown, ctx: &mut Context<Self>) {
        self.link_down(ctx, m.gen, m.error);
    }
}
