//! Criterion benchmarks of the core: datagrams handled per second, and the cost of one
//! gossip round, at 10, 100 and 1000 members. Run with `cargo bench -p membership`.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::net::SocketAddr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use membership::codec::{self, Message, Sender, Update};
use membership::{Config, Event, Identity, Liveness, MemberRecord, Metadata, Node, Output};

struct Discard(usize);

impl Output for Discard {
    fn send(&mut self, _to: SocketAddr, datagram: Vec<u8>) {
        self.0 += datagram.len();
    }
    fn event(&mut self, _event: Event) {}
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 7946))
}

fn record(i: usize) -> MemberRecord {
    MemberRecord {
        id: format!("node-{i}").into(),
        addr: addr(i),
        generation: 1,
        incarnation: 0,
        liveness: Liveness::Alive,
        meta_version: 1,
        meta: Metadata {
            role: "worker".into(),
            zone: "z1".into(),
            ..Default::default()
        }
        .into(),
        voter: true,
        joining: false,
    }
}

/// A node that knows `n` members (itself included), settled.
fn node_with(n: usize) -> Node {
    let identity = Identity {
        id: "node-0".into(),
        addr: addr(0),
        generation: 1,
        meta: Metadata {
            role: "worker".into(),
            zone: "z1".into(),
            ..Default::default()
        },
        cluster: "bench".into(),
    };
    let mut node = Node::new(identity, Config::default(), vec![], Duration::ZERO, 1).unwrap();
    let mut out = Discard(0);
    let cluster = codec::cluster_id("bench");
    for chunk in (1..n).collect::<Vec<_>>().chunks(10) {
        let records = chunk.iter().map(|i| record(*i)).collect();
        let msg = Message::SyncRecords {
            from: sender(1, 0),
            records,
        };
        node.handle_datagram(
            Duration::from_millis(1),
            addr(1),
            &codec::encode(cluster, &msg),
            &mut out,
        )
        .unwrap();
    }
    // let the broadcast queue drain
    for t in 0..400 {
        node.handle_timeout(Duration::from_millis(10 + t * 100), &mut out);
    }
    node
}

fn sender(i: usize, summary: u32) -> Sender {
    Sender {
        id: format!("node-{i}"),
        generation: 1,
        incarnation: 0,
        summary: Some(membership::codec::Summary(summary)),
    }
}

fn handle_heartbeats(c: &mut Criterion) {
    let mut group = c.benchmark_group("handle_heartbeat");
    group.throughput(Throughput::Elements(1));
    for n in [10usize, 100, 1000] {
        let mut node = node_with(n);
        let cluster = codec::cluster_id("bench");
        let summary = node.summary() as u32;
        let datagrams: Vec<Vec<u8>> = (1..n.min(64))
            .map(|i| {
                codec::encode(
                    cluster,
                    &Message::Heartbeat {
                        from: sender(i, summary),
                        seq: 1,
                        updates: Vec::<Update>::new(),
                    },
                )
            })
            .collect();
        let mut t = Duration::from_secs(100);
        let mut k = 0;
        let mut out = Discard(0);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                k = (k + 1) % datagrams.len();
                t += Duration::from_micros(10);
                node.handle_datagram(t, addr(k + 1), &datagrams[k], &mut out)
                    .unwrap();
            })
        });
    }
    group.finish();
}

fn gossip_round(c: &mut Criterion) {
    let mut group = c.benchmark_group("timeout_round");
    for n in [10usize, 100, 1000] {
        let mut node = node_with(n);
        let mut out = Discard(0);
        let mut t = Duration::from_secs(100);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                // a fresh metadata change each round, so there is something to gossip
                t += Duration::from_millis(200);
                node.set_tag("bench", Some(&t.as_millis().to_string()))
                    .expect("a short tag fits the metadata bound");
                node.handle_timeout(t, &mut out);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, handle_heartbeats, gossip_round);
criterion_main!(benches);
