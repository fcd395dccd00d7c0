//! Numbered voter configurations: which seats a quorum is counted over.
//!
//! Why: members learn of seat changes (admissions, evictions, leaves) by gossip, at
//! different times, so two nodes counting "a majority of the voters in my table" may count
//! over sets whose majorities do not meet. Admissions were made joint early on; removals
//! were not: a group cut off before it heard of an eviction counted the larger, older set,
//! and with the evicted members (alive and cut off with it) it could hold a majority of it
//! while the leader held one of the smaller set.
//!
//! So every node keeps a *configuration*: a number (the epoch) and a digest of the seats
//! it names, adopted only when its own table holds exactly those seats (see
//! `node::lease` for who stamps, adopts and refuses). This module keeps the bookkeeping:
//! the digest of the table's seats now, and, for every member whose seat in the table
//! differs from the adopted configuration, its seat there; so a node counts a quorum over
//! the configuration it adopted whatever its table has heard since, at a cost of the
//! changes since the adoption (none, usually), not a copy of the seats.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::SplitBrainPolicy;
use crate::member::{mix, Liveness, MemberRecord};
use crate::ring::id_hash;

use super::table::Table;

/// A member's seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seat {
    None,
    /// Admitted, not yet a voter: counted in the second quorum of a joint configuration.
    Joining,
    Voter,
}

impl Seat {
    pub fn of(r: &MemberRecord) -> Seat {
        if matches!(r.liveness, Liveness::Left | Liveness::Removed) {
            Seat::None
        } else if r.voter {
            Seat::Voter
        } else if r.joining {
            Seat::Joining
        } else {
            Seat::None
        }
    }

    /// What this seat adds to a digest (XOR over the seats).
    fn hash(self, id: &str) -> u64 {
        match self {
            Seat::None => 0,
            Seat::Joining => mix(id_hash(id) ^ 0x6a6f_696e_696e_6700),
            Seat::Voter => mix(id_hash(id)),
        }
    }
}

/// Which configuration to count over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Config {
    /// The one this node adopted.
    Adopted,
    /// The one before it, while this node's own newest configuration is not yet known to
    /// quorums of both (only the node that stamped it has this).
    Previous,
}

/// The configuration bookkeeping of one table.
#[derive(Debug, Default)]
pub(crate) struct Seats {
    /// XOR of [`Seat::hash`] over the table's seats now: voters, and joining members.
    voters_digest: u64,
    joining_digest: u64,
    /// The adopted configuration's number (0: none adopted in this life) and digest.
    epoch: u64,
    adopted_digest: u64,
    /// The seat in the adopted configuration of every member whose table seat differs.
    diff: BTreeMap<Arc<str>, Seat>,
    /// While this node's own newest configuration is unconfirmed: the previous one, as the
    /// seats in which it differs from the adopted one.
    previous: Option<BTreeMap<Arc<str>, Seat>>,
    /// Whether the adopted configuration was derived here (see [`Table::adopt_promotion`])
    /// rather than named by a lease message: a configuration of the same number that a
    /// message names may then replace it.
    derived: bool,
}

impl Seats {
    /// Notes that the table seat of `id` went from `old` to `new`.
    pub fn change(&mut self, id: &Arc<str>, old: Seat, new: Seat) {
        if old == new {
            return;
        }
        for seat in [old, new] {
            match seat {
                Seat::Voter => self.voters_digest ^= seat.hash(id),
                Seat::Joining => self.joining_digest ^= seat.hash(id),
                Seat::None => {}
            }
        }
        match self.diff.get(id) {
            None => {
                self.diff.insert(id.clone(), old);
            }
            Some(adopted) if *adopted == new => {
                self.diff.remove(id);
            }
            Some(_) => {}
        }
    }

    /// The digest of the table's seats now.
    fn digest(&self) -> u64 {
        self.voters_digest ^ self.joining_digest
    }

    /// The adopted configuration: number and digest.
    pub fn adopted(&self) -> (u64, u64) {
        (self.epoch, self.adopted_digest)
    }

    /// Whether the table holds exactly the adopted configuration's seats.
    pub fn in_step(&self) -> bool {
        self.diff.is_empty() && self.digest() == self.adopted_digest
    }

    /// Whether this node stamped a configuration that is not yet confirmed.
    pub fn unconfirmed(&self) -> bool {
        self.previous.is_some()
    }

    /// Takes configuration `epoch` with `digest` as the adopted one; `diff` is how the
    /// table differs from it.
    fn take(&mut self, epoch: u64, digest: u64, diff: BTreeMap<Arc<str>, Seat>) {
        self.epoch = epoch;
        self.adopted_digest = digest;
        self.diff = diff;
        self.previous = None;
        self.derived = false;
    }

    /// Makes the table's seats now the next configuration, keeping the adopted one as the
    /// previous until [`Seats::confirm`].
    pub fn stamp(&mut self) {
        self.previous = Some(std::mem::take(&mut self.diff));
        self.epoch += 1;
        self.adopted_digest = self.digest();
    }

    /// Makes the table's seats the next configuration, confirmed at once: the founder's first
    /// one (its own seat), and an operator's removal while no leader holds quorum
    /// (`Node::force_remove`).
    pub fn stamp_confirmed(&mut self) {
        self.stamp();
        self.previous = None;
    }

    /// The newest configuration is known to quorums of it and of the previous one.
    pub fn confirm(&mut self) {
        self.previous = None;
    }
}

impl Table {
    /// Adopts configuration `epoch` if it is newer than the adopted one and this table
    /// holds exactly its seats, or its voters with none joining. The second case: a leader
    /// that marked members joining and was lost before anyone adopted that configuration
    /// leaves the marks in every table; the configuration before them (same voters, none
    /// joining) is what the others count over, and without it a member that restarted
    /// could never count over anything (a one-voter cluster whose founder restarted).
    pub fn adopt(&mut self, epoch: u64, digest: u64) -> bool {
        let seats = &self.seats;
        let replaces = epoch == seats.epoch && seats.derived && digest != seats.adopted_digest;
        if epoch <= seats.epoch && !replaces {
            return false;
        }
        if digest == seats.digest() {
            self.seats.take(epoch, digest, BTreeMap::new());
            return true;
        }
        // A voter of that configuration left and came back (seatless) before any leader
        // stamped its seat away: the configuration is this table's seats plus that one. Its
        // leader counts it so already; a follower that could not adopt it kept the leader
        // from confirming it, and so from ever dropping the seat (a rolling restart by
        // graceful leaves left a member unseated for good).
        let table_digest = seats.digest();
        let gone = self
            .iter()
            .find(|e| {
                e.record.is_live()
                    && Seat::of(&e.record) == Seat::None
                    && table_digest ^ Seat::Voter.hash(&e.record.id) == digest
            })
            .map(|e| e.record.id.clone());
        if let Some(gone) = gone {
            let diff = BTreeMap::from([(gone, Seat::Voter)]);
            self.seats.take(epoch, digest, diff);
            return true;
        }
        if digest == seats.voters_digest && !self.joining.is_empty() {
            let diff = self
                .joining
                .iter()
                .map(|id| (id.clone(), Seat::None))
                .collect();
            self.seats.take(epoch, digest, diff);
            return true;
        }
        false
    }

    /// Adopts the configuration that promotes every joining member of the adopted one, on
    /// this node's own, once this table holds exactly that promotion's seats.
    ///
    /// Why: a leader promotes only once the joining configuration is confirmed, and stamps
    /// the promotion at once, as the next number and the digest of these very seats; but if
    /// it was lost before any lease message carried that number, nobody else could adopt
    /// it, and the joining configuration needs its voters' majority. A founder killed right
    /// after promoting the members that joined it left them without a leader for good (a
    /// three-member cluster whose first member was killed a second after start).
    ///
    /// Safe because a promotion needs no joint quorum: the joining configuration's quorums
    /// include a majority of its voters and joining members together, which are exactly the
    /// promotion's voters, so every quorum of one meets every quorum of the other. The next
    /// change from a leader counting over it is one step from it as usual.
    pub fn adopt_promotion(&mut self) -> bool {
        let seats = &self.seats;
        if seats.epoch == 0
            || seats.previous.is_some()
            || seats.diff.is_empty()
            || !self.joining.is_empty()
        {
            return false;
        }
        let promoted = seats
            .diff
            .iter()
            .all(|(id, adopted)| *adopted == Seat::Joining && self.table_seat(id) == Seat::Voter);
        if !promoted {
            return false;
        }
        let (epoch, digest) = (seats.epoch + 1, seats.digest());
        self.seats.take(epoch, digest, BTreeMap::new());
        self.seats.derived = true;
        true
    }

    /// The seat of `id` in configuration `which`.
    fn config_seat(&self, id: &str, which: Config) -> Seat {
        let seats = &self.seats;
        if which == Config::Previous {
            if let Some(s) = seats.previous.as_ref().and_then(|p| p.get(id)) {
                return *s;
            }
        }
        if let Some(s) = seats.diff.get(id) {
            return *s;
        }
        self.table_seat(id)
    }

    /// The seat of `id` in this table now.
    fn table_seat(&self, id: &str) -> Seat {
        self.get(id).map_or(Seat::None, |e| Seat::of(&e.record))
    }

    /// Voters and joining members of configuration `which`, leaving out members this table
    /// shows LEFT: a member that left never grants again in that life (`Node::leave`) and
    /// its next life holds no seat, so counting it would only make quorum harder.
    fn config_size(&self, which: Config) -> (usize, usize) {
        let (mut voters, mut joining) = (self.voters(), self.joining.len());
        let mut adjust = |id: &str, seat: Seat| {
            let now = self.table_seat(id);
            let left = self
                .get(id)
                .is_some_and(|e| e.record.liveness == Liveness::Left);
            match now {
                Seat::Voter => voters -= 1,
                Seat::Joining => joining -= 1,
                Seat::None => {}
            }
            match seat {
                Seat::Voter if !left => voters += 1,
                Seat::Joining if !left => joining += 1,
                _ => {}
            }
        };
        let seats = &self.seats;
        let mut ids: BTreeMap<&str, Seat> = BTreeMap::new();
        for (id, seat) in &seats.diff {
            ids.insert(id, *seat);
        }
        if which == Config::Previous {
            for (id, seat) in seats.previous.iter().flatten() {
                ids.insert(id, *seat);
            }
        }
        for (id, seat) in ids {
            adjust(id, seat);
        }
        (voters, joining)
    }

    /// Whether the members `granted` form a quorum of configuration `which`: a quorum of
    /// its voters, and while it has joining members, also one of its voters and joining
    /// members together. A configuration names seats by id: a member that restarted since
    /// holds the same seat in it (its grants are exclusive like any: `node::lease`), one
    /// this table shows evicted or gone counts for nobody.
    pub fn config_quorum<'a>(
        &self,
        policy: SplitBrainPolicy,
        which: Config,
        granted: impl Iterator<Item = &'a Arc<str>>,
    ) -> bool {
        let (voters, joining) = self.config_size(which);
        let (mut gv, mut gj) = (0, 0);
        for id in granted {
            if !self.get(id).is_some_and(|e| e.record.is_live()) {
                continue;
            }
            // The configuration's seat belongs to a life that ended: a member that left and
            // came back holds no seat in its new life, and must not vote for its old one.
            if self.table_seat(id) == Seat::None {
                continue;
            }
            match self.config_seat(id, which) {
                Seat::Voter => gv += 1,
                Seat::Joining => gj += 1,
                Seat::None => {}
            }
        }
        crate::quorum::has_quorum(policy, voters, gv)
            && (joining == 0 || crate::quorum::has_quorum(policy, voters + joining, gv + gj))
    }

    /// [`Table::config_quorum`] over the adopted configuration, and over the previous one
    /// while the adopted one is unconfirmed (a joint quorum, as in Raft).
    pub fn seats_quorum<'a>(
        &self,
        policy: SplitBrainPolicy,
        granted: impl Iterator<Item = &'a Arc<str>> + Clone,
    ) -> bool {
        self.config_quorum(policy, Config::Adopted, granted.clone())
            && (!self.seats.unconfirmed() || self.config_quorum(policy, Config::Previous, granted))
    }
}
