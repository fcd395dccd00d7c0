//! The virtual clock's agenda: everything that will happen, ordered by (time, sequence).
//!
//! Ties at the same instant are broken by insertion order, so a run depends only on the
//! seed and never on heap internals.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

/// A min-queue of items keyed by virtual time, FIFO among equal times.
#[derive(Debug)]
pub struct Agenda<T> {
    heap: BinaryHeap<Entry<T>>,
    seq: u64,
}

#[derive(Debug)]
struct Entry<T> {
    at: Duration,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<T> Eq for Entry<T> {}

impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Entry<T> {
    /// Reversed, so that std's max-heap pops the earliest entry first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl<T> Default for Agenda<T> {
    fn default() -> Self {
        Agenda {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<T> Agenda<T> {
    /// An empty agenda.
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules `item` at virtual time `at`.
    pub fn push(&mut self, at: Duration, item: T) {
        self.seq += 1;
        self.heap.push(Entry {
            at,
            seq: self.seq,
            item,
        });
    }

    /// When the next item is due, if any.
    pub fn next_at(&self) -> Option<Duration> {
        self.heap.peek().map(|e| e.at)
    }

    /// Removes and returns the earliest item.
    pub fn pop(&mut self) -> Option<(Duration, T)> {
        self.heap.pop().map(|e| (e.at, e.item))
    }

    /// Number of scheduled items.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_order_and_fifo_among_ties() {
        let mut a = Agenda::new();
        a.push(Duration::from_millis(5), "late");
        a.push(Duration::from_millis(1), "first");
        a.push(Duration::from_millis(1), "second");
        assert_eq!(a.next_at(), Some(Duration::from_millis(1)));
        let order: Vec<_> = std::iter::from_fn(|| a.pop().map(|(_, x)| x)).collect();
        assert_eq!(order, ["first", "second", "late"]);
    }
}
