//! Replayed heartbeats and probe answers: an attacker (or a duplicating network) that
//! re-sends a crashed member's captured heartbeats, or answers probes in its name without
//! having seen them, must not keep it alive.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::codec::{decode, encode, Message};
use crate::member::Status;
use crate::Effects;

const MS: fn(u64) -> Duration = Duration::from_millis;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 1, i as u8 + 1], 7946))
}

fn node(i: usize) -> Node {
    let identity = Identity {
        id: format!("r{i}"),
        addr: addr(i),
        generation: 1,
        meta: Metadata::default(),
        cluster: "replay".into(),
    };
    let seeds = if i == 0 { vec![] } else { vec![addr(0)] };
    Node::new(identity, Config::lan(), seeds, MS(0), i as u64).unwrap()
}

/// Runs `nodes` for `ms` milliseconds in 1 ms steps, delivering at once; `up[i]` false
/// means node i neither sends nor receives. Returns every heartbeat sent by `watch` to
/// another node, as (destination, datagram).
fn run(nodes: &mut [Node], up: &[bool], from: u64, ms: u64, watch: usize) -> Vec<(usize, Vec<u8>)> {
    let mut seen = Vec::new();
    for t in from..from + ms {
        let now = MS(t);
        let mut queue: Vec<(usize, SocketAddr, Vec<u8>)> = Vec::new();
        if !up[watch] && t % 50 == 0 {
            // answers to probes the crashed member never saw: only the probe's nonce counts
            let ack = Message::ProbeAck {
                from: codec::Sender {
                    id: format!("r{watch}"),
                    generation: 1,
                    incarnation: 0,
                    summary: Some(crate::codec::Summary(0)),
                },
                nonce: t,
            };
            let d = encode(codec::cluster_id("replay"), &ack);
            for (i, n) in nodes.iter_mut().enumerate() {
                if up[i] {
                    let _ = n.handle_datagram(now, addr(watch), &d, &mut Effects::default());
                }
            }
        }
        for (i, n) in nodes.iter_mut().enumerate() {
            if up[i] && n.poll_timeout() <= now {
                let mut out = Effects::default();
                n.handle_timeout(now, &mut out);
                queue.extend(out.sends.into_iter().map(|(to, d)| (i, to, d)));
            }
        }
        while let Some((src, to, d)) = queue.pop() {
            let Some(dst) = (0..nodes.len()).find(|&j| addr(j) == to) else {
                continue;
            };
            if src == watch {
                if let Ok(Message::Heartbeat { .. }) = decode(codec::cluster_id("replay"), 1400, &d)
                {
                    seen.push((dst, d.clone()));
                }
            }
            if !up[dst] {
                continue;
            }
            let mut out = Effects::default();
            let _ = nodes[dst].handle_datagram(now, addr(src), &d, &mut out);
            queue.extend(out.sends.into_iter().map(|(to, d)| (dst, to, d)));
        }
    }
    seen
}

#[test]
fn replayed_heartbeats_of_a_crashed_member_do_not_keep_it_alive() {
    let mut nodes: Vec<Node> = (0..4).map(node).collect();
    let taped = run(&mut nodes, &[true; 4], 0, 10_000, 3);
    assert!(!taped.is_empty());
    for n in nodes.iter().take(3) {
        assert_eq!(
            n.view(MS(10_000)).member("r3").unwrap().status,
            Status::Healthy
        );
    }
    // r3 crashes; every second its old heartbeats are replayed to everyone it sent them to.
    let up = [true, true, true, false];
    for second in 10..40 {
        run(&mut nodes, &up, second * 1000, 1000, 3);
        let now = MS(second * 1000 + 1000);
        for (dst, d) in &taped {
            let mut out = Effects::default();
            let _ = nodes[*dst].handle_datagram(now, addr(3), d, &mut out);
        }
    }
    let now = MS(40_000);
    for (i, n) in nodes.iter().enumerate().take(3) {
        let v = n.view(now);
        let m = v.member("r3").map(|m| m.status);
        assert!(
            matches!(m, None | Some(Status::Failed)),
            "r{i} still sees r3 as {m:?} despite its silence"
        );
        assert!(n.stats().stale_heartbeats > 0, "r{i} took a replay");
    }
    // A replay never counts, but a newer heartbeat would: the sequence is what decides.
    let fresh = Message::Heartbeat {
        from: codec::Sender {
            id: "r1".into(),
            generation: 1,
            incarnation: nodes[1].view(now).member("r1").unwrap().incarnation,
            summary: Some(crate::codec::Summary(0)),
        },
        seq: u64::MAX,
        updates: Vec::new(),
    };
    let before = nodes[0].stats().stale_heartbeats;
    let d = encode(codec::cluster_id("replay"), &fresh);
    let _ = nodes[0].handle_datagram(now, addr(1), &d, &mut Effects::default());
    let _ = nodes[0].handle_datagram(now, addr(1), &d, &mut Effects::default());
    assert_eq!(
        nodes[0].stats().stale_heartbeats,
        before + 1,
        "only the duplicate is stale"
    );
}
