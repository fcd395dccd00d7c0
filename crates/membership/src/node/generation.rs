//! Generations: others' bounded by this node's clock, its own raised at most once per
//! heartbeat interval.
//!
//! A generation is the wall-clock millisecond at which the process started (the runtime's
//! choice, see [`super::Identity::generation`]), plus one for every time the member came back
//! after being declared gone. The newest generation of an id wins everywhere. Before these
//! bounds, one forged record at generation `u64::MAX` took an id for good (issue 14): every
//! new life of the real member was older, coming back at "generation + 1" saturated, and it
//! was declared gone and came back in a loop that wrote 78 KB of log a second.
//!
//! **Far-future generations are refused.** The core reads no clock; it takes its own start
//! generation plus the time since [`super::Node::new`] as the wall clock (both from the
//! runtime). A datagram whose sender claims a generation more than [`MAX_GENERATION_AHEAD`]
//! past that is dropped, and so is any record with one; both are counted in
//! [`super::Stats::future_generations`]. Honest generations are start times of running
//! processes, in the past of every host whose clock is within the allowance of theirs.
//! Where generations are counters (the simulator and tests start at 1), the bound is loose
//! (an hour of milliseconds above the counter) and refuses nothing honest.
//!
//! **Coming back is rate-limited.** A member comes back with a new generation when it hears
//! it was declared FAILED, REMOVED or LEFT, or that its id is claimed at a newer generation.
//! Without a key anyone can say so, as often as they like: the node now comes back at most
//! once per `cluster.heartbeat.interval`, and news that arrives sooner is kept (the highest
//! generation asked for) and acted on when the interval is up. It never comes back without
//! raising its generation (at `u64::MAX`, which no one can claim any more, it stays).

use std::time::Duration;

use super::{Event, Node, Output, Source};
use crate::codec::Update;
use crate::member::Liveness;

/// How far past this node's clock a generation may be (see the module docs): room for
/// clocks that disagree, and for the milliseconds rejoins add.
pub const MAX_GENERATION_AHEAD: Duration = Duration::from_secs(3600);

/// A rejoin asked for while the last one is too recent.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingRejoin {
    /// The lowest generation the new life must have.
    pub generation: u64,
    /// Whether to keep the voter seat.
    pub voter: bool,
    /// Why (for the event).
    pub reason: &'static str,
}

/// This process life: with `born` and `start_generation`, the node's idea of the wall
/// clock; with the rest, the rate limit on coming back.
#[derive(Debug)]
pub(super) struct Life {
    /// When this node (this process life) was created.
    pub born: Duration,
    /// Its generation then.
    pub start_generation: u64,
    /// When it last came back with a new generation.
    pub last_rejoin: Option<Duration>,
    /// A rejoin waiting for the interval.
    pub pending_rejoin: Option<PendingRejoin>,
}

impl Node {
    /// The highest generation this node accepts from the network now.
    pub(super) fn generation_limit(&self) -> u64 {
        let elapsed = self.clock.saturating_sub(self.life.born) + MAX_GENERATION_AHEAD;
        let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        self.life.start_generation.saturating_add(elapsed_ms)
    }

    /// Whether `generation`, from the network, is too far ahead to be believed (counted).
    pub(super) fn refuses_generation(&mut self, generation: u64) -> bool {
        let refused = generation > self.generation_limit();
        if refused {
            self.stats.future_generations += 1;
        }
        refused
    }

    /// Comes back with a new life of at least `generation`, now or, if the last rejoin was
    /// less than a heartbeat interval ago, when the interval is up.
    pub(super) fn request_rejoin(
        &mut self,
        now: Duration,
        generation: u64,
        voter: bool,
        reason: &'static str,
        out: &mut impl Output,
    ) {
        let pending = match self.life.pending_rejoin.take() {
            Some(p) => PendingRejoin {
                generation: p.generation.max(generation),
                // the seat is kept only if every reason to come back keeps it
                voter: p.voter && voter,
                reason,
            },
            None => PendingRejoin {
                generation,
                voter,
                reason,
            },
        };
        self.life.pending_rejoin = Some(pending);
        self.rejoin_if_due(now, out);
    }

    /// Runs a pending rejoin once a heartbeat interval has passed since the last one.
    pub(super) fn rejoin_if_due(&mut self, now: Duration, out: &mut impl Output) {
        let Some(p) = self.life.pending_rejoin else {
            return;
        };
        if self.left {
            // a node that left stays gone; news of its end is what it asked for
            self.life.pending_rejoin = None;
            return;
        }
        if self
            .life
            .last_rejoin
            .is_some_and(|t| now.saturating_sub(t) < self.config.heartbeat_interval)
        {
            return;
        }
        self.life.pending_rejoin = None;
        let mine = self.my_record().generation;
        let generation = p.generation.max(mine.saturating_add(1));
        if generation <= mine {
            return; // at u64::MAX: nothing newer exists, and nobody can claim this one
        }
        self.life.last_rejoin = Some(now);
        self.rejoin(now, generation, p.voter, p.reason, out);
    }

    /// Comes back with a new life: `generation`, ALIVE at incarnation 0, the voter seat kept
    /// or not, and its joins sent at once.
    pub(super) fn rejoin(
        &mut self,
        now: Duration,
        generation: u64,
        voter: bool,
        reason: &'static str,
        out: &mut impl Output,
    ) {
        // The suspicions this node raised or relayed in the life the cluster just ended
        // (typically on the far side of a partition that has healed) are void: once the new
        // life is ALIVE elsewhere they would be believed, and make members SUSPECT that the
        // cluster has been hearing from all along (the heal dip). A restarted process has
        // none either.
        self.suspicions.clear();
        self.witnesses.clear();
        self.watch.probes.clear();
        self.queue.retain(|u| !matches!(u, Update::Accuse { .. }));
        self.forgive_own_pause(now);
        // Likewise the members it holds SUSPECT: its table transfers would spread them. Its
        // count of reachable voters is then unfounded until a table transfer arrives (the
        // answer to the joins sent below, one round trip away once connected), so it claims
        // no quorum until then: a node still cut off must not count the far side back in.
        if self.table.clear_suspects(now) > 0 {
            self.reach.note_liveness_change();
        }
        self.sync.synced = false;
        let mut rec = self.my_record().clone();
        rec.generation = generation;
        rec.incarnation = 0;
        rec.liveness = Liveness::Alive;
        rec.voter = voter;
        rec.joining = false;
        self.apply_record(now, &rec, Source::Local, out);
        self.refresh_quorum(out);
        out.event(Event::SelfRejoined { generation, reason });
        // announce the new life to seeds and a few members at once
        self.sync.next_seed_contact = now;
        let join = self.join_message(rec);
        for to in self.random_members(self.config.gossip_fanout) {
            self.send(to, &join, out);
        }
    }
}
