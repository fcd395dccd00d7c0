//! Who watches whom: K pseudo-random rings over the live members (after Rapid).
//!
//! Each member sits on K rings at positions `hash_r(id)`. On ring r, a member's observer is
//! the next member clockwise that is not already one of its observers, preferring one from
//! a zone not yet represented. Every member therefore has up to K observers and observes
//! about K members: the monitoring graph is an expander whose degree does not grow with
//! the cluster, so heartbeat traffic per node is constant (K heartbeats per interval).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::member::{fnv1a, mix};
use crate::slots::SortedSlots;

/// How far along a ring we look for an observer in a new zone before settling.
const ZONE_SCAN: usize = 8;

/// What the rings need to know about a member, by slot (the small integer the member table
/// gives each member it holds): the rings store slots only and ask the table the rest.
pub trait RingMembers {
    /// The member's id hash ([`id_hash`]): its place on every ring.
    fn hash(&self, slot: u32) -> u64;
    /// The member's zone.
    fn zone(&self, slot: u32) -> &str;
    /// The member's id.
    fn id(&self, slot: u32) -> &Arc<str>;
}

/// Every node holds the rings of the whole cluster, so their size per member matters (at
/// 10,000 members, 10,000 nodes hold 10^8 ring entries). A ring holds only slots, about
/// 6 bytes each, sorted by position: a position is a function of the member's id hash,
/// which the table keeps once per member for all rings.
#[derive(Debug, Clone, Default)]
pub struct Rings {
    rings: Vec<SortedSlots>,
    /// Which slots are on the rings, one bit each: asking costs no search.
    on: Vec<u64>,
}

/// The hash that places a member on the rings.
pub fn id_hash(id: &str) -> u64 {
    fnv1a(id.as_bytes())
}

/// Observer -> the members it watches, by id hash ([`ring_hash`]).
pub type WatchGraph = HashMap<u64, Vec<u64>, BuildHasherDefault<PreHashed>>;

/// The hash by which the rings and [`WatchGraph`] know a member (the same as [`id_hash`]).
pub fn ring_hash(id: &str) -> u64 {
    id_hash(id)
}

/// Hasher for keys that are already 64-bit hashes: one mixing step instead of SipHash.
#[derive(Debug, Default)]
pub struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = mix(self.0 ^ u64::from(*b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = mix(self.0 ^ v);
    }
}

const RING_SALT: u64 = 0x9e37_79b9_7f4a_7c15;

fn position_of(base: u64, ring: usize) -> u64 {
    mix(base ^ (ring as u64).wrapping_mul(RING_SALT))
}

impl Rings {
    /// Empty rings, `k` of them.
    pub fn new(k: usize) -> Self {
        Rings {
            rings: vec![SortedSlots::default(); k],
            on: Vec::new(),
        }
    }

    /// Number of members on the rings.
    pub fn len(&self) -> usize {
        self.rings.first().map_or(0, SortedSlots::len)
    }

    /// Whether the rings are empty.
    pub fn is_empty(&self) -> bool {
        self.rings.first().is_none_or(SortedSlots::is_empty)
    }

    /// Every member on the rings, as slots (in no particular order).
    pub fn members(&self) -> impl Iterator<Item = u32> + '_ {
        self.rings.iter().take(1).flat_map(SortedSlots::iter)
    }

    /// Whether `slot` is on the rings.
    pub fn contains(&self, slot: u32) -> bool {
        self.on
            .get(slot as usize / 64)
            .is_some_and(|w| w & (1 << (slot % 64)) != 0)
    }

    fn mark(&mut self, slot: u32, on: bool) {
        let word = slot as usize / 64;
        if self.on.len() <= word {
            self.on.resize(word + 1, 0);
        }
        if on {
            self.on[word] |= 1 << (slot % 64);
        } else {
            self.on[word] &= !(1 << (slot % 64));
        }
    }

    /// Puts `slot` on every ring. Returns false if it was already there, or if another
    /// member's id has the same 64-bit hash (that member keeps the place: two members
    /// cannot share a position).
    pub fn insert(&mut self, slot: u32, m: &impl RingMembers) -> bool {
        if self.contains(slot) {
            return false;
        }
        let b = m.hash(slot);
        for (r, ring) in self.rings.iter_mut().enumerate() {
            let p = position_of(b, r);
            // positions are a bijection of id hashes on every ring: if the first ring takes
            // the slot, every ring does
            if !ring.insert(slot, |s| position_of(m.hash(s), r).cmp(&p)) {
                return false;
            }
        }
        self.mark(slot, true);
        true
    }

    /// Takes `slot` off every ring. Returns false if it was not there.
    pub fn remove(&mut self, slot: u32, m: &impl RingMembers) -> bool {
        if !self.contains(slot) {
            return false;
        }
        self.mark(slot, false);
        let b = m.hash(slot);
        for (r, ring) in self.rings.iter_mut().enumerate() {
            let p = position_of(b, r);
            ring.remove(|s| position_of(m.hash(s), r).cmp(&p));
        }
        true
    }

    /// Slots clockwise from position `from` on ring `ring`, once around.
    fn clockwise<'a>(
        &'a self,
        ring: usize,
        from: u64,
        m: &impl RingMembers,
    ) -> impl Iterator<Item = u32> + 'a {
        let r = &self.rings[ring];
        let (upto, after) = r.split(r.partition_point(|s| position_of(m.hash(s), ring) <= from));
        after.chain(upto)
    }

    /// Slots clockwise from the member with id hash `subject` on the first ring, once around
    /// (the member itself last, if it is on the rings).
    pub fn successors<'a>(
        &'a self,
        subject: u64,
        m: &impl RingMembers,
    ) -> impl Iterator<Item = u32> + 'a {
        self.clockwise(0, position_of(subject, 0), m)
    }

    /// Slots counter-clockwise from position `from` on ring `ring`, once around.
    fn counter_clockwise<'a>(
        &'a self,
        ring: usize,
        from: u64,
        m: &impl RingMembers,
    ) -> impl Iterator<Item = u32> + 'a {
        let r = &self.rings[ring];
        let (below, rest) = r.split(r.partition_point(|s| position_of(m.hash(s), ring) < from));
        below.rev().chain(rest.rev())
    }

    /// The member at or after `position` on the first ring: a uniform-enough random pick
    /// when `position` is random.
    pub fn random(&self, position: u64, m: &impl RingMembers) -> Option<u32> {
        let ring = self.rings.first()?;
        let (_, mut rest) =
            ring.split(ring.partition_point(|s| position_of(m.hash(s), 0) < position));
        rest.next().or_else(|| ring.iter().next())
    }

    /// The observers of the member with id hash `subject` (which need not be on the
    /// rings itself), as slots.
    pub fn observers(&self, subject: u64, subject_zone: &str, m: &impl RingMembers) -> Vec<u32> {
        let mut chosen: Vec<u32> = Vec::with_capacity(self.rings.len());
        let mut zones: Vec<&str> = vec![subject_zone];
        let len = self.len();
        for r in 0..self.rings.len() {
            let pos = position_of(subject, r);
            let mut fallback: Option<u32> = None;
            let mut pick: Option<u32> = None;
            for (scanned, s) in self.clockwise(r, pos, m).enumerate() {
                if m.hash(s) == subject || chosen.contains(&s) {
                    if scanned > len {
                        break;
                    }
                    continue;
                }
                let zone = m.zone(s);
                if !zones.contains(&zone) {
                    pick = Some(s);
                    break;
                }
                fallback.get_or_insert(s);
                if scanned >= ZONE_SCAN {
                    break;
                }
            }
            if let Some(s) = pick.or(fallback) {
                zones.push(m.zone(s));
                chosen.push(s);
            }
        }
        chosen
    }

    /// The whole monitoring graph: for each member (by id hash, see [`ring_hash`]), the
    /// members it watches. Costs one [`Rings::observers`] per member, so callers cache it
    /// for as long as the rings do not change.
    pub fn watch_graph(&self, m: &impl RingMembers) -> WatchGraph {
        let mut graph = WatchGraph::default();
        for s in self.members() {
            let b = m.hash(s);
            for o in self.observers(b, m.zone(s), m) {
                graph.entry(m.hash(o)).or_default().push(b);
            }
        }
        graph
    }

    /// The members the member with id hash `me` should watch, as slots sorted by id:
    /// candidates just before `me` on each ring, kept when `me` is indeed among their
    /// observers.
    pub fn subjects(&self, me: u64, m: &impl RingMembers) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        for r in 0..self.rings.len() {
            let pos = position_of(me, r);
            for s in self
                .counter_clockwise(r, pos, m)
                .take(ZONE_SCAN + self.rings.len())
            {
                let b = m.hash(s);
                if b == me || out.contains(&s) {
                    continue;
                }
                if self
                    .observers(b, m.zone(s), m)
                    .iter()
                    .any(|o| m.hash(*o) == me)
                {
                    out.push(s);
                }
            }
        }
        out.sort_by(|a, b| m.id(*a).cmp(m.id(*b)));
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Members for the tests: slot `i` is `n{i}`, in zone `z{i % zones}`.
    struct Members {
        ids: Vec<Arc<str>>,
        zones: Vec<String>,
        hashes: Vec<u64>,
    }

    impl RingMembers for Members {
        fn hash(&self, slot: u32) -> u64 {
            self.hashes[slot as usize]
        }
        fn zone(&self, slot: u32) -> &str {
            &self.zones[slot as usize]
        }
        fn id(&self, slot: u32) -> &Arc<str> {
            &self.ids[slot as usize]
        }
    }

    fn rings(n: usize, k: usize, zones: usize) -> (Rings, Members) {
        let m = Members {
            ids: (0..n).map(|i| format!("n{i}").into()).collect(),
            zones: (0..n).map(|i| format!("z{}", i % zones)).collect(),
            hashes: (0..n).map(|i| id_hash(&format!("n{i}"))).collect(),
        };
        let mut r = Rings::new(k);
        for i in 0..n {
            assert!(r.insert(i as u32, &m));
        }
        (r, m)
    }

    fn observers(r: &Rings, m: &Members, i: usize) -> Vec<Arc<str>> {
        r.observers(m.hashes[i], &m.zones[i], m)
            .into_iter()
            .map(|s| m.id(s).clone())
            .collect()
    }

    #[test]
    fn every_member_gets_k_distinct_observers() {
        let (r, m) = rings(100, 5, 1);
        for i in 0..100 {
            let id = format!("n{i}");
            let o = observers(&r, &m, i);
            assert_eq!(o.len(), 5);
            assert!(!o.iter().any(|o| **o == *id));
            let mut d = o.clone();
            d.dedup();
            assert_eq!(d.len(), 5);
        }
    }

    #[test]
    fn small_clusters_watch_everyone_else() {
        let (r, m) = rings(4, 5, 1);
        assert_eq!(observers(&r, &m, 0).len(), 3);
    }

    #[test]
    fn subjects_are_the_inverse_of_observers() {
        let (r, m) = rings(200, 5, 3);
        let mut watched: HashMap<String, Vec<String>> = HashMap::new();
        for i in 0..200 {
            let id = format!("n{i}");
            for o in observers(&r, &m, i) {
                watched.entry(o.to_string()).or_default().push(id.clone());
            }
        }
        for i in 0..200 {
            let me = format!("n{i}");
            let mut expected = watched.remove(&me).unwrap_or_default();
            expected.sort();
            let subjects: Vec<String> = r
                .subjects(m.hashes[i], &m)
                .iter()
                .map(|s| m.id(*s).to_string())
                .collect();
            assert_eq!(subjects, expected, "subjects of {me}");
        }
    }

    #[test]
    fn observers_spread_over_zones() {
        let (r, m) = rings(90, 5, 3);
        for i in 0..90 {
            let zone = format!("z{}", i % 3);
            let other = r
                .observers(m.hashes[i], &zone, &m)
                .iter()
                .filter(|s| m.zone(**s) != zone)
                .count();
            assert!(other >= 2, "n{i} watched only from its own zone");
        }
    }

    #[test]
    fn members_come_off_every_ring() {
        let (mut r, m) = rings(50, 5, 1);
        assert!(r.contains(7));
        assert!(r.remove(7, &m));
        assert!(!r.remove(7, &m));
        assert!(!r.contains(7));
        assert_eq!(r.len(), 49);
        assert!(r.rings.iter().all(|ring| ring.len() == 49));
        assert!(r.insert(7, &m));
        assert!(!r.insert(7, &m), "already there");
    }

    #[test]
    fn load_is_balanced() {
        let (r, m) = rings(1000, 5, 1);
        let mut count: HashMap<Arc<str>, usize> = HashMap::new();
        for i in 0..1000 {
            for o in observers(&r, &m, i) {
                *count.entry(o).or_default() += 1;
            }
        }
        let max = count.values().max().copied().unwrap_or(0);
        assert!(max <= 20, "an observer watches {max} members");
    }
}
