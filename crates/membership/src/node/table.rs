//! The member table and the indexes derived from it (rings, voters, reachable voters,
//! pending evictions, tombstones, the summary fingerprint), kept in step in one place.
//!
//! Every node holds a record of every member, so at N members the cluster holds N² of
//! them: the per-member cost here decides how large a simulated cluster fits in memory.
//! Hence each member gets a slot (a `u32`) when it enters the table, and every large index
//! holds slots: the id order, the voters and the rings are [`SortedSlots`] (about 6 bytes
//! per member each), the id lookup a hash table of slots (about 8). The record itself is a
//! pointer into a [`RecordPool`], which nodes of one process may share: the record every
//! node holds of a member is then one value, not one per node. Per-member state that only
//! few members have (failed, tombstoned, heartbeating this node) stays in maps by id.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use hashbrown::HashTable;

use crate::member::{mix, Liveness, MemberRecord, MergeOutcome};
use crate::pool::RecordPool;
use crate::ring::{id_hash, RingMembers, Rings};
use crate::slots::SortedSlots;

use super::seats::{Seat, Seats};

/// Slices kept incrementally: the most a digest may have ([`crate::codec::MAX_SLICES`]).
const SLICES: usize = crate::codec::MAX_SLICES;

/// One member in the table.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The record, pooled (immutable: a change pools a new value).
    pub record: Arc<MemberRecord>,
    /// Last news from the member itself (a heartbeat, or a newer record it issued: ALIVE or
    /// LEFT), in nanoseconds; [`NEVER`] if none. An accusation others issued (SUSPECT,
    /// FAILED, REMOVED) is news *about* the member and leaves it alone.
    /// Eight bytes where an `Option<Duration>` takes sixteen: 800 MB at 10,000 nodes.
    heard_ns: u64,
}

/// `heard_ns` of a member never heard from.
const NEVER: u64 = u64::MAX;

impl Entry {
    fn new(record: Arc<MemberRecord>, now: Duration) -> Self {
        let mut e = Entry {
            record,
            heard_ns: NEVER,
        };
        if e.record.issued_by_member() {
            e.heard(now);
        }
        e
    }

    /// Last fresh news of this member (heartbeat or newer record).
    pub fn last_heard(&self) -> Option<Duration> {
        (self.heard_ns != NEVER).then_some(Duration::from_nanos(self.heard_ns))
    }

    /// Notes fresh news at `now` (times past 584 years after the epoch saturate).
    pub fn heard(&mut self, now: Duration) {
        self.heard_ns = u64::try_from(now.as_nanos()).map_or(NEVER - 1, |n| n.min(NEVER - 1));
    }
}

/// What one merge changed.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub old: Option<MemberRecord>,
    pub new: MemberRecord,
}

/// The first eight bytes of `id`, zero-padded, as a big-endian number: ids whose prefixes
/// differ compare as their prefixes do.
fn id_prefix(id: &str) -> u64 {
    let mut b = [0u8; 8];
    let n = id.len().min(8);
    b[..n].copy_from_slice(&id.as_bytes()[..n]);
    u64::from_be_bytes(b)
}

/// The members by slot: what the rings and the sorted indexes look keys up in.
#[derive(Debug, Default)]
struct Slots {
    entries: Vec<Option<Entry>>,
    /// [`id_hash`] of each slot's id: the id lookup, the ring positions and the slices.
    hashes: Vec<u64>,
    /// The first eight bytes of each slot's id ([`id_prefix`]): most comparisons of ids
    /// are decided here, one read instead of three pointers to follow.
    prefixes: Vec<u64>,
    /// Slots whose member was forgotten, reused first.
    free: Vec<u32>,
}

impl Slots {
    fn entry(&self, slot: u32) -> &Entry {
        // invariant: indexes hold only occupied slots
        self.entries[slot as usize]
            .as_ref()
            .expect("indexed slot is occupied")
    }

    fn record(&self, slot: u32) -> &MemberRecord {
        &self.entry(slot).record
    }

    /// Orders a slot's id relative to `id`.
    fn by_id<'a>(&'a self, id: &'a str) -> impl Fn(u32) -> Ordering + 'a {
        let prefix = id_prefix(id);
        move |s| {
            self.prefixes[s as usize]
                .cmp(&prefix)
                .then_with(|| (*self.record(s).id).cmp(id))
        }
    }

    fn occupy(&mut self, entry: Entry, hash: u64) -> u32 {
        let prefix = id_prefix(&entry.record.id);
        if let Some(slot) = self.free.pop() {
            self.entries[slot as usize] = Some(entry);
            self.hashes[slot as usize] = hash;
            self.prefixes[slot as usize] = prefix;
            return slot;
        }
        // grow by an eighth, not double: at 10,000 members a doubled vector would leave
        // up to half its room unused in every node
        let len = self.entries.len();
        if len == self.entries.capacity() {
            let more = (len / 8).max(8);
            self.entries.reserve_exact(more);
            self.hashes.reserve_exact(more);
            self.prefixes.reserve_exact(more);
        }
        self.entries.push(Some(entry));
        self.hashes.push(hash);
        self.prefixes.push(prefix);
        u32::try_from(len).expect("fewer than 2^32 members")
    }
}

impl RingMembers for Slots {
    fn hash(&self, slot: u32) -> u64 {
        self.hashes[slot as usize]
    }

    fn zone(&self, slot: u32) -> &str {
        &self.record(slot).meta.zone
    }

    fn id(&self, slot: u32) -> &Arc<str> {
        &self.record(slot).id
    }
}

#[derive(Debug)]
pub(crate) struct Table {
    slots: Slots,
    /// Slots by id (hashed with [`id_hash`]).
    lookup: HashTable<u32>,
    /// Every slot, sorted by id: records go out in this order.
    order: SortedSlots,
    rings: Rings,
    summary: u64,
    /// The summary cut into [`SLICES`] slices by id hash, kept in step with it: a digest of
    /// any power-of-two slice count up to [`SLICES`] folds these instead of fingerprinting
    /// the whole table.
    slices: Box<[u32; SLICES]>,
    /// Voters, sorted by id.
    voters: SortedSlots,
    /// Voters that are Alive (a count: membership is read from the record).
    reachable: usize,
    pub non_voters: BTreeSet<Arc<str>>,
    /// Members admitted but not yet voters (see [`MemberRecord::joining`]), not ended.
    pub joining: BTreeSet<Arc<str>>,
    pub failed_since: BTreeMap<Arc<str>, Duration>,
    pub tombstones: BTreeMap<Arc<str>, Duration>,
    /// (generation, sequence) of the newest heartbeat taken from each member that sent one:
    /// a replayed or reordered older one must not count as a sign of life. Only members
    /// that heartbeat this node (its subjects, about K) appear here.
    pub heartbeats: HashMap<Arc<str>, (u64, u64)>,
    pool: RecordPool,
    alive: usize,
    /// Bumped whenever the set of live members (the rings) changes.
    pub ring_epoch: u64,
    /// The digest of the seats and the configuration adopted (see `node::seats`).
    pub seats: Seats,
}

/// The rings, with the table to name their members: what the node asks about monitoring.
pub(crate) struct RingView<'a> {
    rings: &'a Rings,
    slots: &'a Slots,
    table: &'a Table,
}

impl<'a> RingView<'a> {
    /// Number of members on the rings.
    pub fn len(&self) -> usize {
        self.rings.len()
    }

    /// Whether `id` is on the rings.
    pub fn contains(&self, id: &str) -> bool {
        self.table.slot(id).is_some_and(|s| self.rings.contains(s))
    }

    /// Every member on the rings (in no particular order).
    pub fn members(&self) -> impl Iterator<Item = &'a str> + 'a {
        let slots = self.slots;
        self.rings.members().map(|s| &*slots.record(s).id)
    }

    /// The member at or after `position` on the first ring.
    pub fn random(&self, position: u64) -> Option<&'a str> {
        self.rings
            .random(position, self.slots)
            .map(|s| &*self.slots.record(s).id)
    }

    /// The observers of `subject` (which need not be on the rings itself).
    pub fn observers(&self, subject: &str, subject_zone: &str) -> Vec<Arc<str>> {
        self.rings
            .observers(id_hash(subject), subject_zone, self.slots)
            .into_iter()
            .map(|s| self.slots.record(s).id.clone())
            .collect()
    }

    /// Members clockwise from `subject` on the first ring, once around: who stands in
    /// for its observers when they cannot be heard from (see `node::witness`).
    pub fn successors(&self, subject: &str) -> impl Iterator<Item = &'a Arc<str>> + 'a {
        let slots = self.slots;
        self.rings
            .successors(id_hash(subject), slots)
            .map(move |s| &slots.record(s).id)
    }

    /// The id of the member on the rings with ring hash `b` ([`crate::ring::ring_hash`]).
    pub fn id_of(&self, b: u64) -> Option<&'a Arc<str>> {
        let slots = self.slots;
        let rings = self.rings;
        self.table
            .lookup
            .find(mix(b), |s| {
                slots.hashes[*s as usize] == b && rings.contains(*s)
            })
            .map(|s| &slots.record(*s).id)
    }

    /// The whole monitoring graph, by ring hash (see [`Rings::watch_graph`]).
    pub fn watch_graph(&self) -> crate::ring::WatchGraph {
        self.rings.watch_graph(self.slots)
    }

    /// The members `me` should watch, sorted by id.
    pub fn subjects(&self, me: &str) -> Vec<Arc<str>> {
        self.rings
            .subjects(id_hash(me), self.slots)
            .into_iter()
            .map(|s| self.slots.record(s).id.clone())
            .collect()
    }
}

impl Table {
    pub fn new(observers: usize) -> Self {
        Table {
            slots: Slots::default(),
            lookup: HashTable::new(),
            order: SortedSlots::default(),
            rings: Rings::new(observers),
            summary: 0,
            slices: Box::new([0; SLICES]),
            voters: SortedSlots::default(),
            reachable: 0,
            non_voters: BTreeSet::new(),
            joining: BTreeSet::new(),
            failed_since: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            heartbeats: HashMap::new(),
            pool: RecordPool::default(),
            alive: 0,
            ring_epoch: 0,
            seats: Seats::default(),
        }
    }

    /// Keeps records from now on in `pool` (shared with other tables of this process).
    pub fn share_pool(&mut self, pool: RecordPool) {
        self.pool = pool;
    }

    fn slot(&self, id: &str) -> Option<u32> {
        let h = id_hash(id);
        let slots = &self.slots;
        self.lookup
            .find(mix(h), |s| {
                let known: &str = &slots.record(*s).id;
                // decoded ids are shared (see `member::shared_str`): same address, same id
                std::ptr::eq(known, id) || known == id
            })
            .copied()
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.slot(id).map(|s| self.slots.entry(s))
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Entry> {
        let s = self.slot(id)?;
        self.slots.entries[s as usize].as_mut()
    }

    /// Every entry, sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.order.iter().map(|s| self.slots.entry(s))
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// The rings, naming members by id.
    pub fn rings(&self) -> RingView<'_> {
        RingView {
            rings: &self.rings,
            slots: &self.slots,
            table: self,
        }
    }

    pub fn summary(&self) -> u64 {
        self.summary
    }

    pub fn alive(&self) -> usize {
        self.alive
    }

    pub fn voters(&self) -> usize {
        self.voters.len()
    }

    /// Voter ids, smallest first.
    pub fn voter_ids(&self) -> impl Iterator<Item = &Arc<str>> {
        self.voters.iter().map(|s| &self.slots.record(s).id)
    }

    /// Number of voters this table shows Alive.
    pub fn reachable_voters(&self) -> usize {
        self.reachable
    }

    /// Whether `id` is a voter this table shows Alive.
    pub fn is_reachable_voter(&self, id: &str) -> bool {
        self.get(id).is_some_and(|e| {
            Self::counts_as_voter(&e.record) && e.record.liveness == Liveness::Alive
        })
    }

    fn counts_as_voter(r: &MemberRecord) -> bool {
        r.voter && !matches!(r.liveness, Liveness::Left | Liveness::Removed)
    }

    /// Tombstones stay out of summaries: nodes collect them at different times, and a
    /// newcomer need not learn of departures older than itself. They still travel in the
    /// records of a slice that differs, which is how stale gossip gets corrected.
    fn summarized(r: &MemberRecord) -> bool {
        !matches!(r.liveness, Liveness::Left | Liveness::Removed)
    }

    /// Adds `r` to the summary and its slice, or takes it out (XOR).
    fn toggle_summary(&mut self, r: &MemberRecord, hash: u64) {
        let fp = r.fingerprint();
        self.summary ^= fp;
        self.slices[Self::slice_of_hash(hash, SLICES)] ^= fp as u32;
    }

    fn in_non_voters(r: &MemberRecord) -> bool {
        r.liveness == Liveness::Alive && !Self::counts_as_voter(r) && !r.joining
    }

    fn in_joining(r: &MemberRecord) -> bool {
        r.joining && !r.voter && !matches!(r.liveness, Liveness::Left | Liveness::Removed)
    }

    /// Whether `id` holds a voter seat here (FAILED and SUSPECT voters too).
    pub fn is_voter(&self, id: &str) -> bool {
        self.get(id)
            .is_some_and(|e| Self::counts_as_voter(&e.record))
    }

    /// Takes record `r`, which was in `slot`, out of the indexes, except the sorted ones
    /// the record `next` about to be indexed stays in (a search saved).
    fn unindex(&mut self, slot: u32, r: &MemberRecord, next: Option<&MemberRecord>) {
        if Self::summarized(r) {
            self.toggle_summary(r, self.slots.hashes[slot as usize]);
        }
        if r.liveness == Liveness::Alive {
            self.alive -= 1;
            if Self::counts_as_voter(r) {
                self.reachable -= 1;
            }
        }
        if Self::counts_as_voter(r) && !next.is_some_and(Self::counts_as_voter) {
            self.voters.remove(self.slots.by_id(&r.id));
        }
        if Self::in_non_voters(r) && !next.is_some_and(Self::in_non_voters) {
            self.non_voters.remove(&r.id);
        }
        if Self::in_joining(r) && !next.is_some_and(Self::in_joining) {
            self.joining.remove(&r.id);
        }
        if next.is_none() {
            self.seats.change(&r.id, Seat::of(r), Seat::None);
        }
    }

    /// Indexes the record now in `slot`; `before` is the record [`Table::unindex`] took
    /// out (the sorted indexes it was in still hold the slot).
    fn index(&mut self, slot: u32, now: Duration, before: Option<&MemberRecord>) {
        let r = self.slots.entry(slot).record.clone();
        if Self::summarized(&r) {
            self.toggle_summary(&r, self.slots.hashes[slot as usize]);
        }
        let counts_as_voter = Self::counts_as_voter(&r);
        if counts_as_voter && !before.is_some_and(Self::counts_as_voter) {
            self.voters.insert(slot, self.slots.by_id(&r.id));
        }
        if Self::in_non_voters(&r) && !before.is_some_and(Self::in_non_voters) {
            self.non_voters.insert(r.id.clone());
        }
        if Self::in_joining(&r) && !before.is_some_and(Self::in_joining) {
            self.joining.insert(r.id.clone());
        }
        self.seats
            .change(&r.id, before.map_or(Seat::None, Seat::of), Seat::of(&r));
        match r.liveness {
            Liveness::Alive => {
                self.alive += 1;
                if counts_as_voter {
                    self.reachable += 1;
                }
            }
            Liveness::Suspect => {}
            Liveness::Failed => {
                self.failed_since.entry(r.id.clone()).or_insert(now);
            }
            Liveness::Left | Liveness::Removed => {
                self.tombstones.entry(r.id.clone()).or_insert(now);
            }
        }
        if r.liveness != Liveness::Failed {
            self.failed_since.remove(&r.id);
        }
        if !matches!(r.liveness, Liveness::Left | Liveness::Removed) {
            self.tombstones.remove(&r.id);
        }
        let changed = if r.is_live() {
            self.rings.insert(slot, &self.slots)
        } else {
            self.rings.remove(slot, &self.slots)
        };
        if changed {
            self.ring_epoch += 1;
        }
    }

    /// Merges `incoming` into the table. Unknown members that already ended are not added
    /// (an old tombstone must not come back through gossip after it was collected).
    pub fn merge(&mut self, now: Duration, incoming: &MemberRecord) -> Option<Change> {
        self.merge_keeping(now, incoming, false)
    }

    /// [`Table::merge`], but with `keep_ended` an unknown member that already ended
    /// (FAILED, LEFT, REMOVED) is added too: how a newcomer learns departures that predate
    /// it, so that stale gossip cannot bring them back.
    pub fn merge_keeping(
        &mut self,
        now: Duration,
        incoming: &MemberRecord,
        keep_ended: bool,
    ) -> Option<Change> {
        let Some(slot) = self.slot(&incoming.id) else {
            if !incoming.is_live() && !keep_ended {
                return None;
            }
            let record = self.pool.intern(incoming.clone(), false);
            let hash = id_hash(&record.id);
            let slot = self.slots.occupy(Entry::new(record.clone(), now), hash);
            let slots = &self.slots;
            self.lookup
                .insert_unique(mix(hash), slot, |s| mix(slots.hashes[*s as usize]));
            self.order.insert(slot, self.slots.by_id(&record.id));
            self.index(slot, now, None);
            return Some(Change {
                old: None,
                new: MemberRecord::clone(&record),
            });
        };
        let entry = self.slots.entries[slot as usize]
            .as_mut()
            .expect("indexed slot is occupied");
        if entry.record.subsumes(incoming) {
            return None;
        }
        let old = MemberRecord::clone(&entry.record);
        let mut new = old.clone();
        if new.merge(incoming) == MergeOutcome::Stale {
            return None;
        }
        let meta_pooled = Arc::ptr_eq(&new.meta, &old.meta);
        entry.record = self.pool.intern(new, meta_pooled);
        if entry.record.issued_by_member() {
            entry.heard(now);
        }
        let new = MemberRecord::clone(&entry.record);
        self.unindex(slot, &old, Some(&new));
        if old.generation != new.generation {
            // a zone change across restarts must move the member on the rings
            if self.rings.remove(slot, &self.slots) {
                self.ring_epoch += 1;
            }
        }
        self.index(slot, now, Some(&old));
        Some(Change {
            old: Some(old),
            new,
        })
    }

    /// Turns every SUSPECT member back to ALIVE at the same incarnation, against the merge
    /// order (which never goes from SUSPECT back to ALIVE without a refutation). For a node
    /// whose own life the cluster just ended: what it suspected then is void (see
    /// `Node::rejoin`). Returns how many changed. No refutation happened, so the caller
    /// reports none.
    pub fn clear_suspects(&mut self, now: Duration) -> usize {
        let suspects: Vec<u32> = self
            .order
            .iter()
            .filter(|&s| self.slots.record(s).liveness == Liveness::Suspect)
            .collect();
        let cleared = suspects.len();
        for slot in suspects {
            let old = MemberRecord::clone(&self.slots.entry(slot).record);
            let new = MemberRecord {
                liveness: Liveness::Alive,
                ..old.clone()
            };
            let entry = self.slots.entries[slot as usize]
                .as_mut()
                .expect("indexed slot is occupied");
            entry.record = self.pool.intern(new, true);
            let new = MemberRecord::clone(&entry.record);
            self.unindex(slot, &old, Some(&new));
            self.index(slot, now, Some(&old));
        }
        cleared
    }

    /// Forgets a member entirely (tombstone collection).
    pub fn forget(&mut self, id: &str) {
        if let Some(slot) = self.slot(id) {
            let record = self.slots.entry(slot).record.clone();
            self.unindex(slot, &record, None);
            if self.rings.remove(slot, &self.slots) {
                self.ring_epoch += 1;
            }
            self.order.remove(self.slots.by_id(id));
            let h = self.slots.hashes[slot as usize];
            if let Ok(found) = self.lookup.find_entry(mix(h), |s| *s == slot) {
                found.remove();
            }
            self.slots.entries[slot as usize] = None;
            self.slots.free.push(slot);
        }
        self.failed_since.remove(id);
        self.tombstones.remove(id);
        self.heartbeats.remove(id);
    }

    /// The slice of the table an id falls into when it is cut into `n` slices.
    pub fn slice_of(id: &str, n: usize) -> usize {
        Self::slice_of_hash(id_hash(id), n)
    }

    fn slice_of_hash(hash: u64, n: usize) -> usize {
        (mix(hash) % n as u64) as usize
    }

    /// Fingerprint per slice (XOR of record fingerprints, truncated to 32 bits), for `n` a
    /// power of two up to [`SLICES`]: slice `i` of `n` is the union of slices `j` of
    /// [`SLICES`] with `j % n == i`, because both take the same hash modulo a power of two.
    pub fn slice_fingerprints(&self, n: usize) -> Vec<u32> {
        let mut out = vec![0u32; n];
        if n == 0 || n > SLICES || !n.is_power_of_two() {
            // not a digest this protocol sends: compute it the long way
            for r in self.records().filter(|r| Self::summarized(r)) {
                if n > 0 {
                    out[Self::slice_of(&r.id, n)] ^= r.fingerprint() as u32;
                }
            }
            return out;
        }
        for (j, fp) in self.slices.iter().enumerate() {
            out[j % n] ^= fp;
        }
        out
    }

    /// Records in the given slices, sorted by id.
    pub fn records_in_slices(&self, n: usize, slices: &[bool]) -> Vec<&MemberRecord> {
        self.order
            .iter()
            .filter(|s| slices[Self::slice_of_hash(self.slots.hashes[*s as usize], n)])
            .map(|s| self.slots.record(s))
            .collect()
    }

    /// All records, sorted by id.
    pub fn records(&self) -> impl Iterator<Item = &MemberRecord> {
        self.order.iter().map(|s| self.slots.record(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::Metadata;

    fn record(i: usize, incarnation: u64, liveness: Liveness) -> MemberRecord {
        MemberRecord {
            id: format!("n{i:05}").into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            generation: 1,
            incarnation,
            liveness,
            meta_version: 1,
            meta: Arc::new(Metadata {
                zone: format!("z{}", i % 3),
                ..Metadata::default()
            }),
            voter: i % 2 == 0,
            joining: false,
        }
    }

    #[test]
    fn slice_fingerprints_fold_the_incremental_slices_exactly() {
        let mut t = Table::new(5);
        let now = Duration::ZERO;
        for i in 0..300 {
            t.merge(now, &record(i, 0, Liveness::Alive));
        }
        for i in (0..300).step_by(7) {
            t.merge(now, &record(i, 1, Liveness::Suspect));
        }
        for i in (0..300).step_by(11) {
            t.merge(now, &record(i, 0, Liveness::Left));
        }
        t.forget("n00013");
        for n in [1, 2, 4, 8, 16, 32, 64, 128, 256] {
            let mut expected = vec![0u32; n];
            for r in t.records().filter(|r| Table::summarized(r)) {
                expected[Table::slice_of(&r.id, n)] ^= r.fingerprint() as u32;
            }
            assert_eq!(t.slice_fingerprints(n), expected, "{n} slices");
        }
    }

    #[test]
    fn members_share_metadata_and_tables_share_records() {
        let pool = RecordPool::default();
        let mut a = Table::new(5);
        let mut b = Table::new(5);
        a.share_pool(pool.clone());
        b.share_pool(pool.clone());
        for i in 0..30 {
            a.merge(Duration::ZERO, &record(i, 0, Liveness::Alive));
            b.merge(Duration::ZERO, &record(i, 0, Liveness::Alive));
        }
        // three zones: three metadata values however many members and tables
        assert_eq!(pool.len(), (30, 3));
        let (ea, eb) = (a.get("n00004").unwrap(), b.get("n00004").unwrap());
        assert!(Arc::ptr_eq(&ea.record, &eb.record));
        // the zone's ten records, and the pool
        assert_eq!(Arc::strong_count(&ea.record.meta), 1 + 10);
        // a change in one table leaves the other's record alone
        a.merge(Duration::ZERO, &record(4, 1, Liveness::Suspect));
        assert_eq!(a.get("n00004").unwrap().record.incarnation, 1);
        assert_eq!(b.get("n00004").unwrap().record.incarnation, 0);
    }

    #[test]
    fn accusations_do_not_move_the_time_a_member_was_last_heard() {
        let mut t = Table::new(5);
        let s = Duration::from_secs;
        t.merge(s(1), &record(7, 0, Liveness::Alive));
        t.merge(s(2), &record(7, 1, Liveness::Alive));
        assert_eq!(t.get("n00007").unwrap().last_heard(), Some(s(2)));
        // others accuse it, then convict it: news about it, not from it
        t.merge(s(5), &record(7, 2, Liveness::Suspect));
        t.merge(s(9), &record(7, 2, Liveness::Failed));
        let e = t.get("n00007").unwrap();
        assert_eq!(e.record.liveness, Liveness::Failed);
        assert_eq!(e.last_heard(), Some(s(2)));
        // a member first learned of as FAILED was never heard from
        t.merge(s(10), &record(8, 0, Liveness::Failed));
        assert!(t.get("n00008").is_none_or(|e| e.last_heard().is_none()));
    }

    #[test]
    fn indexes_follow_merges_and_forgets() {
        let mut t = Table::new(5);
        let now = Duration::ZERO;
        for i in (0..200).rev() {
            t.merge(now, &record(i, 0, Liveness::Alive));
        }
        assert_eq!(t.voters(), 100);
        assert_eq!(t.rings().len(), 200);
        t.merge(now, &record(2, 0, Liveness::Left));
        t.forget("n00002");
        t.forget("n00003");
        assert!(t.get("n00002").is_none() && t.get("n00003").is_none());
        assert_eq!((t.len(), t.rings().len(), t.voters()), (198, 198, 99));
        assert!(!t.rings().contains("n00003"));
        // a forgotten member's slot is reused, and the order stays by id
        t.merge(now, &record(500, 0, Liveness::Alive));
        t.merge(now, &record(3, 0, Liveness::Alive));
        let ids: Vec<String> = t.records().map(|r| r.id.to_string()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert_eq!(ids.len(), 200);
        let voters: Vec<&str> = t.voter_ids().map(|id| &**id).collect();
        assert_eq!(voters.len(), 100);
        assert!(voters.windows(2).all(|w| w[0] < w[1]));
        assert!(t.rings().contains("n00003") && t.rings().contains("n00500"));
        assert_eq!(t.get("n00500").unwrap().record.id.as_ref(), "n00500");
    }

    #[test]
    fn ids_sharing_long_prefixes_keep_their_order() {
        let mut t = Table::new(5);
        let ids = [
            "node-eu-10",
            "node-eu-1",
            "node-eu",
            "node-e",
            "node-eu-1\0",
            "a",
            "node-eu-2",
            "z",
        ];
        for id in ids {
            let mut r = record(0, 0, Liveness::Alive);
            r.id = id.into();
            t.merge(Duration::ZERO, &r);
        }
        let got: Vec<&str> = t.records().map(|r| &*r.id).collect();
        let mut want = ids.to_vec();
        want.sort();
        assert_eq!(got, want);
        assert!(ids.iter().all(|id| t.get(id).is_some()));
    }

    /// Every node holds an entry per member, so at 10,000 nodes the cluster holds 10^8 of
    /// them: growing this type grows the simulator's memory by 100 MB per byte.
    #[test]
    fn an_entry_stays_small() {
        assert!(
            std::mem::size_of::<Option<Entry>>() <= 16,
            "{}",
            std::mem::size_of::<Entry>()
        );
    }
}
