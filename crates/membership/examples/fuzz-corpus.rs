//! Writes the seed corpus of the `codec` fuzz target: one valid datagram per message kind
//! (cluster "fuzz"), with records, accusations, tags and IPv4/IPv6 addresses.
//!
//! ```text
//! cargo run -p membership --example fuzz-corpus -- fuzz/corpus/codec
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;

use membership::codec::{self, Message, Sender, Update};
use membership::{HealthSignals, Liveness, MemberRecord, Metadata};

fn record(id: &str, liveness: Liveness, v6: bool) -> MemberRecord {
    let addr: SocketAddr = if v6 {
        "[fd00::7]:7946".parse().expect("literal address")
    } else {
        "10.0.0.7:7946".parse().expect("literal address")
    };
    MemberRecord {
        id: id.into(),
        addr,
        generation: 1_764_000_000_000,
        incarnation: 3,
        liveness,
        meta_version: 2,
        meta: Metadata {
            role: "producer".into(),
            zone: "eu-west-1a".into(),
            rack: "r1".into(),
            http_addr: Some("10.0.0.7:8082".into()),
            signals: HealthSignals {
                cpu_pct: 35,
                mem_pct: 60,
                error_pct: 0,
                ..Default::default()
            },
            tags: BTreeMap::from([("version".into(), "0.1.0".into())]),
        }
        .into(),
        voter: true,
        joining: false,
    }
}

fn sender(id: &str) -> Sender {
    Sender {
        id: id.into(),
        generation: 1_764_000_000_000,
        incarnation: 0,
        summary: Some(codec::Summary(0x89ab_cdef)),
    }
}

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus/codec".into());
    std::fs::create_dir_all(&dir)?;
    let messages = [
        (
            "heartbeat",
            Message::Heartbeat {
                from: sender("n1"),
                seq: 42,
                updates: vec![
                    Update::Record(record("n2", Liveness::Alive, false)),
                    Update::Accuse {
                        subject: "n3".into(),
                        generation: 7,
                        incarnation: 1,
                        by: "n1".into(),
                    },
                ],
            },
        ),
        (
            "gossip",
            Message::Gossip {
                from: sender("n1"),
                updates: vec![
                    Update::Record(record("n4", Liveness::Failed, true)),
                    Update::Record(record("n5", Liveness::Left, false)),
                ],
            },
        ),
        (
            "join",
            Message::Join {
                record: record("n6", Liveness::Alive, false),
                padding: vec![0; 16],
            },
        ),
        (
            "sync-digest",
            Message::SyncDigest {
                from: sender("n2"),
                ranges: vec![1, 2, 3, 0xffff_ffff],
                reply: true,
            },
        ),
        (
            "sync-records",
            Message::SyncRecords {
                from: sender("n2"),
                records: vec![
                    record("n7", Liveness::Suspect, true),
                    record("n8", Liveness::Removed, false),
                ],
            },
        ),
        (
            "probe",
            Message::Probe {
                from: sender("n3"),
                nonce: 7,
            },
        ),
        (
            "probe-ack",
            Message::ProbeAck {
                from: sender("n1"),
                nonce: 7,
            },
        ),
    ];
    let cluster = codec::cluster_id("fuzz");
    for (name, msg) in &messages {
        let bytes = codec::encode(cluster, msg);
        assert_eq!(codec::decode(cluster, 1400, &bytes).as_ref(), Ok(msg));
        let path = format!("{dir}/seed-{name}");
        std::fs::write(&path, &bytes)?;
        println!("{path}: {} bytes", bytes.len());
    }
    Ok(())
}
