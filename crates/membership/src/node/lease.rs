//! Leader leases: at most one leader at any instant, and quorum that is provably current.
//!
//! Why: counting reachable voters in one's own table (`node::reach`) lags the network. Right
//! after a cut, both sides still count the other side for seconds (two leaders at once at
//! 1000 nodes split 499 | 501), and a member back from a pause counts nobody until a table
//! transfer arrives. Here, instead, quorum is proven by answers:
//!
//! - **Grants.** A voter grants a lease to one leader at a time; a grant lasts
//!   `cluster.quorum.lease` (L) on the voter's clock (L/3 for a candidate that holds no lease
//!   yet), and until it runs out the voter grants nobody else. The leader asks every member
//!   each L/3 (one `LeaseRequest`; a `LeaseGrant` back from each voter, but see "Quiet turns").
//! - **The leader's lease.** When voters forming a quorum (itself included) granted round r,
//!   sent at `s` on its clock, the leader holds the lease until `s + L·(1-ρ)/(1+ρ)`, ρ being
//!   `cluster.quorum.max-clock-drift` (L/3 instead of L for a candidate's round). Every grant
//!   of round r started after `s` and lasts as long on a clock at most ρ fast, so it outlives
//!   the lease: any other candidate needs one of those voters (quorums intersect) and cannot
//!   collect it before the lease is over. Hence at most one leader at any instant, with no
//!   assumption on message delays.
//! - **Followers.** Each request carries how long the leader's lease still holds. A member
//!   that granted it holds quorum that long after it arrived, plus a grace of L/3 during which
//!   it reports quorum but names no leader and decides nothing (so a crashed leader's
//!   successor takes over without the whole cluster blinking). A side cut off from the
//!   majority thereby reports quorum at most L + L/3 + one delivery after the cut.
//! - **Decisions.** Convicting, evicting and admitting need quorum proven *after* what they
//!   decide on: a round a quorum granted that was sent after the suspicion began (the leader
//!   knows its own send times; a follower takes the arrival of the confirmed round less a
//!   quarter of a renewal, assuming one delivery takes less than that). While a suspicion
//!   is young the leader renews every L/12, so members learn of such a round soon.
//!   So a minority never convicts members it lost at the cut, even while its old lease runs.
//! - **Quiet turns.** A leader needs grants from a quorum, not from every voter: of its
//!   routine renewals (it holds the lease, announces no configuration, and a quorum granted
//!   its previous round), each voter leaves one round in three unanswered, by a turn derived
//!   from its id and the round. It still grants, follows and holds quorum as for any round;
//!   only the answer is not sent. The leader allows it only where it can afford it: not
//!   right after a candidate's round, and only if the voters that answered its recent rounds,
//!   less those whose turn it is and one more, are still a quorum (`quiet_allowed`);
//!   otherwise its request carries the digest and everyone answers. A round that falls short
//!   anyway is confirmed by none, so the next request names an older confirmed round and
//!   every voter answers it. Safety is untouched (the leader counts only the grants it
//!   received, and a silent grant binds its voter as any other); the cost is up to a third
//!   fewer grants on the wire, in clusters with voters to spare.
//!
//! Who stands for leader: the smallest voter this node sees ALIVE and counts as reachable
//! (not doubted, not cut off by the observer chains), and only when it has no unexpired grant
//! to another. Any voter stands after 2L without a leader (staggered by its rank), so a
//! wrong view of who is smallest costs time, never leadership. A voter grants to any
//! candidate it sees ALIVE once its earlier grant ran out; a candidate that hears a smaller
//! candidate while it holds no lease withdraws.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{Node, Output};
use crate::codec::{Digest, Message, Sender};
use crate::member::Liveness;
use crate::ring::id_hash;

/// Rounds received from the current leader kept for the freshness rule.
const ROUNDS_KEPT: usize = 8;

/// A voter answers a leader's routine renewals except one in this many (see "Quiet turns").
const QUIET_EVERY: u64 = 3;

/// Whether `round` is member `id`'s quiet turn: known to the leader and the voter alike.
fn quiet_turn_of(id: &str, round: u64) -> bool {
    id_hash(id).wrapping_add(round) % QUIET_EVERY == 0
}

/// One of this node's rounds, awaiting grants.
#[derive(Debug)]
struct OpenRound {
    round: u64,
    sent: Duration,
    /// How long its grants last (see `Node::grant_length`).
    length: Duration,
    granted: BTreeSet<Arc<str>>,
}

/// A voter's promise to one leader.
#[derive(Debug, Clone)]
struct Grant {
    to: Arc<str>,
    generation: u64,
    until: Duration,
}

/// The leader this node follows, as its requests describe it.
#[derive(Debug, Clone)]
struct Followed {
    id: Arc<str>,
    generation: u64,
    /// Until when (local time) its lease holds, as its newest request said.
    until: Duration,
    /// The newest round received, and when each recent round arrived.
    rounds: VecDeque<(u64, Duration)>,
    /// A local time after which a quorum is proven to have granted (see the module docs).
    fresh_since: Option<Duration>,
}

/// Lease state, as granter, follower and leader. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Lease {
    grant: Option<Grant>,
    followed: Option<Followed>,
    /// Last time a valid leader was known here (own lease or a followed one).
    last_led: Option<Duration>,
    round: u64,
    /// This node's recent rounds, newest last: grants may arrive after the next round left
    /// (a slow link, or the fast renewals while a suspicion is young).
    open: VecDeque<OpenRound>,
    /// The newest round a quorum granted, and when it was sent.
    confirmed: u64,
    confirmed_sent: Option<Duration>,
    /// Until when this node holds the lease as leader.
    until: Option<Duration>,
    /// Until when the latest lease this node granted to holds: quorum is reported from it,
    /// not only from the leader followed now (granting a candidate must not end it).
    leases_until: Option<Duration>,
    /// When a request from a leader holding the lease last arrived (granted or not).
    leased_seen: Option<(Arc<str>, u64, Duration)>,
    /// Members seen coming back with a new generation, and when: they cannot lead before the
    /// grants to their old life run out, so they do not count as the smallest voter.
    restarted: BTreeMap<Arc<str>, Duration>,
    /// Non-voters, and what admission needs to know of each.
    pending: BTreeMap<Arc<str>, Pending>,
    /// The newest configuration (number, digest) any lease message named in this life: a
    /// process that has adopted none yet refuses candidates counting over an older one.
    seen: Option<(u64, u64)>,
    /// The voter configuration each member reported in its latest answer to this node's
    /// rounds, where it is this node's (or newer): a configuration this node stamped is
    /// confirmed once quorums of it and of the one before adopted it (see `node::seats`).
    informed: BTreeMap<Arc<str>, u64>,
}

/// A non-voter the leader may admit.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// When this node first saw it: admission needs quorum proven later.
    seen: Duration,
    /// Whether it answered a round sent after that, at the address this table holds: direct
    /// evidence that it exists there, not a claim in a join or a forwarded record.
    answered: bool,
}

/// A lease request's fields after the sender.
#[derive(Debug, Clone, Copy)]
pub(super) struct Request {
    pub round: u64,
    pub valid_ms: u32,
    pub confirmed: u64,
    pub epoch: u64,
    pub digest: Option<u64>,
}

impl Lease {
    /// Notes a configuration a lease message named (see `Lease::seen`).
    fn see(&mut self, epoch: u64, digest: u64) {
        if self.seen.is_none_or(|(e, _)| epoch > e) {
            self.seen = Some((epoch, digest));
        }
    }

    /// Whether this node holds the leader's lease at `now`.
    pub fn leads(&self, now: Duration) -> bool {
        self.until.is_some_and(|u| now < u)
    }

    /// The leader a follower may name at `now`: one whose lease is current.
    fn followed_at(&self, now: Duration) -> Option<&Followed> {
        self.followed.as_ref().filter(|f| now < f.until)
    }

    /// The leader this node follows, while its lease is current.
    pub fn followed_leader(&self, now: Duration) -> Option<&str> {
        self.followed_at(now).map(|f| &*f.id)
    }

    /// A local time after which a quorum of voters is proven to have been reachable, while
    /// quorum is current at `now`: what every decision is measured against.
    pub fn fresh_since(&self, now: Duration) -> Option<Duration> {
        if self.leads(now) {
            return self.confirmed_sent;
        }
        self.followed_at(now).and_then(|f| f.fresh_since)
    }

    /// When this node stops holding quorum as it reports it (with the follower grace).
    pub fn reported_until(&self, grace: Duration) -> Option<Duration> {
        self.until.max(self.leases_until).map(|u| u + grace)
    }

    /// The next instant at which what this state reports changes on its own.
    pub fn next_change(&self, now: Duration, grace: Duration) -> Option<Duration> {
        [
            self.until,
            self.until.map(|u| u + grace),
            self.followed.as_ref().map(|f| f.until),
            self.leases_until.map(|u| u + grace),
        ]
        .into_iter()
        .flatten()
        .filter(|t| *t > now)
        .min()
    }
}

impl Node {
    fn lease_len(&self) -> Duration {
        self.config.quorum_lease
    }

    /// Time between rounds, and the grace a follower keeps reporting quorum after a lease.
    pub(super) fn lease_renew(&self) -> Duration {
        self.config.quorum_lease / 3
    }

    /// How long a round a quorum granted lets the leader act, on its own clock.
    fn lease_hold(&self, length: Duration) -> Duration {
        let rho = self.config.max_clock_drift;
        length.mul_f64((1.0 - rho) / (1.0 + rho))
    }

    /// How long a grant for a request lasts: a lease for a leader that holds one (it renews),
    /// a third of one for a candidate, so that a candidate that cannot win (one on the
    /// minority side of a cut) does not keep its voters from the real leader for a whole
    /// lease after the heal. The candidate derives its first lease from the same length, and
    /// its first act as leader is a round that earns full grants.
    fn grant_length(&self, valid_ms: u32) -> Duration {
        if valid_ms > 0 {
            self.lease_len()
        } else {
            self.lease_renew()
        }
    }

    /// Promises this node's grant to `to` until `until`, never shortening a running promise
    /// to the same leader.
    fn promise(&mut self, to: Arc<str>, generation: u64, until: Duration) {
        let until = match &self.lease.grant {
            Some(g) if g.to == to && g.generation == generation => g.until.max(until),
            _ => until,
        };
        self.lease.grant = Some(Grant {
            to,
            generation,
            until,
        });
    }

    /// Whether `id` at `generation` is a voter this node sees ALIVE and counts as reachable.
    fn open_voter(&self, id: &str, generation: u64) -> bool {
        self.table.is_reachable_voter(id)
            && self.record(id).is_some_and(|r| r.generation == generation)
            && !self.doubted.contains(id)
            && !self.reach.excluded.contains(id)
    }

    /// Runs every timeout: lets expired leases go, stands for leader or renews.
    pub(super) fn lease_tick(&mut self, now: Duration, out: &mut impl Output) {
        // A grant ends when it runs out, or when its leader left gracefully: a node that left
        // never acts again (`Node::leave`), so its successor need not wait out the lease.
        let leader_left = |g: &Grant| {
            *g.to != *self.me
                && self
                    .record(&g.to)
                    .is_some_and(|r| r.generation == g.generation && r.liveness == Liveness::Left)
        };
        if self
            .lease
            .grant
            .as_ref()
            .is_some_and(|g| now >= g.until || leader_left(g))
        {
            self.lease.grant = None;
        }
        if self.lease.leads(now) || self.lease.followed_at(now).is_some() {
            self.lease.last_led = Some(now);
        }
        // While a suspicion is young, the leader renews four times as often, so that members
        // learn soon of a quorum proven after it began and may convict (see `convict`); and
        // while members wait for admission, whose every step waits for a round (`admit`). A
        // candidate asks twice as often: the grants it waits for run out at any moment.
        let renew = if !self.lease.leads(now) {
            self.lease_renew() / 2
        } else if self.young_suspicion(now) || self.admitting() {
            self.lease_renew() / 4
        } else {
            self.lease_renew()
        };
        if self
            .lease
            .open
            .back()
            .is_some_and(|r| now.saturating_sub(r.sent) < renew)
        {
            return;
        }
        if self.left || !self.sync.synced {
            return;
        }
        let me = self.my_record();
        if !me.voter || me.liveness != Liveness::Alive {
            return;
        }
        let my_generation = me.generation;
        let promised_elsewhere = self
            .lease
            .grant
            .as_ref()
            .is_some_and(|g| *g.to != *self.me || g.generation != my_generation);
        if promised_elsewhere {
            return;
        }
        if !self.lease.leads(now) && !self.stands(now) {
            return;
        }
        self.send_round(now, out);
    }

    /// Notes that `id` came back with a new generation (see `Lease::restarted`).
    pub(super) fn note_restart(&mut self, id: &Arc<str>, now: Duration) {
        let ttl = self.lease_len();
        self.lease
            .restarted
            .retain(|_, t| now.saturating_sub(*t) < ttl);
        self.lease.restarted.insert(id.clone(), now);
    }

    /// Whether members are joining or waiting to join (as this node's table shows them).
    /// Or while this node's newest configuration awaits confirmation, which every next
    /// change of the seats waits for.
    fn admitting(&self) -> bool {
        !self.table.joining.is_empty()
            || !self.table.non_voters.is_empty()
            || self.table.seats.unconfirmed()
    }

    /// Whether some suspicion began within the last suspicion timeout plus a renewal.
    fn young_suspicion(&self, now: Duration) -> bool {
        let young = self.config.suspicion_timeout + self.lease_renew();
        self.suspicions
            .values()
            .any(|s| now.saturating_sub(s.since) < young)
    }

    /// Whether this node, holding no lease, should stand for leader now.
    fn stands(&self, now: Duration) -> bool {
        let fresh_life = |id: &str| {
            self.lease
                .restarted
                .get(id)
                .is_some_and(|t| now.saturating_sub(*t) < self.lease_len())
        };
        let mut open = self.table.voter_ids().filter(|id| {
            (***id == *self.me || !fresh_life(id))
                && self
                    .record(id)
                    .is_some_and(|r| self.open_voter(id, r.generation))
        });
        let Some(rank) = open.position(|id| **id == *self.me) else {
            return false;
        };
        if rank == 0 {
            return true;
        }
        // Nobody has led for 2L: whoever is smallest in my view may not be standing (a view
        // that differs, a member stuck); the others stand in turn, one renewal apart.
        let since = self.lease.last_led.unwrap_or(self.life.born);
        let wait = self.lease_len() * 2 + self.lease_renew() * (rank as u32).min(64);
        now.saturating_sub(since) >= wait
    }

    fn send_round(&mut self, now: Duration, out: &mut impl Output) {
        let generation = self.generation();
        let valid_ms = self
            .lease
            .until
            .filter(|u| now < *u)
            .map_or(0, |u| (u - now).as_millis().min(u32::MAX as u128) as u32);
        let length = self.grant_length(valid_ms);
        self.lease.round += 1;
        self.lease.open.push_back(OpenRound {
            round: self.lease.round,
            sent: now,
            length,
            granted: BTreeSet::from([Arc::from(self.me.as_str())]),
        });
        if self.lease.open.len() > ROUNDS_KEPT {
            self.lease.open.pop_front();
        }
        let (epoch, digest) = self.table.seats.adopted();
        // A process that has adopted no configuration counts over nothing and cannot win:
        // its round only asks which configuration the others count over (their answers
        // carry it). Promising itself would keep its grant from the candidates that can win
        // (a restarted founder, the smallest voter, stood forever: trials seed 1, trial 926).
        if epoch > 0 {
            self.promise(Arc::from(self.me.as_str()), generation, now + length);
        }
        let announce = valid_ms == 0
            || self.table.seats.unconfirmed()
            || !self.all_informed()
            || !self.quiet_allowed(self.lease.round);
        let msg = Message::LeaseRequest {
            from: self.sender(),
            round: self.lease.round,
            valid_ms,
            confirmed: self.lease.confirmed,
            epoch,
            digest: announce.then_some(Digest(digest)),
        };
        let to: Vec<_> = self
            .table
            .iter()
            .filter(|e| *e.record.id != *self.me && e.record.is_live())
            .map(|e| e.record.addr)
            .collect();
        for addr in to {
            self.send(addr, &msg, out);
        }
        // A lone voter is its own quorum.
        self.count_grants(now, self.lease.round, out);
    }

    fn count_grants(&mut self, now: Duration, round: u64, out: &mut impl Output) {
        if round <= self.lease.confirmed {
            return;
        }
        let Some(open) = self.lease.open.iter().find(|r| r.round == round) else {
            return;
        };
        let (sent, length) = (open.sent, open.length);
        // Counted over the configuration this node adopted (and the one before, while its
        // own newest is unconfirmed), not over whatever its table heard since: see
        // `node::seats`.
        let policy = self.config.split_brain_policy;
        if !self.table.seats_quorum(policy, open.granted.iter()) {
            return;
        }
        let was_leading = self.lease.leads(now);
        self.lease.confirmed = round;
        self.lease.confirmed_sent = Some(sent);
        self.lease.until = Some(sent + self.lease_hold(length));
        self.lease.followed = None;
        self.refresh_quorum(out);
        if self.lease.leads(now) {
            self.lease.last_led = Some(now);
            if !was_leading {
                // A new leader tells the members at once that it holds the lease, rather
                // than a renewal later: they hold quorum again one delivery after it does.
                // Also after the first round of its life: a candidate's grants last a
                // renewal, which runs out before the next one is due, and a voter that is
                // not the smallest does not stand again for 2L (trials seed 1, trial 7). A
                // lone voter's round counts at once: this recurses once, as a leader.
                self.send_round(now, out);
            }
        }
    }

    /// A voter's answer to one of this node's rounds.
    pub(super) fn on_lease_grant(
        &mut self,
        now: Duration,
        from: &Sender,
        round: u64,
        granted: bool,
        (epoch, digest): (u64, Option<u64>),
        out: &mut impl Output,
    ) {
        let Some(sent) = self
            .lease
            .open
            .iter()
            .find(|r| r.round == round)
            .map(|r| r.sent)
        else {
            return; // a late answer or a replay of an older round
        };
        if self
            .record(&from.id)
            .is_none_or(|r| r.generation != from.generation)
        {
            return;
        }
        let Some(id) = self.table.get(&from.id).map(|e| e.record.id.clone()) else {
            return;
        };
        // Any answer, a refusal too, shows the member answers at its address.
        if let Some(p) = self.lease.pending.get_mut(&id) {
            p.answered |= sent >= p.seen;
        }
        // No digest: the granter adopted the configuration the request named.
        let informs = match digest {
            None => true,
            Some(d) => {
                self.lease.see(epoch, d);
                self.table.adopt(epoch, d);
                let (mine, my_digest) = self.table.seats.adopted();
                epoch > mine || (epoch == mine && d == my_digest)
            }
        };
        if informs {
            self.lease.informed.insert(id.clone(), epoch);
        } else {
            self.lease.informed.remove(&id);
        }
        self.confirm_seats();
        if !granted {
            return;
        }
        if let Some(open) = self.lease.open.iter_mut().find(|r| r.round == round) {
            open.granted.insert(id);
        }
        self.count_grants(now, round, out);
    }

    /// A leader's or candidate's request: grant it if no other grant is running, and follow
    /// it when it holds the lease.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_lease_request(
        &mut self,
        now: Duration,
        source: SocketAddr,
        from: &Sender,
        request: Request,
        out: &mut impl Output,
    ) {
        let Request {
            round,
            valid_ms,
            confirmed,
            epoch,
            digest,
        } = request;
        let Some(record) = self.record(&from.id) else {
            return;
        };
        if record.generation != from.generation || !record.voter || record.liveness.is_terminal() {
            return;
        }
        let id = record.id.clone();
        // Requests announce the configuration their sender counts over: adopted here once
        // this table holds exactly its seats.
        if let Some(d) = digest {
            self.lease.see(epoch, d);
            self.table.adopt(epoch, d);
        }
        if valid_ms > 0 {
            self.lease.leased_seen = Some((id.clone(), from.generation, now));
        }
        let same = |to: &str, g: u64| *to == *from.id && g == from.generation;
        // A candidate that holds no lease gives way to a smaller one, and to a leader that
        // holds one; grants it may still receive for its own round are void from here on.
        if let Some(g) = &self.lease.grant {
            if *g.to == *self.me && !self.lease.leads(now) && (*from.id < *self.me || valid_ms > 0)
            {
                self.lease.grant = None;
                self.lease.open.clear();
            }
        }
        // While a leader holding the lease is heard from (and has neither left nor come back
        // with a new life), a candidate gets nothing: a grant to it would shut this node out
        // of the leader's quorum for a whole lease.
        // (Another leader than the one asking: a leader whose lease lapsed asks as a
        // candidate, and this node's promise is to it already.)
        let leader_heard = self.lease.leased_seen.as_ref().is_some_and(|(l, g, at)| {
            now.saturating_sub(*at) < self.lease_len()
                && !same(l, *g)
                && self
                    .record(l)
                    .is_some_and(|r| r.generation == *g && r.is_live())
        });
        let grant = match &self.lease.grant {
            // Renewed, to a leader; to a candidate only while no leased leader is heard (a
            // candidate that cannot hear the leader, behind a one-way cut, and kept asking
            // held this grant away from the leader as long as it kept asking).
            Some(g) if now < g.until => {
                same(&g.to, g.generation) && (valid_ms > 0 || !leader_heard)
            }
            // A process younger than a lease may have granted another leader in its last
            // life: it grants only a leader that proves it holds the lease (which no other
            // can while that old grant could still count), until a lease length has passed.
            _ if now.saturating_sub(self.life.born) < self.lease_len() && valid_ms == 0 => false,
            _ if valid_ms == 0 && leader_heard => false,
            // A candidate counting over an older configuration than this node's (or one as
            // old but different, stamped by a leader since lost) may count a quorum that
            // misses the current leader's; and a process that has adopted none in this life
            // cannot tell (see `node::seats`).
            _ if valid_ms == 0 && !self.seats_current(epoch, digest) => false,
            // A leader holding the lease is granted whatever this table thinks of it (no other
            // can hold one); a candidate must look ALIVE and reachable here, unless it is the
            // one this node already follows.
            _ => {
                valid_ms > 0
                    || self.open_voter(&from.id, from.generation)
                    || self
                        .lease
                        .followed
                        .as_ref()
                        .is_some_and(|f| same(&f.id, f.generation))
            }
        };
        if self.left {
            return;
        }
        if grant {
            let until = now + self.grant_length(valid_ms);
            self.promise(id.clone(), from.generation, until);
            self.follow(now, &id, from.generation, round, valid_ms, confirmed);
            self.refresh_quorum(out);
        }
        let (mine, my_digest) = self.table.seats.adopted();
        let same = mine == epoch && digest.is_none_or(|d| d == my_digest);
        if grant && same && self.quiet_turn(&request) {
            return;
        }
        let answer = Message::LeaseGrant {
            from: self.grant_sender(),
            round,
            granted: grant,
            epoch: mine,
            digest: (!same).then_some(Digest(my_digest)),
        };
        // Answer to the datagram's source, like every answer: sent to the address this table
        // holds for the leader instead, requests replayed from elsewhere made every voter
        // send the leader grants at the replay's rate, which used up the leader's per-source
        // rate limits for those voters and dropped their heartbeats (issue 14). A request
        // from a source this node cannot tell is the leader gets at most as many bytes back
        // as it sent (see `Node::handle_datagram`).
        self.send(source, &answer, out);
    }

    /// Whether this voter leaves its grant of `request` unanswered (see the module docs,
    /// "Quiet turns"): only a leader's routine renewal (it holds the lease, announces no
    /// configuration, and a quorum granted its previous round), only by a voter, one round in
    /// three by a turn of its id. Called once the grant is made and its answer would carry
    /// nothing but "granted, same configuration".
    fn quiet_turn(&self, request: &Request) -> bool {
        request.valid_ms > 0
            && request.digest.is_none()
            && request.confirmed + 1 >= request.round
            && self.my_record().voter
            && quiet_turn_of(&self.me, request.round)
    }

    /// Whether this leader's next round, `round`, may leave voters their quiet turns: not
    /// right after a candidate's round (the lease it earned runs out before the next
    /// renewal is due, so this round must not fall short), and only if the voters that
    /// answered its recent rounds, less those whose turn it is, are a quorum even without
    /// this node: one more lost answer still leaves a quorum. Otherwise the request carries
    /// the digest, and every voter answers. Small clusters, and any with few voters to
    /// spare, thereby keep every answer.
    fn quiet_allowed(&self, round: u64) -> bool {
        let full = self
            .lease
            .open
            .iter()
            .find(|r| r.round == self.lease.confirmed)
            .is_some_and(|r| r.length >= self.lease_len());
        if !full {
            return false;
        }
        let recent: BTreeSet<&Arc<str>> = self
            .lease
            .open
            .iter()
            .flat_map(|r| r.granted.iter())
            .filter(|id| ***id != *self.me && !quiet_turn_of(id, round))
            .collect();
        self.table
            .seats_quorum(self.config.split_brain_policy, recent.iter().copied())
    }

    fn follow(
        &mut self,
        now: Duration,
        id: &Arc<str>,
        generation: u64,
        round: u64,
        valid_ms: u32,
        confirmed: u64,
    ) {
        let delivery = self.lease_renew() / 4;
        let Lease {
            followed,
            leases_until,
            ..
        } = &mut self.lease;
        let f = match followed {
            Some(f) if f.id == *id && f.generation == generation => f,
            _ => followed.insert(Followed {
                id: id.clone(),
                generation,
                until: Duration::ZERO,
                rounds: VecDeque::new(),
                fresh_since: None,
            }),
        };
        if f.rounds.back().is_some_and(|(r, _)| *r >= round) {
            return; // reordered or replayed: nothing newer to learn
        }
        f.rounds.push_back((round, now));
        if f.rounds.len() > ROUNDS_KEPT {
            f.rounds.pop_front();
        }
        if valid_ms > 0 {
            let until = now + Duration::from_millis(u64::from(valid_ms));
            *leases_until = (*leases_until).max(Some(until));
            f.until = f.until.max(until);
        }
        // A quorum granted round `confirmed` after it was sent, which was at most one
        // delivery (assumed under a quarter of a renewal) before it arrived here.
        if let Some(&(_, at)) = f.rounds.iter().rev().find(|(r, _)| *r == confirmed) {
            f.fresh_since = f.fresh_since.max(Some(at.saturating_sub(delivery)));
        }
    }

    /// Whether a candidate counting over configuration `epoch` with `digest` counts over
    /// this node's adopted configuration or a newer one.
    ///
    /// A process that has adopted none in this life (it restarted, and its table does not
    /// hold any configuration it heard of) compares with the newest one it heard of instead:
    /// after a leader that stamped a promotion was lost before anyone adopted it, no table
    /// holds a configuration anyone adopted, and a restarted voter that refused every
    /// candidate kept the cluster without a leader (trials seed 1, trial 926).
    fn seats_current(&self, epoch: u64, digest: Option<u64>) -> bool {
        let Some(digest) = digest else {
            return false;
        };
        let (mine, my_digest) = match self.table.seats.adopted() {
            (0, _) => match self.lease.seen {
                Some(seen) => seen,
                None => return false,
            },
            adopted => adopted,
        };
        epoch > mine || (epoch == mine && digest == my_digest)
    }

    /// Whether every live member has reported adopting this node's configuration: its
    /// requests may then leave the digest out.
    fn all_informed(&self) -> bool {
        let (epoch, _) = self.table.seats.adopted();
        self.table.iter().all(|e| {
            *e.record.id == *self.me
                || !e.record.is_live()
                || self
                    .lease
                    .informed
                    .get(&e.record.id)
                    .is_some_and(|i| *i >= epoch)
        })
    }

    /// Confirms this node's own newest configuration once quorums of it and of the one
    /// before have adopted it: from then on no candidate counting over an older one can
    /// collect a quorum of it, and the next change may be stamped.
    fn confirm_seats(&mut self) {
        if !self.table.seats.unconfirmed() {
            return;
        }
        let (epoch, _) = self.table.seats.adopted();
        let me: Arc<str> = Arc::from(self.me.as_str());
        let informed: Vec<&Arc<str>> = self
            .lease
            .informed
            .iter()
            .filter(|(_, e)| **e >= epoch)
            .map(|(id, _)| id)
            .chain(std::iter::once(&me))
            .collect();
        if self
            .table
            .seats_quorum(self.config.split_brain_policy, informed.into_iter())
        {
            self.table.seats.confirm();
        }
    }

    /// Whether the leader may change the voter set now: its table holds exactly the
    /// configuration it counts over, and that configuration is confirmed. One change at a
    /// time, each adjacent to the one before (see `Node::stamp_seats`).
    pub(super) fn seats_settled(&self) -> bool {
        self.table.seats.in_step() && !self.table.seats.unconfirmed()
    }

    /// Makes the table's seats the leader's next configuration when they changed (its own
    /// decisions, a voter's leave, a decision of an earlier leader heard late), once the
    /// current one is confirmed. Every decision the leader takes changes the set by one
    /// step whose quorums meet the previous configuration's (a batch becomes joining, the
    /// joining batch become voters, one voter is evicted); a voter that left never grants
    /// again, so dropping any number of them is such a step too.
    pub(super) fn stamp_seats(&mut self, now: Duration) {
        if !self.lease.leads(now) || self.table.seats.unconfirmed() || self.table.seats.in_step() {
            return;
        }
        self.table.seats.stamp();
        self.lease
            .informed
            .retain(|_, e| *e >= self.table.seats.adopted().0);
    }

    /// Admits members in two steps, as Raft changes its voter set with joint consensus.
    ///
    /// A member seen after quorum was last proven, and that answered one of this leader's
    /// rounds at its address since, becomes *joining*: the configuration stamped next needs
    /// a quorum of the voters and a quorum of voters and joining members together. Once that
    /// configuration is confirmed, the joining members become voters (the next one). Each
    /// step's quorums meet the previous configuration's, which is what lets a node still
    /// counting over the previous one coexist with the leader (see `node::seats`). One batch
    /// at a time, and only while the table holds the confirmed configuration exactly.
    pub(super) fn admit(&mut self, now: Duration, out: &mut impl Output) {
        if !self.lease.leads(now) {
            self.lease.pending.clear();
            self.lease.informed.clear();
            return;
        }
        let Some(fresh) = self.lease.fresh_since(now) else {
            return;
        };
        if !self.seats_settled() {
            return;
        }
        if !self.table.joining.is_empty() {
            self.promote_joining(now, out);
            return;
        }
        let pending = &mut self.lease.pending;
        pending.retain(|id, _| self.table.non_voters.contains(id));
        for id in &self.table.non_voters {
            pending.entry(id.clone()).or_insert(Pending {
                seen: now,
                answered: false,
            });
        }
        let due: Vec<Arc<str>> = pending
            .iter()
            .filter(|(_, p)| p.seen < fresh && p.answered)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            if let Some(mut r) = self.record(&id).cloned() {
                if r.liveness == Liveness::Alive && !r.voter {
                    r.joining = true;
                    self.apply_record(now, &r, super::Source::Local, out);
                }
            }
        }
    }

    /// Makes the joining members voters once the configuration that made them joining is
    /// confirmed (`admit` runs only then).
    fn promote_joining(&mut self, now: Duration, out: &mut impl Output) {
        let joining: Vec<Arc<str>> = self.table.joining.iter().cloned().collect();
        for id in joining {
            if let Some(mut r) = self.record(&id).cloned() {
                r.joining = false;
                r.voter = true;
                self.apply_record(now, &r, super::Source::Local, out);
            }
        }
    }
}
