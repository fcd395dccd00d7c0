//! What is left of a member once its tombstone is collected: the generation its last life
//! ended at, so that no copy of that life's records brings it back.
//!
//! A LEFT or REMOVED record stays in the table for `cluster.eviction.tombstone-ttl`: within a
//! generation a terminal liveness beats any other, so stale gossip, a partitioned member's
//! table or a replayed datagram cannot make the member live again while the tombstone is
//! there. Once it is collected nothing marked the id, and the member's last live record,
//! replayed, looked like a newcomer (issue 14: with a 5 s TTL, a crashed member shown HEALTHY
//! again for 9.5 s, until it was convicted a second time).
//!
//! So collecting a tombstone of `(id, g)` leaves a floor: records of `id` at generation `g`
//! or below are refused (counted in [`super::Stats::stale_lives`]). This needs no assumption
//! on timing or clocks: a member's generations only grow (a restart takes the wall clock at
//! start, a rejoin the old generation plus one), so every record at `g` or below describes a
//! life that has ended. A new life, above the floor, is accepted as before. A restarted
//! process whose clock went back below the floor is told its id was removed at the floor
//! (see `Node::on_join`) and comes back above it.
//!
//! A member convicted or evicted here that still speaks from the life that ended (the far
//! side of a healed partition, a process back from a pause) is told so directly, in a gossip
//! of its record, at most once per heartbeat interval and only at the address this table
//! holds for it ([`Node::tell_the_departed`]). It then comes back with a new generation at
//! once, instead of when anti-entropy happens to carry its tombstone: with answers to
//! strangers bounded (issue 14), the evicted side of a 49 | 51 split at 100 nodes otherwise
//! took more than 10 s after the heal to hold quorum again.
//!
//! Memory: an id and two numbers per departed member, against a whole record and its places
//! in every index for a tombstone; at most `cluster.limits.max-members` floors, the oldest
//! forgotten first.
//!
//! Not covered: a node that joins after every member collected the tombstone never learns
//! the floor (a fresh node learns departures only from tables that still hold them), and a
//! floor pushed out by newer ones is forgotten. Either may still show a replayed member
//! until it is convicted again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{Node, Output};
use crate::codec::{Message, Sender, Update};
use crate::member::{Liveness, MemberRecord, Metadata};

/// The floors, by id (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Departed {
    /// Per id: the highest generation known to have ended, and when its tombstone went.
    floors: HashMap<Arc<str>, (u64, Duration)>,
    /// Per id: when this node last told the member it is gone (see the module docs).
    told: HashMap<Arc<str>, Duration>,
}

impl Departed {
    /// Notes that the tombstone of `id` at `generation` was collected at `now`, keeping at
    /// most `cap` floors (the oldest go first).
    pub fn note(&mut self, id: Arc<str>, generation: u64, now: Duration, cap: usize) {
        if !self.floors.contains_key(&id) && self.floors.len() >= cap.max(1) {
            // full: rare (as many departures as members), so a scan is fine
            if let Some(oldest) = self
                .floors
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(id, _)| id.clone())
            {
                self.floors.remove(&oldest);
            }
        }
        let floor = self.floors.entry(id).or_insert((generation, now));
        *floor = (floor.0.max(generation), now);
    }

    /// The highest ended generation of `id`, if its tombstone was collected here.
    pub fn floor(&self, id: &str) -> Option<u64> {
        self.floors.get(id).map(|(g, _)| *g)
    }

    /// Whether a record of `id` at `generation` belongs to a life that ended here.
    pub fn refuses(&self, id: &str, generation: u64) -> bool {
        self.floor(id).is_some_and(|f| generation <= f)
    }

    /// Whether `id` may be told it is gone at `now`: not within `interval` of the last time.
    /// Forgets entries older than `interval`, so at most one per member told recently.
    fn may_tell(&mut self, id: &Arc<str>, now: Duration, interval: Duration) -> bool {
        if self
            .told
            .get(id)
            .is_some_and(|t| now.saturating_sub(*t) < interval)
        {
            return false;
        }
        self.told.retain(|_, t| now.saturating_sub(*t) < interval);
        self.told.insert(id.clone(), now);
        true
    }

    /// Floors held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.floors.len()
    }
}

impl Node {
    /// Tells a member that this table holds FAILED or REMOVED in the life it sends from, at
    /// the address the table holds for it, that it is gone (see the module docs). The
    /// record goes without its metadata (the member knows its own) and outside the answer
    /// budget for strangers: at most one small datagram per heartbeat interval per departed
    /// member, and only to its own address.
    pub(super) fn tell_the_departed(
        &mut self,
        now: Duration,
        from: SocketAddr,
        sender: &Sender,
        out: &mut impl Output,
    ) {
        let Some(e) = self.table.get(&sender.id) else {
            return;
        };
        let r = &e.record;
        if r.generation != sender.generation
            || r.addr != from
            || !matches!(r.liveness, Liveness::Failed | Liveness::Removed)
        {
            return;
        }
        let mut verdict = MemberRecord::clone(r);
        verdict.meta = Arc::new(Metadata::default());
        let interval = self.config.heartbeat_interval;
        if !self.departed.may_tell(&verdict.id, now, interval) {
            return;
        }
        self.stats.departed_told += 1;
        let msg = Message::Gossip {
            from: self.sender(),
            updates: vec![Update::Record(verdict)],
        };
        let budget = self.inbound.answer_budget.take();
        self.send(from, &msg, out);
        self.inbound.answer_budget = budget;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_refuse_ended_lives_only_and_stay_bounded() {
        let mut d = Departed::default();
        let s = Duration::from_secs;
        d.note("a".into(), 5, s(1), 2);
        assert!(d.refuses("a", 5) && d.refuses("a", 1));
        assert!(!d.refuses("a", 6) && !d.refuses("b", 1));
        // a later, lower tombstone does not lower the floor
        d.note("a".into(), 3, s(2), 2);
        assert_eq!(d.floor("a"), Some(5));
        d.note("b".into(), 1, s(3), 2);
        d.note("c".into(), 1, s(4), 2);
        assert_eq!(d.len(), 2);
        assert_eq!(d.floor("a"), None, "the oldest floor goes first");
        assert!(d.refuses("b", 1) && d.refuses("c", 1));
    }
}
