//! Who watches whom: K pseudo-random rings over the live members (after Rapid).
//!
//! Each member sits on K rings at positions `hash_r(id)`. On ring r, a member's observer is
//! the next member clockwise that is not already one of its observers, preferring one from
//! a zone not yet represented. Every member therefore has up to K observers and observes
//! about K members: the monitoring graph is an expander whose degree does not grow with
//! the cluster, so heartbeat traffic per node is constant (K heartbeats per interval).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::member::{fnv1a, mix, Metadata};

/// How far along a ring we look for an observer in a new zone before settling.
const ZONE_SCAN: usize = 8;

/// The K rings over the live members.
///
/// Ids and metadata are the table's shared copies (`Arc`): the rings add pointers, not
/// strings, per member.
#[derive(Debug, Clone, Default)]
pub struct Rings {
    rings: Vec<BTreeMap<u64, Arc<str>>>,
    /// Each member's metadata, for its zone.
    zones: HashMap<Arc<str>, Arc<Metadata>>,
}

fn position(id: &str, ring: usize) -> u64 {
    mix(fnv1a(id.as_bytes()) ^ (ring as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

impl Rings {
    /// Empty rings, `k` of them.
    pub fn new(k: usize) -> Self {
        Rings {
            rings: vec![BTreeMap::new(); k],
            zones: HashMap::new(),
        }
    }

    /// Number of members on the rings.
    pub fn len(&self) -> usize {
        self.zones.len()
    }

    /// Whether the rings are empty.
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// Every member on the rings (in no particular order).
    pub fn members(&self) -> impl Iterator<Item = &str> {
        self.zones.keys().map(|id| &**id)
    }

    /// Whether `id` is on the rings.
    pub fn contains(&self, id: &str) -> bool {
        self.zones.contains_key(id)
    }

    /// Puts `id` (in the zone of `meta`) on every ring. Returns false if it was already
    /// there.
    pub fn insert(&mut self, id: &Arc<str>, meta: &Arc<Metadata>) -> bool {
        if self.zones.contains_key(id) {
            return false;
        }
        for (r, ring) in self.rings.iter_mut().enumerate() {
            ring.insert(position(id, r), id.clone());
        }
        self.zones.insert(id.clone(), meta.clone());
        true
    }

    fn zone(&self, id: &str) -> &str {
        self.zones.get(id).map(|m| m.zone.as_str()).unwrap_or("")
    }

    /// Takes `id` off every ring. Returns false if it was not there.
    pub fn remove(&mut self, id: &str) -> bool {
        if self.zones.remove(id).is_none() {
            return false;
        }
        for (r, ring) in self.rings.iter_mut().enumerate() {
            ring.remove(&position(id, r));
        }
        true
    }

    fn clockwise(&self, ring: usize, from: u64) -> impl Iterator<Item = &Arc<str>> {
        let r = &self.rings[ring];
        r.range(from.wrapping_add(1)..)
            .chain(r.range(..=from))
            .map(|(_, id)| id)
    }

    fn counter_clockwise(&self, ring: usize, from: u64) -> impl Iterator<Item = &Arc<str>> {
        let r = &self.rings[ring];
        r.range(..from)
            .rev()
            .chain(r.range(from..).rev())
            .map(|(_, id)| id)
    }

    /// The member at or after `position` on the first ring: a uniform-enough random pick
    /// when `position` is random.
    pub fn random(&self, position: u64) -> Option<&str> {
        let ring = self.rings.first()?;
        ring.range(position..)
            .next()
            .or_else(|| ring.iter().next())
            .map(|(_, id)| &**id)
    }

    /// The observers of `subject` (which need not be on the rings itself).
    pub fn observers(&self, subject: &str, subject_zone: &str) -> Vec<Arc<str>> {
        let mut chosen: Vec<Arc<str>> = Vec::with_capacity(self.rings.len());
        let mut zones: Vec<&str> = vec![subject_zone];
        for r in 0..self.rings.len() {
            let pos = position(subject, r);
            let mut fallback: Option<&Arc<str>> = None;
            let mut pick: Option<&Arc<str>> = None;
            for (scanned, id) in self.clockwise(r, pos).enumerate() {
                if **id == *subject || chosen.contains(id) {
                    if scanned > self.len() {
                        break;
                    }
                    continue;
                }
                let zone = self.zone(id);
                if !zones.contains(&zone) {
                    pick = Some(id);
                    break;
                }
                fallback.get_or_insert(id);
                if scanned >= ZONE_SCAN {
                    break;
                }
            }
            if let Some(id) = pick.or(fallback) {
                zones.push(self.zone(id));
                chosen.push(id.clone());
            }
        }
        chosen
    }

    /// The members `me` should watch: candidates just before `me` on each ring, kept when
    /// `me` is indeed among their observers.
    pub fn subjects(&self, me: &str) -> Vec<Arc<str>> {
        let mut out: Vec<Arc<str>> = Vec::new();
        for r in 0..self.rings.len() {
            let pos = position(me, r);
            for id in self
                .counter_clockwise(r, pos)
                .take(ZONE_SCAN + self.rings.len())
            {
                if **id == *me || out.contains(id) {
                    continue;
                }
                if self.observers(id, self.zone(id)).iter().any(|o| **o == *me) {
                    out.push(id.clone());
                }
            }
        }
        out.sort();
        out
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
