//! One log line per membership event that matters to an operator.

use membership::Event;
use tracing::{info, warn};

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
