//! `SessionActor`: one per client connection on the RESP port.
//!
//! Reads commands (RESP2 multibulk or inline), answers node-level ones itself (PING,
//! ECHO, INFO, COLONY, ...), submits the rest to the [`HostActor`] as core commands,
//! splitting multi-key ones (MGET, DEL k1 k2, EXISTS, MSET) into one command per key,
//! and writes the answers back **in request order** whatever order they come back in,
//! so pipelining works. A protocol error is answered with `-ERR Protocol error` and the
//! connection is closed, as Redis does; the node is not affected.

use super::host::{
    new_client_id, ClientClosed, ClientId, ClientOpened, ClientRequests, GetCounters, GetStatus,
    HostActor, Locate,
};
use crate::core::cell::{Blob, Command, Reply, SetCond};
use crate::resp::{self, ClientCommand, RespCodec, RespError, RespValue};
use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use tokio::io::WriteHalf;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

/// Low bits of a request tag: which part of a split command it answers.
const PART_BITS: u32 = 24;

pub struct SessionActor {
    host: Addr<HostActor>,
    id: ClientId,
    peer: SocketAddr,
    writer: FramedWrite<RespValue, WriteHalf<TcpStream>, RespCodec>,
    /// The seq of the next command read.
    next_seq: u64,
    /// The seq of the oldest command not yet answered on the wire.
    next_out: u64,
    /// Commands `next_out..next_seq` in order: how a single command's reply is
    /// presented, and each answer that came before the ones ahead of it.
    pending: VecDeque<Slot>,
    gathers: HashMap<u64, Gather>,
    /// No more commands are read: close once all are answered.
    quitting: bool,
    closed: bool,
    outgoing: Vec<(Command, u64)>,
    flush_scheduled: bool,
}

/// One command read and not yet written back.
struct Slot {
    /// A single-key command's adapter; `None` for the rest (answered whole).
    adapt: Option<resp::ReplyAdapt>,
    answer: Option<RespValue>,
}

/// A multi-key command waiting for its parts.
struct Gather {
    kind: GatherKind,
    parts: Vec<Option<Reply>>,
    left: usize,
}

#[derive(Clone, Copy)]
enum GatherKind {
    /// MGET: an array of values (nil for missing or non-string cells).
    Values,
    /// DEL / EXISTS: the sum of the parts' integers.
    Sum,
    /// MSET: OK when every part is OK.
    AllOk,
}

impl SessionActor {
    /// Starts a session on an accepted connection.
    pub fn start(stream: TcpStream, peer: SocketAddr, host: Addr<HostActor>) -> Addr<Self> {
        let _ = stream.set_nodelay(true);
        let (read, write) = tokio::io::split(stream);
        SessionActor::create(move |ctx| {
            ctx.add_stream(FramedRead::new(read, RespCodec::default()));
            SessionActor {
                host,
                id: new_client_id(),
                peer,
                writer: FramedWrite::new(write, RespCodec::default(), ctx),
                next_seq: 0,
                next_out: 0,
                pending: VecDeque::new(),
                gathers: HashMap::new(),
                quitting: false,
                closed: false,
                outgoing: Vec::new(),
                flush_scheduled: false,
            }
        })
    }

    /// A seq for the command just read, answered in its turn.
    fn open(&mut self, adapt: Option<resp::ReplyAdapt>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push_back(Slot {
            adapt,
            answer: None,
        });
        seq
    }

    /// The slot of command `seq`, if it is still waiting.
    fn slot(&mut self, seq: u64) -> Option<&mut Slot> {
        let i = usize::try_from(seq.checked_sub(self.next_out)?).ok()?;
        self.pending.get_mut(i)
    }

    fn answer(&mut self, seq: u64, value: RespValue) {
        if let Some(slot) = self.slot(seq) {
            slot.answer.get_or_insert(value);
        }
        while self.pending.front().is_some_and(|s| s.answer.is_some()) {
            if let Some(v) = self.pending.pop_front().and_then(|s| s.answer) {
                self.writer.write(v);
            }
            self.next_out += 1;
        }
        self.close_if_done();
    }

    /// Answer command `seq` with what `fut` yields once it completes (`None`: the host
    /// actor is gone).
    fn answer_later(
        &mut self,
        ctx: &mut Context<Self>,
        seq: u64,
        fut: impl std::future::Future<Output = Option<RespValue>> + 'static,
    ) {
        ctx.spawn(fut.into_actor(self).map(move |v, act, _| {
            act.answer(seq, v.unwrap_or_else(shutting_down));
        }));
    }

    /// After QUIT, a protocol error or the client's end of input: once every command
    /// read so far is answered, flush and close (the writer's end stops the actor).
    fn close_if_done(&mut self) {
        if self.quitting && !self.closed && self.next_out == self.next_seq {
            self.closed = true;
            self.writer.close();
        }
    }

    /// Queues a command for the host; the queue goes out as one message once the
    /// commands already read are parsed (a pipelined burst costs one host message).
    fn submit(&mut self, ctx: &mut Context<Self>, seq: u64, part: u64, cmd: Command) {
        self.outgoing.push((cmd, (seq << PART_BITS) | part));
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.notify(FlushRequests);
        }
    }

    fn gather(&mut self, ctx: &mut Context<Self>, seq: u64, kind: GatherKind, cmds: Vec<Command>) {
        self.gathers.insert(
            seq,
            Gather {
                kind,
                parts: vec![None; cmds.len()],
                left: cmds.len(),
            },
        );
        for (i, cmd) in cmds.into_iter().enumerate() {
            self.submit(ctx, seq, i as u64, cmd);
        }
    }

    fn command(&mut self, ctx: &mut Context<Self>, args: Vec<Blob>) {
        if self.quitting {
            return;
        }
        let cmd = match resp::parse(args) {
            Ok(c) => c,
            Err(text) => {
                let seq = self.open(None);
                return self.answer(seq, RespValue::Error(text));
            }
        };
        let adapt = match &cmd {
            ClientCommand::Core(_, adapt) => Some(*adapt),
            _ => None,
        };
        let seq = self.open(adapt);
        match cmd {
            ClientCommand::Core(cmd, _) => self.submit(ctx, seq, 0, cmd),
            ClientCommand::MGet(keys) => {
                let cmds = keys.into_iter().map(|key| Command::Get { key }).collect();
                self.gather(ctx, seq, GatherKind::Values, cmds);
            }
            ClientCommand::Del(keys) => {
                let cmds = keys.into_iter().map(|key| Command::Del { key }).collect();
                self.gather(ctx, seq, GatherKind::Sum, cmds);
            }
            ClientCommand::Exists(keys) => {
                let cmds = keys
                    .into_iter()
                    .map(|key| Command::Exists { key })
                    .collect();
                self.gather(ctx, seq, GatherKind::Sum, cmds);
            }
            ClientCommand::MSet(pairs) => {
                let cmds = pairs
                    .into_iter()
                    .map(|(key, value)| Command::Set {
                        key,
                        value,
                        ttl_ms: None,
                        cond: SetCond::Always,
                    })
                    .collect();
                self.gather(ctx, seq, GatherKind::AllOk, cmds);
            }
            ClientCommand::Quit => {
                self.quitting = true;
                self.answer(seq, RespValue::ok());
            }
            ClientCommand::Info(section) => {
                let host = self.host.clone();
                self.answer_later(ctx, seq, async move {
                    let status = host.send(GetStatus).await.ok()?.0;
                    let counters = host.send(GetCounters).await.ok()?.0;
                    let text = crate::admin::info::render(&status, &counters, section.as_deref());
                    Some(RespValue::Bulk(text.into()))
                });
            }
            ClientCommand::Cluster(sub) if sub.needs_status() => {
                let host = self.host.clone();
                self.answer_later(ctx, seq, async move {
                    let status = host.send(GetStatus).await.ok()?.0;
                    Some(resp::cluster_reply(&sub, &status))
                });
            }
            ClientCommand::Colony(key) => {
                let fut = self.host.send(Locate(key));
                self.answer_later(ctx, seq, async move {
                    let l = fut.await.ok()?;
                    Some(RespValue::Array(vec![
                        RespValue::Bulk(b"colony".into()),
                        RespValue::Int(i64::from(l.colony)),
                        RespValue::Bulk(b"epoch".into()),
                        opt_bulk(l.epoch),
                        RespValue::Bulk(b"primary".into()),
                        l.primary
                            .map_or(RespValue::Nil, |p| RespValue::Int(i64::from(p))),
                        RespValue::Bulk(b"primary-client".into()),
                        opt_bulk(l.primary_client),
                        RespValue::Bulk(b"secondaries".into()),
                        RespValue::Array(
                            l.secondaries
                                .iter()
                                .map(|s| RespValue::Int(i64::from(*s)))
                                .collect(),
                        ),
                    ]))
                });
            }
            other => {
                let v = resp::local_reply(&other);
                self.answer(seq, v);
            }
        }
    }
}

/// The answer when the host actor is gone.
fn shutting_down() -> RespValue {
    RespValue::Error("ERR node is shutting down".into())
}

fn opt_bulk(s: Option<String>) -> RespValue {
    s.map_or(RespValue::Nil, |s| RespValue::Bulk(s.into()))
}

fn combine(kind: GatherKind, parts: Vec<Option<Reply>>) -> RespValue {
    let parts: Vec<Reply> = parts.into_iter().map(|p| p.unwrap_or(Reply::Nil)).collect();
    match kind {
        GatherKind::Values => {
            let mut out = Vec::with_capacity(parts.len());
            for p in parts {
                out.push(match p {
                    Reply::Bulk(b) => RespValue::Bulk(b),
                    Reply::Error(e) if !matches!(e, crate::core::cell::CommandError::WrongType) => {
                        return RespValue::Error(e.to_string())
                    }
                    _ => RespValue::Nil,
                });
            }
            RespValue::Array(out)
        }
        GatherKind::Sum => {
            let mut sum = 0i64;
            for p in parts {
                match p {
                    Reply::Int(n) => sum += n,
                    Reply::Error(e) => return RespValue::Error(e.to_string()),
                    _ => {}
                }
            }
            RespValue::Int(sum)
        }
        GatherKind::AllOk => {
            for p in parts {
                if let Reply::Error(e) = p {
                    return RespValue::Error(e.to_string());
                }
            }
            RespValue::ok()
        }
    }
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        tracing::debug!(peer = %self.peer, "client connected");
        self.host.do_send(ClientOpened {
            client: self.id,
            reply_to: ctx.address().recipient(),
            session: true,
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        tracing::debug!(peer = %self.peer, "client disconnected");
        self.host.do_send(ClientClosed {
            client: self.id,
            session: true,
        });
    }
}

impl StreamHandler<Result<Vec<Blob>, RespError>> for SessionActor {
    fn handle(&mut self, item: Result<Vec<Blob>, RespError>, ctx: &mut Context<Self>) {
        match item {
            Ok(args) => self.command(ctx, args),
            Err(RespError::Protocol(why)) => {
                tracing::info!(peer = %self.peer, error = %why, "client protocol error; closing the connection");
                if self.quitting {
                    return;
                }
                let seq = self.open(None);
                self.quitting = true;
                self.answer(seq, RespValue::Error(format!("ERR {why}")));
            }
            Err(e) => {
                tracing::debug!(peer = %self.peer, error = %e, "client read failed");
                ctx.stop();
            }
        }
    }

    /// The client finished sending (EOF): answer what it sent, then close.
    fn finished(&mut self, _: &mut Context<Self>) {
        self.quitting = true;
        self.close_if_done();
    }
}

impl WriteHandler<RespError> for SessionActor {
    fn error(&mut self, err: RespError, _: &mut Context<Self>) -> Running {
        tracing::debug!(peer = %self.peer, error = %err, "client write failed");
        Running::Stop
    }
}

/// Answers to [`ClientRequests`]: `(tag, reply)`, every one the host produced in one
/// step for this client.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClientReplies(pub Vec<(u64, Reply)>);

impl Handler<ClientReplies> for SessionActor {
    type Result = ();

    fn handle(&mut self, m: ClientReplies, _: &mut Context<Self>) {
        for (tag, reply) in m.0 {
            self.reply(tag, reply);
        }
    }
}

impl SessionActor {
    /// The answer to the command (or the part of a split command) `tag`.
    fn reply(&mut self, tag: u64, reply: Reply) {
        let seq = tag >> PART_BITS;
        let part = (tag & ((1 << PART_BITS) - 1)) as usize;
        let single = self
            .slot(seq)
            .filter(|s| s.answer.is_none())
            .and_then(|s| s.adapt);
        if let Some(adapt) = single {
            let v = resp::adapt_reply(adapt, &reply);
            return self.answer(seq, v);
        }
        let Some(g) = self.gathers.get_mut(&seq) else {
            return;
        };
        if let Some(slot) = g.parts.get_mut(part) {
            if slot.is_none() {
                *slot = Some(reply);
                g.left -= 1;
            }
        }
        if g.left == 0 {
            if let Some(g) = self.gathers.remove(&seq) {
                let v = combine(g.kind, g.parts);
                self.answer(seq, v);
            }
        }
    }
}

/// Send the commands queued by `submit`.
#[derive(Message)]
#[rtype(result = "()")]
struct FlushRequests;

impl Handler<FlushRequests> for SessionActor {
    type Result = ();

    fn handle(&mut self, _: FlushRequests, _: &mut Context<Self>) {
        self.flush_scheduled = false;
        if !self.outgoing.is_empty() {
            self.host.do_send(ClientRequests {
                client: self.id,
                reqs: std::mem::take(&mut self.outgoing),
            });
        }
    }
}
