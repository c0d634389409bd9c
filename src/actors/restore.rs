//! `RestoreActor`: one per restore job (a shutdown file at start, a backup or a log
//! sent to `POST /restore`). It feeds saved cells into the cluster through the host
//! actor exactly as a client session would (`Command::Restore`, routed to each colony's
//! primary and replicated like any write), keeps a bounded number in flight, retries
//! the answers that mean "not now" (no primary yet, a colony moving, a timeout), and
//! reports its counts when every cell is answered.

use super::host::{new_client_id, ClientClosed, ClientId, ClientOpened, ClientRequests, HostActor};
use super::session::ClientReplies;
use crate::core::cell::{Cell, Command, CommandError, Key, Reply};
use actix::prelude::*;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::sync::oneshot;

/// Cells in flight at once.
const IN_FLIGHT: usize = 512;
/// Attempts per cell before it counts as failed.
const ATTEMPTS: u32 = 20;
/// Pause before a retry.
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// What a restore did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RestoreCounts {
    pub restored: u64,
    /// Not restored because their expiry had passed.
    pub skipped: u64,
    /// Refused for good, or still refused after every attempt.
    pub failed: u64,
}

pub struct RestoreActor {
    host: Addr<HostActor>,
    id: ClientId,
    queue: VecDeque<(Key, Cell, u32)>,
    in_flight: HashMap<u64, (Key, Cell, u32)>,
    next_tag: u64,
    /// Cells waiting for their retry timer.
    retrying: usize,
    counts: RestoreCounts,
    done: Option<oneshot::Sender<RestoreCounts>>,
}

impl RestoreActor {
    /// Starts restoring `cells`; the counts arrive on the returned receiver.
    pub fn run(host: Addr<HostActor>, cells: Vec<(Key, Cell)>) -> oneshot::Receiver<RestoreCounts> {
        let (tx, rx) = oneshot::channel();
        RestoreActor {
            host,
            id: new_client_id(),
            queue: cells.into_iter().map(|(k, c)| (k, c, 0)).collect(),
            in_flight: HashMap::new(),
            next_tag: 0,
            retrying: 0,
            counts: RestoreCounts::default(),
            done: Some(tx),
        }
        .start();
        rx
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        let mut reqs = Vec::new();
        while self.in_flight.len() < IN_FLIGHT {
            let Some((key, cell, attempts)) = self.queue.pop_front() else {
                break;
            };
            let tag = self.next_tag;
            self.next_tag += 1;
            let cmd = Command::Restore {
                key: key.clone(),
                dna: cell.dna.clone(),
                expires_at: cell.expires_at,
            };
            reqs.push((cmd, tag));
            self.in_flight.insert(tag, (key, cell, attempts + 1));
        }
        if !reqs.is_empty() {
            self.host.do_send(ClientRequests {
                client: self.id,
                reqs,
            });
        }
        if self.queue.is_empty() && self.in_flight.is_empty() && self.retrying == 0 {
            if let Some(done) = self.done.take() {
                let _ = done.send(self.counts);
            }
            ctx.stop();
        }
    }
}

impl Actor for RestoreActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.host.do_send(ClientOpened {
            client: self.id,
            reply_to: ctx.address().recipient(),
            session: false,
        });
        self.pump(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.host.do_send(ClientClosed {
            client: self.id,
            session: false,
        });
    }
}

impl Handler<ClientReplies> for RestoreActor {
    type Result = ();

    fn handle(&mut self, m: ClientReplies, ctx: &mut Context<Self>) {
        for (tag, reply) in m.0 {
            self.answer(ctx, tag, reply);
        }
        self.pump(ctx);
    }
}

impl RestoreActor {
    /// One cell's answer; the caller pumps afterwards.
    fn answer(&mut self, ctx: &mut Context<Self>, tag: u64, reply: Reply) {
        let Some((key, cell, attempts)) = self.in_flight.remove(&tag) else {
            return;
        };
        match reply {
            Reply::Int(0) => self.counts.skipped += 1,
            Reply::Int(_) | Reply::Ok => self.counts.restored += 1,
            Reply::Error(
                CommandError::NoPrimary(_)
                | CommandError::Timeout
                | CommandError::Busy(_)
                | CommandError::NoQuorum,
            ) if attempts < ATTEMPTS => {
                self.retrying += 1;
                ctx.run_later(RETRY_AFTER, move |act, ctx| {
                    act.retrying -= 1;
                    act.queue.push_back((key, cell, attempts));
                    act.pump(ctx);
                });
            }
            other => {
                tracing::warn!(key = %String::from_utf8_lossy(&key), reply = ?other, "cell not restored");
                self.counts.failed += 1;
            }
        }
    }
}
