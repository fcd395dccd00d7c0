//! One log line per membership event that matters to an operator, and no more than a few
//! a window for the same event about the same member ([`EventLog`]).

use std::collections::HashMap;
use std::time::Duration;

use membership::Event;
use tracing::{info, warn};

/// Lines per event kind and member in one [`WINDOW`]; the rest are counted.
pub const BURST: u32 = 5;
/// How long the [`BURST`] lasts.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Kinds and members followed at once; beyond that, events are logged unlimited rather
/// than the limiter growing (the member table bounds the ids anyway).
const MAX_KEYS: usize = 4096;

/// Logs events, at most [`BURST`] per [`WINDOW`] for one kind of event about one member (or
/// about this node): anyone on an unkeyed network can make a node hear the same news again
/// and again (issue 14: "declared gone and rejoined" written at 78 KB/s), and the log must
/// not be the thing that fills the disk. What is held back is counted and summed up in one
/// line when its window ends. Distinct members are limited separately, so a partition that
/// fails a hundred members still logs each of them.
#[derive(Debug, Default)]
pub struct EventLog {
    windows: HashMap<(&'static str, String), Window>,
    next_sweep: Duration,
}

#[derive(Debug)]
struct Window {
    start: Duration,
    logged: u32,
    held: u64,
}

impl EventLog {
    /// Logs `event` unless it went over its burst; call [`EventLog::sweep`] regularly.
    pub fn log(&mut self, now: Duration, event: &Event) {
        if self.admit(now, event.kind(), subject(event)) {
            log_event(event);
        }
    }

    /// Whether an event of `kind` about `member` may be logged at `now` (counted if not).
    fn admit(&mut self, now: Duration, kind: &'static str, member: &str) -> bool {
        let key = (kind, member.to_string());
        if !self.windows.contains_key(&key) && self.windows.len() >= MAX_KEYS {
            return true;
        }
        let w = self.windows.entry(key).or_insert(Window {
            start: now,
            logged: 0,
            held: 0,
        });
        if now.saturating_sub(w.start) >= WINDOW {
            if w.held > 0 {
                summary(kind, member, w.held);
            }
            *w = Window {
                start: now,
                logged: 0,
                held: 0,
            };
        }
        if w.logged < BURST {
            w.logged += 1;
            true
        } else {
            w.held += 1;
            false
        }
    }

    /// Sums up what was held back in windows that ended, and forgets those windows (at most
    /// once a second, so it costs nothing per datagram). Returns what it summed up.
    pub fn sweep(&mut self, now: Duration) -> Vec<(&'static str, String, u64)> {
        if now < self.next_sweep {
            return Vec::new();
        }
        self.next_sweep = now + Duration::from_secs(1);
        let mut held = Vec::new();
        self.windows.retain(|(kind, member), w| {
            if now.saturating_sub(w.start) < WINDOW {
                return true;
            }
            if w.held > 0 {
                summary(kind, member, w.held);
                held.push((*kind, member.clone(), w.held));
            }
            false
        });
        held
    }
}

fn summary(kind: &str, member: &str, held: u64) {
    warn!(
        event = kind,
        member,
        not_logged = held,
        window_s = WINDOW.as_secs(),
        "the same event came again and again; repeats beyond {BURST} a window were not logged"
    );
}

/// The member an event is about ("" for this node's own quorum and leader).
fn subject(event: &Event) -> &str {
    match event {
        Event::MemberJoined { id, .. }
        | Event::MemberRejoined { id, .. }
        | Event::MemberSuspected { id, .. }
        | Event::MemberRefuted { id, .. }
        | Event::MemberFailed { id, .. }
        | Event::MemberEvicted { id, .. }
        | Event::MemberLeft { id }
        | Event::IdConflict { id, .. } => id,
        Event::QuorumChanged { .. } | Event::LeaderChanged { .. } | Event::SelfRejoined { .. } => {
            ""
        }
    }
}

/// Logs `event` at the level it deserves: losses are warnings, gains are info.
pub fn log_event(event: &Event) {
    match event {
        Event::MemberJoined { id, generation } => info!(member = %id, generation, "member joined"),
        Event::MemberRejoined { id, generation } => {
            info!(member = %id, generation, "member rejoined with a new generation")
        }
        Event::MemberSuspected { id, by } => warn!(member = %id, accuser = %by, "member suspected"),
        Event::MemberRefuted { id, incarnation } => {
            info!(member = %id, incarnation, "member refuted the suspicion")
        }
        Event::MemberFailed {
            id,
            generation,
            silent_for,
            decided_here,
        } => {
            let silent_ms = silent_for.map(|d| d.as_millis() as u64);
            warn!(member = %id, generation, silent_ms, decided_here, "member failed")
        }
        Event::MemberEvicted { id, decided_here } => {
            warn!(member = %id, decided_here, "member evicted")
        }
        Event::MemberLeft { id } => info!(member = %id, "member left"),
        Event::QuorumChanged {
            has_quorum: true,
            reachable,
            voters,
        } => {
            info!(reachable, voters, "quorum gained")
        }
        Event::QuorumChanged {
            has_quorum: false,
            reachable,
            voters,
        } => {
            warn!(reachable, voters, "quorum lost")
        }
        Event::LeaderChanged {
            leader: Some(leader),
        } => info!(leader = %leader, "leader changed"),
        Event::LeaderChanged { leader: None } => warn!("no leader (no quorum here)"),
        Event::SelfRejoined { generation, reason } => {
            warn!(
                generation,
                reason, "this node was declared gone and rejoined with a new generation"
            )
        }
        Event::IdConflict { id, generation } => {
            warn!(member = %id, generation, "another process claims this node's id with a newer generation")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_event_is_logged_a_few_times_a_window_and_the_rest_summed_up() {
        let mut log = EventLog::default();
        let s = Duration::from_secs;
        // a loop of rejoins: 1,000 in one second
        let logged = (0..1000)
            .filter(|k| log.admit(s(0) + Duration::from_millis(*k), "self_rejoined", ""))
            .count();
        assert_eq!(logged, BURST as usize);
        // other members are limited separately
        assert!(log.admit(s(1), "member_failed", "n1"));
        assert!(log.admit(s(1), "member_failed", "n2"));
        // the window ends: one summary, then a fresh burst
        assert!(log.sweep(s(5)).is_empty());
        assert_eq!(
            log.sweep(s(10)),
            vec![("self_rejoined", String::new(), 1000 - u64::from(BURST))]
        );
        assert_eq!(log.windows.len(), 2, "the members' windows run until 11 s");
        assert!(log.admit(s(11), "self_rejoined", ""));
    }
}
