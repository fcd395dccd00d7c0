//! Which voters this node counts as reachable for quorum: on evidence of contact, not on
//! the mere absence of suspicion.
//!
//! Why: a member is suspected only by its K observers. After a partition, a member across
//! the cut whose observers are all across the cut too is suspected by nobody on this side,
//! so counting "every voter not suspected" let a minority of 19 out of 40 believe it still
//! reached a majority for 7.8 s, until its own convictions reshuffled the rings (the
//! majority convicted it at 8.5 s). Instead, once at least K members are closed (suspected,
//! or doubted by this node), a voter counts when a chain of observers vouches for it: this
//! node and the members it heard from directly, then every member that a vouched member
//! watches and that is neither suspected nor doubted, and so on. Every link of a chain is a
//! heartbeat path whose observer accuses its subject when the path is cut, so once the
//! accusations of the paths crossing the cut have spread, no chain leaves this side.
//!
//! The other way round, a member of this side whose observers are all across the cut is
//! reachable but vouched by no chain here. It notices (none of its observers is vouched in
//! its own view) and speaks for itself: it raises its incarnation once per heartbeat
//! interval, and news of that, which reaches only its own side of the cut, roots a chain
//! there for three heartbeat intervals. A member that drops out of every chain keeps counting for one
//! heartbeat interval, about the time its own announcement takes to arrive, so the majority
//! does not blink.
//!
//! With fewer than K members closed nobody can have lost every observer: every voter not
//! suspected counts, as before, and none of this runs (a lone crash never gets here).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::time::Duration;

use super::{Node, Output, Source};
use crate::member::Liveness;
use crate::ring::{ring_hash, PreHashed, WatchGraph};

/// Sets of ring hashes, which are already hashes.
type Hashes = BuildHasherDefault<PreHashed>;

/// What the chains depend on: ring epoch, graph epoch, liveness changes.
type Inputs = (u64, u64, u64);

/// What the chains found, kept between ticks.
#[derive(Debug, Default)]
pub(crate) struct Reach {
    /// Whether chains are in force (at least K members closed).
    active: bool,
    /// The monitoring graph, and the ring epoch it was built at.
    graph: Option<(u64, WatchGraph)>,
    graph_at: Option<Duration>,
    /// Voters alive in this table that no chain reaches, and since when.
    unvouched: HashMap<Arc<str>, Duration>,
    /// Unvouched voters past the one-interval grace: not counted.
    pub excluded: BTreeSet<Arc<str>>,
    /// When this node last had evidence of contact with each member: a datagram from it,
    /// or news only it can make (a new incarnation, generation or metadata). Kept only while
    /// chains are in force, so all of it postdates the trouble.
    heard: HashMap<Arc<str>, Duration>,
    last_announce: Option<Duration>,
    /// Whether a member joined or left `heard` since the chains were last followed.
    roots_changed: bool,
    /// Liveness changes seen in this table, counted.
    liveness_changes: u64,
    /// What the chains were last followed at (ring epoch, graph epoch, liveness changes), and
    /// what they reached: followed again only when one of those or the roots changed.
    followed: Option<(Inputs, HashSet<u64, Hashes>)>,
}

impl Reach {
    /// Whether chains are in force (at least K members closed).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Notes evidence of contact with `id`: a datagram from it, or news only it can make.
    pub fn note_heard(&mut self, id: &Arc<str>, now: Duration) {
        if self.active && self.heard.insert(id.clone(), now).is_none() {
            self.roots_changed = true;
        }
    }

    /// Notes that a member's liveness changed in this table, or that the doubted set did.
    pub fn note_liveness_change(&mut self) {
        self.liveness_changes += 1;
    }
}

impl Node {
    /// Follows the observer chains again, updates the voters not counted, and announces this
    /// node when no observer of its is vouched for. Runs every gossip tick while at least K
    /// members are closed (suspected or doubted).
    pub(super) fn refresh_reach(&mut self, now: Duration, out: &mut impl Output) {
        // Fewer closed members than observers per member cannot cut anyone off from every
        // observer, and in a cluster of at most K + 1 everyone watches everyone: then
        // counting every voter not suspected is exact, and cheap.
        let closed =
            self.table.rings().len().saturating_sub(self.table.alive()) + self.doubted.len();
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
        let heard_ttl = interval * 3;
        let before = self.reach.heard.len();
        self.reach
            .heard
            .retain(|_, at| now.saturating_sub(*at) < heard_ttl);
        self.reach.roots_changed |= self.reach.heard.len() != before;
        // Chains only ever take voters away: without quorum by plain counting (the minority,
        // once its suspicions have spread) there is nothing to follow.
        let plain = self.plain_reachable();
        let policy = self.config.split_brain_policy;
        if !crate::quorum::has_quorum(policy, self.table.voters(), plain) {
            self.reach.unvouched.clear();
            self.reach.excluded.clear();
            self.refresh_quorum(out);
            return;
        }
        let stale = self
            .reach
            .graph
            .as_ref()
            .is_none_or(|(epoch, _)| *epoch != self.table.ring_epoch);
        // Rebuilding costs one observer lookup per member (milliseconds at 1000 members):
        // at most once per heartbeat interval while the rings keep changing. Meanwhile
        // edges to members that left the rings are closed anyway, and a member whose new
        // observers are missing from the stale graph speaks for itself.
        let due = self
            .reach
            .graph_at
            .is_none_or(|t| now.saturating_sub(t) >= interval);
        if self.reach.graph.is_none() || (stale && due) {
            self.reach.graph = Some((self.table.ring_epoch, self.table.rings().watch_graph()));
            self.reach.graph_at = Some(now);
        }
        let inputs = (
            self.table.ring_epoch,
            self.reach.graph.as_ref().map_or(0, |(epoch, _)| *epoch),
            self.reach.liveness_changes,
        );
        let vouched = match self.reach.followed.take() {
            Some((at, vouched)) if at == inputs && !self.reach.roots_changed => vouched,
            _ => self.follow_chains(),
        };
        self.reach.roots_changed = false;
        for e in self.table.iter() {
            let r = &e.record;
            let open = r.voter && r.liveness == Liveness::Alive && !self.doubted.contains(&r.id);
            if open && !vouched.contains(&ring_hash(&r.id)) {
                self.reach.unvouched.entry(r.id.clone()).or_insert(now);
            } else if !self.reach.unvouched.is_empty() {
                self.reach.unvouched.remove(&r.id);
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
        self.reach.followed = Some((inputs, vouched));
        if unvouched_here {
            self.announce(now, out);
        }
    }

    /// The ring hashes of the members this node counts: itself and the members it has fresh
    /// evidence of, then every member a counted member watches, and so on; suspected and
    /// doubted members break the chains.
    fn follow_chains(&self) -> HashSet<u64, Hashes> {
        type Set = HashSet<u64, Hashes>;
        // Closed members by ring hash, found in one pass over the table: the walk below then
        // looks nothing up by id (string-keyed lookups per edge cost more than the walk).
        let mut closed: Set = self.doubted.iter().map(|id| ring_hash(id)).collect();
        closed.extend(
            self.table
                .iter()
                .filter(|e| e.record.liveness == Liveness::Suspect)
                .map(|e| ring_hash(&e.record.id)),
        );
        let open = |b: u64| !closed.contains(&b) && self.table.rings().id_of(b).is_some();
        let mut vouched: Set = Set::default();
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
                if open(s) && vouched.insert(s) {
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
