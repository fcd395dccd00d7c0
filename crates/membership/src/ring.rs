//! Who watches whom: K pseudo-random rings over the live members (after Rapid).
//!
//! Each member sits on K rings at positions `hash_r(id)`. On ring r, a member's observer is
//! the next member clockwise that is not already one of its observers, preferring one from
//! a zone not yet represented. Every member therefore has up to K observers and observes
//! about K members: the monitoring graph is an expander whose degree does not grow with
//! the cluster, so heartbeat traffic per node is constant (K heartbeats per interval).

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::member::{fnv1a, mix, Metadata};

/// How far along a ring we look for an observer in a new zone before settling.
const ZONE_SCAN: usize = 8;

/// Every node holds the rings of the whole cluster, so their size per member matters (at
/// 10,000 members, 10,000 nodes hold 10^8 ring entries). A ring holds only positions (8
/// bytes each): a position is an invertible function of the member's id hash and the ring
/// number, so the member is found again through one map from id hash to member.
#[derive(Debug, Clone, Default)]
pub struct Rings {
    rings: Vec<BTreeSet<u64>>,
    /// Members by id hash ([`fnv1a`]): the table's shared id and metadata (for the zone).
    members: HashMap<u64, RingMember, BuildHasherDefault<PreHashed>>,
}

#[derive(Debug, Clone)]
struct RingMember {
    id: Arc<str>,
    meta: Arc<Metadata>,
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

/// Observer -> the members it watches, by id hash ([`ring_hash`]).
pub type WatchGraph = HashMap<u64, Vec<u64>, BuildHasherDefault<PreHashed>>;

/// The hash by which the rings and [`WatchGraph`] know a member.
pub fn ring_hash(id: &str) -> u64 {
    base(id)
}

const RING_SALT: u64 = 0x9e37_79b9_7f4a_7c15;

fn base(id: &str) -> u64 {
    fnv1a(id.as_bytes())
}

fn position_of(base: u64, ring: usize) -> u64 {
    mix(base ^ (ring as u64).wrapping_mul(RING_SALT))
}

fn base_at(position: u64, ring: usize) -> u64 {
    unmix(position) ^ (ring as u64).wrapping_mul(RING_SALT)
}

/// Multiplicative inverse modulo 2^64 of an odd number (Newton's iteration).
const fn inverse(m: u64) -> u64 {
    let mut x = m;
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(m.wrapping_mul(x)));
        i += 1;
    }
    x
}

fn unshift(y: u64, s: u32) -> u64 {
    let mut x = y;
    let mut covered = s;
    while covered < 64 {
        x = y ^ (x >> s);
        covered += s;
    }
    y ^ (x >> s)
}

/// The inverse of [`mix`].
fn unmix(z: u64) -> u64 {
    let z = unshift(z, 31).wrapping_mul(inverse(0x94d0_49bb_1331_11eb));
    let z = unshift(z, 27).wrapping_mul(inverse(0xbf58_476d_1ce4_e5b9));
    unshift(z, 30).wrapping_sub(0x9e37_79b9_7f4a_7c15)
}

impl Rings {
    /// Empty rings, `k` of them.
    pub fn new(k: usize) -> Self {
        Rings {
            rings: vec![BTreeSet::new(); k],
            members: HashMap::default(),
        }
    }

    /// Number of members on the rings.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the rings are empty.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every member on the rings (in no particular order).
    pub fn members(&self) -> impl Iterator<Item = &str> {
        self.members.values().map(|m| &*m.id)
    }

    /// Whether `id` is on the rings.
    pub fn contains(&self, id: &str) -> bool {
        self.members.get(&base(id)).is_some_and(|m| *m.id == *id)
    }

    /// Puts `id` (in the zone of `meta`) on every ring. Returns false if it was already
    /// there, or if another member's id has the same 64-bit hash (that member keeps the
    /// place: two members cannot share a position).
    pub fn insert(&mut self, id: &Arc<str>, meta: &Arc<Metadata>) -> bool {
        let b = base(id);
        if self.members.contains_key(&b) {
            return false;
        }
        for (r, ring) in self.rings.iter_mut().enumerate() {
            ring.insert(position_of(b, r));
        }
        self.members.insert(
            b,
            RingMember {
                id: id.clone(),
                meta: meta.clone(),
            },
        );
        true
    }

    /// Takes `id` off every ring. Returns false if it was not there.
    pub fn remove(&mut self, id: &str) -> bool {
        let b = base(id);
        if !self.contains(id) {
            return false;
        }
        self.members.remove(&b);
        for (r, ring) in self.rings.iter_mut().enumerate() {
            ring.remove(&position_of(b, r));
        }
        true
    }

    fn member(&self, b: u64) -> Option<&RingMember> {
        self.members.get(&b)
    }

    /// The id of the member with ring hash `b` ([`ring_hash`]).
    pub fn id_of(&self, b: u64) -> Option<&Arc<str>> {
        self.member(b).map(|m| &m.id)
    }

    #[cfg(test)]
    fn zone(&self, id: &str) -> &str {
        self.zone_of(base(id))
    }

    fn zone_of(&self, b: u64) -> &str {
        self.member(b).map(|m| m.meta.zone.as_str()).unwrap_or("")
    }

    /// Id hashes clockwise from `from` on ring `ring`, once around.
    fn clockwise(&self, ring: usize, from: u64) -> impl Iterator<Item = u64> + '_ {
        let r = &self.rings[ring];
        r.range(from.wrapping_add(1)..)
            .chain(r.range(..=from))
            .map(move |p| base_at(*p, ring))
    }

    /// Id hashes counter-clockwise from `from` on ring `ring`, once around.
    fn counter_clockwise(&self, ring: usize, from: u64) -> impl Iterator<Item = u64> + '_ {
        let r = &self.rings[ring];
        r.range(..from)
            .rev()
            .chain(r.range(from..).rev())
            .map(move |p| base_at(*p, ring))
    }

    /// The member at or after `position` on the first ring: a uniform-enough random pick
    /// when `position` is random.
    pub fn random(&self, position: u64) -> Option<&str> {
        let ring = self.rings.first()?;
        let p = ring
            .range(position..)
            .next()
            .or_else(|| ring.iter().next())?;
        self.member(base_at(*p, 0)).map(|m| &*m.id)
    }

    /// The observers of `subject` (which need not be on the rings itself).
    pub fn observers(&self, subject: &str, subject_zone: &str) -> Vec<Arc<str>> {
        self.observer_bases(base(subject), subject_zone)
            .into_iter()
            .filter_map(|b| self.member(b).map(|m| m.id.clone()))
            .collect()
    }

    /// [`Rings::observers`], as id hashes.
    fn observer_bases(&self, subject: u64, subject_zone: &str) -> Vec<u64> {
        let mut chosen: Vec<u64> = Vec::with_capacity(self.rings.len());
        let mut zones: Vec<&str> = vec![subject_zone];
        for r in 0..self.rings.len() {
            let pos = position_of(subject, r);
            let mut fallback: Option<u64> = None;
            let mut pick: Option<u64> = None;
            for (scanned, b) in self.clockwise(r, pos).enumerate() {
                if b == subject || chosen.contains(&b) {
                    if scanned > self.len() {
                        break;
                    }
                    continue;
                }
                let zone = self.zone_of(b);
                if !zones.contains(&zone) {
                    pick = Some(b);
                    break;
                }
                fallback.get_or_insert(b);
                if scanned >= ZONE_SCAN {
                    break;
                }
            }
            if let Some(b) = pick.or(fallback) {
                zones.push(self.zone_of(b));
                chosen.push(b);
            }
        }
        chosen
    }

    /// The whole monitoring graph: for each member (by id hash, see [`ring_hash`]), the
    /// members it watches. Costs one [`Rings::observers`] per member, so callers cache it
    /// for as long as the rings do not change.
    pub fn watch_graph(&self) -> WatchGraph {
        let mut graph = WatchGraph::default();
        for &b in self.members.keys() {
            for o in self.observer_bases(b, self.zone_of(b)) {
                graph.entry(o).or_default().push(b);
            }
        }
        graph
    }

    /// The members `me` should watch: candidates just before `me` on each ring, kept when
    /// `me` is indeed among their observers.
    pub fn subjects(&self, me: &str) -> Vec<Arc<str>> {
        let me_base = base(me);
        let mut out: Vec<u64> = Vec::new();
        for r in 0..self.rings.len() {
            let pos = position_of(me_base, r);
            for b in self
                .counter_clockwise(r, pos)
                .take(ZONE_SCAN + self.rings.len())
            {
                if b == me_base || out.contains(&b) {
                    continue;
                }
                if self.observer_bases(b, self.zone_of(b)).contains(&me_base) {
                    out.push(b);
                }
            }
        }
        let mut ids: Vec<Arc<str>> = out
            .into_iter()
            .filter_map(|b| self.member(b).map(|m| m.id.clone()))
            .collect();
        ids.sort();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rings(n: usize, k: usize, zones: usize) -> Rings {
        let mut r = Rings::new(k);
        for i in 0..n {
            let meta = Metadata {
                zone: format!("z{}", i % zones),
                ..Metadata::default()
            };
            r.insert(&format!("n{i}").into(), &Arc::new(meta));
        }
        r
    }

    #[test]
    fn every_member_gets_k_distinct_observers() {
        let r = rings(100, 5, 1);
        for i in 0..100 {
            let id = format!("n{i}");
            let o = r.observers(&id, "z0");
            assert_eq!(o.len(), 5);
            assert!(!o.iter().any(|o| **o == *id));
            let mut d = o.clone();
            d.dedup();
            assert_eq!(d.len(), 5);
        }
    }

    #[test]
    fn small_clusters_watch_everyone_else() {
        let r = rings(4, 5, 1);
        assert_eq!(r.observers("n0", "z0").len(), 3);
    }

    #[test]
    fn subjects_are_the_inverse_of_observers() {
        let r = rings(200, 5, 3);
        let mut watched: HashMap<String, Vec<String>> = HashMap::new();
        for i in 0..200 {
            let id = format!("n{i}");
            for o in r.observers(&id, &format!("z{}", i % 3)) {
                watched.entry(o.to_string()).or_default().push(id.clone());
            }
        }
        for i in 0..200 {
            let me = format!("n{i}");
            let mut expected = watched.remove(&me).unwrap_or_default();
            expected.sort();
            let subjects: Vec<String> = r.subjects(&me).iter().map(|s| s.to_string()).collect();
            assert_eq!(subjects, expected, "subjects of {me}");
        }
    }

    #[test]
    fn observers_spread_over_zones() {
        let r = rings(90, 5, 3);
        for i in 0..90 {
            let zone = format!("z{}", i % 3);
            let o = r.observers(&format!("n{i}"), &zone);
            let other = o.iter().filter(|id| r.zone(id) != zone).count();
            assert!(other >= 2, "n{i} watched only from its own zone: {o:?}");
        }
    }

    #[test]
    fn unmix_inverts_mix() {
        for x in [0, 1, 42, u64::MAX, 0x9e37_79b9_7f4a_7c15, 1 << 63] {
            assert_eq!(unmix(mix(x)), x);
        }
        for r in 0..7 {
            let b = base("n00042");
            assert_eq!(base_at(position_of(b, r), r), b);
        }
    }

    #[test]
    fn load_is_balanced() {
        let r = rings(1000, 5, 1);
        let mut count: HashMap<Arc<str>, usize> = HashMap::new();
        for i in 0..1000 {
            for o in r.observers(&format!("n{i}"), "z0") {
                *count.entry(o).or_default() += 1;
            }
        }
        let max = count.values().max().copied().unwrap_or(0);
        assert!(max <= 20, "an observer watches {max} members");
    }
}
