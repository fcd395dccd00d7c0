//! Which voters this node counts as reachable for quorum: on evidence of contact, not on
//! the mere absence of suspicion.
//!
//! Why: a member is suspected only by its K observers. After a partition, a member across
//! the cut whose observers are all across the cut too is suspected by nobody on this side,
//! so counting "every voter not suspected" let a minority of 19 out of 40 believe it still
//! reached a majority for 7.8 s, until its own convictions reshuffled the rings (the
//! majority convicted it at 8.5 s). Instead, while anyone is suspected, a voter counts when a
//! chain of observers vouches for it: this node, then every member that a vouched member
//! watches and that is neither suspected nor doubted, and so on. Every link of a chain is a
//! heartbeat path whose observer accuses its subject when the path is cut, so once the
//! accusations of the paths crossing the cut have spread, no chain leaves this side.
//!
//! The other way round, a member of this side whose observers are all across the cut is
//! reachable but vouched by no chain here. It notices (none of its observers is vouched in
//! its own view) and speaks for itself: it raises its incarnation once per heartbeat
//! interval, and news of that, which reaches only its own side of the cut, counts for three
//! heartbeat intervals. A member that drops out of every chain keeps counting for one
//! heartbeat interval, about the time its own announcement takes to arrive, so the majority
//! does not blink.
//!
//! While nobody is suspected or doubted every voter counts, as before, and none of this runs.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::time::Duration;

use super::{Node, Output, Source};
use crate::member::Liveness;
use crate::ring::{ring_hash, PreHashed, WatchGraph};

/// What the chains found, kept between ticks.
#[derive(Debug, Default)]
pub(crate) struct Reach {
    /// Whether chains are in force (someone is suspected or doubted).
    active: bool,
    /// The monitoring graph, and the ring epoch it was built at.
    graph: Option<(u64, WatchGraph)>,
    graph_at: Option<Duration>,
    /// Voters alive in this table that no chain reaches, and since when.
    unvouched: HashMap<Arc<str>, Duration>,
    /// Unvouched voters past the grace and without fresh news of their own: not counted.
    pub excluded: BTreeSet<Arc<str>>,
    /// When this node last had evidence of contact with each member: a datagram from it,
    /// or news only it can make (a new incarnation, generation or metadata). Kept only while
    /// chains are in force, so all of it postdates the trouble.
    heard: HashMap<Arc<str>, Duration>,
    last_announce: Option<Duration>,
}

impl Reach {
    pub fn is_active(&self) -> bool {
        self.active
    }
    /// Voters no chain reaches now, grace or not.
    pub fn unvouched(&self) -> impl Iterator<Item = &str> {
        self.unvouched.keys().map(|id| &**id)
    }

    /// Notes evidence of contact with `id`: a datagram from it, or news only it can make.
    pub fn note_heard(&mut self, id: &Arc<str>, now: Duration) {
        if self.active {
            self.heard.insert(id.clone(), now);
        }
    }
}

impl Node {
    /// Follows the observer chains again, updates the voters not counted, and announces this
    /// node when no observer of its is vouched for. Runs every gossip tick while anyone is
    /// suspected or doubted.
    pub(super) fn refresh_reach(&mut self, now: Duration, out: &mut impl Output) {
        // Fewer closed members than observers per member cannot cut anyone off from every
        // observer, and in a cluster of at most K + 1 everyone watches everyone: then
        // counting every voter not suspected is exact, and cheap.
        let closed = self.table.rings.len().saturating_sub(self.table.alive()) + self.doubted.len();
        if closed < self.config.observers {
            if self.reach.active {
                self.reach = Reach {
                    graph: self.reach.graph.take(),
                    graph_at: self.reach.graph_at,
                    ..Default::default()
                };
                self.refresh_quorum(out);
            }
            return;
        }
        self.reach.active = true;
        let interval = self.config.heartbeat_interval;
        let stale = self
            .reach
            .graph
            .as_ref()
            .is_none_or(|(epoch, _)| *epoch != self.table.ring_epoch);
        // Rebuilding costs one observer lookup per member: at most twice per heartbeat
        // interval while the rings keep changing (a stale graph only delays the fence).
        let due = self
            .reach
            .graph_at
            .is_none_or(|t| now.saturating_sub(t) >= interval / 2);
        if self.reach.graph.is_none() || (stale && due) {
            self.reach.graph = Some((self.table.ring_epoch, self.table.rings.watch_graph()));
            self.reach.graph_at = Some(now);
        }
        let heard_ttl = interval * 3;
        self.reach
            .heard
            .retain(|_, at| now.saturating_sub(*at) < heard_ttl);
        let vouched = self.follow_chains();
        for id in self.table.voter_ids() {
            let open = self.table.is_reachable_voter(id) && !self.doubted.contains(id);
            if open && !vouched.contains(&ring_hash(id)) {
                self.reach.unvouched.entry(id.clone()).or_insert(now);
            } else {
                self.reach.unvouched.remove(id);
            }
        }
        let excluded: BTreeSet<Arc<str>> = self
            .reach
            .unvouched
            .iter()
            .filter(|(_, since)| now.saturating_sub(**since) >= interval)
            .map(|(id, _)| id.clone())
            .collect();
        self.reach.excluded = excluded;
        self.refresh_quorum(out);
        self.refresh_my_observers();
        let unvouched_here = !self.my_observers.is_empty()
            && !self
                .my_observers
                .iter()
                .any(|o| vouched.contains(&ring_hash(o)));
        if unvouched_here {
            self.announce(now, out);
        }
    }

    /// The ring hashes of the members this node counts: itself and the members it has fresh
    /// evidence of, then every member a counted member watches, and so on; suspected and
    /// doubted members break the chains.
    fn follow_chains(&self) -> HashSet<u64, BuildHasherDefault<PreHashed>> {
        let mut vouched: HashSet<u64, BuildHasherDefault<PreHashed>> = HashSet::default();
        let open = |b: u64| {
            self.table.rings.id_of(b).is_some_and(|id| {
                !self.doubted.contains(id)
                    && self
                        .table
                        .get(id)
                        .is_some_and(|e| e.record.liveness == Liveness::Alive)
            })
        };
        let me = ring_hash(&self.me);
        vouched.insert(me);
        let mut todo = vec![me];
        for id in self.reach.heard.keys() {
            let b = ring_hash(id);
            if open(b) && vouched.insert(b) {
                todo.push(b);
            }
        }
        let Some((_, graph)) = &self.reach.graph else {
            return vouched;
        };
        while let Some(b) = todo.pop() {
            for &s in graph.get(&b).map(Vec::as_slice).unwrap_or_default() {
                if !vouched.contains(&s) && open(s) {
                    vouched.insert(s);
                    todo.push(s);
                }
            }
        }
        vouched
    }

    /// While none of this node's observers is vouched for here, the other members of this
    /// side cannot vouch for it through them either: raise the incarnation, at most once per
    /// heartbeat interval, so that they hear from it.
    fn announce(&mut self, now: Duration, out: &mut impl Output) {
        let me = self.my_record();
        if self.left
            || !me.voter
            || me.liveness != Liveness::Alive
            || self
                .reach
                .last_announce
                .is_some_and(|t| now.saturating_sub(t) < self.config.heartbeat_interval)
        {
            return;
        }
        let mut rec = me.clone();
        rec.incarnation = rec.incarnation.saturating_add(1);
        self.reach.last_announce = Some(now);
        self.stats.announcements += 1;
        self.apply_record(now, &rec, Source::Local, out);
    }
}
