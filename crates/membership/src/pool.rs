//! One copy of each distinct member record and metadata value, for the member tables that
//! share the pool.
//!
//! Every node holds a record of every member, and once news has spread they hold the same
//! record: at N nodes in one process (the simulator) that is N copies of each. A table
//! keeps its records in the pool it was given, so the nodes that share one [`RecordPool`]
//! hold each distinct record once and pay per member only for a pointer. A node on its own
//! (the default) has a pool of its own, which still shares metadata between its members
//! (in practice a handful of values per cluster, one per zone and role).
//!
//! Pooled values are immutable; a table that changes a record pools the new value. Values
//! no table uses any more are dropped when the pool has doubled since the last sweep.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use hashbrown::HashTable;

use crate::member::{fnv1a, mix, MemberRecord, Metadata};

/// A shared pool of member records and metadata values. Cloning the handle shares the
/// pool: give one to every node of a process (see [`crate::Node::share_records`]).
#[derive(Debug, Clone, Default)]
pub struct RecordPool {
    inner: Arc<Mutex<Pool>>,
}

#[derive(Debug, Default)]
struct Pool {
    records: HashTable<Arc<MemberRecord>>,
    metas: HashTable<Arc<Metadata>>,
    /// Sizes at which unused values are swept (amortized: they double).
    records_sweep_at: usize,
    metas_sweep_at: usize,
}

/// Hash of a record whose metadata is pooled: the metadata by address, since pooled
/// metadata is one value per address.
fn record_hash(r: &MemberRecord) -> u64 {
    let mut h = fnv1a(r.id.as_bytes());
    let addr = match r.addr {
        std::net::SocketAddr::V4(a) => u64::from(a.ip().to_bits()) << 16 | u64::from(a.port()),
        std::net::SocketAddr::V6(a) => {
            let ip = a.ip().to_bits();
            ((ip >> 64) as u64) ^ (ip as u64) ^ u64::from(a.port())
        }
    };
    for v in [
        addr,
        r.generation,
        r.incarnation,
        r.liveness as u64,
        r.meta_version,
        r.voter as u64 | (r.joining as u64) << 1,
        Arc::as_ptr(&r.meta) as usize as u64,
    ] {
        h = mix(h ^ v);
    }
    h
}

fn same_record(a: &MemberRecord, b: &MemberRecord) -> bool {
    a.generation == b.generation
        && a.incarnation == b.incarnation
        && a.liveness == b.liveness
        && a.meta_version == b.meta_version
        && a.voter == b.voter
        && a.joining == b.joining
        && a.addr == b.addr
        && Arc::ptr_eq(&a.meta, &b.meta)
        && a.id == b.id
}

fn meta_hash(m: &Metadata) -> u64 {
    // fixed keys: no random state
    let mut h = std::hash::DefaultHasher::new();
    m.hash(&mut h);
    h.finish()
}

impl RecordPool {
    fn lock(&self) -> MutexGuard<'_, Pool> {
        // a panic elsewhere while holding the lock leaves the pool consistent: every
        // operation below completes its table update before returning
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pooled copy of `record`, with its metadata pooled too. With `meta_pooled` the
    /// caller vouches that `record.meta` already came from this pool.
    pub(crate) fn intern(&self, mut record: MemberRecord, meta_pooled: bool) -> Arc<MemberRecord> {
        let mut pool = self.lock();
        if !meta_pooled {
            record.meta = pool.intern_meta(&record.meta);
        }
        pool.intern_record(record)
    }

    /// Number of distinct records and metadata values pooled (swept lazily, so this may
    /// count values no table uses any more).
    pub fn len(&self) -> (usize, usize) {
        let pool = self.lock();
        (pool.records.len(), pool.metas.len())
    }
}

impl Pool {
    fn intern_meta(&mut self, meta: &Arc<Metadata>) -> Arc<Metadata> {
        let h = meta_hash(meta);
        if let Some(shared) = self.metas.find(h, |m| **m == **meta) {
            return shared.clone();
        }
        if self.metas.len() >= self.metas_sweep_at {
            // values only the pool still holds are no record's metadata any more
            self.metas.retain(|m| Arc::strong_count(m) > 1);
            self.metas_sweep_at = 2 * self.metas.len() + 16;
        }
        self.metas.insert_unique(h, meta.clone(), |m| meta_hash(m));
        meta.clone()
    }

    fn intern_record(&mut self, record: MemberRecord) -> Arc<MemberRecord> {
        let h = record_hash(&record);
        if let Some(shared) = self.records.find(h, |r| same_record(r, &record)) {
            return shared.clone();
        }
        if self.records.len() >= self.records_sweep_at {
            self.records.retain(|r| Arc::strong_count(r) > 1);
            self.records_sweep_at = 2 * self.records.len() + 1024;
        }
        let shared = Arc::new(record);
        self.records
            .insert_unique(h, shared.clone(), |r| record_hash(r));
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::Liveness;

    fn record(id: &str, zone: &str, incarnation: u64) -> MemberRecord {
        MemberRecord {
            id: id.into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            generation: 1,
            incarnation,
            liveness: Liveness::Alive,
            meta_version: 1,
            meta: Arc::new(Metadata {
                zone: zone.into(),
                ..Metadata::default()
            }),
            voter: false,
            joining: false,
        }
    }

    #[test]
    fn equal_records_are_held_once() {
        let pool = RecordPool::default();
        let a = pool.intern(record("n1", "z1", 0), false);
        let b = pool.intern(record("n1", "z1", 0), false);
        let c = pool.intern(record("n1", "z1", 1), false);
        let d = pool.intern(record("n2", "z1", 0), false);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(Arc::ptr_eq(&a.meta, &d.meta), "one metadata value per zone");
        assert_eq!(pool.len(), (3, 1));
    }

    #[test]
    fn unused_records_are_swept() {
        let pool = RecordPool::default();
        let kept = pool.intern(record("kept", "z", 0), false);
        for i in 0..3000 {
            pool.intern(record(&format!("n{i}"), "z", 0), false);
        }
        let (records, _) = pool.len();
        assert!(records < 2100, "{records} records pooled");
        assert!(Arc::ptr_eq(
            &kept,
            &pool.intern(record("kept", "z", 0), false)
        ));
    }
}
