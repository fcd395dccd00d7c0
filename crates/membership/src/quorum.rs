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

/// The leader: the smallest of the voters not convicted (`candidates`, sorted), named only
/// while it is reachable. While the designated leader is merely suspected nobody is named,
/// so leadership moves only after a conviction, which the other side of a partition has long
/// noticed by then: there is never a second leader while the first may still act.
pub fn leader<'a>(
    mut candidates: impl Iterator<Item = &'a str>,
    reachable: impl Fn(&str) -> bool,
) -> Option<&'a str> {
    candidates.next().filter(|id| reachable(id))
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
    fn leader_is_the_smallest_candidate_and_only_while_reachable() {
        assert_eq!(leader(["a", "b", "c"].into_iter(), |_| true), Some("a"));
        assert_eq!(leader(["a", "b", "c"].into_iter(), |id| id != "a"), None);
        assert_eq!(leader(std::iter::empty(), |_| true), None);
    }
}
