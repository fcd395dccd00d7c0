//! Vigil's core ([`membership::Node`]) as a [`Peer`], set up exactly as `vigil-sim` sets it
//! up: `Config::for_cluster_size(n)`, three zones, node ids `n00000..`, the run seed's
//! derived RNG seed per life.

use std::time::Duration;

use membership::{Effects, Event, Identity, Liveness, Metadata, Node};
use sim::process::{index_of, node_addr, node_id};

use crate::harness::{Boot, Outbox, Peer, PeerEvent, View};

/// One Vigil node.
#[derive(Debug)]
pub struct VigilPeer {
    node: Node,
    effects: Effects,
}

/// Moves what the node produced into the harness's outbox: datagrams by node index, and
/// the events the harness accounts for.
fn forward(effects: &mut Effects, out: &mut Outbox) {
    for (to, datagram) in effects.take_sends() {
        if let Some(j) = index_of(to) {
            out.sends.push((j, datagram));
        }
    }
    for event in effects.take_events() {
        match event {
            Event::MemberFailed { id, generation, .. } => {
                if let Some(subject) = parse_id(&id) {
                    out.events.push(PeerEvent::Convicted {
                        subject,
                        generation,
                    });
                }
            }
            Event::SelfRejoined { generation, .. } => {
                out.events.push(PeerEvent::Rejoined { generation });
            }
            _ => {}
        }
    }
}

fn parse_id(id: &str) -> Option<usize> {
    id.strip_prefix('n')?.parse().ok()
}

impl Peer for VigilPeer {
    fn boot(b: &Boot, out: &mut Outbox) -> Self {
        let identity = Identity {
            id: node_id(b.index),
            addr: node_addr(b.index),
            generation: b.generation,
            meta: Metadata {
                role: "sim".into(),
                zone: format!("z{}", b.index % 3),
                ..Metadata::default()
            },
            cluster: "vigil-sim".into(),
        };
        let seeds = b.seeds.iter().map(|&s| node_addr(s)).collect();
        let config = membership::Config::for_cluster_size(b.cluster_size);
        let node = Node::new(identity, config, seeds, b.now, b.rng_seed)
            .expect("for_cluster_size gives a valid configuration");
        let _ = out;
        VigilPeer {
            node,
            effects: Effects::default(),
        }
    }

    fn on_datagram(&mut self, now: Duration, from: usize, bytes: &[u8], out: &mut Outbox) {
        let _ = self
            .node
            .handle_datagram(now, node_addr(from), bytes, &mut self.effects);
        forward(&mut self.effects, out);
    }

    fn on_timer(&mut self, now: Duration, out: &mut Outbox) {
        if now >= self.node.poll_timeout() {
            self.node.handle_timeout(now, &mut self.effects);
            forward(&mut self.effects, out);
        }
    }

    fn next_timer(&self) -> Option<Duration> {
        Some(self.node.poll_timeout()).filter(|&t| t != Duration::MAX)
    }

    fn leave(&mut self, now: Duration, out: &mut Outbox) {
        self.node.leave(now, &mut self.effects);
        forward(&mut self.effects, out);
    }

    fn alive_count(&self) -> usize {
        self.node.live_count()
    }

    fn view(&self, member: usize, generation: u64) -> View {
        match self.node.record(&node_id(member)) {
            None => View::Unknown,
            Some(r) if r.generation > generation => View::Superseded,
            Some(r) if r.generation < generation => View::Unknown,
            Some(r) => match r.liveness {
                Liveness::Alive => View::Alive,
                Liveness::Suspect => View::Suspect,
                Liveness::Failed | Liveness::Removed => View::Down,
                Liveness::Left => View::Left,
            },
        }
    }
}
