//! Generations from the network are bounded by the receiver's clock, and a member comes back
//! with a new generation at most once per heartbeat interval (see `node::generation`).
//! Issue 14: one forged record of n3 at generation `u64::MAX` evicted n3 for good, and its
//! log looped "declared gone and rejoined".

use super::generation::MAX_GENERATION_AHEAD;
use super::tests::{addr, gossip_from, identity, Capture, Pump};
use super::*;
use crate::codec::{encode, Message, Update};
use crate::member::Status;

const MS: fn(u64) -> Duration = Duration::from_millis;

fn n3_at(p: &Pump, generation: u64, liveness: Liveness) -> Update {
    let mut r = p.nodes[0].record("n3").unwrap().clone();
    r.generation = generation;
    r.liveness = liveness;
    r.voter = true;
    Update::Record(r)
}

/// Delivers `d` to every node, as if from n1's address.
fn flood(p: &mut Pump, d: &[u8]) {
    let now = p.now;
    for i in 0..p.nodes.len() {
        let mut cap = Capture::default();
        let _ = p.nodes[i].handle_datagram(now, addr(1), d, &mut cap);
        p.absorb(i, cap);
    }
}

fn restart_n3(p: &mut Pump, generation: u64) {
    let identity = identity(3, generation);
    p.nodes[3] = Node::new(identity, Config::default(), vec![addr(0)], p.now, 33).unwrap();
}

fn assert_n3_healthy_at(p: &Pump, generation: u64) {
    for i in 0..4 {
        assert_eq!(p.status(i, 3), Some(Status::Healthy), "n{i} about n3");
        assert_eq!(
            p.nodes[i].record("n3").unwrap().generation,
            generation,
            "n{i}"
        );
    }
}

#[test]
fn a_forged_record_at_the_last_generation_is_refused_and_a_restarted_member_is_not_locked_out() {
    let mut p = Pump::new(4, Config::default());
    p.run_for(MS(3000));
    // far-future records and senders: u64::MAX, and a year past the receivers' clocks
    let year = 365 * 24 * 3600 * 1000;
    for g in [u64::MAX, year] {
        for liveness in [Liveness::Alive, Liveness::Failed, Liveness::Left] {
            let d = gossip_from("n1", vec![n3_at(&p, g, liveness)]);
            flood(&mut p, &d);
        }
        let hb = Message::Heartbeat {
            from: codec::Sender {
                id: "n3".into(),
                generation: g,
                incarnation: 0,
                summary: Some(crate::codec::Summary(0)),
            },
            seq: 1,
            updates: Vec::new(),
        };
        flood(&mut p, &encode(codec::cluster_id("test"), &hb));
    }
    assert!(!p.events.iter().any(|(_, e)| matches!(
        e,
        Event::IdConflict { .. } | Event::SelfRejoined { .. } | Event::MemberRejoined { .. }
    )));
    p.run_for(MS(3000));
    assert_n3_healthy_at(&p, 1);
    // n3 restarts (the lockout): its new life is taken everywhere
    restart_n3(&mut p, 2);
    p.run_for(MS(5000));
    assert_n3_healthy_at(&p, 2);
    // n1 takes the records "from n1" for its own echo, n3 restarted; n0 and n2 refused all
    for i in [0, 2] {
        assert!(p.nodes[i].stats().future_generations >= 8, "n{i}");
    }
}

/// What an attacker can still do without a key: claim an id at a generation within the
/// allowance. The real member comes back above it, once, and a restart later does too.
#[test]
fn a_forged_generation_within_the_allowance_costs_the_member_one_rejoin() {
    let mut p = Pump::new(4, Config::default());
    p.run_for(MS(3000));
    let forged = 1 + MAX_GENERATION_AHEAD.as_millis() as u64;
    let d = gossip_from("n1", vec![n3_at(&p, forged, Liveness::Failed)]);
    flood(&mut p, &d);
    p.run_for(MS(5000));
    assert_n3_healthy_at(&p, forged + 1);
    let rejoins = |p: &Pump| {
        p.events
            .iter()
            .filter(|(i, e)| *i == 3 && matches!(e, Event::SelfRejoined { .. }))
            .count()
    };
    assert_eq!(rejoins(&p), 1);
    restart_n3(&mut p, 2);
    p.run_for(MS(5000));
    assert_n3_healthy_at(&p, forged + 2);
}

#[test]
fn news_of_its_own_end_makes_a_node_come_back_at_most_once_per_heartbeat_interval() {
    let mut p = Pump::new(3, Config::default());
    p.run_for(MS(2000));
    let start = p.events.len();
    let rejoins = |p: &Pump| {
        p.events[start..]
            .iter()
            .filter(|(i, e)| *i == 1 && matches!(e, Event::SelfRejoined { .. }))
            .count()
    };
    // 2 s of "n1 failed" at whatever generation n1 has, every 10 ms
    let mut last_news = 0;
    for _ in 0..200 {
        let mut dead = p.nodes[1].my_record().clone();
        dead.liveness = Liveness::Failed;
        last_news = dead.generation;
        let d = gossip_from("n0", vec![Update::Record(dead)]);
        let now = p.now;
        let mut cap = Capture::default();
        p.nodes[1]
            .handle_datagram(now, addr(0), &d, &mut cap)
            .unwrap();
        p.absorb(1, cap);
        p.run_for(MS(10));
    }
    let interval = Config::default().heartbeat_interval;
    let bound = 2000 / interval.as_millis() as usize + 1;
    assert!(
        (1..=bound).contains(&rejoins(&p)),
        "{} rejoins in 2 s",
        rejoins(&p)
    );
    // the last news, kept while the interval ran, is acted on once it is up
    p.run_for(interval + MS(200));
    assert!(p.nodes[1].generation() > last_news);
    assert!(rejoins(&p) <= bound + 1, "{} rejoins", rejoins(&p));
    p.run_for(MS(3000));
    for i in 0..3 {
        assert_eq!(p.status(i, 1), Some(Status::Healthy), "n{i} about n1");
    }
}

/// At the last generation there is nothing newer to come back with: the node stays, and
/// does not loop (the 78 KB/s of "declared gone and rejoined").
#[test]
fn a_node_at_the_last_generation_does_not_loop() {
    let mut p = Pump::new(2, Config::default());
    p.nodes[1] = {
        let identity = Identity {
            id: "n1".into(),
            addr: addr(1),
            generation: u64::MAX,
            meta: Metadata::default(),
            cluster: "test".into(),
        };
        Node::new(identity, Config::default(), vec![addr(0)], p.now, 1).unwrap()
    };
    p.run_for(MS(2000));
    let mut dead = p.nodes[1].my_record().clone();
    dead.liveness = Liveness::Failed;
    let d = gossip_from("n0", vec![Update::Record(dead)]);
    for _ in 0..100 {
        let now = p.now;
        let mut cap = Capture::default();
        p.nodes[1]
            .handle_datagram(now, addr(0), &d, &mut cap)
            .unwrap();
        p.absorb(1, cap);
        p.run_for(MS(20));
    }
    assert_eq!(p.nodes[1].generation(), u64::MAX);
    assert!(!p
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::SelfRejoined { .. })));
}

/// Found by the `node` fuzz target (CI, stop 19): news of its end arrived within a heartbeat
/// interval of a rejoin, so the next rejoin waited; the node then left, and the waiting
/// rejoin brought its record back ALIVE while the node believed it had left.
#[test]
fn a_rejoin_that_waits_for_its_interval_is_dropped_when_the_node_leaves() {
    let mut p = Pump::new(3, Config::default());
    p.run_for(MS(2000));
    let news_of_its_end = |p: &mut Pump| {
        let mut dead = p.nodes[1].my_record().clone();
        dead.liveness = Liveness::Failed;
        let d = gossip_from("n0", vec![Update::Record(dead)]);
        let now = p.now;
        let mut cap = Capture::default();
        p.nodes[1]
            .handle_datagram(now, addr(0), &d, &mut cap)
            .unwrap();
        p.absorb(1, cap);
    };
    news_of_its_end(&mut p); // rejoins at once
    p.run_for(MS(10));
    news_of_its_end(&mut p); // waits for the interval
    let now = p.now;
    let mut cap = Capture::default();
    p.nodes[1].leave(now, &mut cap);
    p.absorb(1, cap);
    p.run_for(Config::default().heartbeat_interval * 3);
    assert!(p.nodes[1].has_left());
    assert_eq!(p.nodes[1].my_record().liveness, Liveness::Left);
    assert_eq!(p.status(0, 1), Some(Status::Left));
}
