//! Operator commands: publish health signals, set a tag, leave, force a removal.

use std::sync::Arc;
use std::time::Duration;

use super::{Node, Output, Source};
use crate::codec::{self, Message, Update};
use crate::error::CommandError;
use crate::member::{HealthSignals, Liveness, Metadata};

impl Node {
    /// Publishes new self-measured health signals (gossiped only when a signal moves by a
    /// 5 % step).
    pub fn set_signals(&mut self, signals: HealthSignals) {
        let q = signals.quantized();
        if self.my_record().meta.signals != q {
            self.update_own_meta(|m| m.signals = q);
        }
    }

    /// Sets (or with `None` removes) a free key/value in this node's metadata. Refused, with
    /// nothing changed, when the metadata would exceed `cluster.limits.max-metadata-bytes`.
    pub fn set_tag(&mut self, key: &str, value: Option<&str>) -> Result<(), CommandError> {
        let current = self.my_record().meta.tags.get(key).map(String::as_str);
        if current == value {
            return Ok(());
        }
        let mut meta = Metadata::clone(&self.my_record().meta);
        match value {
            Some(v) => {
                meta.tags.insert(key.to_string(), v.to_string());
            }
            None => {
                meta.tags.remove(key);
            }
        }
        let size = metadata_len_with_any_signals(&meta);
        if size > self.config.max_metadata_bytes {
            return Err(CommandError::MetadataTooLarge {
                size,
                max: self.config.max_metadata_bytes,
            });
        }
        self.update_own_meta(move |m| *m = meta);
        Ok(())
    }

    pub(super) fn update_own_meta(&mut self, f: impl FnOnce(&mut Metadata)) {
        let mut rec = self.my_record().clone();
        f(Arc::make_mut(&mut rec.meta));
        rec.meta_version = rec.meta_version.saturating_add(1);
        // time does not matter for our own record: it is never failed or tombstoned locally
        let now = self.timers.last_timeout.unwrap_or_default();
        if self.table.merge(now, &rec).is_some() {
            self.enqueue(Update::Record(rec));
        }
    }

    /// Leaves the cluster gracefully: every member marks this one LEFT, no failure counted.
    /// Keep calling [`Node::handle_timeout`] for a few gossip rounds before exiting so the
    /// news spreads.
    pub fn leave(&mut self, now: Duration, out: &mut impl Output) {
        self.clock = self.clock.max(now);
        if self.left {
            return;
        }
        let mut rec = self.my_record().clone();
        rec.liveness = Liveness::Left;
        rec.voter = false;
        rec.joining = false;
        self.apply_record(now, &rec, Source::Local, out);
        self.left = true;
        self.life.pending_rejoin = None;
        self.watch.detectors.clear();
        self.suspicions.clear();
        self.watch.probes.clear();
        // tell a good number of members directly, so the leave does not wait for gossip
        let targets = self.random_members(32);
        let update = Update::Record(rec);
        for to in targets {
            let msg = Message::Gossip {
                from: self.sender(),
                updates: vec![update.clone()],
            };
            self.send(to, &msg, out);
        }
        self.refresh_quorum(out);
    }

    /// Removes a member by operator decision, without quorum or evidence. Unsafe: removing
    /// a live member on one side of a partition can leave two sides each believing they hold
    /// quorum. Use only for members known to be gone for good.
    pub fn force_remove(
        &mut self,
        now: Duration,
        id: &str,
        out: &mut impl Output,
    ) -> Result<(), CommandError> {
        if self.left {
            return Err(CommandError::HasLeft);
        }
        if id == self.me {
            return Err(CommandError::IsSelf);
        }
        let mut rec = self
            .record(id)
            .cloned()
            .ok_or_else(|| CommandError::UnknownMember(id.to_string()))?;
        let seated = rec.voter || rec.joining;
        rec.liveness = Liveness::Removed;
        rec.voter = false;
        rec.joining = false;
        self.apply_record(now, &rec, Source::Local, out);
        // With a leader, the removal waits for it to take the change into its next
        // configuration. Without one, the configuration still counts the removed seat, and
        // members that lost a majority of their voters for good could never elect a leader
        // again, however many of the dead the operator removed. So the operator's word is
        // also a configuration here: the table's seats, stamped as the next number. The
        // others adopt it when this node stands (newer, and their tables hold the same
        // seats once the removal spread).
        if seated && !self.has_quorum() && self.table.seats.adopted().0 > 0 {
            self.table.seats.stamp_confirmed();
        }
        Ok(())
    }
}

/// The encoded size of `meta` with the largest signals it can carry: signals change without
/// a check (`Node::set_signals`), so the room for them is kept when the rest is set.
pub(super) fn metadata_len_with_any_signals(meta: &Metadata) -> usize {
    let mut m = meta.clone();
    let s = &mut m.signals;
    (s.cpu_pct, s.mem_pct, s.error_pct, s.pressure_pct) = (u8::MAX, u8::MAX, u8::MAX, u8::MAX);
    (s.lag_ms, s.latency_ms) = (u16::MAX, u16::MAX);
    codec::metadata_len(&m)
}
