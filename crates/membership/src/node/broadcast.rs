//! Spreading news: the queue of updates waiting to be gossiped, the random members they go
//! to, and the gossip round that piggybacks them as room allows.

use std::net::SocketAddr;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;

use super::{Node, Output};
use crate::codec::{self, Message, Update};
use crate::member::Liveness;

impl Node {
    /// Queues news for gossip, within the configured bound.
    pub(super) fn enqueue(&mut self, update: Update) {
        self.queue
            .push_capped(update, self.config.max_pending_updates);
    }

    /// Bytes left for piggybacked updates in `msg` (which has no updates yet).
    pub(super) fn piggyback_budget(&self, msg: &Message) -> usize {
        let base = codec::encode(self.cluster, msg).len() + codec::SEQ_PREFIX_MAX;
        self.config.max_datagram.saturating_sub(base)
    }

    pub(super) fn take_updates(&mut self, budget: usize) -> Vec<Update> {
        let limit = self.config.retransmit_limit(self.table.alive());
        let table = &self.table;
        self.queue.take(budget, limit, |u| match u {
            Update::Record(r) => table
                .get(&r.id)
                .is_some_and(|e| e.record.generation == r.generation),
            Update::Accuse {
                subject,
                generation,
                incarnation,
                ..
            } => table.get(subject).is_some_and(|e| {
                e.record.generation == *generation
                    && e.record.incarnation == *incarnation
                    && !e.record.liveness.is_terminal()
            }),
        })
    }

    /// Addresses of up to `n` distinct random live members other than this one.
    pub(super) fn random_members(&mut self, n: usize) -> Vec<SocketAddr> {
        let others = self.table.rings().len() - usize::from(self.table.rings().contains(&self.me));
        let want = n.min(others);
        let mut picked: Vec<&str> = Vec::with_capacity(want);
        if others <= 4 * want {
            // few members: shuffle them all (ring arcs are too uneven to sample from)
            let mut all: Vec<&str> = self
                .table
                .rings()
                .members()
                .filter(|id| *id != self.me)
                .collect();
            all.sort_unstable();
            all.shuffle(&mut self.rng);
            picked.extend(all.into_iter().take(want));
        } else {
            // While many members are suspected (a partition, seen from either side), most
            // gossip sent to them is lost and spends the retransmissions that news needs on
            // this side: pick a suspect only one time in four. Never none, or a member
            // suspected by mistake would not hear the accusation it has to refute.
            let shun_suspects = self.reach.is_active();
            let mut tries = 0;
            while picked.len() < want && tries < want * 8 {
                tries += 1;
                let Some(id) = self.table.rings().random(self.rng.random()) else {
                    break;
                };
                if id == self.me || picked.contains(&id) {
                    continue;
                }
                if shun_suspects
                    && self
                        .table
                        .get(id)
                        .is_some_and(|e| e.record.liveness != Liveness::Alive)
                    && self.rng.random_range(0..4) != 0
                {
                    continue;
                }
                picked.push(id);
            }
        }
        picked
            .iter()
            .filter_map(|id| self.table.get(id))
            .map(|e| e.record.addr)
            .collect()
    }

    pub(super) fn gossip_round(&mut self, _now: Duration, out: &mut impl Output) {
        if self.queue.is_empty() {
            return;
        }
        for to in self.random_members(self.config.gossip_fanout) {
            let empty = Message::Gossip {
                from: self.sender(),
                updates: Vec::new(),
            };
            let budget = self.piggyback_budget(&empty);
            let updates = self.take_updates(budget);
            if updates.is_empty() {
                break;
            }
            let msg = Message::Gossip {
                from: self.sender(),
                updates,
            };
            self.send(to, &msg, out);
        }
    }
}
