//! Receiving a datagram: decode it, decide how far its sender is believed, and hand each
//! message to the part of the node that owns it.
//!
//! Whom a node answers and how much is in the module docs of `node`, "Answers": the
//! budget is set here and spent in `send`.

use std::net::SocketAddr;
use std::time::Duration;

use super::{lease, Node, Output, Source};
use crate::codec::{self, Message};
use crate::error::DecodeError;
use crate::member::{Liveness, NodeId};

/// What this node believes about the sender of the datagram being handled: set when the
/// datagram arrives, read while its records are merged and its answers sent.
#[derive(Debug)]
pub(super) struct Inbound {
    /// Whether the sender is ALIVE in this node's view: only then are the SUSPECT records it
    /// carries believed.
    pub credible: bool,
    /// Whether the sender holds a seat (voter or joining) in this node's view, and its id
    /// (none for a join): a join, or a member without a seat gossiping about itself, cannot
    /// make itself a voter by saying so.
    pub seated: bool,
    pub sender: Option<NodeId>,
    /// Bytes this node may still send while it handles a datagram from a sender not known
    /// as a member (`None`: no limit). See the module docs of `node`, "Answers".
    pub answer_budget: Option<usize>,
}

impl Default for Inbound {
    fn default() -> Self {
        Inbound {
            credible: true,
            seated: true,
            sender: None,
            answer_budget: None,
        }
    }
}

impl Node {
    pub(super) fn receive(
        &mut self,
        now: Duration,
        from: SocketAddr,
        datagram: &[u8],
        authenticated: bool,
        out: &mut impl Output,
    ) -> Result<(), DecodeError> {
        self.clock = self.clock.max(now);
        self.stats.bytes_received += datagram.len() as u64;
        let msg = match codec::decode(self.cluster, self.config.max_datagram, datagram) {
            Ok(m) => m,
            Err(e) => {
                self.stats.decode_errors += 1;
                return Err(e);
            }
        };
        self.stats.messages_received += 1;
        if self.left {
            return Ok(());
        }
        if msg
            .sender()
            .is_some_and(|s| s.generation > self.generation_limit())
        {
            self.stats.future_generations += 1;
            return Ok(()); // forged or from a host whose clock is far ahead: nothing to believe
        }
        let member = authenticated || self.sent_by_member(from, &msg);
        self.inbound.answer_budget = (!member).then_some(datagram.len());
        self.on_message(now, from, msg, out);
        self.inbound.answer_budget = None;
        Ok(())
    }

    /// Whether `from` is the gossip address this table holds for the sender `msg` names (a
    /// join: the joiner), a member that has not left or been evicted.
    pub(super) fn sent_by_member(&self, from: SocketAddr, msg: &Message) -> bool {
        let id = match msg {
            Message::Join { record, .. } => &*record.id,
            _ => match msg.sender() {
                Some(s) => s.id.as_str(),
                None => return false,
            },
        };
        self.table.get(id).is_some_and(|e| {
            e.record.addr == from
                && !matches!(e.record.liveness, Liveness::Left | Liveness::Removed)
        })
    }

    pub(super) fn on_message(
        &mut self,
        now: Duration,
        from: SocketAddr,
        msg: Message,
        out: &mut impl Output,
    ) {
        self.inbound.credible = true;
        // Until this node knows a voter it takes the first table it is given (its seeds').
        self.inbound.sender = msg.sender().map(|s| s.id.clone());
        self.inbound.seated = self.table.voters() == 0
            || msg.sender().is_some_and(|s| {
                self.table.get(&s.id).is_some_and(|e| {
                    e.record.generation == s.generation
                        && (e.record.voter || e.record.joining)
                        && e.record.is_live()
                })
            });
        if let Some(sender) = msg.sender() {
            if sender.id == self.me {
                return; // our own echo, or an impostor: nothing to learn
            }
            self.inbound.credible = false;
            if let Some(e) = self.table.get(&sender.id) {
                self.inbound.credible = e.record.liveness == Liveness::Alive;
                if e.record.generation == sender.generation {
                    let id = e.record.id.clone();
                    self.reach.note_heard(&id, now);
                }
            }
            self.note_sender(now, from, sender, out);
            self.tell_the_departed(now, from, sender, out);
        }
        match msg {
            Message::Heartbeat {
                from: sender,
                seq,
                updates,
            } => {
                self.stats.heartbeats_received += 1;
                self.on_heartbeat(now, &sender, seq);
                self.apply_updates(now, updates, out);
            }
            Message::Gossip { updates, .. } => self.apply_updates(now, updates, out),
            Message::Join { record, .. } => self.on_join(now, from, record, out),
            Message::SyncDigest { ranges, reply, .. } => {
                self.on_sync_digest(now, from, &ranges, reply, out)
            }
            Message::SyncRecords { records, .. } => {
                self.sync.synced = true;
                for r in records {
                    self.apply_record(now, &r, Source::Sync, out);
                }
            }
            Message::Probe { nonce, .. } => {
                let ack = Message::ProbeAck {
                    from: self.sender(),
                    nonce,
                };
                // to the datagram's source, never to an address named in a message
                self.send(from, &ack, out);
            }
            Message::ProbeAck {
                from: sender,
                nonce,
            } => self.on_probe_ack(now, &sender, nonce),
            Message::LeaseRequest {
                from: sender,
                round,
                valid_ms,
                confirmed,
                epoch,
                digest,
            } => {
                let request = lease::Request {
                    round,
                    valid_ms,
                    confirmed,
                    epoch,
                    digest: digest.map(|d| d.0),
                };
                self.on_lease_request(now, from, &sender, request, out)
            }
            Message::LeaseGrant {
                from: sender,
                round,
                granted,
                epoch,
                digest,
            } => {
                let configuration = (epoch, digest.map(|d| d.0));
                self.on_lease_grant(now, &sender, round, granted, configuration, out)
            }
        }
    }
}
