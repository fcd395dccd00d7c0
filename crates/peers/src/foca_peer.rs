//! foca (SWIM + infection + suspicion, sans-IO) as a [`Peer`], on its documented LAN preset
//! `Config::new_lan(N)` and its postcard codec.
//!
//! The identity is what foca's documentation recommends for auto-rejoin: the address plus a
//! small `bump` counter that [`foca::Identity::renew`] increments, so a member wrongly
//! declared down comes back as a new identity (like Vigil's generation). The only thing
//! this driver adds is what foca leaves to the application: timers (kept in a queue on the
//! virtual clock) and, while a node knows nobody, a new `announce` to its seeds every
//! second (Vigil's core does the same on its own).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use foca::{Config, Foca, NoCustomBroadcast, Notification, PostcardCodec, Runtime, State, Timer};
use rand10::rngs::SmallRng;
use rand10::SeedableRng;
use serde::{Deserialize, Serialize};
use sim::process::{index_of, node_addr};

use crate::harness::{Boot, Outbox, Peer, PeerEvent, View};

/// A foca identity: the gossip address and a rejoin counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FocaId {
    /// The node's address.
    pub addr: SocketAddr,
    /// Bumped at every auto-rejoin; the harness's generation is `bump`.
    pub bump: u16,
}

impl foca::Identity for FocaId {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(FocaId {
            addr: self.addr,
            bump: self.bump.wrapping_add(1),
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        // Wrapping comparison: the newer bump wins.
        self.bump.wrapping_sub(adversary.bump) < u16::MAX / 2
    }
}

/// The foca instance type the harness runs.
pub type FocaNode = Foca<FocaId, PostcardCodec, SmallRng, NoCustomBroadcast>;

struct Entry {
    at: Duration,
    seq: u64,
    timer: Timer<FocaId>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// One foca node with its timer queue and what its notifications told it.
pub struct FocaPeer {
    foca: FocaNode,
    timers: BinaryHeap<Entry>,
    seq: u64,
    seeds: Vec<FocaId>,
    next_knock: Option<Duration>,
    /// Per node index: (bump, active) as foca's notifications reported it.
    known: Vec<Option<(u16, bool)>>,
    notes: Vec<Note>,
}

/// Notifications copied out of foca's callback.
enum Note {
    Up(FocaId),
    Down(FocaId),
    Rename(FocaId),
    Rejoin(FocaId),
}

struct Rt<'a> {
    now: Duration,
    out: &'a mut Outbox,
    timers: &'a mut BinaryHeap<Entry>,
    seq: &'a mut u64,
    notes: &'a mut Vec<Note>,
}

impl Runtime<FocaId> for Rt<'_> {
    fn notify(&mut self, n: Notification<'_, FocaId>) {
        match n {
            Notification::MemberUp(id) => self.notes.push(Note::Up(*id)),
            Notification::MemberDown(id) => self.notes.push(Note::Down(*id)),
            Notification::Rename(_, b) => self.notes.push(Note::Rename(*b)),
            Notification::Rejoin(id) => self.notes.push(Note::Rejoin(*id)),
            _ => {}
        }
    }

    fn send_to(&mut self, to: FocaId, data: &[u8]) {
        if let Some(j) = index_of(to.addr) {
            self.out.sends.push((j, data.to_vec()));
        }
    }

    fn submit_after(&mut self, timer: Timer<FocaId>, after: Duration) {
        *self.seq += 1;
        self.timers.push(Entry {
            at: self.now + after,
            seq: *self.seq,
            timer,
        });
    }
}

/// How often a node that knows nobody announces itself to its seeds again.
const KNOCK_INTERVAL: Duration = Duration::from_secs(1);

impl FocaPeer {
    /// The foca configuration used for a cluster of `n`: the LAN preset, untouched.
    pub fn config(n: usize) -> Config {
        Config::new_lan(NonZeroU32::new(n.max(1) as u32).expect("n >= 1"))
    }

    /// The wrapped foca instance.
    pub fn foca(&self) -> &FocaNode {
        &self.foca
    }

    fn call(
        &mut self,
        now: Duration,
        out: &mut Outbox,
        f: impl FnOnce(&mut FocaNode, &mut Rt<'_>),
    ) {
        let mut rt = Rt {
            now,
            out,
            timers: &mut self.timers,
            seq: &mut self.seq,
            notes: &mut self.notes,
        };
        f(&mut self.foca, &mut rt);
        for note in std::mem::take(&mut self.notes) {
            match note {
                Note::Up(id) => self.set(id, true),
                Note::Down(id) => {
                    self.set(id, false);
                    if let Some(subject) = index_of(id.addr) {
                        out.events.push(PeerEvent::Convicted {
                            subject,
                            generation: u64::from(id.bump),
                        });
                    }
                }
                Note::Rename(b) => {
                    let active = index_of(b.addr)
                        .and_then(|j| self.known.get(j).copied().flatten())
                        .is_some_and(|(_, a)| a);
                    self.set(b, active);
                }
                Note::Rejoin(id) => out.events.push(PeerEvent::Rejoined {
                    generation: u64::from(id.bump),
                }),
            }
        }
        if self.foca.num_members() == 0 && !self.seeds.is_empty() {
            if self.next_knock.is_none() {
                self.next_knock = Some(now + KNOCK_INTERVAL);
            }
        } else {
            self.next_knock = None;
        }
    }

    fn set(&mut self, id: FocaId, active: bool) {
        let Some(j) = index_of(id.addr) else { return };
        if j >= self.known.len() {
            self.known.resize(j + 1, None);
        }
        self.known[j] = Some((id.bump, active));
    }

    fn announce_to_seeds(&mut self, now: Duration, out: &mut Outbox) {
        let seeds = self.seeds.clone();
        self.call(now, out, |foca, rt| {
            for s in seeds {
                let _ = foca.announce(s, &mut *rt);
            }
        });
    }
}

impl Peer for FocaPeer {
    fn boot(b: &Boot, out: &mut Outbox) -> Self {
        let id = FocaId {
            addr: node_addr(b.index),
            bump: b.generation as u16,
        };
        let foca = Foca::new(
            id,
            Self::config(b.cluster_size),
            SmallRng::seed_from_u64(b.rng_seed),
            PostcardCodec,
        );
        let mut p = FocaPeer {
            foca,
            timers: BinaryHeap::new(),
            seq: 0,
            seeds: b
                .seeds
                .iter()
                .map(|&s| FocaId {
                    addr: node_addr(s),
                    bump: 1,
                })
                .collect(),
            next_knock: None,
            known: Vec::new(),
            notes: Vec::new(),
        };
        p.announce_to_seeds(b.now, out);
        p
    }

    fn on_datagram(&mut self, now: Duration, _from: usize, bytes: &[u8], out: &mut Outbox) {
        self.call(now, out, |foca, rt| {
            let _ = foca.handle_data(bytes, rt);
        });
    }

    fn on_timer(&mut self, now: Duration, out: &mut Outbox) {
        while self.timers.peek().is_some_and(|e| e.at <= now) {
            let Some(e) = self.timers.pop() else { break };
            self.call(now, out, |foca, rt| {
                let _ = foca.handle_timer(e.timer, rt);
            });
        }
        if self.next_knock.is_some_and(|t| t <= now) {
            self.next_knock = Some(now + KNOCK_INTERVAL);
            self.announce_to_seeds(now, out);
        }
    }

    fn next_timer(&self) -> Option<Duration> {
        let t = self.timers.peek().map(|e| e.at);
        match (t, self.next_knock) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn leave(&mut self, now: Duration, out: &mut Outbox) {
        self.call(now, out, |foca, rt| {
            let _ = foca.leave_cluster(rt);
        });
    }

    fn alive_count(&self) -> usize {
        self.foca.num_members() + 1
    }

    fn view(&self, member: usize, generation: u64) -> View {
        // foca's own table (down members included), not our reading of its notifications.
        let addr = node_addr(member);
        let Some(m) = self
            .foca
            .iter_membership_state()
            .find(|m| m.id().addr == addr)
        else {
            return View::Unknown;
        };
        let bump = u64::from(m.id().bump);
        if bump > generation {
            View::Superseded
        } else if bump < generation {
            View::Unknown
        } else {
            match m.state() {
                State::Alive => View::Alive,
                State::Suspect => View::Suspect,
                State::Down => View::Down,
            }
        }
    }
}
