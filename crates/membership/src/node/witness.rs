//! What the accusations against a suspect amount to, and witnesses standing in for
//! observers that cannot be heard from.
//!
//! A member is convicted on accusations from `cluster.confirmations` of its observers
//! (from as many zones, when its observers span zones). When most of its observers are
//! themselves SUSPECT or doubted here, their accusations can never arrive: in a partition,
//! a far member whose observers are mostly on its own side of the cut, or a member that
//! failed together with its neighbours on the rings. Such a suspect used to wait for the
//! hard failure timeout. Instead:
//!
//! - the zone rule counts only the zones of observers this node can still hear from (or
//!   that did accuse), and
//! - the next members clockwise on the first ring that are open here stand in for the
//!   missing observers: each probes the suspect once and, if no answer comes within the
//!   probe timeout, accuses it too.
//!
//! A healthy suspect answers the probe, so a lone slow observer does not get it convicted
//! (if the probe or its answer is lost, the stand-in accuses, and the suspect refutes that
//! as it refutes any accusation); and convicting at all needs a decisive quorum, so the
//! observers given up on are out of reach of most of the cluster as well.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;

use super::detect::Suspicion;
use super::{Node, Output};
use crate::codec::Message;
use crate::member::{Liveness, MemberRecord};

/// A witness probe sent to a suspect, for one (generation, incarnation) of it.
#[derive(Debug, Clone)]
pub(crate) struct Witness {
    generation: u64,
    incarnation: u64,
    sent: Duration,
    nonce: u64,
    /// Answered (the suspect is alive to this node), or accused: nothing more to do.
    done: bool,
}

/// The accusations against one suspect, weighed from this node's view.
pub(crate) struct Evidence {
    /// Accusers needed when zones do not decide: `cluster.confirmations`, or every observer
    /// when there are fewer. When the open observers span zones, `enough` asks instead for
    /// accusers from `confirmations` distinct zones (capped by those zones).
    pub needed: usize,
    /// The suspect's observers.
    pub observers: Vec<Arc<str>>,
    /// Observers that accused or still could: not SUSPECT or doubted here.
    pub open: usize,
    /// Whether the accusers suffice.
    pub enough: bool,
}

impl Node {
    /// Whether this node hears from `id`: ALIVE in its table and not doubted.
    fn can_hear(&self, id: &str) -> bool {
        !self.doubted.contains(id)
            && self
                .table
                .get(id)
                .is_some_and(|e| e.record.liveness == Liveness::Alive)
    }

    /// The record of `id` if it is SUSPECT at the life and incarnation `s` accuses: a
    /// suspicion that a refutation or a conviction overtook is not weighed.
    pub(super) fn suspect_of(&self, id: &str, s: &Suspicion) -> Option<&MemberRecord> {
        let r = &*self.table.get(id)?.record;
        (r.liveness == Liveness::Suspect
            && (r.generation, r.incarnation) == (s.generation, s.incarnation))
            .then_some(r)
    }

    pub(super) fn evidence(&self, subject: &str, zone: &str, s: &Suspicion) -> Evidence {
        let observers = self.table.rings().observers(subject, zone);
        let open: Vec<&Arc<str>> = observers
            .iter()
            .filter(|o| s.accusers.contains(&***o) || self.can_hear(o))
            .collect();
        let zone_of = |n: &str| {
            self.table
                .get(n)
                .map(|e| e.record.meta.zone.clone())
                .unwrap_or_default()
        };
        let needed = self.config.confirmations.min(observers.len()).max(1);
        let open_zones: BTreeSet<String> = open.iter().map(|o| zone_of(o)).collect();
        let enough = if open_zones.len() >= 2 {
            let accuser_zones: BTreeSet<String> = s.accusers.iter().map(|a| zone_of(a)).collect();
            accuser_zones.len() >= self.config.confirmations.min(open_zones.len())
        } else {
            s.accusers.len() >= needed
        };
        let open = open.len();
        Evidence {
            needed,
            observers,
            open,
            enough,
        }
    }

    /// Probes, then accuses, the suspects this node stands witness for.
    pub(super) fn witness(&mut self, now: Duration, out: &mut impl Output) {
        let current = |n: &Node, id: &str, w: &Witness| {
            n.suspicions
                .get(id)
                .is_some_and(|s| (s.generation, s.incarnation) == (w.generation, w.incarnation))
        };
        let stale: Vec<Arc<str>> = self
            .witnesses
            .iter()
            .filter(|(id, w)| !current(self, id, w))
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            self.witnesses.remove(&id);
        }
        let mut probe: Vec<(Arc<str>, std::net::SocketAddr, u64, u64)> = Vec::new();
        let mut accuse: Vec<(Arc<str>, u64, u64)> = Vec::new();
        for (id, s) in &self.suspicions {
            if s.accusers.len() >= self.config.confirmations || s.accusers.contains(&self.me) {
                continue;
            }
            if let Some(w) = self.witnesses.get(id.as_str()) {
                if !w.done
                    && now.saturating_sub(w.sent) >= self.stretched(self.config.probe_timeout)
                {
                    accuse.push((Arc::from(id.as_str()), w.generation, w.incarnation));
                }
                continue;
            }
            let Some(r) = self.suspect_of(id, s) else {
                continue;
            };
            let ev = self.evidence(id, &r.meta.zone, s);
            if ev.enough || ev.open >= ev.needed {
                continue;
            }
            let missing = ev.needed - ev.open;
            let observers = &ev.observers;
            let stand_ins = self
                .table
                .rings()
                .successors(id)
                .filter(|m| ***m != **id && !observers.contains(m) && !s.accusers.contains(&***m))
                .filter(|m| ***m == *self.me || self.can_hear(m))
                .take(missing)
                .any(|m| **m == *self.me);
            if stand_ins {
                probe.push((Arc::from(id.as_str()), r.addr, r.generation, r.incarnation));
            }
        }
        probe.sort();
        for (id, to, generation, incarnation) in probe {
            let nonce = self.rng.random();
            self.witnesses.insert(
                id,
                Witness {
                    generation,
                    incarnation,
                    sent: now,
                    nonce,
                    done: false,
                },
            );
            self.stats.witness_probes += 1;
            let msg = Message::Probe {
                from: self.sender(),
                nonce,
            };
            self.send(to, &msg, out);
        }
        if self.lagging() {
            // a stand-in whose own timers run late holds its verdict (see `node::detect`)
            self.stats.accusations_withheld += accuse.len() as u64;
            accuse.clear();
        }
        accuse.sort();
        for (id, generation, incarnation) in accuse {
            if let Some(w) = self.witnesses.get_mut(&id) {
                w.done = true;
            }
            self.stats.witness_accusations += 1;
            let me = self.me.clone();
            self.on_accusation(now, &id, generation, incarnation, &me, out);
        }
    }

    /// An answer to a witness probe: the suspect is alive as far as this node can tell.
    pub(super) fn on_witness_ack(&mut self, id: &str, nonce: u64) {
        if let Some(w) = self.witnesses.get_mut(id) {
            if w.nonce == nonce {
                w.done = true;
            }
        }
    }
}
