//! Sending: the sender header every message carries, encoding, the per-kind counters, and
//! the answer budget (see the module docs of `node`, "Answers").

use std::net::SocketAddr;

use super::{Node, Output};
use crate::codec::{self, Message, Sender, Summary};
use crate::member::MemberRecord;

/// Heartbeat rounds that carry the table summary after it changed (see
/// [`Node::heartbeat_sender`]).
pub(super) const NEWS_ROUNDS: u32 = 2;

impl Node {
    /// The sender block most messages carry: who, at which life, and the table's summary.
    pub(super) fn sender(&self) -> Sender {
        self.sender_block(true)
    }

    /// The sender block of one heartbeat round: with the table's summary only while this
    /// node knows no leader, or for [`NEWS_ROUNDS`] rounds after its table changed or it
    /// received a summary unlike its own (`note_sender`). Why: with a leader known, every
    /// member hears the leader's summary in each of its requests (every third of
    /// `cluster.quorum.lease`, as often as the anti-entropy interval lets a mismatch start
    /// an exchange), and an exchange with the leader mends both tables (push-pull), so in a
    /// table at rest the summary took 4 of a heartbeat's 23 bytes, a sixth of a member's
    /// steady traffic, for nothing. Fresh news is different: a member
    /// that just learnt something makes each observer still without it pull it at once, and
    /// one that saw a summary unlike its own lets its observers push what it lacks, which
    /// speeds the last stragglers of a spread (without either, a crash took 0.2-0.4 s longer
    /// to be FAILED everywhere at 1000 nodes). Without a leader (a side cut off from the
    /// majority, a cluster forming, a member back from a pause) every heartbeat carries it.
    pub(super) fn heartbeat_sender(&mut self) -> Sender {
        let summary = self.table.summary();
        if summary != self.hb_news.0 {
            self.hb_news = (summary, NEWS_ROUNDS);
        }
        let carry = self.leader.is_none() || self.hb_news.1 > 0;
        self.hb_news.1 = self.hb_news.1.saturating_sub(1);
        self.sender_block(carry)
    }

    /// The sender block of a lease grant, without the summary: the voter compares the
    /// request's summary with its own table and starts the exchange itself.
    pub(super) fn grant_sender(&self) -> Sender {
        self.sender_block(false)
    }

    fn sender_block(&self, summary: bool) -> Sender {
        let me = self.my_record();
        Sender {
            id: me.id.to_string(),
            generation: me.generation,
            incarnation: me.incarnation,
            summary: summary.then(|| Summary(self.table.summary() as u32)),
        }
    }

    pub(super) fn send(&mut self, to: SocketAddr, msg: &Message, out: &mut impl Output) {
        let bytes = codec::encode(self.cluster, msg);
        self.send_encoded(to, msg.kind(), bytes, out);
    }

    /// Whether a datagram of `len` bytes fits what this node may still send in answer to
    /// the datagram being handled (see the module docs of `node`, "Answers").
    pub(super) fn may_answer(&self, len: usize) -> bool {
        self.inbound.answer_budget.is_none_or(|left| len <= left)
    }

    /// Sends an encoded datagram, unless it exceeds the answer budget (then it is withheld
    /// and counted). Returns whether it went out.
    pub(super) fn send_encoded(
        &mut self,
        to: SocketAddr,
        kind: &'static str,
        bytes: Vec<u8>,
        out: &mut impl Output,
    ) -> bool {
        if !self.may_answer(bytes.len()) {
            self.stats.answers_withheld += 1;
            return false;
        }
        if let Some(left) = &mut self.inbound.answer_budget {
            *left -= bytes.len();
        }
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        self.stats.max_datagram_sent = self.stats.max_datagram_sent.max(bytes.len() as u64);
        let counts = self.stats.sent_by_kind.entry(kind).or_default();
        counts.0 += 1;
        counts.1 += bytes.len() as u64;
        out.send(to, bytes);
        true
    }

    /// A join for `record`, padded to `cluster.transport.max-datagram` (see the module
    /// docs of `node`, "Answers").
    pub(super) fn join_message(&self, record: MemberRecord) -> Message {
        Message::padded_join(self.cluster, record, self.config.max_datagram)
    }
}
