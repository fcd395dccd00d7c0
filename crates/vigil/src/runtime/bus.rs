//! The event bus: the runtime task publishes every [`Change`]; subscribers (the library's
//! [`Subscription`](crate::Subscription)s, `GET /cluster/events`, the event handlers) each
//! read at their own pace.
//!
//! Publishing never waits: a `tokio::sync::broadcast` channel of [`CAPACITY`] changes, so a
//! reader that falls more than that behind is told how many it missed (then it asks for a
//! fresh view). Beside it, the last [`RECENT`] changes are kept so that an SSE client that
//! reconnects with `Last-Event-ID` gets what it missed ([`EventBus::since`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::event::{Change, Event};

/// Changes a subscriber may fall behind before it is told it lagged.
pub const CAPACITY: usize = 1024;
/// Changes kept for `Last-Event-ID` resumption.
pub const RECENT: usize = 1024;

/// Where the runtime publishes changes.
#[derive(Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<Change>>,
    recent: Mutex<VecDeque<Arc<Change>>>,
    last_id: AtomicU64,
    closed: CancellationToken,
}

/// `Last-Event-ID` named a change the bus no longer holds (or one of another start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooOld;

impl Default for EventBus {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl EventBus {
    /// A bus whose readers may fall `capacity` changes behind.
    pub fn with_capacity(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        EventBus {
            tx,
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            last_id: AtomicU64::new(0),
            closed: CancellationToken::new(),
        }
    }

    /// Numbers, dates and publishes `event` (only the runtime task calls this).
    pub fn publish(&self, event: Event, at: SystemTime) -> Arc<Change> {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let id = self.last_id.load(Ordering::Relaxed) + 1;
        let change = Arc::new(Change { id, at, event });
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(change.clone());
        self.last_id.store(id, Ordering::Relaxed);
        // no receiver is not an error: nobody listens yet
        let _ = self.tx.send(change.clone());
        change
    }

    /// The id of the last change published (0: none).
    pub fn last_id(&self) -> u64 {
        self.last_id.load(Ordering::Relaxed)
    }

    /// A receiver of every change published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// Whether anyone listens (the runtime skips work nobody would read).
    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// The changes after `id`, oldest first, if the bus still holds all of them.
    pub fn since(&self, id: u64) -> Result<Vec<Arc<Change>>, TooOld> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let last = self.last_id.load(Ordering::Relaxed);
        if id > last {
            return Err(TooOld);
        }
        let oldest = recent.front().map_or(last + 1, |c| c.id);
        if id + 1 < oldest {
            return Err(TooOld);
        }
        Ok(recent.iter().filter(|c| c.id > id).cloned().collect())
    }

    /// Marks the bus closed: the runtime stopped, no change will follow.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Resolves when the runtime stopped.
    pub fn closed(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.closed.cancelled()
    }

    /// Whether the runtime stopped.
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// A token cancelled when the runtime stops (for streams that own it).
    pub fn closed_token(&self) -> CancellationToken {
        self.closed.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Member, Status};

    fn joined(n: u64) -> Event {
        Event::MemberJoined(Member::new(format!("n{n}"), Status::Healthy, n))
    }

    #[test]
    fn last_event_id_resumes_within_the_window_and_not_beyond() {
        let bus = EventBus::default();
        for n in 1..=(RECENT as u64 + 10) {
            bus.publish(joined(n), SystemTime::now());
        }
        let last = bus.last_id();
        assert_eq!(last, RECENT as u64 + 10);
        let missed = bus.since(last - 3).unwrap();
        assert_eq!(
            missed.iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![last - 2, last - 1, last]
        );
        assert!(bus.since(last).unwrap().is_empty());
        // the oldest still held is 11: resuming after 10 is complete, after 9 is not
        assert_eq!(bus.since(10).unwrap().len(), RECENT);
        assert_eq!(bus.since(9), Err(TooOld));
        // an id from the future (another start of the process) is not trusted
        assert_eq!(bus.since(last + 1), Err(TooOld));
    }

    #[test]
    fn a_reader_that_falls_behind_is_told_how_many_it_missed() {
        let bus = EventBus::with_capacity(4);
        let mut rx = bus.subscribe();
        for n in 1..=10 {
            bus.publish(joined(n), SystemTime::now());
        }
        match rx.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(missed)) => assert_eq!(missed, 6),
            other => panic!("expected a lag, got {other:?}"),
        }
        assert_eq!(rx.try_recv().unwrap().id, 7);
    }
}
