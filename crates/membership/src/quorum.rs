//! Quorum and leadership.
//!
//! Voters are members admitted by a side that held quorum and that have not left or been
//! removed. A node holds quorum when the voters it can reach (itself included, suspects
//! excluded) satisfy the split-brain policy. The leader is the smallest id among reachable
//! voters, and only a node holding quorum names one: two sides of a partition cannot both
//! reach a strict majority of the same voters, so at most one leader is valid.
//!
//! Decisions that shrink or grow the voter set (admitting a joiner, evicting a failed
//! member) are taken only while holding quorum, so a minority can never vote itself a
//! majority by evicting the others.

use crate::config::SplitBrainPolicy;

/// Whether `reachable` of `voters` is enough under `policy`.
pub fn has_quorum(policy: SplitBrainPolicy, voters: usize, reachable: usize) -> bool {
    if voters == 0 {
        return false;
    }
    match policy {
        SplitBrainPolicy::KeepMajority => 2 * reachable > voters,
        SplitBrainPolicy::StaticQuorum { quorum_size } => reachable >= quorum_size,
    }
}

/// The leader among reachable voter ids: the smallest, deterministic on every node that
/// sees the same reachable set. (A sorted set's first element; this is the rule spelled out.)
pub fn leader<'a>(reachable_voters: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    reachable_voters.into_iter().min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_majority_needs_a_strict_majority() {
        let p = SplitBrainPolicy::KeepMajority;
        assert!(has_quorum(p, 5, 3));
        assert!(!has_quorum(p, 5, 2));
        assert!(!has_quorum(p, 4, 2));
        assert!(has_quorum(p, 1, 1));
        assert!(!has_quorum(p, 0, 0));
    }

    #[test]
    fn two_disjoint_sides_never_both_hold_a_majority() {
        let p = SplitBrainPolicy::KeepMajority;
        for voters in 1..20 {
            for a in 0..=voters {
                assert!(!(has_quorum(p, voters, a) && has_quorum(p, voters, voters - a)));
            }
        }
    }

    #[test]
    fn static_quorum_counts_reachable_voters_only() {
        let p = SplitBrainPolicy::StaticQuorum { quorum_size: 3 };
        assert!(has_quorum(p, 10, 3));
        assert!(!has_quorum(p, 3, 2));
    }

    #[test]
    fn leader_is_the_smallest_id() {
        assert_eq!(leader(["c", "a", "b"]), Some("a"));
        assert_eq!(leader(Vec::<&str>::new()), None);
    }
}
