//! Fuzz target: the core's message handler. One [`Node`] is fed a sequence of operations
//! decided by the input: datagrams holding arbitrary messages (built from a small pool of
//! ids, generations and addresses so that they collide with what the node knows) from
//! arbitrary sources, raw bytes, replays of its own earlier datagrams, timeouts, operator
//! commands, all at monotonic times (steps of a few milliseconds up to hours).
//!
//! After every operation it checks:
//! - nothing panicked;
//! - the node's own record is ALIVE while it runs (others' gossip never marks it failed,
//!   suspect or gone) and LEFT once it left;
//! - the table holds at most `max_members` records, every id and metadata within bounds,
//!   no generation more than `MAX_GENERATION_AHEAD` (plus one, for a rejoin above a claim)
//!   past the node's clock (its start generation plus the time since);
//! - the node comes back with a new generation at most once per heartbeat interval;
//! - no record present before the operation was rolled back (the new copy subsumes the old),
//!   except that a node coming back with a new generation turns the members it suspected back
//!   to ALIVE at the same incarnation (its old life's suspicions are void);
//! - the incremental indexes agree with the records (live count, table summary);
//! - a leader is named only with quorum, and is a voter that is not FAILED;
//! - every datagram the node sent decodes and fits `cluster.transport.max-datagram`;
//! - answers (issue 14): a datagram handled as unauthenticated from an address that is not
//!   the one the table holds for the member it names drew at most as many bytes as it had,
//!   and a probe's answer went to the datagram's source. Datagrams are handed in either way,
//!   unauthenticated ([`Node::handle_datagram`]) or as the runtime does in a keyed cluster
//!   ([`Node::handle_authenticated_datagram`]).

#![no_main]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use membership::codec::{self, Message, Sender, Summary, Update};
use membership::node::MAX_GENERATION_AHEAD;
use membership::{
    Config, Event, HealthSignals, Identity, Liveness, MemberRecord, Metadata, Node, Output, Status,
};

const CLUSTER: &str = "fuzz";
/// The node's generation at start: with the time since, its clock (see `node::generation`).
const START_GENERATION: u64 = 2;
/// Ids the generated messages use; "me" is the node under test.
const IDS: [&str; 8] = ["me", "a", "b", "c", "d", "e", "f", "g"];
const ZONES: [&str; 3] = ["z1", "z2", ""];

fn addr_of(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8 + 1], 7946))
}

#[derive(Default)]
struct Capture {
    sent: Vec<(SocketAddr, Vec<u8>)>,
    events: Vec<Event>,
}

impl Output for Capture {
    fn send(&mut self, to: SocketAddr, datagram: Vec<u8>) {
        self.sent.push((to, datagram));
    }
    fn event(&mut self, event: Event) {
        self.events.push(event);
    }
}

fn id(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=15u8)? {
        0 => u.arbitrary::<String>()?,
        1 => "x".repeat(u.int_in_range(120..=140)?),
        i => IDS[usize::from(i) % IDS.len()].to_string(),
    })
}

fn counter(u: &mut Unstructured) -> Result<u64> {
    Ok(match u.int_in_range(0..=15u8)? {
        0 => u64::MAX,
        1 => u64::MAX - 1,
        2 => u.arbitrary()?,
        i => u64::from(i % 5),
    })
}

fn addr(u: &mut Unstructured) -> Result<SocketAddr> {
    Ok(if u.ratio(1, 8)? {
        u.arbitrary()?
    } else {
        addr_of(u.int_in_range(0..=IDS.len() - 1)?)
    })
}

fn liveness(u: &mut Unstructured) -> Result<Liveness> {
    Ok(*u.choose(&[
        Liveness::Alive,
        Liveness::Suspect,
        Liveness::Failed,
        Liveness::Left,
        Liveness::Removed,
    ])?)
}

fn text(u: &mut Unstructured) -> Result<String> {
    Ok(if u.ratio(1, 6)? {
        "m".repeat(u.int_in_range(0..=700)?)
    } else {
        u.arbitrary()?
    })
}

fn meta(u: &mut Unstructured) -> Result<Metadata> {
    let mut m = Metadata {
        role: if u.arbitrary()? {
            text(u)?
        } else {
            "role".into()
        },
        zone: u.choose(&ZONES)?.to_string(),
        rack: String::new(),
        http_addr: if u.arbitrary()? { Some(text(u)?) } else { None },
        signals: HealthSignals {
            cpu_pct: u.arbitrary()?,
            mem_pct: u.arbitrary()?,
            error_pct: u.arbitrary()?,
            pressure_pct: u.arbitrary()?,
            lag_ms: u.arbitrary()?,
            latency_ms: u.arbitrary()?,
        },
        tags: BTreeMap::new(),
    };
    for _ in 0..u.int_in_range(0..=3)? {
        m.tags.insert(text(u)?, text(u)?);
    }
    Ok(m)
}

fn record(u: &mut Unstructured) -> Result<MemberRecord> {
    let id = id(u)?;
    let addr = match IDS.iter().position(|i| *i == id) {
        Some(i) if !u.ratio(1, 8)? => addr_of(i),
        _ => addr(u)?,
    };
    Ok(MemberRecord {
        id: id.into(),
        addr,
        generation: counter(u)?,
        incarnation: counter(u)?,
        liveness: liveness(u)?,
        meta_version: counter(u)?,
        meta: Arc::new(if u.ratio(3, 4)? {
            Metadata {
                role: "role".into(),
                zone: u.choose(&ZONES)?.to_string(),
                ..Default::default()
            }
        } else {
            meta(u)?
        }),
        voter: u.arbitrary()?,
        joining: u.arbitrary()?,
    })
}

fn sender(u: &mut Unstructured, from: &str) -> Result<Sender> {
    Ok(Sender {
        id: if u.ratio(7, 8)? {
            from.to_string()
        } else {
            id(u)?
        },
        generation: counter(u)?,
        incarnation: counter(u)?,
        summary: match u.int_in_range(0..=2u8)? {
            0 => None,
            1 => Some(Summary(0)),
            _ => Some(Summary(u.arbitrary()?)),
        },
    })
}

fn update(u: &mut Unstructured) -> Result<Update> {
    Ok(if u.arbitrary()? {
        Update::Record(record(u)?)
    } else {
        Update::Accuse {
            subject: id(u)?,
            generation: counter(u)?,
            incarnation: counter(u)?,
            by: id(u)?,
        }
    })
}

fn updates(u: &mut Unstructured) -> Result<Vec<Update>> {
    let n = u.int_in_range(0..=6)?;
    (0..n).map(|_| update(u)).collect()
}

fn message(u: &mut Unstructured, from: &str) -> Result<Message> {
    Ok(match u.int_in_range(0..=8u8)? {
        0 => Message::Heartbeat {
            from: sender(u, from)?,
            seq: u.arbitrary()?,
            updates: updates(u)?,
        },
        1 => Message::Gossip {
            from: sender(u, from)?,
            updates: updates(u)?,
        },
        2 => {
            let record = record(u)?;
            if u.arbitrary()? {
                Message::padded_join(
                    codec::cluster_id(CLUSTER),
                    record,
                    u.int_in_range(0..=1400)?,
                )
            } else {
                Message::Join {
                    record,
                    padding: u.arbitrary()?,
                }
            }
        }
        3 => {
            let n = 1usize << u.int_in_range(0..=9)?;
            let n = if u.ratio(1, 8)? { n + 1 } else { n };
            Message::SyncDigest {
                from: sender(u, from)?,
                ranges: (0..n).map(|_| u.arbitrary()).collect::<Result<_>>()?,
                reply: u.arbitrary()?,
            }
        }
        4 => Message::SyncRecords {
            from: sender(u, from)?,
            records: (0..u.int_in_range(0..=6)?)
                .map(|_| record(u))
                .collect::<Result<_>>()?,
        },
        5 => Message::Probe {
            from: sender(u, from)?,
            nonce: u.arbitrary()?,
        },
        6 => Message::ProbeAck {
            from: sender(u, from)?,
            nonce: u.arbitrary()?,
        },
        7 => Message::LeaseRequest {
            from: sender(u, from)?,
            round: u.int_in_range(0..=40)?,
            valid_ms: u.int_in_range(0..=4000)?,
            confirmed: u.int_in_range(0..=40)?,
            epoch: u.int_in_range(0..=12)?,
            digest: u.arbitrary::<Option<u64>>()?.map(membership::codec::Digest),
        },
        _ => Message::LeaseGrant {
            from: sender(u, from)?,
            round: u.int_in_range(0..=40)?,
            granted: u.arbitrary()?,
            epoch: u.int_in_range(0..=12)?,
            digest: u.arbitrary::<Option<u64>>()?.map(membership::codec::Digest),
        },
    })
}

fn config(u: &mut Unstructured) -> Result<Config> {
    let observers = u.int_in_range(1..=5)?;
    Ok(Config {
        observers,
        confirmations: u.int_in_range(1..=observers)?,
        max_members: u.int_in_range(2..=12)?,
        max_metadata_bytes: u.int_in_range(64..=200)?,
        eviction_grace_period: Duration::from_secs(5),
        tombstone_ttl: Duration::from_secs(60),
        ..Config::default()
    })
}

struct Harness {
    node: Node,
    now: Duration,
    cluster: u32,
    /// The node's own earlier datagrams, to replay.
    sent: Vec<Vec<u8>>,
    /// Whether the node came back with a new life during the current step.
    rejoined: bool,
    /// When it last came back with a new life.
    last_rejoin: Option<Duration>,
}

impl Harness {
    fn absorb(&mut self, cap: Capture) {
        let max = self.node.config().max_datagram;
        for (_, bytes) in cap.sent {
            assert!(
                bytes.len() <= max,
                "sent {} bytes, limit {max}",
                bytes.len()
            );
            if let Err(e) = codec::decode(self.cluster, max, &bytes) {
                panic!("the node sent a datagram it cannot decode: {e}");
            }
            if self.sent.len() < 64 {
                self.sent.push(bytes);
            }
        }
        for e in cap.events {
            if let Event::MemberFailed { id, .. } = &e {
                assert_ne!(id, self.node.id(), "the node saw itself fail");
            }
            if matches!(e, Event::SelfRejoined { .. }) {
                self.rejoined = true;
                let interval = self.node.config().heartbeat_interval;
                if let Some(last) = self.last_rejoin {
                    assert!(
                        self.now.saturating_sub(last) >= interval,
                        "came back twice within {interval:?}"
                    );
                }
                self.last_rejoin = Some(self.now);
            }
        }
    }

    fn check(&self, before: &BTreeMap<Arc<str>, MemberRecord>) {
        let node = &self.node;
        let cfg = node.config();
        let me = node.record(node.id()).expect("own record present");
        let rejoined = self.rejoined;
        let want = if node.has_left() {
            Liveness::Left
        } else {
            Liveness::Alive
        };
        assert_eq!(me.liveness, want, "own record {me:?}");
        if !node.has_left() {
            let status = node.view(self.now).member(node.id()).map(|m| m.status);
            assert!(
                matches!(status, Some(Status::Healthy | Status::Degraded)),
                "own status {status:?}"
            );
        }
        let records: Vec<&MemberRecord> = node.records().collect();
        assert!(
            records.len() <= cfg.max_members,
            "{} records, bound {}",
            records.len(),
            cfg.max_members
        );
        let mut summary = 0u64;
        let mut alive = 0;
        let limit = (START_GENERATION + 1)
            .saturating_add((self.now + MAX_GENERATION_AHEAD).as_millis() as u64);
        for r in &records {
            assert!(codec::valid_id(&r.id), "id {:?} in the table", r.id);
            assert!(
                r.generation <= limit,
                "generation {} in the table",
                r.generation
            );
            let len = codec::metadata_len(&r.meta);
            assert!(
                len <= cfg.max_metadata_bytes,
                "{len} bytes of metadata in the table"
            );
            if !matches!(r.liveness, Liveness::Left | Liveness::Removed) {
                summary ^= r.fingerprint();
            }
            if r.liveness == Liveness::Alive {
                alive += 1;
            }
            if let Some(old) = before.get(&r.id) {
                // the suspicion dropped, and perhaps newer news merged after it
                let dropped_suspicion = rejoined
                    && old.liveness == Liveness::Suspect
                    && r.liveness == Liveness::Alive
                    && MemberRecord {
                        liveness: Liveness::Suspect,
                        ..(*r).clone()
                    }
                    .subsumes(old);
                assert!(
                    r.subsumes(old) || dropped_suspicion,
                    "rolled back:\n  was {old:?}\n  now {r:?}"
                );
            }
        }
        assert_eq!(node.summary(), summary, "incremental summary drifted");
        assert_eq!(node.live_count(), alive, "live count drifted");
        if let Some(leader) = node.leader() {
            assert!(node.has_quorum(), "leader without quorum");
            let r = node.record(leader).expect("the leader is in the table");
            assert!(r.voter && r.liveness != Liveness::Failed, "leader {r:?}");
        }
    }

    fn step(&mut self, u: &mut Unstructured) -> Result<()> {
        let dt = match u.int_in_range(0..=31u8)? {
            0 => Duration::from_secs(u.int_in_range(1..=7200)?),
            1..=8 => Duration::ZERO,
            _ => Duration::from_millis(u.int_in_range(1..=1500)?),
        };
        self.now += dt;
        let now = self.now;
        let mut cap = Capture::default();
        match u.int_in_range(0..=15u8)? {
            0..=8 => {
                let i = u.int_in_range(0..=IDS.len() - 1)?;
                let from = if u.ratio(1, 16)? {
                    addr(u)?
                } else {
                    addr_of(i)
                };
                let msg = message(u, IDS[i])?;
                let bytes = codec::encode(self.cluster, &msg);
                let named = match &msg {
                    Message::Join { record, .. } => Some(record.id.to_string()),
                    m => m.sender().map(|s| s.id.clone()),
                };
                let member = named
                    .and_then(|id| self.node.record(&id).cloned())
                    .is_some_and(|r| {
                        r.addr == from && !matches!(r.liveness, Liveness::Left | Liveness::Removed)
                    });
                if u.ratio(1, 4)? {
                    let _ = self
                        .node
                        .handle_authenticated_datagram(now, from, &bytes, &mut cap);
                } else {
                    let _ = self.node.handle_datagram(now, from, &bytes, &mut cap);
                    if !member {
                        // A member held FAILED or REMOVED that still speaks from that life is
                        // told so once, at its own address (`node::departed`): not an answer
                        // the budget bounds.
                        let told = |to: &SocketAddr, d: &[u8]| {
                            *to == from
                                && matches!(
                                    codec::decode(self.cluster, usize::MAX, d),
                                    Ok(Message::Gossip { updates, .. })
                                        if matches!(&updates[..], [Update::Record(r)]
                                            if msg.sender().is_some_and(|s| *r.id == *s.id)
                                                && matches!(r.liveness, Liveness::Failed | Liveness::Removed))
                                )
                        };
                        let answered: usize = cap
                            .sent
                            .iter()
                            .filter(|(to, d)| !told(to, d))
                            .map(|(_, d)| d.len())
                            .sum();
                        assert!(
                            answered <= bytes.len(),
                            "a stranger's {} of {} bytes drew {answered} bytes",
                            msg.kind(),
                            bytes.len()
                        );
                    }
                }
                for (to, d) in &cap.sent {
                    if let Ok(Message::ProbeAck { .. }) = codec::decode(self.cluster, usize::MAX, d)
                    {
                        assert_eq!(*to, from, "a probe answered elsewhere than its source");
                    }
                }
            }
            9 => {
                let bytes: Vec<u8> = u.arbitrary()?;
                let from = addr(u)?;
                let _ = self.node.handle_datagram(now, from, &bytes, &mut cap);
            }
            10 if !self.sent.is_empty() => {
                let i = u.int_in_range(0..=self.sent.len() - 1)?;
                let bytes = self.sent[i].clone();
                let from = addr(u)?;
                let _ = self.node.handle_datagram(now, from, &bytes, &mut cap);
            }
            11 => {
                let key = if u.arbitrary()? {
                    "k".to_string()
                } else {
                    text(u)?
                };
                let value = if u.ratio(1, 4)? { None } else { Some(text(u)?) };
                let before = self.node.record(self.node.id()).cloned();
                if self.node.set_tag(&key, value.as_deref()).is_err() {
                    assert_eq!(self.node.record(self.node.id()).cloned(), before);
                }
            }
            12 => self.node.set_signals(HealthSignals {
                cpu_pct: u.arbitrary()?,
                mem_pct: u.arbitrary()?,
                error_pct: u.arbitrary()?,
                pressure_pct: u.arbitrary()?,
                lag_ms: u.arbitrary()?,
                latency_ms: u.arbitrary()?,
            }),
            13 => {
                let target = id(u)?;
                let _ = self.node.force_remove(now, &target, &mut cap);
            }
            14 if u.ratio(1, 8)? => self.node.leave(now, &mut cap),
            _ => {
                // jump to the node's next deadline
                self.now = self.now.max(self.node.poll_timeout());
            }
        }
        if self.node.poll_timeout() <= self.now {
            let now = self.now;
            self.node.handle_timeout(now, &mut cap);
        }
        self.absorb(cap);
        Ok(())
    }
}

fn run(u: &mut Unstructured) -> Result<()> {
    let config = config(u)?;
    let seeds = match u.int_in_range(0..=2u8)? {
        0 => vec![],
        1 => vec![addr_of(1)],
        _ => vec![addr_of(0), addr_of(1), addr_of(2)],
    };
    let identity = Identity {
        id: "me".into(),
        addr: addr_of(0),
        generation: START_GENERATION,
        meta: Metadata {
            role: "role".into(),
            zone: "z1".into(),
            ..Default::default()
        },
        cluster: CLUSTER.into(),
    };
    let rng_seed = u.arbitrary()?;
    let node = Node::new(identity, config, seeds, Duration::ZERO, rng_seed)
        .expect("a valid configuration");
    let mut h = Harness {
        node,
        now: Duration::ZERO,
        cluster: codec::cluster_id(CLUSTER),
        sent: Vec::new(),
        rejoined: false,
        last_rejoin: None,
    };
    let mut steps = 0;
    while !u.is_empty() && steps < 400 {
        steps += 1;
        let before: BTreeMap<Arc<str>, MemberRecord> = h
            .node
            .records()
            .map(|r| (r.id.clone(), r.clone()))
            .collect();
        h.rejoined = false;
        h.step(u)?;
        h.check(&before);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
});
