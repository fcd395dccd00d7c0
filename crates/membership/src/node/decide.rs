//! Decisions only a side holding quorum may take: admitting voters and evicting failed
//! members. Taking them only with quorum is what keeps a minority from shrinking the voter
//! set until it looks like a majority.

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
        if !self.decisive {
            return;
        }
        // Only the leader admits, so admissions come from one place at a time.
        if self.leader.as_deref() == Some(self.me.as_str()) && !self.table.non_voters.is_empty() {
            let ids: Vec<Arc<str>> = self.table.non_voters.iter().cloned().collect();
            for id in ids {
                if let Some(mut r) = self.record(&id).cloned() {
                    if r.liveness == Liveness::Alive {
                        r.voter = true;
                        self.apply_record(now, &r, Source::Local, out);
                    }
                }
            }
        }
        let grace = self.config.eviction_grace_period;
        let due: Vec<Arc<str>> = self
            .table
            .failed_since
            .iter()
            .filter(|(_, since)| now.saturating_sub(**since) >= grace)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            if let Some(mut r) = self.record(&id).cloned() {
                r.liveness = Liveness::Removed;
                r.voter = false;
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
            self.table.forget(&id);
            self.queue.remove(&crate::gossip::UpdateKey::Record(id));
        }
    }
}
