//! Sending: the sender header every message carries, encoding, the per-kind counters, and
//! the answer budget (see the module docs of `node`, "Answers").

use std::net::SocketAddr;

use super::{Node, Output};
use crate::codec::{self, Message, Sender};
use crate::member::MemberRecord;

impl Node {
    pub(super) fn sender(&self) -> Sender {
        let me = self.my_record();
        Sender {
            id: me.id.to_string(),
            generation: me.generation,
            incarnation: me.incarnation,
            summary: self.table.summary() as u32,
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
