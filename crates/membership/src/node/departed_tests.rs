//! A replay older than the tombstone TTL brings nobody back (see `node::departed`). Issue 14:
//! with a 5 s `cluster.eviction.tombstone-ttl`, a replayed record showed a crashed member
//! HEALTHY again for 9.5 s.

use super::tests::{addr, gossip_from, identity, Capture, Pump};
use super::*;
use crate::codec::{encode, Message, Update};
use crate::member::Status;

const MS: fn(u64) -> Duration = Duration::from_millis;

fn config() -> Config {
    Config {
        eviction_grace_period: Duration::from_secs(5),
        tombstone_ttl: Duration::from_secs(5),
        ..Config::default()
    }
}

/// Five nodes; n4 crashes and is convicted, evicted and collected everywhere. Returns the
/// pump and n4's last live record, as captured before the crash.
fn n4_crashed_and_collected() -> (Pump, MemberRecord) {
    let mut p = Pump::new(5, config());
    p.run_for(MS(3000));
    let n4 = p.nodes[0].record("n4").unwrap().clone();
    assert_eq!(n4.liveness, Liveness::Alive);
    p.down[4] = true;
    p.run_for(MS(20_000));
    for i in 0..4 {
        assert!(p.nodes[i].record("n4").is_none(), "n{i} still holds n4");
        assert_eq!(p.nodes[i].departed.floor("n4"), Some(1), "n{i}");
    }
    (p, n4)
}

#[test]
fn a_replay_older_than_the_tombstone_ttl_brings_nobody_back() {
    let (mut p, n4) = n4_crashed_and_collected();
    let replays = [
        gossip_from("n1", vec![Update::Record(n4.clone())]),
        encode(
            codec::cluster_id("test"),
            &Message::Join {
                record: n4.clone(),
                padding: Vec::new(),
            },
        ),
        encode(
            codec::cluster_id("test"),
            &Message::SyncRecords {
                from: codec::Sender {
                    id: "n1".into(),
                    generation: 1,
                    incarnation: 0,
                    summary: Some(crate::codec::Summary(0)),
                },
                records: vec![n4],
            },
        ),
    ];
    let start = p.events.len();
    for _ in 0..10 {
        let now = p.now;
        for d in &replays {
            for i in 0..4 {
                let mut cap = Capture::default();
                let _ = p.nodes[i].handle_datagram(now, addr(4), d, &mut cap);
                p.absorb(i, cap);
            }
        }
        for i in 0..4 {
            assert_eq!(p.status(i, 4), None, "n{i} lists n4 again");
        }
        p.run_for(MS(1000));
    }
    for i in 0..4 {
        assert!(p.nodes[i].stats().stale_lives > 0, "n{i}");
        assert!(p.nodes[i].has_quorum(), "n{i}");
    }
    assert!(!p.events[start..].iter().any(|(_, e)| matches!(
        e,
        Event::MemberJoined { id, .. } | Event::MemberRejoined { id, .. } if id == "n4"
    )));
}

#[test]
fn a_restart_whose_clock_went_back_below_the_ended_life_comes_back_above_it() {
    let (mut p, _) = n4_crashed_and_collected();
    // n4 restarts at the generation its ended life had (a clock stepped back)
    let identity = identity(4, 1);
    p.nodes[4] = Node::new(identity, config(), vec![addr(0)], p.now, 44).unwrap();
    p.down[4] = false;
    p.run_for(MS(5000));
    assert_eq!(p.nodes[4].generation(), 2);
    for i in 0..4 {
        assert_eq!(p.status(i, 4), Some(Status::Healthy), "n{i} about n4");
    }
}

/// A heartbeat from `n3`'s life 1, as if from `from`.
fn heartbeat_of_n3(seq: u64) -> Vec<u8> {
    let hb = Message::Heartbeat {
        from: codec::Sender {
            id: "n3".into(),
            generation: 1,
            incarnation: 0,
            summary: Some(crate::codec::Summary(0)),
        },
        seq,
        updates: Vec::new(),
    };
    encode(codec::cluster_id("test"), &hb)
}

/// The records `datagrams` to `to` carry about `id`.
fn told(sent: &[(SocketAddr, Vec<u8>)], to: SocketAddr, id: &str) -> Vec<MemberRecord> {
    sent.iter()
        .filter(|(a, _)| *a == to)
        .filter_map(|(_, d)| codec::decode(codec::cluster_id("test"), 1400, d).ok())
        .flat_map(|m| match m {
            Message::Gossip { updates, .. } => updates,
            _ => Vec::new(),
        })
        .filter_map(|u| match u {
            Update::Record(r) if &*r.id == id => Some(r),
            _ => None,
        })
        .collect()
}

/// The seed simulator's 100-node partition (seed 1) after issue 14's answer budget: an
/// evicted member of the minority kept heartbeating members that held it REMOVED, who took it
/// for a stranger and withheld every answer, so it learned of its eviction only from slow
/// anti-entropy and held no quorum 10 s after the heal. Now it is told at once, once per
/// heartbeat interval, and only at its own address.
#[test]
fn an_evicted_member_that_still_speaks_is_told_at_its_address_and_comes_back() {
    let mut p = Pump::new(4, config());
    p.run_for(MS(3000));
    p.group[3] = 1;
    let now = p.now;
    let mut cap = Capture::default();
    p.nodes[0].force_remove(now, "n3", &mut cap).unwrap();
    p.absorb(0, cap);
    p.run_for(MS(1000));
    assert_eq!(p.nodes[0].record("n3").unwrap().liveness, Liveness::Removed);

    let deliver = |p: &mut Pump, from: SocketAddr, seq: u64| {
        let now = p.now;
        let mut cap = Capture::default();
        p.nodes[0]
            .handle_datagram(now, from, &heartbeat_of_n3(seq), &mut cap)
            .unwrap();
        cap.sends
    };
    let sent = deliver(&mut p, addr(3), 1_000);
    let verdict = told(&sent, addr(3), "n3");
    assert_eq!(verdict.len(), 1, "one record of n3 to n3");
    assert_eq!(verdict[0].liveness, Liveness::Removed);
    assert_eq!(verdict[0].generation, 1);
    // once per heartbeat interval, and never to another address
    p.run_for(MS(10));
    assert!(told(&deliver(&mut p, addr(3), 1_001), addr(3), "n3").is_empty());
    p.run_for(Config::default().heartbeat_interval);
    let elsewhere = deliver(&mut p, addr(7), 1_002);
    assert!(
        elsewhere.is_empty(),
        "{} datagrams to a stranger",
        elsewhere.len()
    );
    assert_eq!(
        told(&deliver(&mut p, addr(3), 1_003), addr(3), "n3").len(),
        1
    );

    // n3 takes the news and comes back with a new life
    let d = &sent.iter().find(|(a, _)| *a == addr(3)).unwrap().1;
    let now = p.now;
    let mut cap = Capture::default();
    p.nodes[3]
        .handle_datagram(now, addr(0), d, &mut cap)
        .unwrap();
    assert!(cap
        .events
        .iter()
        .any(|e| matches!(e, Event::SelfRejoined { generation: 2, .. })));
}
