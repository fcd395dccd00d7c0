//! [`EventLoop`]: the virtual clock, its agenda and the network, shared by every harness
//! that runs nodes on the simulator ([`crate::Sim`] for Vigil's core, `crates/peers` for
//! other protocols), so that all of them advance time, deliver datagrams and fire timers
//! the same way.
//!
//! A harness implements [`Drive`]: it hands the loop's due items to its nodes and, every
//! step of virtual time, runs its own checks. [`run_until`] and [`wait_for`] are the loop.
//! Between calls, the harness routes what a node sent with [`EventLoop::post`] and asks for
//! its next timer with [`EventLoop::arm_timer`].

use std::time::Duration;

use crate::agenda::Agenda;
use crate::network::{Fate, Network};

/// The clock, the agenda of items of type `T` (deliveries, timers, ...) and the network.
#[derive(Debug)]
pub struct EventLoop<T> {
    pub(crate) now: Duration,
    agenda: Agenda<T>,
    pub(crate) network: Network,
    /// The next step boundary (a multiple of the step from time zero).
    pub(crate) next_step: Duration,
}

impl<T> EventLoop<T> {
    /// A loop at time zero on `network`, whose first step ends at `step`.
    pub fn new(network: Network, step: Duration) -> Self {
        EventLoop {
            now: Duration::ZERO,
            agenda: Agenda::new(),
            network,
            next_step: step,
        }
    }

    /// Current virtual time.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The network (for inspection).
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The network, to cut, heal or add nodes.
    pub fn network_mut(&mut self) -> &mut Network {
        &mut self.network
    }

    /// Puts `item` on the agenda at `at`.
    pub fn schedule(&mut self, at: Duration, item: T) {
        self.agenda.push(at, item);
    }

    /// Sends one datagram from node `from` to node `to`: when the network delivers it,
    /// `delivery` goes on the agenda after the link's latency. Returns the datagram's fate.
    pub fn post(&mut self, from: usize, to: usize, delivery: impl FnOnce() -> T) -> Fate {
        let fate = self.network.route(from, to);
        if let Fate::Deliver(latency) = fate {
            self.agenda.push(self.now + latency, delivery());
        }
        fate
    }

    /// Arms a node's timer for `wanted` (virtual time; `None`: it wants none). `armed` is the
    /// time of its one current timer entry: a new entry goes on the agenda only when the
    /// time changes, and stale entries are recognised at dispatch by `armed` no longer
    /// matching. After a timer fired (`fired`), a node that asks for "now" again is given
    /// 1 ms, so that it cannot stall the clock.
    pub fn arm_timer(
        &mut self,
        armed: &mut Option<Duration>,
        wanted: Option<Duration>,
        fired: bool,
        timer: impl FnOnce() -> T,
    ) {
        let Some(wanted) = wanted else {
            *armed = None;
            return;
        };
        let now = self.now;
        let mut at = wanted.max(now);
        if fired && at <= now {
            at = now + Duration::from_millis(1);
        }
        if *armed != Some(at) {
            *armed = Some(at);
            self.agenda.push(at, timer());
        }
    }

    /// Whether a timer entry popped now is the node's current one (and disarms it if so).
    pub fn timer_is_current(&self, armed: &mut Option<Duration>) -> bool {
        if *armed != Some(self.now) {
            return false;
        }
        *armed = None;
        true
    }

    /// Pops the earliest item due at or before `horizon` and moves the clock to it.
    fn pop_due(&mut self, horizon: Duration) -> Option<T> {
        if self.agenda.next_at()? > horizon {
            return None;
        }
        let (at, item) = self.agenda.pop()?;
        self.now = self.now.max(at);
        Some(item)
    }
}

/// A harness on an [`EventLoop`]: what it does with each due item and at each step.
pub trait Drive {
    /// What its agenda holds.
    type Item;
    /// Why a run stops early (an invariant violated; [`std::convert::Infallible`] for none).
    type Stop;

    /// Its loop.
    fn event_loop(&mut self) -> &mut EventLoop<Self::Item>;
    /// Virtual time between steps.
    fn step(&self) -> Duration;
    /// Handles one due item (the clock already shows its time).
    fn dispatch(&mut self, item: Self::Item) -> Result<(), Self::Stop>;
    /// Runs at every step boundary, after the items due by then.
    fn on_step(&mut self) -> Result<(), Self::Stop>;
}

/// Runs `d` until virtual time `until`: every item due by then in time order, and
/// [`Drive::on_step`] at every step boundary on the way.
pub fn run_until<D: Drive>(d: &mut D, until: Duration) -> Result<(), D::Stop> {
    loop {
        let horizon = d.event_loop().next_step.min(until);
        while let Some(item) = d.event_loop().pop_due(horizon) {
            d.dispatch(item)?;
        }
        let step = d.step();
        let lp = d.event_loop();
        lp.now = lp.now.max(horizon);
        if horizon == lp.next_step {
            lp.next_step += step;
            d.on_step()?;
        }
        if horizon == until {
            return Ok(());
        }
    }
}

/// Runs `d` one step at a time until `cond` holds (asked before every step) or until the
/// absolute `deadline`. Returns the time it first held, or `None` at the deadline.
pub fn wait_for<D: Drive>(
    d: &mut D,
    deadline: Duration,
    mut cond: impl FnMut(&mut D) -> bool,
) -> Result<Option<Duration>, D::Stop> {
    loop {
        if cond(d) {
            return Ok(Some(d.event_loop().now));
        }
        let now = d.event_loop().now;
        if now >= deadline {
            return Ok(None);
        }
        let next = (now + d.step()).min(deadline);
        run_until(d, next)?;
    }
}
