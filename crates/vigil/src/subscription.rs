//! [`Subscription`]: the stream of [`Update`]s behind [`Vigil::subscribe`](crate::Vigil::subscribe)
//! and `GET /cluster/events`.
//!
//! It reads the runtime's event bus through a broadcast receiver taken before anything else,
//! so nothing published after it started is missed; a snapshot carries the id of the last
//! change it includes, and changes up to that id are skipped after it, so nothing is seen
//! twice either. When the receiver lags (more than the bus's capacity behind), the
//! subscriber gets [`Update::Lagged`] then a fresh [`Update::Snapshot`], and the receiver
//! starts again at the tail.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::stream::{self, Stream};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::event::{Change, Member, Update, View};
use crate::runtime::{Handle, Snapshot};

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// With a snapshot of the view (the library's subscriptions).
    Snapshot,
    /// With the next change (an SSE client without `Last-Event-ID`).
    Now,
    /// With the changes after this id, or a snapshot when the bus no longer holds them all
    /// (an SSE client's `Last-Event-ID`).
    After(u64),
}

/// A stream of [`Update`]s: the view as a [`Update::Snapshot`] first, then one
/// [`Update::Change`] per change; never silently lossy (see [`Update::Lagged`]). Ends when
/// the node stops.
///
/// Read it with [`Subscription::recv`], or as a [`futures_util::Stream`].
///
/// ```no_run
/// # async fn example(node: vigil::Vigil) {
/// use vigil::Update;
///
/// let mut updates = node.subscribe();
/// while let Some(update) = updates.recv().await {
///     match update {
///         Update::Snapshot(view) => println!("{} members", view.members.len()),
///         Update::Change(c) => println!("{} {:?}", c.event.name(), c.event.member().map(|m| &m.id)),
///         Update::Lagged { missed } => println!("missed {missed} changes; a snapshot follows"),
///         _ => {}
///     }
/// }
/// # }
/// ```
pub struct Subscription {
    inner: Pin<Box<dyn Stream<Item = Update> + Send>>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

impl Subscription {
    pub(crate) fn new(handle: Handle, start: Start) -> Self {
        let rx = handle.bus.subscribe();
        let closed = handle.bus.closed_token();
        let mut reader = Reader {
            handle,
            rx,
            closed,
            pending: VecDeque::new(),
            last_seen: 0,
            need_snapshot: false,
        };
        match start {
            Start::Snapshot => reader.need_snapshot = true,
            // the receiver sees only what is published from now on
            Start::Now => {}
            Start::After(id) => match reader.handle.bus.since(id) {
                Ok(missed) => {
                    reader.last_seen = id;
                    reader
                        .pending
                        .extend(missed.iter().map(|c| Update::Change(Change::clone(c))));
                }
                Err(_) => reader.need_snapshot = true,
            },
        }
        let inner = stream::unfold(reader, |mut reader| async move {
            let update = reader.next().await?;
            Some((update, reader))
        });
        Subscription {
            inner: Box::pin(inner),
        }
    }

    /// The next update; `None` once the node stopped.
    pub async fn recv(&mut self) -> Option<Update> {
        std::future::poll_fn(|cx| self.inner.as_mut().poll_next(cx)).await
    }
}

impl Stream for Subscription {
    type Item = Update;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Update>> {
        self.inner.as_mut().poll_next(cx)
    }
}

struct Reader {
    handle: Handle,
    rx: broadcast::Receiver<Arc<Change>>,
    closed: CancellationToken,
    pending: VecDeque<Update>,
    /// The id of the last change delivered or included in a snapshot delivered.
    last_seen: u64,
    need_snapshot: bool,
}

impl Reader {
    async fn next(&mut self) -> Option<Update> {
        loop {
            if let Some(update) = self.pending.pop_front() {
                if let Update::Change(c) = &update {
                    self.last_seen = self.last_seen.max(c.id);
                }
                return Some(update);
            }
            if self.need_snapshot {
                self.need_snapshot = false;
                let snapshot = tokio::select! {
                    s = self.handle.snapshot() => s.ok()?,
                    _ = self.closed.cancelled() => return None,
                };
                self.last_seen = snapshot.last_change;
                return Some(Update::Snapshot(view_of(&snapshot)));
            }
            let received = tokio::select! {
                biased;
                r = self.rx.recv() => r,
                _ = self.closed.cancelled() => return None,
            };
            match received {
                Ok(change) if change.id > self.last_seen => {
                    self.last_seen = change.id;
                    return Some(Update::Change(Change::clone(&change)));
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => {
                    // What the receiver still holds is all older than the snapshot to come:
                    // start again at the tail, where the snapshot picks up.
                    self.rx = self.rx.resubscribe();
                    self.need_snapshot = true;
                    return Some(Update::Lagged { missed });
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// The public view of a runtime snapshot.
pub(crate) fn view_of(s: &Snapshot) -> View {
    View {
        self_id: s.view.self_id.to_string(),
        has_quorum: s.view.has_quorum,
        leader: s.view.leader.as_ref().map(ToString::to_string),
        members: s.view.members.iter().map(Member::from_view).collect(),
        last_change: s.last_change,
    }
}
