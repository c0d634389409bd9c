//! `EventBus`: the node's event log for `/events` and `colony watch`.
//!
//! Keeps the last [`RING`] events with ids, so a client that reconnects with
//! `Last-Event-ID` gets what it missed, and fans new events out to live subscribers.
//! Ids are `<incarnation>-<n>`: after a restart the numbering starts again under a new
//! incarnation, and a client resuming from an older incarnation gets the whole ring.

use crate::core::events::Event;
use actix::prelude::*;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Events kept for resuming clients.
pub const RING: usize = 10_000;
/// Events a slow subscriber may lag behind before it is dropped.
const SUBSCRIBER_BUFFER: usize = 4_096;

/// One event as it goes out: its id and its JSON line.
#[derive(Clone, Debug)]
pub struct Stamped {
    pub id: String,
    pub json: Arc<str>,
}

pub struct EventBus {
    incarnation: u32,
    next: u64,
    ring: VecDeque<(u64, Arc<str>)>,
    subscribers: Vec<mpsc::Sender<Stamped>>,
}

impl EventBus {
    pub fn new(incarnation: u32) -> Self {
        EventBus {
            incarnation,
            next: 1,
            ring: VecDeque::with_capacity(1024),
            subscribers: Vec::new(),
        }
    }

    fn stamp(&self, n: u64, json: &Arc<str>) -> Stamped {
        Stamped {
            id: format!("{}-{n}", self.incarnation),
            json: json.clone(),
        }
    }

    /// The ring position after `last_event_id`, or the whole ring when it is from
    /// another incarnation or unreadable.
    fn resume_after(&self, last_event_id: Option<&str>) -> u64 {
        let Some((inc, n)) = last_event_id.and_then(|s| s.split_once('-')) else {
            return 0;
        };
        match (inc.parse::<u32>(), n.parse::<u64>()) {
            (Ok(inc), Ok(n)) if inc == self.incarnation => n,
            _ => 0,
        }
    }
}

impl Actor for EventBus {
    type Context = Context<Self>;
}

/// New events from the host.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub Vec<Event>);

impl Handler<Publish> for EventBus {
    type Result = ();

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
        for event in msg.0 {
            let json: Arc<str> = match serde_json::to_string(&event) {
                Ok(s) => s.into(),
                Err(e) => {
                    tracing::warn!(error = %e, "event not serialisable");
                    continue;
                }
            };
            let n = self.next;
            self.next += 1;
            if self.ring.len() == RING {
                self.ring.pop_front();
            }
            self.ring.push_back((n, json.clone()));
            let stamped = self.stamp(n, &json);
            self.subscribers.retain(|s| match s.try_send(stamped.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!("dropping an event subscriber that fell {SUBSCRIBER_BUFFER} events behind");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        }
    }
}

/// Subscribe to the stream: the backlog after `last_event_id` (everything kept when
/// `None`... unless `backlog` is false), then live events on the receiver.
#[derive(Message)]
#[rtype(result = "Subscription")]
pub struct Subscribe {
    pub last_event_id: Option<String>,
    /// Whether to replay the ring when there is no `last_event_id`.
    pub backlog: bool,
}

#[derive(MessageResponse)]
pub struct Subscription {
    pub backlog: Vec<Stamped>,
    pub live: mpsc::Receiver<Stamped>,
}

impl Handler<Subscribe> for EventBus {
    type Result = Subscription;

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> Subscription {
        let after = match (&msg.last_event_id, msg.backlog) {
            (Some(id), _) => self.resume_after(Some(id)),
            (None, true) => 0,
            (None, false) => u64::MAX,
        };
        let backlog = self
            .ring
            .iter()
            .filter(|(n, _)| *n > after)
            .map(|(n, j)| self.stamp(*n, j))
            .collect();
        let (tx, live) = mpsc::channel(SUBSCRIBER_BUFFER);
        self.subscribers.push(tx);
        Subscription { backlog, live }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::events::EventKind;

    fn ev(member: u32) -> Event {
        Event {
            t: 1,
            host: 1,
            kind: EventKind::HostJoined { member },
        }
    }

    #[actix_rt::test]
    async fn resumes_after_the_last_event_id_and_streams_live_events() {
        let bus = EventBus::new(42).start();
        bus.send(Publish(vec![ev(1), ev(2), ev(3)])).await.unwrap();
        let sub = bus
            .send(Subscribe {
                last_event_id: Some("42-1".into()),
                backlog: true,
            })
            .await
            .unwrap();
        let ids: Vec<_> = sub.backlog.iter().map(|s| s.id.clone()).collect();
        assert_eq!(ids, vec!["42-2", "42-3"]);
        let mut live = sub.live;
        bus.send(Publish(vec![ev(4)])).await.unwrap();
        let next = live.recv().await.unwrap();
        assert_eq!(next.id, "42-4");
        assert!(
            next.json.contains("\"event\":\"host_joined\""),
            "{}",
            next.json
        );
        // Another incarnation's id: the whole ring.
        let sub = bus
            .send(Subscribe {
                last_event_id: Some("41-3".into()),
                backlog: true,
            })
            .await
            .unwrap();
        assert_eq!(sub.backlog.len(), 4);
        let sub = bus
            .send(Subscribe {
                last_event_id: None,
                backlog: false,
            })
            .await
            .unwrap();
        assert!(sub.backlog.is_empty());
    }
}
