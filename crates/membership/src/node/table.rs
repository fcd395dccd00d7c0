//! The member table and the indexes derived from it (rings, voters, reachable voters,
//! pending evictions, tombstones, the summary fingerprint), kept in step in one place.
//!
//! Every node holds a record of every member, so at N members the cluster holds N² of
//! them: the per-member cost here decides how large a simulated cluster fits in memory.
//! Hence one shared copy of each id (the `Arc<str>` every index points to), one shared
//! copy of each distinct metadata value (the pool below: in practice a handful per
//! cluster, one per zone and role), and per-member state only where it is needed (the
//! heartbeat sequence only for members that heartbeat this node).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::member::{mix, Liveness, MemberRecord, MergeOutcome, Metadata};
use crate::ring::Rings;

/// Slices kept incrementally: the most a digest may have ([`crate::codec::MAX_SLICES`]).
const SLICES: usize = crate::codec::MAX_SLICES;

/// One member in the table.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub record: MemberRecord,
    /// Last fresh news (heartbeat or newer record).
    pub last_heard: Option<Duration>,
}

/// One copy of each distinct metadata value the table holds.
#[derive(Debug, Default)]
struct MetaPool {
    values: HashSet<Arc<Metadata>>,
    /// Pool size at which unused values are dropped (amortized: it doubles).
    collect_at: usize,
}

impl MetaPool {
    fn intern(&mut self, meta: &Arc<Metadata>) -> Arc<Metadata> {
        if let Some(shared) = self.values.get(meta) {
            return shared.clone();
        }
        if self.values.len() >= self.collect_at {
            // values only the pool still holds are no record's metadata any more
            self.values.retain(|m| Arc::strong_count(m) > 1);
            self.collect_at = 2 * self.values.len() + 16;
        }
        self.values.insert(meta.clone());
        meta.clone()
    }
}

/// What one merge changed.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub old: Option<MemberRecord>,
    pub new: MemberRecord,
}

#[derive(Debug)]
pub(crate) struct Table {
    entries: BTreeMap<Arc<str>, Entry>,
    pub rings: Rings,
    summary: u64,
    /// The summary cut into [`SLICES`] slices by id hash, kept in step with it: a digest of
    /// any power-of-two slice count up to [`SLICES`] folds these instead of fingerprinting
    /// the whole table.
    slices: Box<[u32; SLICES]>,
    voters: BTreeSet<Arc<str>>,
    /// Voters that are Alive (a count: membership is read from the record).
    reachable: usize,
    pub non_voters: BTreeSet<Arc<str>>,
    pub failed_since: BTreeMap<Arc<str>, Duration>,
    pub tombstones: BTreeMap<Arc<str>, Duration>,
    /// (generation, sequence) of the newest heartbeat taken from each member that sent one:
    /// a replayed or reordered older one must not count as a sign of life. Only members
    /// that heartbeat this node (its subjects, about K) appear here.
    pub heartbeats: HashMap<Arc<str>, (u64, u64)>,
    metas: MetaPool,
    alive: usize,
    /// Bumped whenever the set of live members (the rings) changes.
    pub ring_epoch: u64,
}

impl Table {
    pub fn new(observers: usize) -> Self {
        Table {
            entries: BTreeMap::new(),
            rings: Rings::new(observers),
            summary: 0,
            slices: Box::new([0; SLICES]),
            voters: BTreeSet::new(),
            reachable: 0,
            non_voters: BTreeSet::new(),
            failed_since: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            heartbeats: HashMap::new(),
            metas: MetaPool::default(),
            alive: 0,
            ring_epoch: 0,
        }
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Entry> {
        self.entries.get_mut(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
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
        self.voters.iter()
    }

    /// Number of voters this table shows Alive.
    pub fn reachable_voters(&self) -> usize {
        self.reachable
    }

    /// Whether `id` is a voter this table shows Alive.
    pub fn is_reachable_voter(&self, id: &str) -> bool {
        self.entries.get(id).is_some_and(|e| {
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
    fn toggle_summary(&mut self, r: &MemberRecord) {
        let fp = r.fingerprint();
        self.summary ^= fp;
        self.slices[Self::slice_of(&r.id, SLICES)] ^= fp as u32;
    }

    fn unindex(&mut self, r: &MemberRecord) {
        if Self::summarized(r) {
            self.toggle_summary(r);
        }
        if r.liveness == Liveness::Alive {
            self.alive -= 1;
            if Self::counts_as_voter(r) {
                self.reachable -= 1;
            }
        }
        self.voters.remove(&r.id);
        self.non_voters.remove(&r.id);
    }

    fn index(&mut self, r: &MemberRecord, now: Duration) {
        if Self::summarized(r) {
            self.toggle_summary(r);
        }
        let counts_as_voter = Self::counts_as_voter(r);
        if counts_as_voter {
            self.voters.insert(r.id.clone());
        }
        match r.liveness {
            Liveness::Alive => {
                self.alive += 1;
                if counts_as_voter {
                    self.reachable += 1;
                } else {
                    self.non_voters.insert(r.id.clone());
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
        let on_ring = r.is_live();
        let changed = if on_ring {
            self.rings.insert(&r.id, &r.meta)
        } else {
            self.rings.remove(&r.id)
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
        match self.entries.get_mut(&incoming.id) {
            None => {
                if !incoming.is_live() && !keep_ended {
                    return None;
                }
                let mut record = incoming.clone();
                record.meta = self.metas.intern(&record.meta);
                let entry = Entry {
                    record: record.clone(),
                    last_heard: Some(now),
                };
                self.entries.insert(record.id.clone(), entry);
                self.index(&record, now);
                Some(Change {
                    old: None,
                    new: record,
                })
            }
            Some(entry) => {
                if entry.record.subsumes(incoming) {
                    return None;
                }
                let old = entry.record.clone();
                if entry.record.merge(incoming) == MergeOutcome::Stale {
                    return None;
                }
                entry.last_heard = Some(now);
                // keep the shared copies: the id the indexes point to, pooled metadata
                entry.record.id = old.id.clone();
                if !Arc::ptr_eq(&entry.record.meta, &old.meta) {
                    entry.record.meta = self.metas.intern(&entry.record.meta);
                }
                let new = entry.record.clone();
                self.unindex(&old);
                if old.generation != new.generation {
                    // a zone change across restarts must move the member on the rings
                    if self.rings.remove(&old.id) {
                        self.ring_epoch += 1;
                    }
                }
                self.index(&new, now);
                Some(Change {
                    old: Some(old),
                    new,
                })
            }
        }
    }

    /// Forgets a member entirely (tombstone collection).
    pub fn forget(&mut self, id: &str) {
        if let Some(e) = self.entries.remove(id) {
            self.unindex(&e.record);
            if self.rings.remove(id) {
                self.ring_epoch += 1;
            }
        }
        self.failed_since.remove(id);
        self.tombstones.remove(id);
        self.heartbeats.remove(id);
    }

    /// The slice of the table an id falls into when it is cut into `n` slices.
    pub fn slice_of(id: &str, n: usize) -> usize {
        (mix(crate::member::fnv1a(id.as_bytes())) % n as u64) as usize
    }

    /// Fingerprint per slice (XOR of record fingerprints, truncated to 32 bits), for `n` a
    /// power of two up to [`SLICES`]: slice `i` of `n` is the union of slices `j` of
    /// [`SLICES`] with `j % n == i`, because both take the same hash modulo a power of two.
    pub fn slice_fingerprints(&self, n: usize) -> Vec<u32> {
        let mut out = vec![0u32; n];
        if n == 0 || n > SLICES || !n.is_power_of_two() {
            // not a digest this protocol sends: compute it the long way
            for e in self
                .entries
                .values()
                .filter(|e| Self::summarized(&e.record))
            {
                if n > 0 {
                    out[Self::slice_of(&e.record.id, n)] ^= e.record.fingerprint() as u32;
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
        self.entries
            .values()
            .map(|e| &e.record)
            .filter(|r| slices[Self::slice_of(&r.id, n)])
            .collect()
    }

    /// All records, sorted by id.
    pub fn records(&self) -> impl Iterator<Item = &MemberRecord> {
        self.entries.values().map(|e| &e.record)
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
    fn members_share_metadata_and_ids() {
        let mut t = Table::new(5);
        for i in 0..30 {
            t.merge(Duration::ZERO, &record(i, 0, Liveness::Alive));
        }
        // three zones: three metadata values however many members
        assert_eq!(t.metas.values.len(), 3);
        let e = t.get("n00004").unwrap();
        // the pool, then each of the zone's ten members in the table and on the rings
        assert_eq!(Arc::strong_count(&e.record.meta), 1 + 10 + 10);
    }

    /// Every node holds an entry per member, so at 10,000 nodes the cluster holds 10^8 of
    /// them: growing this type grows the simulator's memory by 100 MB per byte.
    #[test]
    fn an_entry_stays_small() {
        assert!(
            std::mem::size_of::<Entry>() <= 104,
            "{}",
            std::mem::size_of::<Entry>()
        );
    }
}
