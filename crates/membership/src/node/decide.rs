//! Decisions only the leader takes, on quorum proven after what it decides on: admitting
//! voters and evicting failed members. That is what keeps a minority from shrinking (or
//! growing) the voter set until it looks like a majority.

use std::sync::Arc;
use std::time::Duration;

use super::{Node, Output, Source};
use crate::member::Liveness;

impl Node {
    pub(super) fn decide(&mut self, now: Duration, out: &mut impl Output) {
        if self.table.voters() == 0 && self.bootstrap_at.is_some_and(|t| now >= t) {
            // The bootstrap node founds the cluster (see `Node::new`).
            self.synced = true;
            let mut me = self.my_record().clone();
            me.voter = true;
            self.apply_record(now, &me, Source::Local, out);
        }
        // Admissions and evictions change the voter set: only the leader takes them, on quorum
        // proven after what it decides on (see `node::lease`).
        self.admit(now, out);
        let Some(fresh) = self
            .lease
            .fresh_since(now)
            .filter(|_| self.lease.leads(now))
        else {
            return;
        };
        let grace = self.config.eviction_grace_period;
        let due: Vec<Arc<str>> = self
            .table
            .failed_since
            .iter()
            .filter(|(_, since)| now.saturating_sub(**since) >= grace && fresh > **since)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            if let Some(mut r) = self.record(&id).cloned() {
                r.liveness = Liveness::Removed;
                r.voter = false;
                r.joining = false;
                self.apply_record(now, &r, Source::Local, out);
            }
        }
    }

    pub(super) fn collect_tombstones(&mut self, now: Duration) {
        let ttl = self.config.tombstone_ttl;
        let expired: Vec<Arc<str>> = self
            .table
            .tombstones
            .iter()
            .filter(|(id, since)| ***id != *self.me.as_str() && now.saturating_sub(**since) >= ttl)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            // what is left of it: the generation its last life ended at (see `node::departed`)
            if let Some(generation) = self.table.get(&id).map(|e| e.record.generation) {
                let cap = self.config.max_members;
                self.departed.note(id.clone(), generation, now, cap);
            }
            self.table.forget(&id);
            self.queue.remove(&crate::gossip::UpdateKey::Record(id));
        }
    }
}
