//! Unit tests of the simulator's own checks: minority decisions, split brain, recovery
//! deadlines after a heal, `keep_going`, and skewed clocks.

use super::*;

/// A small cluster with `config`, run until it converged.
fn converged(mut config: SimConfig) -> Sim {
    config.step = Duration::from_millis(20);
    let mut sim = Sim::new(config).unwrap();
    let at = sim.wait_for(Duration::from_secs(60), Sim::settled).unwrap();
    assert!(at.is_some(), "did not converge with quorum everywhere");
    sim
}

#[test]
fn a_minority_convicting_across_the_cut_is_a_violation_and_the_majority_is_not() {
    let mut sim = converged(SimConfig::new(5, 11));
    sim.partition(&[vec![0, 1], vec![2, 3, 4]]);
    // Within the lease bound after the cut the minority's lease may still hold: counted,
    // not a violation.
    let member = sim.process(4).id.clone();
    sim.observe_event(
        1,
        Event::MemberEvicted {
            id: member,
            decided_here: true,
        },
    );
    assert!(sim.violation.is_none(), "{:?}", sim.violation);
    assert_eq!(sim.counters().minority_decisions_within_bound, 1);
    let bound = sim.config().quorum_overlap_bound;
    sim.run_for(bound).unwrap();
    // The majority evicting a minority member is its right.
    sim.observe_event(
        3,
        Event::MemberEvicted {
            id: sim.process(0).id.clone(),
            decided_here: true,
        },
    );
    assert!(sim.violation.is_none(), "{:?}", sim.violation);
    // An eviction learnt from another member is not this node's decision.
    sim.observe_event(
        1,
        Event::MemberEvicted {
            id: sim.process(4).id.clone(),
            decided_here: false,
        },
    );
    assert!(sim.violation.is_none(), "{:?}", sim.violation);
    // After it, the minority (2 of 5 voters) evicting a majority member is not.
    sim.observe_event(
        1,
        Event::MemberEvicted {
            id: sim.process(4).id.clone(),
            decided_here: true,
        },
    );
    match sim.violation.clone() {
        Some(Violation::MinorityDecision {
            observer,
            member,
            voters_in_group,
            voters,
            event,
            ..
        }) => {
            assert_eq!((observer.as_str(), member.as_str()), ("n00001", "n00004"));
            assert!(voters >= 3 && 2 * voters_in_group <= voters);
            assert_eq!(event, "member_evicted");
        }
        other => panic!("expected a minority decision, got {other:?}"),
    }
    // The run stops on it at once.
    let step = sim.config().step;
    let stopped = sim.run_for(step);
    assert!(matches!(stopped, Err(Violation::MinorityDecision { .. })));
}

/// A heal's recovery deadline that falls inside a later heal is not the later heal's:
/// a node heard again for 0.1 s was reported as not recovered from the first heal.
#[test]
fn a_new_cut_ends_the_wait_of_the_heal_before_it() {
    let mut config = SimConfig::new(5, 12);
    config.recovery_bound = Duration::from_secs(5);
    let mut sim = converged(config);
    let ms = Duration::from_millis;
    sim.partition(&[vec![0, 1], vec![2, 3, 4]]);
    sim.run_for(ms(6000)).unwrap();
    assert!(!sim.holds_quorum(0) && !sim.holds_quorum(1));
    sim.heal();
    sim.run_for(ms(40)).unwrap();
    sim.partition(&[vec![0, 1], vec![2, 3, 4]]);
    sim.run_for(ms(4860)).unwrap();
    sim.heal();
    // The first heal's deadline passes 0.1 s into this one.
    sim.run_for(ms(15_000)).unwrap();
}

#[test]
fn both_sides_holding_quorum_past_the_bound_is_split_brain_from_the_cut() {
    let mut config = SimConfig::new(5, 12);
    config.quorum_overlap_bound = Duration::ZERO;
    let mut sim = converged(config);
    let cut = sim.now();
    sim.partition(&[vec![0, 1], vec![2, 3, 4]]);
    // 20 ms after the cut nobody can have noticed it: both sides still hold quorum,
    // and with no allowed overlap that is already split brain.
    match sim.run_for(Duration::from_millis(40)) {
        Err(Violation::SplitBrain { since_cut, .. }) => {
            assert!(since_cut <= 0.041, "{since_cut}");
        }
        other => panic!("expected split brain right after the cut, got {other:?}"),
    }
    assert!(sim.now() - cut <= Duration::from_millis(40));
}

#[test]
fn keep_going_notes_violations_and_measures_the_overlap() {
    let mut config = SimConfig::new(5, 12);
    config.quorum_overlap_bound = Duration::ZERO;
    config.keep_going = true;
    let mut sim = converged(config);
    sim.partition(&[vec![0, 1], vec![2, 3, 4]]);
    sim.run_for(Duration::from_millis(200)).unwrap();
    let (count, first) = &sim.noted()["split_brain"];
    assert!(*count >= 5, "{count}");
    assert!(matches!(first, Violation::SplitBrain { .. }));
    assert!(
        sim.both_sides_quorum_s() >= 0.18,
        "{}",
        sim.both_sides_quorum_s()
    );
}

#[test]
fn a_node_reaching_a_majority_without_quorum_after_the_heal_is_not_recovered() {
    let mut config = SimConfig::new(5, 13);
    config.recovery_bound = Duration::ZERO;
    config.keep_going = true; // the cut itself may break other invariants
    let mut sim = converged(config);
    sim.partition(&[vec![0], vec![1, 2, 3, 4]]);
    let lost = sim
        .wait_for(sim.now() + Duration::from_secs(30), |s| !s.holds_quorum(0))
        .unwrap();
    assert!(lost.is_some(), "the lone node kept quorum for 30 s");
    let mut config = sim.config.clone();
    config.keep_going = false;
    sim.config = config;
    // With a zero bound the first check after the heal decides; with checks every
    // millisecond, node 0 cannot have heard back from a majority by then (one delivery
    // takes a millisecond, and a lease request must come and be answered).
    let mut config = sim.config.clone();
    config.step = Duration::from_millis(1);
    sim.config = config;
    sim.event_loop.next_step = sim.now();
    sim.heal();
    match sim.run_for(Duration::from_millis(1)) {
        Err(Violation::NotRecovered {
            node,
            reached,
            voters,
            ..
        }) => {
            assert_eq!(node, "n00000");
            assert!(2 * reached > voters, "{reached} of {voters}");
        }
        other => panic!("expected not recovered, got {other:?}"),
    }
}

#[test]
fn skewed_clocks_are_drawn_per_node_and_the_cluster_still_works() {
    let plain = Sim::new(SimConfig::new(6, 14)).unwrap();
    assert!((0..6).all(|i| plain.process(i).clock_rate == 1.0));
    let mut config = SimConfig::new(6, 14);
    config.clock_skew = 0.01;
    let mut sim = converged(config);
    let rates: Vec<f64> = (0..6).map(|i| sim.process(i).clock_rate).collect();
    assert!(rates.iter().all(|r| (0.99..=1.01).contains(r)), "{rates:?}");
    assert!(rates.iter().any(|&r| r != 1.0));
    sim.run_for(Duration::from_secs(20)).unwrap();
    let fast = (0..6)
        .max_by(|&a, &b| rates[a].total_cmp(&rates[b]))
        .unwrap();
    assert!(sim.local_now(fast) > sim.now());
    sim.crash(5);
    let failed = sim.track(crate::Predicate::Failed {
        member: sim.process(5).id.clone(),
        generation: 1,
    });
    let deadline = sim.now() + Duration::from_secs(60);
    assert!(sim.wait_tracker(failed, deadline).unwrap());
}
