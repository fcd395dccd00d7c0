//! The snapshot of this node's view that the runtime serves.

use std::time::Duration;

use super::{table, Node};
use crate::health;
use crate::member::{Liveness, Status};
use crate::view::{ClusterView, MemberView};

impl Node {
    /// A snapshot of this node's view (tombstones excluded).
    pub fn view(&self, now: Duration) -> ClusterView {
        let (has_quorum, leader) = self.quorum_at(now);
        let members = self
            .table
            .iter()
            .filter(|e| e.record.liveness != Liveness::Removed)
            .map(|e| self.member_view(now, e))
            .collect();
        ClusterView {
            self_id: self.me.clone(),
            // computed at `now`, not at the last input: a process that was frozen reports
            // the lease it holds now, not the one it held before the freeze
            has_quorum,
            leader,
            quorum_valid_for: if has_quorum {
                self.quorum_valid_for(now)
            } else {
                Duration::ZERO
            },
            voters: self.table.voters(),
            members,
        }
    }

    pub(super) fn member_view(&self, now: Duration, e: &table::Entry) -> MemberView {
        let r = &e.record;
        let detector = self.watch.detectors.get(&r.id);
        let is_me = *r.id == *self.me;
        let phi = match (detector, r.liveness) {
            _ if is_me => 0.0,
            (Some(d), _) => d.phi(now),
            (None, Liveness::Alive) => 0.0,
            (None, _) => self.config.phi_threshold,
        };
        let score = match r.liveness {
            Liveness::Alive | Liveness::Suspect => {
                health::score(phi, self.config.phi_threshold, r.meta.signals)
            }
            _ => 0,
        };
        let status = match r.liveness {
            Liveness::Alive if score < self.config.degraded_threshold => Status::Degraded,
            Liveness::Alive => Status::Healthy,
            Liveness::Suspect => Status::Suspect,
            Liveness::Failed | Liveness::Removed => Status::Failed,
            Liveness::Left => Status::Left,
        };
        let last_heartbeat = if is_me {
            Some(now)
        } else {
            detector.map(|d| d.last_arrival()).max(e.last_heard())
        };
        MemberView {
            id: r.id.to_string(),
            addr: r.addr,
            generation: r.generation,
            incarnation: r.incarnation,
            status,
            health_score: score,
            phi: (phi * 1000.0).round() / 1000.0,
            last_heartbeat,
            role: r.meta.role.clone(),
            zone: r.meta.zone.clone(),
            rack: r.meta.rack.clone(),
            http_addr: r.meta.http_addr.clone(),
            voter: r.voter,
            monitored: detector.is_some(),
            signals: r.meta.signals,
            tags: r.meta.tags.clone(),
        }
    }
}
