//! The broadcast queue: news waiting to be piggybacked on outgoing messages.
//!
//! Each update is sent at most `limit` times (the caller passes `mult * ceil(log10(n+1))`),
//! least-sent first and newest first among equals, so fresh news overtakes old news and
//! a burst cannot starve it. A newer update about the same thing replaces the older one
//! and starts again from zero sends.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::codec::{update_len, Update};
use crate::member::NodeId;

/// What an update is about; a newer update with the same key replaces the older one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UpdateKey {
    /// A member's record.
    Record(Arc<str>),
    /// One accuser's accusation of one subject.
    Accuse(NodeId, NodeId),
}

impl UpdateKey {
    /// The key of an update.
    pub fn of(u: &Update) -> Self {
        match u {
            Update::Record(r) => UpdateKey::Record(r.id.clone()),
            Update::Accuse { subject, by, .. } => UpdateKey::Accuse(subject.clone(), by.clone()),
        }
    }
}

#[derive(Debug)]
struct Item {
    update: Update,
    len: usize,
    sends: u32,
    seq: u64,
}

/// Pending broadcasts.
#[derive(Debug, Default)]
pub struct BroadcastQueue {
    items: HashMap<UpdateKey, Item>,
    order: BTreeSet<(u32, Reverse<u64>, UpdateKey)>,
    next_seq: u64,
}

impl BroadcastQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of pending updates.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues `update`, replacing any pending update with the same key. When more than
    /// `cap` updates are pending, the most-sent (then oldest) ones are dropped: in a mass
    /// event (a cold start of a thousand nodes) rumor mongering would resend every record a
    /// dozen times per node, and anti-entropy carries bulk state far more cheaply.
    pub fn push_capped(&mut self, update: Update, cap: usize) {
        self.push(update);
        while self.items.len() > cap.max(1) {
            let Some(last) = self.order.iter().next_back().cloned() else {
                break;
            };
            self.remove(&last.2);
        }
    }

    /// Queues `update`, replacing any pending update with the same key.
    pub fn push(&mut self, update: Update) {
        let key = UpdateKey::of(&update);
        self.remove(&key);
        self.next_seq += 1;
        let item = Item {
            len: update_len(&update),
            update,
            sends: 0,
            seq: self.next_seq,
        };
        self.order.insert((0, Reverse(item.seq), key.clone()));
        self.items.insert(key, item);
    }

    /// Drops the pending update with this key, if any.
    pub fn remove(&mut self, key: &UpdateKey) {
        if let Some(old) = self.items.remove(key) {
            self.order
                .remove(&(old.sends, Reverse(old.seq), key.clone()));
        }
    }

    /// Keeps only the pending updates for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Update) -> bool) {
        let dropped: Vec<UpdateKey> = self
            .items
            .iter()
            .filter(|(_, item)| !keep(&item.update))
            .map(|(key, _)| key.clone())
            .collect();
        for key in dropped {
            self.remove(&key);
        }
    }

    /// Takes updates worth at most `budget` encoded bytes for one message, counting a send
    /// for each; updates sent `limit` times are dropped. `still_news` filters out updates
    /// that became obsolete while queued (they are dropped).
    pub fn take(
        &mut self,
        budget: usize,
        limit: u32,
        mut still_news: impl FnMut(&Update) -> bool,
    ) -> Vec<Update> {
        let mut out = Vec::new();
        let mut used = 0usize;
        let mut picked: Vec<(u32, Reverse<u64>, UpdateKey)> = Vec::new();
        let mut obsolete: Vec<UpdateKey> = Vec::new();
        for entry in &self.order {
            let item = &self.items[&entry.2];
            if !still_news(&item.update) {
                obsolete.push(entry.2.clone());
                continue;
            }
            if used + item.len > budget {
                // smaller items further down may still fit; stop after a few misses
                if out.len() > 8 || used + 16 > budget {
                    break;
                }
                continue;
            }
            used += item.len;
            out.push(item.update.clone());
            picked.push(entry.clone());
        }
        for key in obsolete {
            self.remove(&key);
        }
        for entry in picked {
            self.order.remove(&entry);
            let (sends, seq, key) = entry;
            let sends = sends + 1;
            if sends >= limit {
                self.items.remove(&key);
            } else if let Some(item) = self.items.get_mut(&key) {
                item.sends = sends;
                self.order.insert((sends, seq, key));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accuse(subject: &str, by: &str, inc: u64) -> Update {
        Update::Accuse {
            subject: subject.into(),
            generation: 1,
            incarnation: inc,
            by: by.into(),
        }
    }

    #[test]
    fn each_update_is_sent_limit_times_then_dropped() {
        let mut q = BroadcastQueue::new();
        q.push(accuse("a", "b", 0));
        for _ in 0..3 {
            assert_eq!(q.take(1000, 3, |_| true).len(), 1);
        }
        assert!(q.take(1000, 3, |_| true).is_empty());
        assert!(q.is_empty());
    }

    #[test]
    fn newer_update_replaces_older_with_same_key() {
        let mut q = BroadcastQueue::new();
        q.push(accuse("a", "b", 0));
        q.push(accuse("a", "b", 1));
        assert_eq!(q.len(), 1);
        assert_eq!(q.take(1000, 3, |_| true), vec![accuse("a", "b", 1)]);
    }

    #[test]
    fn least_sent_goes_first_and_budget_is_respected() {
        let mut q = BroadcastQueue::new();
        q.push(accuse("old", "x", 0));
        q.take(1000, 10, |_| true);
        q.push(accuse("new", "x", 0));
        let one = update_len(&accuse("new", "x", 0));
        assert_eq!(q.take(one, 10, |_| true), vec![accuse("new", "x", 0)]);
    }

    #[test]
    fn a_full_queue_drops_the_most_sent_first() {
        let mut q = BroadcastQueue::new();
        q.push_capped(accuse("a", "x", 0), 2);
        q.take(1000, 10, |_| true);
        q.push_capped(accuse("b", "x", 0), 2);
        q.push_capped(accuse("c", "x", 0), 2);
        assert_eq!(q.len(), 2);
        let left = q.take(1000, 10, |_| true);
        assert!(left.contains(&accuse("b", "x", 0)) && left.contains(&accuse("c", "x", 0)));
    }

    #[test]
    fn obsolete_updates_are_dropped() {
        let mut q = BroadcastQueue::new();
        q.push(accuse("a", "b", 0));
        assert!(q.take(1000, 10, |_| false).is_empty());
        assert!(q.is_empty());
    }
}
