//! Each scenario at small N with fixed seeds: the invariants hold and the outcomes are
//! the ones the protocol promises. Failures print the command that reproduces the run.

use std::time::Duration;

use sim::{Predicate, Report, Scenario, ScenarioParams, Sim, SimConfig};

fn run(p: &ScenarioParams) -> Report {
    let r = sim::run(p).expect("valid configuration");
    assert!(
        r.violation.is_none(),
        "{}\nreproduce with: {}",
        r.violation.as_deref().unwrap_or(""),
        r.reproduce
    );
    r
}

fn params(s: Scenario, nodes: usize, seed: u64, duration_s: u64) -> ScenarioParams {
    let mut p = ScenarioParams::new(s, nodes, seed);
    p.duration = Some(Duration::from_secs(duration_s));
    p
}

fn outcome(r: &Report, key: &str) -> serde_json::Value {
    r.outcome
        .get(key)
        .cloned()
        .unwrap_or_else(|| panic!("no outcome `{key}` in {:?}", r.outcome))
}

/// A small cluster, run until it converged.
fn converged_cluster(nodes: usize, seed: u64) -> Sim {
    let mut sim = Sim::new(SimConfig::new(nodes, seed)).unwrap();
    let at = sim
        .wait_for(Duration::from_secs(30), Sim::converged)
        .unwrap();
    assert!(
        at.is_some(),
        "cluster of {nodes} (seed {seed}) did not converge"
    );
    sim
}

#[test]
fn cold_join_converges_and_joins_and_leaves_reach_everyone() {
    let r = run(&params(Scenario::Join, 10, 1, 40));
    assert!(
        r.convergence_s.is_some_and(|s| s < 10.0),
        "{:?}",
        r.convergence_s
    );
    assert_eq!(r.spread_samples.get("join"), Some(&5));
    assert_eq!(r.spread_samples.get("leave"), Some(&5));
    assert!(r.spread_s_p99.is_some());
    assert!(r.bytes_per_node_per_s.mean.is_some_and(|b| b > 0.0));
    assert_eq!(r.false_positives, 0);
}

#[test]
fn crashed_nodes_are_marked_failed_by_every_live_member() {
    let r = run(&params(Scenario::Crash, 10, 2, 40));
    assert_eq!(r.detection_s.samples, 4);
    let max = r.detection_s.all_failed_max.unwrap();
    assert!(max <= 16.5 + 5.0, "conviction took {max}s");
    assert!(r.detection_s.first_suspect_p50.unwrap() <= r.detection_s.all_failed_p50.unwrap());
    assert_eq!(r.false_positives, 0);
}

#[test]
fn a_briefly_paused_node_is_never_failed() {
    let mut sim = converged_cluster(8, 3);
    let member = sim.process(3).id.clone();
    let failed = sim.track(Predicate::Failed {
        member,
        generation: 1,
    });
    sim.pause(3, Duration::from_millis(1500));
    sim.run_for(Duration::from_secs(30)).unwrap();
    assert!(
        sim.tracker(failed).first_at.is_none(),
        "a 1.5 s pause got n00003 convicted"
    );
    assert_eq!(sim.counters().false_positives, 0);
    assert!(sim.converged());
    assert_eq!(sim.node(3).unwrap().generation(), 1);
}

#[test]
fn a_long_paused_node_is_failed_then_rejoins_with_a_new_generation() {
    let mut p = params(Scenario::Pause, 8, 4, 60);
    p.pause = Duration::from_secs(20);
    let r = run_strict(&p);
    assert!(
        outcome(&r, "marked_failed_by").as_u64().unwrap() > 0,
        "{:?}",
        r.outcome
    );
    let before = outcome(&r, "generation_before").as_u64().unwrap();
    let after = outcome(&r, "generation_after").as_u64().unwrap();
    assert!(after > before, "generation {before} -> {after}");
    assert_eq!(r.false_positives, 0);
}

#[test]
fn a_minority_loses_quorum_the_majority_keeps_it_and_the_heal_converges() {
    let r = run_strict(&params(Scenario::Partition, 9, 5, 70));
    assert_eq!(outcome(&r, "minority").as_u64(), Some(4));
    assert_eq!(
        outcome(&r, "minority_quorum_holders_at_heal").as_u64(),
        Some(0)
    );
    assert_eq!(
        outcome(&r, "majority_quorum_holders_at_heal").as_u64(),
        Some(5)
    );
    assert!(!outcome(&r, "minority_lost_quorum_s").is_null());
    assert!(!outcome(&r, "heal_convergence_s").is_null());
    assert_eq!(
        outcome(&r, "leaders_after_heal").as_array().map(Vec::len),
        Some(1)
    );
}

/// At 40 nodes split 19 | 21 every minority member has some far members nobody on its side
/// watches (seeds 1 and 3 used to keep quorum 7.8 s, past the point where the minority
/// convicted majority members). The minority must give up quorum before the majority
/// convicts it, and convict nobody of the majority meanwhile.
#[test]
fn a_mid_size_minority_fences_before_the_majority_acts_and_convicts_nobody() {
    for seed in [1, 3, 8] {
        let mut p = params(Scenario::Partition, 40, seed, 0);
        p.partition = Duration::from_secs(20);
        let r = run_strict(&p);
        let fenced = outcome(&r, "minority_lost_quorum_s").as_f64().unwrap();
        let convicted = outcome(&r, "majority_failed_minority_s").as_f64().unwrap();
        assert!(
            fenced < convicted,
            "seed {seed}: minority fenced at {fenced} s, majority convicted it at {convicted} s\nreproduce with: {}",
            r.reproduce
        );
        assert_eq!(
            outcome(&r, "majority_members_convicted_by_minority").as_u64(),
            Some(0),
            "seed {seed}\nreproduce with: {}",
            r.reproduce
        );
        assert_eq!(
            outcome(&r, "majority_quorum_holders_at_heal").as_u64(),
            Some(21)
        );
    }
}

#[test]
fn a_graceful_leave_shows_left_everywhere() {
    let mut sim = converged_cluster(6, 6);
    let member = sim.process(4).id.clone();
    sim.leave(4);
    let left = sim.track(Predicate::Left {
        member,
        generation: 1,
    });
    assert!(sim
        .wait_tracker(left, sim.now() + Duration::from_secs(10))
        .unwrap());
    sim.run_for(Duration::from_secs(5)).unwrap();
    assert_eq!(sim.live_len(), 5);
    assert!(sim.all_see_all_alive());
    assert_eq!(sim.counters().false_positives, 0);
}

#[test]
fn a_restart_supersedes_the_old_generation_at_once() {
    let mut sim = converged_cluster(6, 7);
    sim.restart(2);
    let member = sim.process(2).id.clone();
    let known = sim.track(Predicate::Knows {
        member,
        generation: 2,
    });
    assert!(sim
        .wait_tracker(known, sim.now() + Duration::from_secs(10))
        .unwrap());
    assert!(sim.tracker(known).all_s().unwrap() < 5.0);
}

/// Members started before the founder find each other through their seeds first: they are
/// not alone, but know no voter. They kept probing one seed per rejoin interval, and the
/// founder answers a stranger's probe with no table, so they never joined (seed 2: n00000
/// starts last; after 30 s it led a cluster of one beside three voterless members).
#[test]
fn members_started_before_the_founder_join_it() {
    let mut c = SimConfig::new(4, 2);
    c.start_spread = Duration::from_millis(1500);
    let mut sim = Sim::new(c).unwrap();
    let founder_last = |s: &Sim| s.live_len() == 3 && s.node(0).is_none();
    assert!(
        sim.wait_for(Duration::from_millis(1500), founder_last)
            .unwrap()
            .is_some(),
        "the seed no longer starts the founder last: pick another"
    );
    let all = |s: &Sim| s.live_len() == 4 && (0..4).all(|i| s.holds_quorum(i)) && s.converged();
    assert!(sim
        .wait_for(Duration::from_secs(20), all)
        .unwrap()
        .is_some());
}

/// The leader stamps the promotion of the members that joined it and is lost, together
/// with one of them, before any lease message carried the promotion's number; both come
/// back with new lives a few seconds later. The others' tables hold the promotion, but they
/// had adopted only the joining configuration, whose quorum needs the lost leader's seat;
/// the restarted ones had adopted nothing. Nobody held quorum again (seed 1: four members,
/// the two killed 200 ms after all four first held quorum). Now the others adopt the
/// promotion they hear of (`Table::adopt_promotion`).
#[test]
fn a_leader_lost_right_after_promoting_leaves_a_cluster_that_recovers() {
    let mut c = SimConfig::new(4, 1);
    c.start_spread = Duration::from_millis(1500);
    let mut sim = Sim::new(c).unwrap();
    let all = |s: &Sim| s.live_len() == 4 && (0..4).all(|i| s.holds_quorum(i));
    let t = sim.wait_for(Duration::from_secs(30), all).unwrap().unwrap();
    sim.run_until(t + Duration::from_millis(200)).unwrap();
    sim.crash(0);
    sim.crash(3);
    sim.run_for(Duration::from_secs(3)).unwrap();
    sim.restart(0);
    sim.restart(3);
    let back = sim.now() + Duration::from_secs(30);
    assert!(sim.wait_for(back, all).unwrap().is_some());
}

#[test]
fn a_short_noisy_run_converges_without_false_positives() {
    let r = run(&params(Scenario::Jitter, 10, 8, 120));
    assert_eq!(r.false_positives, 0, "{:?}", r.false_positive_examples);
    assert!(r.messages.lost > 0);
}

#[test]
fn a_member_starved_in_bursts_convicts_nobody() {
    for stall_ms in [1700, 2800] {
        let mut p = params(Scenario::Starved, 8, 3, 70);
        p.pause = Duration::from_millis(stall_ms);
        let r = run(&p);
        assert_eq!(r.false_positives, 0, "{:?}", r.false_positive_examples);
        assert_eq!(outcome(&r, "starved_accusations"), 0, "{}", r.reproduce);
    }
}

/// Issue 16: local health at work. The default detector forgives a starved member's view
/// (phi's tolerance under ~3 s stalls, the pause guard over 3 s), so this one is sensitive
/// (phi 3) and the stalls are 2.9 s with runs of 1 ms, shorter than a probe's round trip:
/// the member's probes are still pending when it stalls, and at each resume its timers fire
/// before it reads the answers. Without local health it accuses its subjects; with it, it
/// holds every such accusation back (`starved_accusations_withheld`). Neither convicts
/// anyone: one accuser is never enough.
#[test]
fn local_health_holds_back_the_accusations_of_a_starved_member() {
    let mut p = params(Scenario::Starved, 8, 3, 70);
    p.pause = Duration::from_millis(2900);
    p.run = Duration::from_millis(1);
    p.phi = Some(3.0);
    let with = run(&p);
    p.local_health = false;
    let without = run(&p);
    for r in [&with, &without] {
        assert_eq!(r.false_positives, 0, "{:?}", r.false_positive_examples);
    }
    let count = |r: &Report, key: &str| outcome(r, key).as_u64().unwrap();
    assert!(
        count(&without, "starved_accusations") > 0,
        "without local health the starved member accused nobody: the scenario shows nothing\n{}",
        without.reproduce
    );
    assert_eq!(count(&with, "starved_accusations"), 0, "{}", with.reproduce);
    assert!(
        count(&with, "starved_accusations_withheld") > 0,
        "{}",
        with.reproduce
    );
}

/// A member frozen 3.2 s of every 3.4 s: with this seed the first stall convicts it (its
/// refutation comes a moment late). It rejoins with a new generation in the moments it
/// runs, before its observers watch the new life; watched as a member never heard from
/// (probed after a second of silence, accused when the probe goes unanswered) it was
/// convicted again at every stall after, twelve times in 40 s (experiment 4's
/// `throttled-hard` saw the same once on real processes). Its observers did hear its
/// previous life: the new one gets the usual prior, and phi then learns the stalls.
#[test]
fn a_member_convicted_at_a_stall_is_not_convicted_again_at_every_stall_after() {
    let mut p = params(Scenario::Starved, 5, 2, 60);
    p.pause = Duration::from_millis(3200);
    p.run = Duration::from_millis(200);
    let r = run(&p);
    let count = |key: &str| r.events.get(key).copied().unwrap_or(0);
    assert!(
        count("self_rejoined") > 0,
        "the scenario shows nothing unless the first stall convicts\n{}",
        r.reproduce
    );
    assert_eq!(
        count("self_rejoined"),
        1,
        "convicted again at later stalls\n{}",
        r.reproduce
    );
    // each of the other four saw that one conviction, and no other
    assert_eq!(count("member_failed"), 4, "{:?}\n{}", r.events, r.reproduce);
}

#[test]
fn churn_keeps_the_safety_invariants() {
    let r = sim::run(&params(Scenario::Churn, 12, 9, 60)).unwrap();
    // Safety violations stop the run before the settle phase; only the final
    // convergence (a liveness property) may still fail, see the next test.
    if let Some(v) = &r.violation {
        assert!(
            v.contains("views did not converge"),
            "{v}\nreproduce with: {}",
            r.reproduce
        );
    }
    assert_eq!(r.false_positives, 0, "{:?}", r.false_positive_examples);
}

#[test]

fn churn_settles_into_one_view() {
    run(&params(Scenario::Churn, 12, 9, 60));
}

#[test]
fn a_few_randomized_seeds_keep_every_invariant() {
    // Seeds vary per scenario but are fixed, so a failure reproduces exactly.
    for seed in [1001, 2002, 3003] {
        run(&params(Scenario::Crash, 7, seed, 30));
        let mut p = params(Scenario::Partition, 7, seed, 60);
        p.minority = Some(3);
        run(&p);
    }
}

#[test]
fn the_same_seed_gives_the_same_report() {
    let p = params(Scenario::Crash, 8, 10, 30);
    let mut a = sim::run(&p).unwrap();
    let mut b = sim::run(&p).unwrap();
    a.wall_s = 0.0;
    b.wall_s = 0.0;
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
}

/// Runs `p` and fails on any violated invariant, printing the command that reproduces it.
fn run_strict(p: &ScenarioParams) -> Report {
    let r = sim::run(p).expect("valid configuration");
    assert!(
        r.violation.is_none(),
        "{}\nreproduce with: {}",
        r.violation.as_deref().unwrap_or_default(),
        r.reproduce
    );
    r
}

#[test]
fn a_three_way_split_reports_the_leader_fields() {
    let mut p = params(Scenario::Partition, 9, 2, 0);
    p.groups = Some(vec![3, 3, 3]);
    p.partition = Duration::from_secs(10);
    assert!(p.command().contains(" --groups 3,3,3"));
    let r = run_strict(&p);
    assert_eq!(outcome(&r, "groups"), serde_json::json!([3, 3, 3]));
    // no group holds a majority
    assert_eq!(outcome(&r, "majority").as_u64(), Some(0));
    assert!(outcome(&r, "majority_leader_after_cut_s").is_null());
    for key in [
        "max_self_leaders_during_cut",
        "max_self_leaders_after_heal",
        "both_sides_quorum_s",
        "distinct_leaders_after_heal_max",
    ] {
        assert!(outcome(&r, key).is_number(), "{key}: {:?}", r.outcome);
    }
}

#[test]
fn trials_run_report_their_fields_and_each_failure_reproduces_alone() {
    let mut p = ScenarioParams::new(Scenario::Trials, 0, 5);
    p.trials = 3;
    p.nodes_max = 12;
    let r = sim::run_trials(&p).unwrap();
    assert_eq!((r.trials, r.trials_requested, r.scenario), (3, 3, "trials"));
    assert_eq!(r.runs.len(), 3);
    assert_eq!(r.violations, r.failures.len());
    let [lo, hi] = r.nodes_range.unwrap();
    assert!(3 <= lo && hi <= 12, "{lo}..{hi}");
    assert!(r.simulated_s > 0.0 && !r.budget_exhausted);
    let json = serde_json::to_value(&r).unwrap();
    for key in [
        "scenario",
        "trials",
        "violations",
        "failures",
        "nodes_range",
        "wall_s",
    ] {
        assert!(json.get(key).is_some(), "{key} missing");
    }
    for f in &r.failures {
        assert!(
            f.command.ends_with(&format!(
                "--scenario trials --trials 1 --seed 5 --first-trial {} --nodes-max 12",
                f.trial
            )),
            "{}",
            f.command
        );
        // The command's trial alone gives the same violation.
        let mut one = p.clone();
        one.trials = 1;
        one.first_trial = f.trial;
        let again = sim::run_trials(&one).unwrap();
        assert_eq!(again.failures.len(), 1);
        assert_eq!(again.failures[0].violation, f.violation);
    }
    // A zero time budget starts nothing.
    p.time_budget = Some(Duration::ZERO);
    let r = sim::run_trials(&p).unwrap();
    assert_eq!((r.trials, r.budget_exhausted), (0, true));
}

/// No trial of a fixed seed breaks a safety invariant (one leader, bounded split brain, no
/// minority decision after the bound, no revival). Liveness bounds missed (a member holding
/// quorum again more than 10 s after a heal) are reported, not failed: issue 13 is open on them.
#[test]
fn trials_keep_every_safety_invariant() {
    let mut p = ScenarioParams::new(Scenario::Trials, 0, 1);
    p.trials = 10;
    p.nodes_max = 30;
    let r = sim::run_trials(&p).unwrap();
    assert_eq!(r.trials, 10);
    assert_eq!(r.safety_violations, 0, "{:#?}", r.failures);
}

/// With leader leases the partition and long-pause runs above keep the lease invariants
/// too: at most one leader at a time, the minority fenced within the bound, nobody across the
/// cut convicted by the minority, and quorum back after a resume and a heal.
#[test]
fn partitions_and_long_pauses_keep_the_lease_invariants() {
    let mut p = params(Scenario::Pause, 8, 4, 60);
    p.pause = Duration::from_secs(20);
    run(&p);
    run(&params(Scenario::Partition, 9, 5, 70));
    for (nodes, minority, seed) in [(40, 19, 1), (40, 19, 3), (40, 19, 8), (10, 5, 3)] {
        let mut p = params(Scenario::Partition, nodes, seed, 0);
        p.minority = Some(minority);
        p.partition = Duration::from_secs(20);
        let r = run(&p);
        assert!(outcome(&r, "max_self_leaders_during_cut").as_u64() <= Some(1));
        assert!(outcome(&r, "max_self_leaders_after_heal").as_u64() <= Some(1));
    }
    let mut p = params(Scenario::Partition, 9, 2, 0);
    p.groups = Some(vec![3, 3, 3]);
    run(&p);
}
