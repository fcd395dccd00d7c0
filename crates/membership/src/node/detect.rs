//! Heartbeats, phi-accrual monitoring, accusations and conviction.
//!
//! Each node heartbeats its K observers and watches the members it observes. An observer
//! whose phi for a subject crosses the threshold, or that has heard nothing for the hard
//! failure timeout, accuses the subject; accusations spread by gossip and make the subject
//! SUSPECT everywhere. The subject refutes by raising its incarnation. A node convicts
//! (FAILED) only when it holds quorum, the suspicion has lasted the suspicion timeout, and
//! enough distinct observers accused (from distinct zones when the observers span zones),
//! so one slow or cut-off observer cannot evict a healthy member.
//!
//! # Local health
//! A node that is itself starved of CPU sees everyone's heartbeats late and would accuse
//! healthy members (Lifeguard's finding; false FAILED verdicts from overloaded members were
//! memberlist's most reported problem). The core cannot read a clock, but it sees the same
//! thing: [`Node::handle_timeout`] called later than the deadline it asked for. Each call
//! more than half a gossip interval late raises the node's local health by one (up to
//! [`MAX_LOCAL_HEALTH`]); each heartbeat interval of on-time calls lowers it by one. While it
//! is above zero the node
//! - accuses nobody (neither as an observer nor as a stand-in witness): it still probes, and
//!   an answer still clears the subject, but silence is not held against anyone;
//! - waits `(1 + local health)` times the probe timeout and the suspicion timeout before
//!   acting on its own clock (Lifeguard's stretched timeouts).
//!
//! Accusations by healthy observers are untouched, so a real crash is still convicted by
//! them. A stall longer than `cluster.local-pause-guard` also restarts every silence clock
//! (see [`Node::forgive_own_pause`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;

use super::{Event, Node, Output, Source};
use crate::codec::{Message, Sender, Update};
use crate::detector::PhiDetector;
use crate::member::{Liveness, NodeId};

/// Lifeguard's idea, simplified: every independent accuser beyond the required ones is more
/// evidence, so the wait shrinks linearly from the full timeout (just enough accusers) to
/// half of it (every observer accuses). A crash is convicted quickly because all of its
/// observers notice; a lost heartbeat rarely makes more than one observer accuse.
pub(crate) fn suspicion_timeout(
    full: Duration,
    accusers: usize,
    needed: usize,
    observers: usize,
) -> Duration {
    if observers <= needed || accusers <= needed {
        return full;
    }
    let extra = (accusers - needed).min(observers - needed) as f64;
    let frac = extra / (observers - needed) as f64;
    full.mul_f64(1.0 - 0.5 * frac)
}

/// Highest local health (see the module docs, "Local health").
pub(crate) const MAX_LOCAL_HEALTH: u32 = 8;

/// Most distinct accusers remembered per suspicion: observers are at most 16 (validated),
/// so more names can only come from a confused or hostile sender.
pub(crate) const MAX_ACCUSERS: usize = 32;

/// Accusations against one subject at one (generation, incarnation).
#[derive(Debug, Clone)]
pub(crate) struct Suspicion {
    pub generation: u64,
    pub incarnation: u64,
    pub accusers: BTreeSet<NodeId>,
    pub since: Duration,
}

/// The members this node watches (its subjects) and its direct probes of them.
#[derive(Debug)]
pub(super) struct Watch {
    /// One phi detector per subject.
    pub detectors: HashMap<Arc<str>, PhiDetector>,
    /// Subjects convicted, gone or restarted whose previous life this node heard heartbeats
    /// from, until the next choice of subjects: kept past it only while they are FAILED
    /// (waiting for a new life), taken by the detector of their next life. That life
    /// is watched like any member (phi from the usual prior), not like one never heard from
    /// (probed after a second of silence and accused if the probe goes unanswered): a
    /// member convicted at a long stall rejoins in the moments it runs, before its
    /// observers watch the new life, so it was always "never heard from" and convicted
    /// again at each stall after, twelve times in 40 s (experiment 4, `throttled-hard`).
    pub heard_before: HashSet<Arc<str>>,
    /// Direct probes awaiting an answer: when sent, and the nonce the answer must echo.
    pub probes: HashMap<Arc<str>, (Duration, u64)>,
    /// The ring epoch the subjects were chosen at (`u64::MAX`: choose again).
    pub subjects_epoch: u64,
    /// When they were last chosen.
    pub subjects_at: Option<Duration>,
}

impl Watch {
    /// Stops watching `id`'s current life, remembering whether it was heard from.
    pub fn forget(&mut self, id: &str) {
        if let Some((id, d)) = self.detectors.remove_entry(id) {
            if d.heard() {
                self.heard_before.insert(id);
            }
        }
    }
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            detectors: HashMap::new(),
            heard_before: HashSet::new(),
            probes: HashMap::new(),
            subjects_epoch: u64::MAX,
            subjects_at: None,
        }
    }
}

/// Local health (Lifeguard's "local health multiplier"): how many recent timeouts of this
/// node ran late, 0 to [`MAX_LOCAL_HEALTH`], and when that last changed.
#[derive(Debug, Default)]
pub(super) struct LocalHealth {
    pub level: u32,
    pub since: Duration,
}

impl Node {
    /// Raises local health when this call of `handle_timeout` is `late` (see the module
    /// docs), lowers it after a heartbeat interval on time.
    pub(super) fn note_own_lateness(&mut self, now: Duration, late: Duration) {
        if !self.config.local_health {
            return;
        }
        if late > self.config.gossip_interval / 2 {
            self.local_health.level = (self.local_health.level + 1).min(MAX_LOCAL_HEALTH);
            self.local_health.since = now;
        } else if self.local_health.level > 0
            && now.saturating_sub(self.local_health.since) >= self.config.heartbeat_interval
        {
            self.local_health.level -= 1;
            self.local_health.since = now;
        }
    }

    /// Whether this node's own timers run late: it accuses nobody meanwhile.
    pub(super) fn lagging(&self) -> bool {
        self.local_health.level > 0
    }

    /// `d` stretched by local health.
    pub(super) fn stretched(&self, d: Duration) -> Duration {
        d.saturating_mul(1 + self.local_health.level)
    }

    pub(super) fn refresh_my_observers(&mut self) {
        if self.observers_epoch != self.table.ring_epoch {
            let zone = self.my_record().meta.zone.clone();
            self.my_observers = self.table.rings().observers(&self.me, &zone);
            self.observers_epoch = self.table.ring_epoch;
        }
    }

    pub(super) fn send_heartbeats(&mut self, _now: std::time::Duration, out: &mut impl Output) {
        self.refresh_my_observers();
        self.hb_seq += 1;
        let from = self.heartbeat_sender();
        let targets: Vec<_> = self
            .my_observers
            .iter()
            .filter_map(|id| self.table.get(id))
            .map(|e| e.record.addr)
            .collect();
        for to in targets {
            let empty = Message::Heartbeat {
                from: from.clone(),
                seq: self.hb_seq,
                updates: Vec::new(),
            };
            let budget = self.piggyback_budget(&empty);
            let updates = if self.queue.is_empty() {
                Vec::new()
            } else {
                self.take_updates(budget)
            };
            let msg = Message::Heartbeat {
                from: from.clone(),
                seq: self.hb_seq,
                updates,
            };
            self.stats.heartbeats_sent += 1;
            self.send(to, &msg, out);
        }
    }

    /// A heartbeat counts only if it is newer than every one taken from that member: an
    /// older life's, or a replayed or reordered one, would hide a crash from the detector.
    pub(super) fn on_heartbeat(&mut self, now: Duration, sender: &Sender, seq: u64) {
        if let Some(e) = self.table.get(&sender.id) {
            let this = (sender.generation, seq);
            if sender.generation < e.record.generation
                || self
                    .table
                    .heartbeats
                    .get(&*sender.id)
                    .is_some_and(|last| this <= *last)
            {
                self.stats.stale_heartbeats += 1;
                return;
            }
            let id = e.record.id.clone();
            self.table.heartbeats.insert(id, this);
        }
        if let Some(d) = self.watch.detectors.get_mut(sender.id.as_str()) {
            d.heartbeat(now);
        } else if self
            .table
            .get(sender.id.as_str())
            .is_some_and(|e| e.record.generation == sender.generation)
        {
            // maybe we just became one of its observers: look again at the next check
            self.watch.subjects_epoch = u64::MAX;
        }
        if let Some(e) = self.table.get_mut(&sender.id) {
            if e.record.generation == sender.generation {
                e.heard(now);
            }
        }
    }

    /// A probe answer proves the subject alive: restart its silence clock (without adding
    /// an inter-arrival sample, which would only measure our probing).
    /// Only the answer to the pending probe counts (same nonce): a replayed answer to an
    /// older probe would otherwise keep a dead subject alive.
    pub(super) fn on_probe_ack(&mut self, now: Duration, sender: &Sender, nonce: u64) {
        self.on_witness_ack(&sender.id, nonce);
        if self
            .watch
            .probes
            .get(sender.id.as_str())
            .is_some_and(|&(_, pending)| pending == nonce)
        {
            self.watch.probes.remove(sender.id.as_str());
            if let Some(d) = self.watch.detectors.get_mut(sender.id.as_str()) {
                d.reset_silence(now);
            }
        }
    }

    /// Starts and stops watching members as the rings change, then accuses the silent ones.
    pub(super) fn check_subjects(&mut self, now: Duration, out: &mut impl Output) {
        // Recomputing who we watch costs O(K^2 log N); while a big cluster is forming the
        // rings change on every tick, so do it at most twice per heartbeat interval.
        let due = self
            .watch
            .subjects_at
            .is_none_or(|t| now.saturating_sub(t) >= self.config.heartbeat_interval / 2);
        if self.watch.subjects_epoch != self.table.ring_epoch && due {
            self.watch.subjects_epoch = self.table.ring_epoch;
            self.watch.subjects_at = Some(now);
            let subjects = self.table.rings().subjects(&self.me);
            self.watch.detectors.retain(|id, _| subjects.contains(id));
            self.watch.probes.retain(|id, _| subjects.contains(id));
            for id in subjects {
                let c = &self.config;
                let heard_before = &mut self.watch.heard_before;
                self.watch.detectors.entry(id).or_insert_with_key(|id| {
                    let mut d = PhiDetector::new(
                        now,
                        c.heartbeat_interval,
                        c.phi_window,
                        c.phi_min_std_deviation,
                        c.acceptable_heartbeat_pause,
                    );
                    if heard_before.remove(id) {
                        d.mark_known_before();
                    }
                    d
                });
            }
            let table = &self.table;
            self.watch.heard_before.retain(|id| {
                table
                    .get(id)
                    .is_some_and(|e| e.record.liveness == Liveness::Failed)
            });
        }
        let half = self.config.phi_threshold / 2.0;
        let doubted: BTreeSet<Arc<str>> = self
            .watch
            .detectors
            .iter()
            .filter(|(id, d)| {
                d.phi(now) >= half && self.table.get(id).is_some_and(|e| e.record.voter)
            })
            .map(|(id, _)| id.clone())
            .collect();
        if doubted != self.doubted {
            self.doubted = doubted;
            self.reach.note_liveness_change();
            self.refresh_quorum(out);
        }
        let mut accuse: Vec<(Arc<str>, u64, u64)> = Vec::new();
        let mut probe: Vec<(Arc<str>, std::net::SocketAddr)> = Vec::new();
        for (id, d) in &self.watch.detectors {
            let Some(e) = self.table.get(id) else {
                continue;
            };
            let r = &e.record;
            if r.liveness.is_terminal() {
                continue;
            }
            let silent = now.saturating_sub(d.last_arrival());
            // Two kinds of subject are probed once silent for a heartbeat interval, not only
            // once phi says so: one that others already accuse, and one never heard from,
            // nor its previous life, since this node took it over (its old observers failed
            // or are cut off). This node has no history of either and would otherwise wait
            // for phi to build up from nothing, which in a partition leaves members watched
            // only from the far side unsuspected for seconds. A live subject answers the probe; only silence
            // leads to accusing.
            let corroborate = silent >= self.config.heartbeat_interval
                && (r.liveness == Liveness::Suspect || !d.known());
            if d.phi(now) <= self.config.phi_threshold
                && silent < self.config.failure_timeout
                && !corroborate
            {
                self.watch.probes.remove(id);
                continue;
            }
            // Ask the subject directly first; accuse only if it stays silent.
            match self.watch.probes.get(id) {
                None => {
                    probe.push((id.clone(), r.addr));
                    continue;
                }
                Some((sent, _))
                    if now.saturating_sub(*sent) < self.stretched(self.config.probe_timeout) =>
                {
                    continue
                }
                Some(_) => {}
            }
            let already = self.suspicions.get(&**id).is_some_and(|s| {
                (s.generation, s.incarnation) == (r.generation, r.incarnation)
                    && s.accusers.contains(&self.me)
            });
            if !already {
                accuse.push((id.clone(), r.generation, r.incarnation));
            }
        }
        probe.sort();
        for (id, to) in probe {
            let nonce = self.rng.random();
            self.watch.probes.insert(id, (now, nonce));
            let msg = Message::Probe {
                from: self.sender(),
                nonce,
            };
            self.send(to, &msg, out);
        }
        if self.lagging() {
            self.stats.accusations_withheld += accuse.len() as u64;
            accuse.clear();
        }
        accuse.sort();
        for (subject, generation, incarnation) in accuse {
            self.stats.accusations += 1;
            let me = self.me.clone();
            self.on_accusation(now, &subject, generation, incarnation, &me, out);
        }
    }

    /// Records an accusation (ours or heard), spreads it if it is news, refutes it if it is
    /// about this node.
    pub(super) fn on_accusation(
        &mut self,
        now: Duration,
        subject: &str,
        generation: u64,
        incarnation: u64,
        by: &str,
        out: &mut impl Output,
    ) {
        if subject == self.me {
            let mine = self.my_record();
            if (mine.generation, mine.incarnation) == (generation, incarnation) {
                let mut rec = mine.clone();
                rec.incarnation = rec.incarnation.saturating_add(1);
                self.stats.refutations += 1;
                self.apply_record(now, &rec, Source::Local, out);
                // answer the accuser at once rather than waiting for gossip to reach it
                if let Some(addr) = self.table.get(by).map(|e| e.record.addr) {
                    let msg = Message::Gossip {
                        from: self.sender(),
                        updates: vec![Update::Record(rec)],
                    };
                    self.send(addr, &msg, out);
                }
            }
            return;
        }
        // Only an accuser this node sees ALIVE counts: one it suspects or has convicted is
        // most likely on the far side of a cut, and its accusations of this side (made there,
        // or still queued from before it rejoined) would make members SUSPECT that this side
        // hears from all along.
        if by != self.me
            && self
                .table
                .get(by)
                .is_none_or(|e| e.record.liveness != Liveness::Alive)
        {
            return;
        }
        let Some(entry) = self.table.get(subject) else {
            return;
        };
        let r = (*entry.record).clone();
        if (r.generation, r.incarnation) != (generation, incarnation) || r.liveness.is_terminal() {
            return;
        }
        let s = self
            .suspicions
            .entry(subject.to_string())
            .or_insert_with(|| Suspicion {
                generation,
                incarnation,
                accusers: BTreeSet::new(),
                since: now,
            });
        if s.accusers.len() >= MAX_ACCUSERS || !s.accusers.insert(by.to_string()) {
            return;
        }
        self.enqueue(Update::Accuse {
            subject: subject.to_string(),
            generation,
            incarnation,
            by: by.to_string(),
        });
        if r.liveness == Liveness::Alive {
            let mut suspect = r;
            suspect.liveness = Liveness::Suspect;
            if let Some(change) = self.table.merge(now, &suspect) {
                // the accusation itself carries the news: no need to queue the record too
                self.after_change(now, &change, false, out);
            }
        }
    }

    /// Convicts suspects with enough independent accusers, once the suspicion is old enough,
    /// and only while holding quorum.
    pub(super) fn convict(&mut self, now: Duration, out: &mut impl Output) {
        // Only on quorum proven after the suspicion began (see `node::lease`): a side cut off
        // from the majority convicts nobody it lost at the cut, even while its lease runs.
        let Some(fresh) = self.lease.fresh_since(now) else {
            return;
        };
        if self.suspicions.is_empty() {
            return;
        }
        // Many members closed at once (`node::reach` is active) is what a partition looks
        // like from either side: wait until no voter has turned SUSPECT for a suspicion
        // timeout, because on the minority side each late accusation may be the one that
        // takes the quorum away. A lone crash does not activate it and is convicted no later.
        if self.reach.is_active()
            && self
                .last_voter_suspected
                .is_some_and(|t| now.saturating_sub(t) < self.config.suspicion_timeout)
        {
            return;
        }
        let mut guilty: Vec<NodeId> = Vec::new();
        for (id, s) in &self.suspicions {
            // cheap pre-check: nothing can be due before half the timeout
            if now.saturating_sub(s.since) < self.config.suspicion_timeout / 2 || fresh <= s.since {
                continue;
            }
            let Some(r) = self.suspect_of(id, s) else {
                continue;
            };
            let evidence = self.evidence(id, &r.meta.zone, s);
            if evidence.enough
                && now.saturating_sub(s.since)
                    >= suspicion_timeout(
                        self.stretched(self.config.suspicion_timeout),
                        s.accusers.len(),
                        evidence.needed,
                        evidence.observers.len(),
                    )
            {
                guilty.push(id.clone());
            }
        }
        guilty.sort();
        for id in guilty {
            if let Some(mut r) = self.record(&id).cloned() {
                r.liveness = Liveness::Failed;
                self.apply_record(now, &r, Source::Local, out);
            }
        }
    }

    /// After this process itself stalled, restart every silence and suspicion clock.
    pub(super) fn forgive_own_pause(&mut self, now: Duration) {
        for d in self.watch.detectors.values_mut() {
            d.reset_silence(now);
        }
        for s in self.suspicions.values_mut() {
            s.since = now;
        }
    }

    /// Voters ALIVE here and not doubted: the count before any chain is followed.
    pub(super) fn plain_reachable(&self) -> usize {
        self.table.reachable_voters()
            - self
                .doubted
                .iter()
                .filter(|id| self.table.is_reachable_voter(id))
                .count()
    }

    /// Whether this node holds quorum at `now`, and the leader it names.
    pub(super) fn quorum_at(&self, now: Duration) -> (bool, Option<NodeId>) {
        let quorum = !self.left
            && self
                .lease
                .reported_until(self.lease_renew())
                .is_some_and(|u| now < u);
        let leader = if !quorum {
            None
        } else if self.lease.leads(now) {
            Some(self.me.as_str())
        } else {
            self.lease.followed_leader(now)
        };
        // Only a voter this table still counts among the living is named: one convicted or
        // gone here while its lease runs is not shown as the leader (the lease still blocks
        // any other until it ends).
        let leader = leader
            .filter(|id| {
                self.record(id).is_some_and(|r| {
                    r.voter && matches!(r.liveness, Liveness::Alive | Liveness::Suspect)
                })
            })
            .map(str::to_string);
        (quorum, leader)
    }

    /// Emits an event when quorum or leadership changes. Both come from the leases (see
    /// `node::lease`): quorum while a lease this node holds or follows is current (plus the
    /// follower grace), the leader only while its lease is.
    pub(super) fn refresh_quorum(&mut self, out: &mut impl Output) {
        let voters = self.table.voters();
        let (quorum, leader) = self.quorum_at(self.clock);
        if quorum != self.quorum {
            self.quorum = quorum;
            out.event(Event::QuorumChanged {
                has_quorum: quorum,
                reachable: self.plain_reachable(),
                voters,
            });
        }
        if leader != self.leader {
            self.leader = leader.clone();
            out.event(Event::LeaderChanged { leader });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn detector() -> PhiDetector {
        PhiDetector::new(MS(0), MS(1000), 100, MS(100), MS(500))
    }

    #[test]
    fn only_a_life_heard_from_vouches_for_the_next() {
        let mut w = Watch::default();
        let id: Arc<str> = Arc::from("n1");
        // a life heard from: its next one is known
        let mut d = detector();
        d.heartbeat(MS(1000));
        w.detectors.insert(id.clone(), d);
        w.forget(&id);
        assert!(w.heard_before.contains(&id));
        // that next life, never heard itself, is known but vouches for nobody after it (a
        // member crash-looping before its first heartbeat is checked without waiting again)
        assert!(w.heard_before.remove(&id));
        let mut next = detector();
        next.mark_known_before();
        assert!(next.known() && !next.heard());
        w.detectors.insert(id.clone(), next);
        w.forget(&id);
        assert!(!w.heard_before.contains(&id));
        assert!(!detector().known());
    }
}
