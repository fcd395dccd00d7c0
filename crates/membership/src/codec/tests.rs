use proptest::prelude::*;

use std::net::SocketAddr;

use super::*;
use crate::member::{HealthSignals, Liveness, Metadata};

fn liveness() -> impl Strategy<Value = Liveness> {
    prop_oneof![
        Just(Liveness::Alive),
        Just(Liveness::Suspect),
        Just(Liveness::Failed),
        Just(Liveness::Left),
        Just(Liveness::Removed),
    ]
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
    ]
}

fn record() -> impl Strategy<Value = MemberRecord> {
    (
        "[a-z0-9][a-z0-9-]{0,23}",
        addr(),
        any::<u64>(),
        any::<u64>(),
        liveness(),
        any::<u64>(),
        (
            "[a-z]{0,10}",
            "[a-z0-9-]{0,10}",
            "[a-z0-9]{0,4}",
            proptest::option::of("[0-9.:]{0,21}"),
        ),
        any::<(u8, u8, u8)>(),
        proptest::collection::btree_map("[a-z]{1,8}", "[ -~]{0,16}", 0..3),
        any::<bool>(),
    )
        .prop_map(
            |(
                id,
                addr,
                generation,
                incarnation,
                liveness,
                meta_version,
                (role, zone, rack, http_addr),
                s,
                tags,
                voter,
            )| {
                MemberRecord {
                    id: id.into(),
                    addr,
                    generation,
                    incarnation,
                    liveness,
                    meta_version,
                    meta: Metadata {
                        role,
                        zone,
                        rack,
                        http_addr,
                        signals: HealthSignals {
                            cpu_pct: s.0,
                            mem_pct: s.1,
                            error_pct: s.2,
                            ..Default::default()
                        },
                        tags,
                    }
                    .into(),
                    voter,
                    joining: !voter && incarnation % 2 == 1,
                }
            },
        )
}

fn sender() -> impl Strategy<Value = Sender> {
    (
        "[a-z0-9][a-z0-9-]{0,23}",
        any::<u64>(),
        any::<u64>(),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(|(id, generation, incarnation, summary)| Sender {
            id,
            generation,
            incarnation,
            summary: summary.map(crate::codec::Summary),
        })
}

fn update() -> impl Strategy<Value = Update> {
    prop_oneof![
        record().prop_map(Update::Record),
        (
            "[a-z0-9]{1,12}",
            any::<u64>(),
            any::<u64>(),
            "[a-z0-9]{1,12}"
        )
            .prop_map(|(subject, generation, incarnation, by)| {
                Update::Accuse {
                    subject,
                    generation,
                    incarnation,
                    by,
                }
            }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    let updates = || proptest::collection::vec(update(), 0..6);
    prop_oneof![
        (sender(), any::<u64>(), updates()).prop_map(|(from, seq, updates)| Message::Heartbeat {
            from,
            seq,
            updates
        }),
        (sender(), updates()).prop_map(|(from, updates)| Message::Gossip { from, updates }),
        (record(), proptest::collection::vec(any::<u8>(), 0..32))
            .prop_map(|(record, padding)| Message::Join { record, padding }),
        (
            sender(),
            proptest::collection::vec(any::<u32>(), 0..64),
            any::<bool>()
        )
            .prop_map(|(from, ranges, reply)| Message::SyncDigest {
                from,
                ranges,
                reply
            }),
        (sender(), proptest::collection::vec(record(), 0..5))
            .prop_map(|(from, records)| Message::SyncRecords { from, records }),
        (sender(), any::<u64>()).prop_map(|(from, nonce)| Message::Probe { from, nonce }),
        (sender(), any::<u64>()).prop_map(|(from, nonce)| Message::ProbeAck { from, nonce }),
        (
            sender(),
            any::<u64>(),
            any::<u32>(),
            any::<u64>(),
            any::<(u64, Option<u64>)>()
        )
            .prop_map(|(from, round, valid_ms, confirmed, (epoch, digest))| {
                Message::LeaseRequest {
                    from,
                    round,
                    valid_ms,
                    confirmed,
                    epoch,
                    digest: digest.map(crate::codec::Digest),
                }
            }),
        (
            sender(),
            any::<u64>(),
            any::<bool>(),
            any::<(u64, Option<u64>)>()
        )
            .prop_map(
                |(from, round, granted, (epoch, digest))| Message::LeaseGrant {
                    from,
                    round,
                    granted,
                    epoch,
                    digest: digest.map(crate::codec::Digest),
                }
            ),
    ]
}

proptest! {
    #[test]
    fn every_message_round_trips(msg in message()) {
        let bytes = encode(7, &msg);
        prop_assert_eq!(decode(7, usize::MAX, &bytes).unwrap(), msg);
    }

    #[test]
    fn update_len_is_exact(u in update()) {
        let direct = postcard::to_allocvec(&u).unwrap().len();
        prop_assert_eq!(update_len(&u), direct);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = decode(7, 1400, &bytes);
    }

    #[test]
    fn random_bodies_behind_a_valid_header_never_panic(body in proptest::collection::vec(any::<u8>(), 0..1400)) {
        let mut bytes = vec![MAGIC, WIRE_VERSION];
        bytes.extend_from_slice(&7u32.to_le_bytes());
        bytes.push(0);
        bytes.extend_from_slice(&body);
        let _ = decode(7, usize::MAX, &bytes);
    }

    #[test]
    fn truncated_messages_are_rejected_not_panicking(msg in message(), cut in 0usize..64) {
        let bytes = encode(7, &msg);
        let cut = cut.min(bytes.len());
        let _ = decode(7, usize::MAX, &bytes[..bytes.len() - cut]);
    }
}

#[test]
fn foreign_cluster_and_bad_headers_are_named() {
    let msg = Message::ProbeAck {
        from: Sender {
            id: "a".into(),
            generation: 1,
            incarnation: 0,
            summary: Some(crate::codec::Summary(0)),
        },
        nonce: 9,
    };
    let bytes = encode(cluster_id("blue"), &msg);
    assert!(matches!(
        decode(cluster_id("green"), 1400, &bytes),
        Err(DecodeError::ForeignCluster(_))
    ));
    assert_eq!(decode(1, 1400, &[1, 2]), Err(DecodeError::TooShort(2)));
    assert_eq!(
        decode(1, 1400, &[0, 1, 0, 0, 0, 0, 0]),
        Err(DecodeError::BadMagic(0))
    );
    assert_eq!(
        decode(1, 1400, &[MAGIC, 9, 0, 0, 0, 0, 0]),
        Err(DecodeError::UnsupportedVersion(9))
    );
    assert_eq!(decode(1, 4, &[0; 5]), Err(DecodeError::TooLarge(5)));
}

fn big_sender(id: &str) -> Sender {
    Sender {
        id: id.into(),
        generation: u64::MAX,
        incarnation: u64::MAX,
        summary: Some(crate::codec::Summary(u32::MAX)),
    }
}

#[test]
fn ids_must_be_1_to_max_id_len_bytes() {
    let ok = "x".repeat(MAX_ID_LEN);
    let long = "x".repeat(MAX_ID_LEN + 1);
    let probe = |id: &str| Message::ProbeAck {
        from: big_sender(id),
        nonce: 0,
    };
    assert!(decode(7, 1400, &encode(7, &probe(&ok))).is_ok());
    assert_eq!(
        decode(7, 1400, &encode(7, &probe(&long))),
        Err(DecodeError::Bounds("invalid sender id"))
    );
    assert!(matches!(
        decode(7, 1400, &encode(7, &probe(""))),
        Err(DecodeError::Bounds(_))
    ));
    let accuse = |subject: &str, by: &str| Message::Gossip {
        from: big_sender("a"),
        updates: vec![Update::Accuse {
            subject: subject.into(),
            generation: 1,
            incarnation: 1,
            by: by.into(),
        }],
    };
    assert!(decode(7, 1400, &encode(7, &accuse("b", "c"))).is_ok());
    assert!(decode(7, 1400, &encode(7, &accuse(&long, "c"))).is_err());
    assert!(decode(7, 1400, &encode(7, &accuse("b", ""))).is_err());
    let mut rec = MemberRecord {
        id: long.clone().into(),
        addr: "10.0.0.1:1".parse().unwrap(),
        generation: 1,
        incarnation: 0,
        liveness: Liveness::Alive,
        meta_version: 1,
        meta: Default::default(),
        voter: false,
        joining: false,
    };
    let join = Message::Join {
        record: rec.clone(),
        padding: Vec::new(),
    };
    assert!(decode(7, 1400, &encode(7, &join)).is_err());
    let sync = Message::SyncRecords {
        from: big_sender("a"),
        records: vec![rec.clone()],
    };
    assert!(decode(7, 1400, &encode(7, &sync)).is_err());
    rec.id = ok.into();
    let gossip = Message::Gossip {
        from: big_sender("a"),
        updates: vec![Update::Record(rec)],
    };
    assert!(decode(7, 1400, &encode(7, &gossip)).is_ok());
}

/// Issue 14: 20,000 mutated messages made members of ids "", "." and control characters.
#[test]
fn ids_are_printable_names_and_anything_else_is_refused_at_decode() {
    for ok in [
        "n1",
        "n00001",
        "coordinator",
        "consumer-7f9c2",
        "vigil-0.vigil.svc",
        "a:b",
        "A_1",
    ] {
        assert!(valid_id(ok), "{ok:?}");
    }
    let bad = [
        "",
        ".",
        "..",
        "-x",
        ":",
        "_",
        "n\0",
        "n\n1",
        "n 1",
        "n/1",
        "../etc",
        "n\u{7f}",
        "né",
        "n\u{200b}",
        "n\t",
    ];
    for id in bad {
        assert!(!valid_id(id), "{id:?} accepted");
        let probe = Message::ProbeAck {
            from: big_sender(id),
            nonce: 0,
        };
        assert_eq!(
            decode(7, 1400, &encode(7, &probe)),
            Err(DecodeError::Bounds("invalid sender id")),
            "{id:?}"
        );
        let record = MemberRecord {
            id: id.into(),
            addr: "10.0.0.1:1".parse().unwrap(),
            generation: 1,
            incarnation: 0,
            liveness: Liveness::Alive,
            meta_version: 1,
            meta: Default::default(),
            voter: false,
            joining: false,
        };
        let carriers = [
            Message::Join {
                record: record.clone(),
                padding: Vec::new(),
            },
            Message::Gossip {
                from: big_sender("a"),
                updates: vec![Update::Record(record.clone())],
            },
            Message::SyncRecords {
                from: big_sender("a"),
                records: vec![record],
            },
            Message::Heartbeat {
                from: big_sender("a"),
                seq: 1,
                updates: vec![Update::Accuse {
                    subject: id.into(),
                    generation: 1,
                    incarnation: 1,
                    by: "b".into(),
                }],
            },
        ];
        for m in carriers {
            assert!(
                matches!(decode(7, 1400, &encode(7, &m)), Err(DecodeError::Bounds(_))),
                "{id:?} in {}",
                m.kind()
            );
        }
    }
}

#[test]
fn digests_have_at_most_max_slices() {
    let digest = |n: usize| Message::SyncDigest {
        from: big_sender("a"),
        ranges: vec![0; n],
        reply: true,
    };
    assert!(decode(7, 65_000, &encode(7, &digest(MAX_SLICES))).is_ok());
    assert_eq!(
        decode(7, 65_000, &encode(7, &digest(MAX_SLICES + 1))),
        Err(DecodeError::Bounds("digest with too many slices"))
    );
}

/// Metadata of exactly `len` encoded bytes (in tags, the free part).
fn metadata_of(len: usize) -> Metadata {
    let mut m = Metadata {
        role: "producer".into(),
        zone: "eu-west-1a".into(),
        rack: "r1".into(),
        http_addr: Some("[fd00::1]:8082".into()),
        signals: HealthSignals {
            cpu_pct: 100,
            mem_pct: 100,
            error_pct: 100,
            pressure_pct: 100,
            lag_ms: u16::MAX,
            latency_ms: u16::MAX,
        },
        tags: Default::default(),
    };
    let mut value = String::new();
    while metadata_len(&m) < len {
        value.push('v');
        m.tags.insert("k".into(), value.clone());
    }
    while metadata_len(&m) > len {
        // a length prefix grew by a byte: trim the value
        value.pop();
        m.tags.insert("k".into(), value.clone());
    }
    m
}

#[test]
fn a_record_at_every_bound_fits_one_datagram() {
    // The validated bound on metadata leaves room for the rest of the largest message
    // carrying one record: ids of MAX_ID_LEN, IPv6, every counter at u64::MAX.
    for (max_datagram, max_meta) in [(1400, 512), (1400, 1000), (512, 112), (65_000, 64_600)] {
        let config = crate::Config {
            max_datagram,
            max_metadata_bytes: max_meta,
            ..crate::Config::default()
        };
        config.validate().unwrap();
        let meta = metadata_of(max_meta);
        assert!(metadata_len(&meta) <= max_meta && metadata_len(&meta) + 2 >= max_meta);
        let rec = MemberRecord {
            id: "r".repeat(MAX_ID_LEN).into(),
            addr: "[fd00::1:2:3:4]:65535".parse().unwrap(),
            generation: u64::MAX,
            incarnation: u64::MAX,
            liveness: Liveness::Removed,
            meta_version: u64::MAX,
            meta: meta.into(),
            voter: true,
            joining: false,
        };
        let from = big_sender(&"s".repeat(MAX_ID_LEN));
        for msg in [
            Message::Heartbeat {
                from: from.clone(),
                seq: u64::MAX,
                updates: vec![Update::Record(rec.clone())],
            },
            Message::Gossip {
                from: from.clone(),
                updates: vec![Update::Record(rec.clone())],
            },
            Message::SyncRecords {
                from: from.clone(),
                records: vec![rec.clone()],
            },
            Message::Join {
                record: rec.clone(),
                padding: Vec::new(),
            },
        ] {
            let bytes = encode(7, &msg);
            // the node packs with a worst-case sequence prefix: count it too
            assert!(
                bytes.len() + SEQ_PREFIX_MAX <= max_datagram,
                "{} + {SEQ_PREFIX_MAX} bytes > {max_datagram} for {}",
                bytes.len(),
                msg.kind()
            );
            assert_eq!(decode(7, max_datagram, &bytes).unwrap(), msg);
        }
    }
}

proptest! {
    #[test]
    fn a_padded_join_fills_the_datagram_exactly(rec in record(), max in 64usize..70_000) {
        let msg = Message::padded_join(7, rec.clone(), max);
        let bytes = encode(7, &msg);
        let bare = encode(7, &Message::Join { record: rec, padding: Vec::new() }).len();
        if bare >= max {
            prop_assert_eq!(bytes.len(), bare);
        } else {
            // one byte short only where the length prefix grows by a byte
            prop_assert!(bytes.len() <= max && bytes.len() + 1 >= max, "{} of {}", bytes.len(), max);
        }
        prop_assert_eq!(decode(7, max.max(bare), &bytes).unwrap(), msg);
    }
}
