//! Decisions only the leader takes, on quorum proven after what it decides on: admitting
//! voters and evicting failed members. That is what keeps a minority from shrinking (or
//! growing) the voter set until it looks like a majority.

use std::sync::Arc;
use std::time::Duration;

use super::{Node, Output, Source};
use crate::member::Liveness;

impl Node {
    pub(super) fn decide(&mut self, now: Duration, out: &mut impl Output) {
        if self.table.voters() == 0
            && self.table.joining.is_empty()
            && self.sync.bootstrap_at.is_some_and(|t| now >= t)
        {
            // The bootstrap node founds the cluster (see `Node::new`). Not over a table that
            // holds seats: members marked joining prove a cluster exists, and this is its
            // founder restarted before the news of its own seat came back (founding then
            // stamped a first configuration that no other member's matched, and every voter
            // refused it as a candidate: a pipeline test lost quorum for good).
            self.sync.synced = true;
            let mut me = self.my_record().clone();
            me.voter = true;
            self.apply_record(now, &me, Source::Local, out);
            self.table.seats.stamp_confirmed();
        }
        // Admissions and evictions change the voter set: only the leader takes them, on quorum
        // proven after what it decides on (see `node::lease`).
        self.admit(now, out);
        self.evict(now, out);
        // Whatever changed the seats (these decisions, a voter's leave, an earlier leader's
        // decision heard late) becomes the next numbered configuration (see `node::seats`).
        self.stamp_seats(now);
        // A promotion heard here is the configuration its leader stamped (see
        // `Table::adopt_promotion`); the leader itself counts it jointly until confirmed.
        if !self.lease.leads(now) {
            self.table.adopt_promotion();
        }
    }

    /// Evicts members failed for the grace period, on quorum proven after they failed; at
    /// most one voter per configuration: removing several voters at once is not a step whose
    /// quorums meet the previous configuration's (see `node::seats`).
    fn evict(&mut self, now: Duration, out: &mut impl Output) {
        let Some(fresh) = self
            .lease
            .fresh_since(now)
            .filter(|_| self.lease.leads(now) && self.seats_settled())
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
        let mut voter_evicted = false;
        for id in due {
            if self.table.is_voter(&id) {
                if voter_evicted {
                    continue;
                }
                voter_evicted = true;
            }
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
