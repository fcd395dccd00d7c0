//! Fault injection: crash, pause, restart, join, leave, partitions and loss, as plain calls
//! on [`Sim`] that take effect at the current virtual time.
//!
//! Faults also mark which members may fairly be convicted (see
//! [`crate::Process::excused_until`]): a conviction of a member that is running, and was
//! not crashed, paused long, partitioned or isolated recently, counts as a false positive.

use std::time::Duration;

use crate::process::State;
use crate::sim::Sim;

impl Sim {
    /// Crashes node `i`: it stops at once, sends nothing more, and datagrams to it are dropped.
    pub fn crash(&mut self, i: usize) {
        let p = &mut self.procs[i];
        if !p.exists() {
            return;
        }
        p.state = State::Crashed;
        p.node = None;
        p.timer_at = None;
        p.backlog.clear();
    }

    /// Restarts slot `i` with a fresh core at the next generation (same id and address).
    /// Works on a crashed, stopped or running slot (a running one is crashed first).
    pub fn restart(&mut self, i: usize) {
        self.crash(i);
        self.start(i);
    }

    /// Starts a new node now (a late joiner) and returns its index.
    pub fn add_node(&mut self) -> usize {
        let i = self.add_slot();
        for t in &mut self.trackers {
            t.done_at.resize(self.procs.len(), None);
        }
        self.start(i);
        i
    }

    /// Freezes node `i` for `d`: it neither processes nor sends; datagrams to it queue up
    /// and are delivered when it resumes, before its overdue timers fire.
    ///
    /// A pause of at least two heartbeat intervals excuses a conviction (the member was
    /// silent); a shorter one does not.
    pub fn pause(&mut self, i: usize, d: Duration) {
        let until = self.now() + d;
        let excuse = d >= self.config.core.heartbeat_interval * 2;
        let p = &mut self.procs[i];
        if p.state != State::Running {
            return;
        }
        p.state = State::Paused { until };
        if excuse {
            p.excused_until = Duration::MAX;
        }
        self.schedule_resume(i, until);
    }

    /// Like [`Sim::pause`], but at the resume the node's overdue timers fire before the
    /// datagrams that queued up are delivered: what a process short of CPU sees when its
    /// event loop picks the timer first, every peer silent for the whole stall.
    pub fn starve(&mut self, i: usize, d: Duration) {
        self.pause(i, d);
        if matches!(self.procs[i].state, State::Paused { .. }) {
            self.procs[i].timers_first = true;
        }
    }

    /// Excuses a conviction of node `i` until `until` (a fault a scenario injects that
    /// [`Sim::pause`] would not excuse by itself, such as many short pauses).
    pub fn excuse(&mut self, i: usize, until: Duration) {
        self.procs[i].excused_until = until;
    }

    /// The time after a fault ends during which a conviction is still excused.
    pub fn excuse_grace_period(&self) -> Duration {
        self.excuse_grace()
    }

    /// Leaves gracefully: calls the core's `leave`, then stops the process after
    /// `leave_linger` (so its farewell can spread).
    pub fn leave(&mut self, i: usize) {
        if !self.procs[i].is_live() {
            return;
        }
        self.call_leave(i);
        let at = self.now() + self.config.leave_linger;
        self.schedule_stop(i, at);
    }

    /// Splits the network into two-way isolated groups (nodes not listed form one more
    /// group). Every node is excused from false-positive counting until after the heal.
    pub fn partition(&mut self, groups: &[Vec<usize>]) {
        self.network_mut().partition(groups);
        self.begin_cut();
        self.procs
            .iter_mut()
            .for_each(|p| p.excused_until = Duration::MAX);
    }

    /// Drops every datagram from `from` to `to`, not the reverse. Excuses both sets.
    pub fn cut_one_way(&mut self, from: &[usize], to: &[usize]) {
        self.network_mut().cut_one_way(from, to);
        self.supersede_heals();
        for &i in from.iter().chain(to) {
            self.procs[i].excused_until = Duration::MAX;
        }
    }

    /// Removes every partition and cut. Convictions stay excused for a grace period.
    pub fn heal(&mut self) {
        let was_cut = self.network().is_partitioned() || self.network().has_one_way_cuts();
        self.network_mut().heal();
        if was_cut {
            self.end_cut();
        }
        let until = self.now() + self.excuse_grace();
        for p in &mut self.procs {
            if p.excused_until == Duration::MAX && !matches!(p.state, State::Paused { .. }) {
                p.excused_until = until;
            }
        }
    }

    /// Sets the loss probability of every link.
    pub fn set_loss(&mut self, loss: f64) {
        self.network_mut().set_loss(loss);
    }

    /// Sets latency and jitter of every link.
    pub fn set_latency(&mut self, latency: Duration, jitter: Duration) {
        self.network_mut().set_latency(latency, jitter);
    }

    /// Sets the loss probability of node `i`'s datagrams, both ways. At 50 % or more the
    /// node counts as isolated and its conviction is excused.
    pub fn set_node_loss(&mut self, i: usize, loss: f64) {
        self.network_mut().set_node_loss(i, loss);
        let now = self.now();
        let p = &mut self.procs[i];
        if loss >= 0.5 {
            p.excused_until = Duration::MAX;
        } else if p.excused_until == Duration::MAX {
            p.excused_until =
                now + self.config.core.failure_timeout + self.config.core.suspicion_timeout;
        }
    }
}
