//! Taking in a record: whether it is admissible and believed, merging it into the table,
//! spreading it if it is news, and what a change sets off (events, the end of suspicions of
//! an older life, a quorum refresh). News about this node itself is answered here: a
//! suspicion is refuted, a conviction or a newer claim on its id leads to a rejoin.

use std::time::Duration;

use super::table::Change;
use super::{Event, Node, Output};
use crate::codec::{self, Update};
use crate::member::{Liveness, MemberRecord, NodeId};

/// Where a record came from: it decides whether the change is spread as news.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// Decided by this node.
    Local,
    /// Heard through gossip (rumor mongering: pass it on).
    Gossip,
    /// Received through anti-entropy or a join answer (repair: do not re-broadcast).
    Sync,
}

impl Node {
    pub(super) fn apply_updates(
        &mut self,
        now: Duration,
        updates: Vec<Update>,
        out: &mut impl Output,
    ) {
        for u in updates {
            match u {
                Update::Record(r) => {
                    self.apply_record(now, &r, Source::Gossip, out);
                }
                Update::Accuse {
                    subject,
                    generation,
                    incarnation,
                    by,
                } => {
                    self.on_accusation(now, &subject, generation, incarnation, &by, out);
                }
            }
        }
    }

    /// Merges a record, reacts to news about this node, spreads what changed (unless it came
    /// from anti-entropy, which repairs rather than announces) and emits events.
    pub(super) fn apply_record(
        &mut self,
        now: Duration,
        incoming: &MemberRecord,
        source: Source,
        out: &mut impl Output,
    ) {
        if source != Source::Local && !self.admissible(now, incoming, source) {
            return;
        }
        if *incoming.id == *self.me && source != Source::Local {
            self.on_news_about_me(now, incoming, out);
            return;
        }
        // A SUSPECT is taken only from a sender this node sees ALIVE. When a partition heals,
        // the side that was cut off (suspected or convicted here) would otherwise make its
        // suspicions of this side's members, out of date, everyone's until each refutes.
        let suspect_unbelieved = source != Source::Local
            && incoming.liveness == Liveness::Suspect
            && !self.inbound.credible;
        // Seats come from the leader's decisions, which anyone may relay; a member's word
        // about its own seat counts only if this node already gives it one (a restart).
        let seat_unbelieved = source != Source::Local
            && !self.inbound.seated
            && (incoming.voter || incoming.joining)
            && self
                .inbound
                .sender
                .as_ref()
                .is_none_or(|s| *s == *incoming.id);
        let believed;
        let incoming = if suspect_unbelieved || seat_unbelieved {
            let mut r = incoming.clone();
            if suspect_unbelieved {
                r.liveness = Liveness::Alive;
            }
            if seat_unbelieved {
                r.voter = false;
                r.joining = false;
            }
            believed = r;
            &believed
        } else {
            incoming
        };
        let learn = self.learns_departures(now, source);
        let Some(change) = self.table.merge_keeping(now, incoming, learn) else {
            return;
        };
        if change.old.is_none() && !change.new.is_live() {
            // A departure older than this node's table: remembered (so that replayed or
            // stale gossip cannot resurrect the member here) but not news.
            self.refresh_quorum(out);
            return;
        }
        if source != Source::Sync {
            self.enqueue(Update::Record(change.new.clone()));
        }
        self.after_change(now, &change, source == Source::Local, out);
    }

    /// Whether a record from the network is within bounds: metadata no larger than
    /// `cluster.limits.max-metadata-bytes`, a generation not far past this node's clock
    /// (`node::generation`) nor of a life whose tombstone was collected (`node::departed`),
    /// and room in the table if the member is new. Refusals are counted.
    pub(super) fn admissible(
        &mut self,
        now: Duration,
        incoming: &MemberRecord,
        source: Source,
    ) -> bool {
        if codec::metadata_len(&incoming.meta) > self.config.max_metadata_bytes {
            self.stats.records_oversize += 1;
            return false;
        }
        if self.refuses_generation(incoming.generation) {
            return false;
        }
        if self.departed.refuses(&incoming.id, incoming.generation) {
            self.stats.stale_lives += 1;
            return false;
        }
        if (incoming.is_live() || self.learns_departures(now, source))
            && self.table.len() >= self.config.max_members
            && self.table.get(&incoming.id).is_none()
        {
            self.stats.members_refused += 1;
            return false;
        }
        true
    }

    /// Whether a record of an unknown member that already ended is kept rather than
    /// ignored: only from a table transfer (join answer, anti-entropy) during this node's
    /// first `cluster.eviction.tombstone-ttl`. A fresh (or restarted) node thereby learns the
    /// departures the cluster still remembers, so a replayed old record of a departed member
    /// cannot make it join again here. Older nodes keep ignoring them, so tombstones that
    /// were collected do not bounce back and forth between nodes.
    pub(super) fn learns_departures(&self, now: Duration, source: Source) -> bool {
        source == Source::Sync && now.saturating_sub(self.life.born) < self.config.tombstone_ttl
    }

    pub(super) fn after_change(
        &mut self,
        now: Duration,
        change: &Change,
        decided_here: bool,
        out: &mut impl Output,
    ) {
        let new = &change.new;
        let id: NodeId = new.id.to_string();
        let same_life = change
            .old
            .as_ref()
            .is_some_and(|o| o.generation == new.generation);
        match &change.old {
            None => out.event(Event::MemberJoined {
                id: id.clone(),
                generation: new.generation,
            }),
            Some(old) if old.generation != new.generation => {
                self.note_restart(&new.id, now);
                out.event(Event::MemberRejoined {
                    id: id.clone(),
                    generation: new.generation,
                })
            }
            _ => {}
        }
        if !same_life
            || change.old.as_ref().map(|o| (o.incarnation, o.liveness))
                != Some((new.incarnation, new.liveness))
        {
            // a new life or a new incarnation ends any suspicion of the old one
            if let Some(s) = self.suspicions.get(id.as_str()) {
                if (s.generation, s.incarnation) != (new.generation, new.incarnation)
                    || new.liveness.is_terminal()
                {
                    self.suspicions.remove(&id);
                }
            }
        }
        if !same_life {
            self.watch.forget(id.as_str());
            self.watch.probes.remove(id.as_str());
        }
        let old_liveness = change
            .old
            .as_ref()
            .filter(|_| same_life)
            .map(|o| o.liveness);
        let own_news = change.old.as_ref().is_none_or(|o| {
            (o.generation, o.incarnation, o.meta_version)
                < (new.generation, new.incarnation, new.meta_version)
        });
        if own_news && new.liveness == Liveness::Alive {
            self.reach.note_heard(&new.id, now);
        }
        if old_liveness != Some(new.liveness) {
            self.reach.note_liveness_change();
            match new.liveness {
                Liveness::Alive if old_liveness == Some(Liveness::Suspect) => {
                    out.event(Event::MemberRefuted {
                        id: id.clone(),
                        incarnation: new.incarnation,
                    })
                }
                Liveness::Suspect => {
                    if new.voter {
                        self.last_voter_suspected = Some(now);
                    }
                    let by = self
                        .suspicions
                        .get(id.as_str())
                        .and_then(|s| s.accusers.iter().next().cloned())
                        .unwrap_or_default();
                    out.event(Event::MemberSuspected { id: id.clone(), by });
                }
                Liveness::Failed => {
                    self.stats.failures_detected += 1;
                    let silent_for = self
                        .watch
                        .detectors
                        .get(id.as_str())
                        .map(|d| now.saturating_sub(d.last_arrival()));
                    out.event(Event::MemberFailed {
                        id: id.clone(),
                        generation: new.generation,
                        silent_for,
                        decided_here,
                    });
                }
                Liveness::Left => out.event(Event::MemberLeft { id: id.clone() }),
                Liveness::Removed => out.event(Event::MemberEvicted {
                    id: id.clone(),
                    decided_here,
                }),
                Liveness::Alive => {}
            }
        }
        if new.liveness.is_terminal() {
            self.watch.forget(id.as_str());
        }
        self.refresh_quorum(out);
    }

    /// Someone says something about this node: refute a suspicion, come back after a
    /// conviction, adopt a voter seat.
    pub(super) fn on_news_about_me(
        &mut self,
        now: Duration,
        news: &MemberRecord,
        out: &mut impl Output,
    ) {
        let mine = self.my_record().clone();
        if news.generation > mine.generation {
            out.event(Event::IdConflict {
                id: self.me.clone(),
                generation: news.generation,
            });
            self.request_rejoin(
                now,
                news.generation.saturating_add(1),
                news.voter,
                "another process used this id with a newer generation",
                out,
            );
            return;
        }
        if news.generation < mine.generation {
            return;
        }
        match news.liveness {
            Liveness::Failed | Liveness::Removed | Liveness::Left => {
                let keep_voter = mine.voter && news.liveness == Liveness::Failed;
                let reason = match news.liveness {
                    Liveness::Failed => "declared failed",
                    Liveness::Removed => "evicted",
                    _ => "reported as left",
                };
                self.request_rejoin(
                    now,
                    mine.generation.saturating_add(1),
                    keep_voter,
                    reason,
                    out,
                );
            }
            Liveness::Alive | Liveness::Suspect => {
                let refute = news.incarnation > mine.incarnation
                    || (news.incarnation == mine.incarnation && news.liveness == Liveness::Suspect);
                let mut rec = mine.clone();
                rec.voter |= news.voter;
                rec.joining = (rec.joining || news.joining) && !rec.voter;
                if refute {
                    rec.incarnation = news.incarnation.saturating_add(1);
                    self.stats.refutations += 1;
                }
                if rec != mine {
                    self.apply_record(now, &rec, Source::Local, out);
                }
            }
        }
    }
}
