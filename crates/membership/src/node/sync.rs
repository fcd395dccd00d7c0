//! Joining and anti-entropy.
//!
//! A joiner sends its record to its seeds; a seed answers with its whole table (paged
//! into datagrams). Afterwards most messages carry the sender's table summary (not a lease
//! grant, nor a heartbeat while its sender knows a leader and has no news: see
//! `node::send`); when it differs from ours, we start (at most once per anti-entropy
//! interval) a push-pull exchange: we send per-slice fingerprints, the peer answers with the
//! records of the slices that differ and its own fingerprints, and we answer with ours.
//! Seeds are probed every rejoin interval (every second while alone), so an isolated node
//! or a healed partition finds its way back.

use std::net::SocketAddr;
use std::time::Duration;

use rand::Rng as _;

use super::send::NEWS_ROUNDS;
use super::{Node, Output, Source};
use crate::codec::{self, Message, Sender, MAX_SLICES};
use crate::error::CommandError;
use crate::member::MemberRecord;

/// Most datagrams one sync answer may take (the rest waits for the next exchange).
const MAX_SYNC_DATAGRAMS: usize = 64;

/// Where this node finds the cluster and how it keeps its table in step.
#[derive(Debug)]
pub(super) struct SyncState {
    /// The seeds, this node's own address left out.
    pub seeds: Vec<SocketAddr>,
    /// When this node may found a cluster if it still knows no voter (see `decide`).
    pub bootstrap_at: Option<Duration>,
    /// Whether this node has received a table (a join answer or a sync) or founded the
    /// cluster: until then its view is partial and it claims no quorum.
    pub synced: bool,
    /// When the seeds are next contacted.
    pub next_seed_contact: Duration,
    /// When this node last started an anti-entropy exchange.
    pub last_sync: Option<Duration>,
    /// Where the next table transfer too large for one answer starts.
    pub cursor: usize,
}

impl Node {
    /// Slices to cut the table into so a digest fits one datagram and each slice stays small.
    fn slice_count(&self) -> usize {
        (self.table.len() / 8).next_power_of_two().clamp(1, 128)
    }

    pub(super) fn note_sender(
        &mut self,
        now: Duration,
        from: SocketAddr,
        sender: &Sender,
        out: &mut impl Output,
    ) {
        let Some(summary) = sender.summary else {
            return; // a heartbeat under a known leader, or a grant (see `node::send`)
        };
        if summary.0 == self.table.summary() as u32 {
            // Same table as a member that is ALIVE here: as good as a transfer from it.
            self.sync.synced |= self.inbound.credible;
            return;
        }
        self.hb_news.1 = NEWS_ROUNDS; // tables differ: say ours too (see `heartbeat_sender`)
        let due = self
            .sync
            .last_sync
            .is_none_or(|t| now.saturating_sub(t) >= self.config.anti_entropy_interval);
        if due {
            self.start_sync(now, from, out);
        }
    }

    pub(super) fn start_sync(&mut self, now: Duration, to: SocketAddr, out: &mut impl Output) {
        let ranges = self.table.slice_fingerprints(self.slice_count());
        let msg = Message::SyncDigest {
            from: self.sender(),
            ranges,
            reply: true,
        };
        let bytes = codec::encode(self.cluster, &msg);
        if !self.may_answer(bytes.len()) {
            // a stranger's datagram: no exchange with it, and none put off by it either
            return;
        }
        self.sync.last_sync = Some(now);
        self.stats.syncs_started += 1;
        self.send_encoded(to, msg.kind(), bytes, out);
    }

    pub(super) fn on_sync_digest(
        &mut self,
        _now: Duration,
        from: SocketAddr,
        ranges: &[u32],
        reply: bool,
        out: &mut impl Output,
    ) {
        let n = ranges.len();
        if n == 0 || n > MAX_SLICES || !n.is_power_of_two() {
            return;
        }
        let mine = self.table.slice_fingerprints(n);
        let differs: Vec<bool> = mine.iter().zip(ranges).map(|(a, b)| a != b).collect();
        if !differs.contains(&true) {
            return;
        }
        let budget = self.records_budget();
        let records = self.table.records_in_slices(n, &differs);
        let pages = Self::pages_from_cursor(&mut self.sync.cursor, records, budget);
        self.send_records(from, pages, out);
        if reply {
            let msg = Message::SyncDigest {
                from: self.sender(),
                ranges: mine,
                reply: false,
            };
            self.send(from, &msg, out);
        }
    }

    /// Bytes of records one `SyncRecords` datagram may carry.
    fn records_budget(&self) -> usize {
        let empty = Message::SyncRecords {
            from: self.sender(),
            records: Vec::new(),
        };
        self.piggyback_budget(&empty)
    }

    /// Cuts `records` into pages of at most `budget` encoded bytes, at most
    /// [`MAX_SYNC_DATAGRAMS`] of them, and returns them with the number of records walked.
    /// Only the records that go out are cloned: a join answer at 10,000 members sends about
    /// a tenth of the table.
    fn pages<'a>(
        records: impl IntoIterator<Item = &'a MemberRecord>,
        budget: usize,
    ) -> (Vec<Vec<MemberRecord>>, usize) {
        let mut pages = Vec::new();
        let mut page: Vec<MemberRecord> = Vec::new();
        let mut used = 0;
        let mut walked = 0;
        for r in records {
            let len = codec::record_len(r);
            if len > budget {
                walked += 1;
                continue; // cannot happen with bounded metadata; never send an oversize datagram
            }
            if used + len > budget {
                pages.push(std::mem::take(&mut page));
                used = 0;
                if pages.len() >= MAX_SYNC_DATAGRAMS {
                    return (pages, walked);
                }
            }
            used += len;
            page.push(r.clone());
            walked += 1;
        }
        if !page.is_empty() {
            pages.push(page);
        }
        (pages, walked)
    }

    /// The pages to send of `records` (sorted by id). When they do not all fit in
    /// [`MAX_SYNC_DATAGRAMS`] datagrams, the pages start where the previous capped answer
    /// stopped (wrapping around): always starting at the smallest id, a large table would
    /// send the same first thousand records again and again, which the peer already has,
    /// and the rest would never travel by anti-entropy (a 10,000-node cold start stalled
    /// with nodes knowing about half the cluster).
    fn pages_from_cursor(
        cursor: &mut usize,
        records: Vec<&MemberRecord>,
        budget: usize,
    ) -> Vec<Vec<MemberRecord>> {
        let (pages, walked) = Self::pages(records.iter().copied(), budget);
        if walked >= records.len() {
            return pages;
        }
        let start = *cursor % records.len();
        let (pages, walked) = Self::pages(
            records[start..].iter().chain(&records[..start]).copied(),
            budget,
        );
        *cursor = start + walked;
        pages
    }

    /// Sends each page of records to `to` in one datagram.
    pub(super) fn send_records(
        &mut self,
        to: SocketAddr,
        pages: Vec<Vec<MemberRecord>>,
        out: &mut impl Output,
    ) {
        for records in pages {
            let msg = Message::SyncRecords {
                from: self.sender(),
                records,
            };
            self.send(to, &msg, out);
        }
    }

    pub(super) fn on_join(
        &mut self,
        now: Duration,
        from: SocketAddr,
        record: MemberRecord,
        out: &mut impl Output,
    ) {
        if *record.id == *self.me {
            return;
        }
        if let Some(floor) = self
            .departed
            .floor(&record.id)
            .filter(|&f| record.generation <= f)
        {
            // A process whose clock went back below the life that ended here would knock in
            // vain: tell it, so that it comes back above the floor (see `node::departed`).
            self.stats.stale_lives += 1;
            let ended = MemberRecord {
                generation: floor,
                incarnation: 0,
                liveness: crate::member::Liveness::Removed,
                meta_version: 0,
                meta: Default::default(),
                voter: false,
                joining: false,
                ..record
            };
            let msg = Message::Gossip {
                from: self.sender(),
                updates: vec![codec::Update::Record(ended)],
            };
            self.send(from, &msg, out);
            return;
        }
        if !self.admissible(now, &record, Source::Gossip) {
            return; // refused (full table, oversize metadata): no table for it either
        }
        // Admission is the leader's (see `node::decide`).
        self.apply_record(now, &record, Source::Gossip, out);
        let budget = self.records_budget();
        let records = self.table.records().collect();
        let pages = Self::pages_from_cursor(&mut self.sync.cursor, records, budget);
        self.send_records(from, pages, out);
    }

    /// Replaces the seed list: the runtime re-resolves seed names (a headless Service's pods
    /// come and go) and hands the addresses here. This node's own address is dropped; when a
    /// seed is new, the seeds are contacted at the next timeout rather than a rejoin interval
    /// later. The first-seed bootstrap rule of [`Node::new`] is not applied again. Returns
    /// whether the list changed.
    pub fn set_seeds(&mut self, now: Duration, seeds: Vec<SocketAddr>) -> bool {
        let me = self.my_record().addr;
        let mut fresh: Vec<SocketAddr> = Vec::with_capacity(seeds.len());
        for s in seeds {
            if s != me && !fresh.contains(&s) {
                fresh.push(s);
            }
        }
        if fresh == self.sync.seeds {
            return false;
        }
        if fresh.iter().any(|s| !self.sync.seeds.contains(s)) {
            self.sync.next_seed_contact = self.sync.next_seed_contact.min(now);
        }
        self.sync.seeds = fresh;
        true
    }

    /// Operator join (`vigil join`): sends this node's join to each of `addrs` at once (each
    /// answers with its table, merging the two views) and keeps them as seeds, so that an
    /// address that does not answer yet is knocked on again while this node is alone.
    /// Returns the addresses contacted (own address and duplicates left out).
    pub fn join(
        &mut self,
        now: Duration,
        addrs: &[SocketAddr],
        out: &mut impl Output,
    ) -> Result<Vec<SocketAddr>, CommandError> {
        self.clock = self.clock.max(now);
        if self.left {
            return Err(CommandError::HasLeft);
        }
        let me = self.my_record().addr;
        let mut contacted = Vec::new();
        for addr in addrs {
            if *addr != me && !contacted.contains(addr) {
                contacted.push(*addr);
            }
        }
        let join = self.join_message(self.my_record().clone());
        for to in &contacted {
            self.send(*to, &join, out);
            if !self.sync.seeds.contains(to) {
                self.sync.seeds.push(*to);
            }
        }
        Ok(contacted)
    }

    /// Until this node is in a founded cluster (alone, or knowing no voter), knock on every
    /// seed each second; afterwards probe one seed per rejoin interval (a mismatching
    /// summary in its answer starts a sync).
    ///
    /// Members that started before their founder find each other first: they are not alone,
    /// but a cluster without a voter is nobody's. A probe would not get them in: the founder
    /// answers a stranger no more than it sent (see `Inbound::answer_budget`), and takes
    /// tables only from seated members, so only a join does.
    pub(super) fn contact_seeds(&mut self, now: Duration, out: &mut impl Output) {
        if now < self.sync.next_seed_contact || self.sync.seeds.is_empty() {
            return;
        }
        let alone = self.table.rings().len() <= 1 || self.table.voters() == 0;
        if alone {
            self.sync.next_seed_contact = now + Duration::from_secs(1);
            let join = self.join_message(self.my_record().clone());
            for to in self.sync.seeds.clone() {
                self.send(to, &join, out);
            }
        } else {
            self.sync.next_seed_contact = now + self.config.seed_rejoin_interval;
            let i = self.rng_index(self.sync.seeds.len());
            let to = self.sync.seeds[i];
            let msg = Message::Probe {
                from: self.sender(),
                nonce: self.rng.random(),
            };
            self.send(to, &msg, out);
        }
    }

    fn rng_index(&mut self, n: usize) -> usize {
        use rand::Rng;
        self.rng.random_range(0..n)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use super::*;
    use crate::member::{Liveness, Metadata};

    fn records(n: usize) -> Vec<MemberRecord> {
        (0..n)
            .map(|i| MemberRecord {
                id: format!("n{i:05}").into(),
                addr: "127.0.0.1:1".parse().unwrap(),
                generation: 1,
                incarnation: 0,
                liveness: Liveness::Alive,
                meta_version: 1,
                meta: Arc::new(Metadata::default()),
                voter: true,
                joining: false,
            })
            .collect()
    }

    #[test]
    fn a_table_that_fits_goes_out_whole_in_id_order() {
        let all = records(100);
        let mut cursor = 7;
        let pages = Node::pages_from_cursor(&mut cursor, all.iter().collect(), 1300);
        let sent: Vec<&MemberRecord> = pages.iter().flatten().collect();
        assert_eq!(sent, all.iter().collect::<Vec<_>>());
        assert_eq!(
            cursor, 7,
            "the cursor moves only for answers that do not fit"
        );
    }

    #[test]
    fn answers_too_large_for_one_go_carry_the_rest_of_the_table_in_turn() {
        let all = records(5000);
        let mut cursor = 0;
        let mut seen = BTreeSet::new();
        let mut answers = 0;
        while seen.len() < all.len() {
            let pages = Node::pages_from_cursor(&mut cursor, all.iter().collect(), 1300);
            assert_eq!(pages.len(), MAX_SYNC_DATAGRAMS);
            let before = seen.len();
            seen.extend(pages.iter().flatten().map(|r| r.id.clone()));
            assert!(seen.len() > before, "answer {answers} brought nothing new");
            answers += 1;
            assert!(answers < 20);
        }
    }
}
