//! A sorted set of member slots (small integers naming a member in one table), kept in
//! blocks of a few hundred: the table's id order, its voter index and the rings.
//!
//! A `BTreeSet<u64>` spends about 17 bytes per element; these blocks spend about 6 (a
//! `u32` at roughly 70 % fill). The order is not stored: the caller passes a comparison that
//! looks the key up by slot (an id string, a ring position), so one set costs the same
//! whatever it is sorted by. Inserting moves at most one block, so a set of 10,000 slots
//! costs a binary search and a short `memmove`, not a shift of the whole set.

use std::cmp::Ordering;

/// Elements per block before it splits in two.
const BLOCK: usize = 512;

/// A place in a [`SortedSlots`]: a block and an index inside it. `block == blocks.len()`
/// is the end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor {
    block: usize,
    index: usize,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct SortedSlots {
    /// Never an empty block; each sorted, and every block before the next.
    blocks: Vec<Vec<u32>>,
    len: usize,
}

impl SortedSlots {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first place whose slot is not `before` the target: `before` must be true for a
    /// prefix of the set and false after it (as for `slice::partition_point`).
    pub fn partition_point(&self, before: impl Fn(u32) -> bool) -> Cursor {
        let block = self.blocks.partition_point(|b| before(b[b.len() - 1]));
        let index = match self.blocks.get(block) {
            Some(b) => b.partition_point(|s| before(*s)),
            None => 0,
        };
        Cursor { block, index }
    }

    /// The slot at `at`, if `at` is not the end.
    pub fn get(&self, at: Cursor) -> Option<u32> {
        self.blocks.get(at.block).map(|b| b[at.index])
    }

    /// Where a slot comparing as `cmp` would go, and the slot already there if it compares
    /// equal. `cmp(s)` orders slot `s` relative to the one sought.
    pub fn find(&self, cmp: impl Fn(u32) -> Ordering) -> (Cursor, Option<u32>) {
        let at = self.partition_point(|s| cmp(s) == Ordering::Less);
        let found = self.get(at).filter(|s| cmp(*s) == Ordering::Equal);
        (at, found)
    }

    /// Inserts `slot`; `cmp(s)` orders slot `s` relative to it. Returns false, changing
    /// nothing, if a slot comparing equal is already there.
    pub fn insert(&mut self, slot: u32, cmp: impl Fn(u32) -> Ordering) -> bool {
        let (at, found) = self.find(cmp);
        if found.is_some() {
            return false;
        }
        self.len += 1;
        if self.blocks.is_empty() {
            self.blocks.push(vec![slot]);
            return true;
        }
        let (b, i) = if at.block == self.blocks.len() {
            let last = self.blocks.len() - 1;
            (last, self.blocks[last].len())
        } else {
            (at.block, at.index)
        };
        let block = &mut self.blocks[b];
        block.insert(i, slot);
        if block.len() > BLOCK {
            // Two blocks with room for BLOCK + 1 each, so neither reallocates again.
            let mut head = Vec::with_capacity(BLOCK + 1);
            let mut tail = Vec::with_capacity(BLOCK + 1);
            head.extend_from_slice(&block[..block.len() / 2]);
            tail.extend_from_slice(&block[block.len() / 2..]);
            *block = head;
            self.blocks.insert(b + 1, tail);
        }
        true
    }

    /// Removes the slot comparing equal (`cmp` as for [`SortedSlots::insert`]), if any.
    pub fn remove(&mut self, cmp: impl Fn(u32) -> Ordering) -> Option<u32> {
        let (at, found) = self.find(cmp);
        let slot = found?;
        self.remove_at(at);
        Some(slot)
    }

    fn remove_at(&mut self, at: Cursor) {
        self.len -= 1;
        let b = at.block;
        self.blocks[b].remove(at.index);
        if self.blocks[b].is_empty() {
            self.blocks.remove(b);
            return;
        }
        // Fold a block that fell below a quarter into its successor when both fit in one.
        if self.blocks[b].len() < BLOCK / 4
            && b + 1 < self.blocks.len()
            && self.blocks[b].len() + self.blocks[b + 1].len() <= BLOCK
        {
            let next = self.blocks.remove(b + 1);
            self.blocks[b].extend_from_slice(&next);
        }
    }

    /// Every slot, in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = u32> + '_ {
        self.blocks.iter().flatten().copied()
    }

    /// The slots before `at` and the slots from `at` on, both in order.
    pub fn split(
        &self,
        at: Cursor,
    ) -> (
        impl DoubleEndedIterator<Item = u32> + '_,
        impl DoubleEndedIterator<Item = u32> + '_,
    ) {
        let whole = at.block.min(self.blocks.len());
        let (head, tail): (&[u32], &[u32]) = match self.blocks.get(at.block) {
            Some(b) => b.split_at(at.index),
            None => (&[], &[]),
        };
        let before = self.blocks[..whole].iter().flatten().chain(head).copied();
        let after = tail
            .iter()
            .chain(
                self.blocks[(at.block + 1).min(self.blocks.len())..]
                    .iter()
                    .flatten(),
            )
            .copied();
        (before, after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::mix;

    fn key(s: u32) -> u64 {
        mix(u64::from(s))
    }

    #[test]
    fn keeps_the_order_of_a_btree_through_inserts_and_removes() {
        let mut set = SortedSlots::default();
        let mut model = std::collections::BTreeSet::new();
        for s in 0..5000u32 {
            assert!(set.insert(s, |o| key(o).cmp(&key(s))));
            model.insert(key(s));
        }
        assert!(!set.insert(7, |o| key(o).cmp(&key(7))), "already there");
        for s in (0..5000u32).filter(|s| s % 3 != 0) {
            assert_eq!(set.remove(|o| key(o).cmp(&key(s))), Some(s));
            model.remove(&key(s));
        }
        assert_eq!(set.remove(|o| key(o).cmp(&key(1))), None);
        assert_eq!(set.len(), model.len());
        let got: Vec<u64> = set.iter().map(key).collect();
        let want: Vec<u64> = model.iter().copied().collect();
        assert_eq!(got, want);
        let probe = key(4242);
        let at = set.partition_point(|o| key(o) <= probe);
        let (before, after) = set.split(at);
        let before: Vec<u64> = before.map(key).collect();
        let after: Vec<u64> = after.map(key).collect();
        assert_eq!(before, model.range(..=probe).copied().collect::<Vec<_>>());
        assert_eq!(after, model.range(probe + 1..).copied().collect::<Vec<_>>());
    }

    #[test]
    fn split_at_the_ends() {
        let mut set = SortedSlots::default();
        let (b, a) = set.split(set.partition_point(|_| true));
        assert_eq!((b.count(), a.count()), (0, 0));
        for s in 0..10u32 {
            set.insert(s, |o| o.cmp(&s));
        }
        let (b, a) = set.split(set.partition_point(|_| true));
        assert_eq!((b.count(), a.count()), (10, 0));
        let (b, a) = set.split(set.partition_point(|_| false));
        assert_eq!((b.count(), a.count()), (0, 10));
    }
}
