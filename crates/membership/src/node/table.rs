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

    fn unindex(&mut self, r: &MemberRecord) {
        if Self::summarized(r) {
            self.summary ^= r.fingerprint();
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
            self.summary ^= r.fingerprint();
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

    /// Fingerprint per slice (XOR of record fingerprints, truncated to 32 bits).
    pub fn slice_fingerprints(&self, n: usize) -> Vec<u32> {
        let mut out = vec![0u32; n];
        for e in self
            .entries
            .values()
            .filter(|e| Self::summarized(&e.record))
        {
            out[Self::slice_of(&e.record.id, n)] ^= e.record.fingerprint() as u32;
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
